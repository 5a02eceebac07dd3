"""A recipe fits the catalogue it is given: a held-out selection set (`eval_samples`) larger than a
small catalogue allows is sized down and said so (output and MLflow run), and a run that
`max_seconds` stopped says so too (output, MLflow tag `prodgan.stopped_by`).
"""

from __future__ import annotations

import pytest

from prodgan.names import STOPPED_BY
from prodgan.training.plan import selection_samples
from tests.train.helpers import SMOKE


@pytest.mark.parametrize(
    "requested, train_images, held_out",
    [
        (500, 377, 75),  # the catalogue: refused before, now 302 photos left to train on
        (500, 60000, 500),  # a large catalogue keeps the recipe's count
        (12, 300, 12),
        (500, 5, 2),  # never fewer than FID's 2
    ],
)
def test_selection_set_is_sized_from_the_catalogue(requested, train_images, held_out):
    assert selection_samples(requested, train_images) == held_out


@pytest.mark.slow  # a real (one-step) training run, a quick FID of 60 images and its MLflow run
def test_small_catalogue_and_time_budget_are_said_and_recorded(small_project):
    from prodgan.adapters.tracking import setup_mlflow
    from prodgan.ops.train import train as run_training
    from prodgan.ops.validate import validate as validate_dataset

    assert validate_dataset(small_project, "fashion-mnist").success
    said: list[str] = []
    result = run_training(
        small_project,
        SMOKE,
        ["eval_every=1000", "eval_samples=500", "steps=1000", "max_seconds=0.001"],
        progress=False,
        say=said.append,
    )
    run = setup_mlflow(small_project).get_run(result.run_id)
    assert any("eval_samples 500 -> 60" in line and "300 train" in line for line in said), said
    assert run.data.params["eval_samples"] == "60"
    assert run.data.params["lineage.eval_samples_configured"] == "500"
    assert result.step < 1000 and result.stopped_by == "max_seconds"
    assert run.data.tags[STOPPED_BY] == "max_seconds"
    assert any("stopped by max_seconds=0.001 at step" in line for line in said), said
