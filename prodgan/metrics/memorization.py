"""Memorization: the share of generated samples closer to a training image than fresh data is.

Searched against the *whole* training split, in pixel space (images downsampled to at most
32x32 per channel), which a CPU can afford for tens of thousands of small product images and
which an exact copy cannot escape (distance 0).

A plain distance threshold flags simple images: a near-black blob is close to every dim training
image, so the 300-step run of `make demo` scored 0.36 ("memorizing") while copying nothing. The
distance is therefore read relative to the local density of the training set, as in the
authenticity test of Alaa et al. (ICML 2022): a sample's distance to its nearest training image,
divided by that training image's distance to *its* nearest other training image. A copy scores
0; a sample in a sparse region is not penalised for being near the only image there. Calibrated by
the test split itself: the threshold is the `quantile` of the test images' ratios, so fresh data
scores about `quantile` (0.05 by default) and a generator that returns training images scores 1.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

MAX_SIDE = 32
# Duplicate training images have a neighbour at distance 0: only a copy (distance 0) is closer.
_TINY = 1e-6


def pixel_vectors(images: np.ndarray) -> torch.Tensor:
    """uint8 [N, C, H, W] -> float [N, D] in [0, 1].

    Area-downsampled to at most MAX_SIDE per side.
    """
    x = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255)
    if x.shape[-1] > MAX_SIDE:
        x = F.adaptive_avg_pool2d(x, MAX_SIDE)
    return x.flatten(1)


def nearest(
    queries: torch.Tensor,
    references: torch.Tensor,
    *,
    exclude: torch.Tensor | None = None,
    chunk: int = 512,
) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distance and index of each query's nearest reference (chunked: bounded memory).

    `exclude[i]` is a reference index query i may not match (itself, when queries are references).
    """
    ref_sq = (references * references).sum(1)
    distances, indices = [], []
    for start in range(0, len(queries), chunk):
        q = queries[start : start + chunk]
        d2 = (q * q).sum(1, keepdim=True) - 2 * q @ references.T + ref_sq
        if exclude is not None:
            d2[torch.arange(len(q)), exclude[start : start + chunk]] = float("inf")
        value, index = d2.min(dim=1)
        distances.append(value.clamp_min_(0).sqrt_())
        indices.append(index)
    return torch.cat(distances).numpy(), torch.cat(indices).numpy()


def density_ratios(queries: torch.Tensor, references: torch.Tensor) -> np.ndarray:
    """Distance to the nearest reference over that reference's own nearest-neighbour distance."""
    distance, index = nearest(queries, references)
    matched = np.unique(index)
    own, _ = nearest(references[matched], references, exclude=torch.from_numpy(matched))
    spacing = np.empty(len(references), dtype=own.dtype)
    spacing[matched] = own
    return distance / np.maximum(spacing[index], _TINY)


def memorization(
    generated: np.ndarray, train: np.ndarray, test: np.ndarray, *, quantile: float
) -> float:
    """`generated`, `train`, `test`: uint8 image arrays of one shape (train: the whole split)."""
    reference = pixel_vectors(train)
    threshold = np.quantile(density_ratios(pixel_vectors(test), reference), quantile)
    return float((density_ratios(pixel_vectors(generated), reference) <= threshold).mean())
