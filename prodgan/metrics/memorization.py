"""Memorization: the share of generated samples nearer to a training image than real test images are.

Searched against the *whole* training split, in pixel space (images downsampled to at most
32x32 per channel), which a CPU can afford for tens of thousands of small product images and
which an exact copy cannot escape (distance 0). Calibrated by the test split itself: the
threshold is the `quantile` of the test images' nearest-training-image distances. A generator
that samples the distribution like fresh test data scores about `quantile` (0.05 by default);
one that returns training images scores 1.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

MAX_SIDE = 32


def pixel_vectors(images: np.ndarray) -> torch.Tensor:
    """uint8 [N, C, H, W] -> float [N, D] in [0, 1], area-downsampled to at most MAX_SIDE per side."""
    x = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255)
    if x.shape[-1] > MAX_SIDE:
        x = F.adaptive_avg_pool2d(x, MAX_SIDE)
    return x.flatten(1)


def nearest_distances(queries: torch.Tensor, references: torch.Tensor, chunk: int = 512) -> np.ndarray:
    """Euclidean distance of each query to its nearest reference (chunked: bounded memory)."""
    ref_sq = (references * references).sum(1)
    out = []
    for q in queries.split(chunk):
        d2 = (q * q).sum(1, keepdim=True) - 2 * q @ references.T + ref_sq
        out.append(d2.min(dim=1).values.clamp_min_(0).sqrt_())
    return torch.cat(out).numpy()


def memorization(generated: np.ndarray, train: np.ndarray, test: np.ndarray, *, quantile: float) -> float:
    """`generated`, `train`, `test`: uint8 image arrays of one shape (train: the whole split)."""
    reference = pixel_vectors(train)
    threshold = np.quantile(nearest_distances(pixel_vectors(test), reference), quantile)
    return float((nearest_distances(pixel_vectors(generated), reference) <= threshold).mean())
