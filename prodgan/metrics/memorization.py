"""Memorization: the share of generated samples nearer to a training image than typical real test
images are (in feature space).

Threshold = the `quantile` of the test images' nearest-training-image distances. A generator
that samples the distribution like fresh test data scores about `quantile` (0.05 by default);
one that copies training images scores towards 1.
"""

from __future__ import annotations

import numpy as np
import torch


def nearest_distances(queries: np.ndarray, references: np.ndarray, chunk: int = 1024) -> np.ndarray:
    ref = torch.from_numpy(references)
    return torch.cat([torch.cdist(q, ref).min(dim=1).values for q in torch.from_numpy(queries).split(chunk)]).numpy()


def memorization(generated: np.ndarray, train: np.ndarray, test: np.ndarray, *, quantile: float) -> float:
    threshold = np.quantile(nearest_distances(test, train), quantile)
    return float((nearest_distances(generated, train) < threshold).mean())
