"""FID: features -> reference statistics -> metric.

The value is the TTUR formula torch-fidelity uses,

    ||mu_g - mu_r||^2 + tr S_g + tr S_r - 2 tr sqrt(S_g S_r),

but tr sqrt(S_g S_r) is computed as a symmetric PSD eigenproblem in whichever space is smaller:
in sample space it is the nuclear norm of X_g X_r^T / sqrt((n_g-1)(n_r-1)) (X centred); in
feature space it is tr sqrt(A S_g A) with A = S_r^(1/2). torch-fidelity's general eigensolver on
a 2048x2048 non-symmetric product takes tens of seconds here and is noisy when n < 2048 (tiny
negative eigenvalues); this takes about a second and agrees to rounding (tests check it).
"""

from __future__ import annotations

import numpy as np


class RealReference:
    """The real side prepared once for many FIDs (bootstrap, per model).

    Centred features, mean, trace.
    """

    def __init__(self, real: np.ndarray) -> None:
        x = real.astype(np.float64)
        self.mu = x.mean(axis=0)
        self.centred = x - self.mu
        self.n = len(x)
        self.trace = float((self.centred * self.centred).sum() / (self.n - 1))
        self._sqrt_sigma: np.ndarray | None = None

    @property
    def sqrt_sigma(self) -> np.ndarray:
        if self._sqrt_sigma is None:
            w, v = np.linalg.eigh(self.centred.T @ self.centred / (self.n - 1))
            self._sqrt_sigma = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
        return self._sqrt_sigma


def _trace_sqrt_psd(gram: np.ndarray) -> float:
    return float(np.sqrt(np.clip(np.linalg.eigvalsh(gram), 0, None)).sum())


def fid_to(generated: np.ndarray, ref: RealReference) -> float:
    x = generated.astype(np.float64)
    mu = x.mean(axis=0)
    xg = x - mu
    n, d = xg.shape
    if min(n, ref.n) <= d:
        m = (xg @ ref.centred.T) / np.sqrt((n - 1) * (ref.n - 1))
        tr_covmean = _trace_sqrt_psd(m @ m.T if n <= ref.n else m.T @ m)
    else:
        y = (xg @ ref.sqrt_sigma) / np.sqrt(n - 1)
        tr_covmean = _trace_sqrt_psd(y.T @ y)
    diff = mu - ref.mu
    return float(diff @ diff + (xg * xg).sum() / (n - 1) + ref.trace - 2 * tr_covmean)


def fid(generated: np.ndarray, real: np.ndarray) -> float:
    return fid_to(generated, RealReference(real))


def fid_per_category(
    generated: np.ndarray,
    generated_labels: np.ndarray,
    real: np.ndarray,
    real_labels: np.ndarray,
    categories: tuple[str, ...],
) -> dict[str, float]:
    """FID of each category that has at least two images on both sides (a covariance needs two)."""
    out = {}
    for index, name in enumerate(categories):
        g, r = generated[generated_labels == index], real[real_labels == index]
        if len(g) >= 2 and len(r) >= 2:
            out[name] = fid(g, r)
    return out
