"""The evaluator classifier:
learns Fashion-MNIST from a small subset, round-trips, refuses tampered weights.
"""

from __future__ import annotations

import pytest

from prodgan.errors import ProdganError
from prodgan.models.evaluator import (
    WEIGHTS_FILE,
    accuracy,
    load_evaluator,
    save_evaluator,
)


@pytest.mark.slow  # ~20 s of CPU for the shared classifier when no earlier test built it
def test_evaluator_learns_a_small_subset_and_round_trips(evaluator_classifier, tmp_path):
    model, acc, test = evaluator_classifier  # 2 epochs over 3,000 images (shared: conftest.py)
    assert (
        acc > 0.6
    )  # 10 categories: chance is 0.1; the full split (prodgan evaluator train) reaches >= 0.9
    save_evaluator(tmp_path, model, {"test_accuracy": acc})
    loaded, record = load_evaluator(tmp_path)
    assert record["extra"]["test_accuracy"] == acc and loaded.sha256 == record["weights_sha256"]
    assert accuracy(loaded, test.images, test.labels) == pytest.approx(acc)
    (tmp_path / WEIGHTS_FILE).write_bytes((tmp_path / WEIGHTS_FILE).read_bytes()[:-10])
    with pytest.raises(ProdganError, match="does not match the sha256"):
        load_evaluator(tmp_path)


def test_missing_evaluator_is_a_clear_error(tmp_path):
    with pytest.raises(ProdganError, match="prodgan evaluator train"):
        load_evaluator(tmp_path)
