"""Inception Score from classifier logits (Inception's when the official weights exist, otherwise
the domain evaluator's): torch-fidelity's estimator."""

from __future__ import annotations

import numpy as np
import torch
from torch_fidelity.metric_isc import (
    KEY_METRIC_ISC_MEAN,
    KEY_METRIC_ISC_STD,
    isc_features_to_metric,
)


def inception_score(logits: np.ndarray, *, splits: int, seed: int) -> tuple[float, float]:
    out = isc_features_to_metric(
        torch.from_numpy(logits),
        splits=max(1, min(splits, len(logits) // 2)),
        shuffle=True,
        rng_seed=seed,
    )
    return out[KEY_METRIC_ISC_MEAN], out[KEY_METRIC_ISC_STD]
