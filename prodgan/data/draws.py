"""Seeded, category-balanced draws of indices from a labelled split.

Benchmarks need the same photos on every machine and every category represented equally,
whatever the catalogue's imbalance: a stratified training subset (`bench/products_recipe.py`)
and the held-out photos an editing benchmark inverts (`bench/edit_quality.py`).
"""

from __future__ import annotations

import numpy as np

from prodgan.errors import ProdganError


def balanced_draw(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """n indices cycling through the categories 0..max(labels), each category's images drawn at
    random without replacement: n = k x categories gives exactly k per category.

    Same labels and seed -> same indices.
    """
    rng = np.random.RandomState(seed)
    categories = int(labels.max()) + 1
    pools = [rng.permutation(np.flatnonzero(labels == c)).tolist() for c in range(categories)]
    short = [c for c, pool in enumerate(pools) if len(pool) < len(range(c, n, categories))]
    if short:
        smallest = min(len(pool) for pool in pools)
        raise ProdganError(
            f"category {short[0]} has only {len(pools[short[0]])} images, "
            f"too few to draw {n} balanced over {categories} categories; "
            f"draw at most {smallest * categories}"
        )
    return np.array([pools[i % categories].pop() for i in range(n)], dtype=np.int64)
