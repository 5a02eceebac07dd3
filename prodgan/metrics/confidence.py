"""Confidence for FID: bootstrap intervals over the generated samples, and the paired comparison
the promotion gates need (challenger - champion, both against the same real reference).

FID is biased upward under resampling (duplicates shrink the covariance), so the intervals are
bias-centred percentile intervals: the spread of the bootstrap distribution around its median,
placed around the point estimate. They reflect the sampling noise of the generated side; the
real side is fixed by the protocol.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from prodgan.metrics.defaults import DEFAULTS
from prodgan.metrics.fid import RealReference, fid_to


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float
    confidence: float
    resamples: int


def centred_interval(value: float, replicates: np.ndarray, confidence: float) -> Interval:
    alpha = (1 - confidence) / 2
    lo, mid, hi = np.quantile(replicates, [alpha, 0.5, 1 - alpha])
    return Interval(
        value, value + float(lo - mid), value + float(hi - mid), confidence, len(replicates)
    )


def _resample(n: int, rng: np.random.RandomState) -> np.ndarray:
    return rng.randint(0, n, size=n)


def fid_interval(
    generated: np.ndarray,
    real: np.ndarray | RealReference,
    value: float,
    *,
    resamples: int,
    seed: int,
    confidence: float,
) -> Interval:
    """Bootstrap interval of FID(generated, real) around the exact `value`."""
    ref = real if isinstance(real, RealReference) else RealReference(real)
    rng = np.random.RandomState(seed)
    reps = np.array(
        [fid_to(generated[_resample(len(generated), rng)], ref) for _ in range(resamples)]
    )
    return centred_interval(value, reps, confidence)


def fid_delta_interval(
    challenger: np.ndarray,
    champion: np.ndarray,
    real: np.ndarray | RealReference,
    *,
    resamples: int = DEFAULTS["bootstrap"],
    seed: int = 0,
    confidence: float = DEFAULTS["confidence"],
) -> Interval:
    """Interval of FID(challenger) - FID(champion) (negative = challenger better).

    Both sides are resampled independently per replicate against one real reference.
    Needs features under one protocol.
    """
    if challenger.shape[1:] != champion.shape[1:]:
        raise ValueError(
            f"feature shapes differ: {challenger.shape} vs {champion.shape}; "
            "compare under one protocol"
        )
    ref = real if isinstance(real, RealReference) else RealReference(real)
    value = fid_to(challenger, ref) - fid_to(champion, ref)
    rng = np.random.RandomState(seed)
    reps = np.array(
        [
            fid_to(challenger[_resample(len(challenger), rng)], ref)
            - fid_to(champion[_resample(len(champion), rng)], ref)
            for _ in range(resamples)
        ]
    )
    return centred_interval(value, reps, confidence)
