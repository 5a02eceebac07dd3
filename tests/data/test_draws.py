import numpy as np
import pytest

from prodgan.data.draws import balanced_draw
from prodgan.errors import ProdganError


def test_balanced_draw_is_stratified_seeded_and_without_repeats() -> None:
    labels = np.array([0] * 30 + [1] * 5 + [2] * 12)
    idx = balanced_draw(labels, 15, seed=3)
    assert np.bincount(labels[idx]).tolist() == [5, 5, 5]  # imbalance gone
    assert len(set(idx.tolist())) == 15
    assert idx.tolist() == balanced_draw(labels, 15, seed=3).tolist()
    assert idx.tolist() != balanced_draw(labels, 15, seed=4).tolist()


def test_balanced_draw_refuses_more_than_the_smallest_category_holds() -> None:
    labels = np.array([0] * 30 + [1] * 5 + [2] * 12)
    with pytest.raises(ProdganError, match="category 1 has only 5 images.*at most 15"):
        balanced_draw(labels, 18, seed=0)
