"""Conditional accuracy: how often the evaluator classifier agrees with the requested category."""

from __future__ import annotations

import numpy as np


def conditional_accuracy(logits: np.ndarray, requested: np.ndarray) -> float:
    return float((logits.argmax(axis=1) == requested).mean())


def accuracy_per_category(
    logits: np.ndarray, requested: np.ndarray, categories: tuple[str, ...]
) -> dict[str, float]:
    return {
        name: conditional_accuracy(logits[requested == i], requested[requested == i])
        for i, name in enumerate(categories)
        if (requested == i).any()
    }
