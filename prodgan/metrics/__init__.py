"""Evaluation metrics on torch-fidelity (core compute: torch, numpy, torch-fidelity only)."""

from prodgan.metrics.confidence import Interval, fid_delta_interval, fid_interval
from prodgan.metrics.evaluate import (
    METRICS,
    EvalResult,
    evaluate_generator,
    evaluate_samples,
    quick_fid,
)
from prodgan.metrics.paired import fid_delta_from_cache
from prodgan.metrics.protocol import Protocol

__all__ = [
    "METRICS",
    "EvalResult",
    "Interval",
    "Protocol",
    "evaluate_generator",
    "evaluate_samples",
    "fid_delta_interval",
    "fid_interval",
    "fid_delta_from_cache",
    "quick_fid",
]
