"""Precision/recall (Kynkäänniemi et al.) on Inception features: torch-fidelity's estimator."""

from __future__ import annotations

import numpy as np
import torch
from torch_fidelity.metric_prc import (
    KEY_METRIC_PRECISION,
    KEY_METRIC_RECALL,
    prc_features_to_metric,
)


def precision_recall(
    generated: np.ndarray, real: np.ndarray, *, neighborhood: int
) -> tuple[float, float]:
    """Generated is input1, real is input2 (torch-fidelity's convention).

    Needs more than `neighborhood` samples per side.
    """
    k = min(neighborhood, len(generated) - 1, len(real) - 1)
    out = prc_features_to_metric(
        torch.from_numpy(generated),
        torch.from_numpy(real),
        prc_neighborhood=k,
        save_cpu_ram=True,
        verbose=False,
    )
    return out[KEY_METRIC_PRECISION], out[KEY_METRIC_RECALL]
