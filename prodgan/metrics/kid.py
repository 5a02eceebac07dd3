"""KID (mean and std over random subsets): torch-fidelity's estimator on cached features."""

from __future__ import annotations

import numpy as np
import torch
from torch_fidelity.metric_kid import (
    KEY_METRIC_KID_MEAN,
    KEY_METRIC_KID_STD,
    kid_features_to_metric,
)


def kid(
    generated: np.ndarray, real: np.ndarray, *, subset_size: int, subsets: int, seed: int
) -> tuple[float, float]:
    out = kid_features_to_metric(
        torch.from_numpy(generated),
        torch.from_numpy(real),
        kid_subset_size=subset_size,
        kid_subsets=subsets,
        rng_seed=seed,
        verbose=False,
    )
    return out[KEY_METRIC_KID_MEAN], out[KEY_METRIC_KID_STD]
