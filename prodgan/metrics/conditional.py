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


def judge_references(
    real_logits: np.ndarray,
    real_labels: np.ndarray,
    noise_logits: np.ndarray,
    noise_labels: np.ndarray,
    categories: int,
) -> dict[str, float]:
    """What the judge itself is worth under this protocol, beside the model's cond_acc.

    `cond_acc_floor`: its accuracy on the real photos of the split (what a perfect generator
    would score), measured on `cond_acc_floor_count` photos; `cond_acc_noise`: an untrained
    generator's score; `cond_acc_chance`: one category in `categories`. The gate reads them to
    decide whether the judge separates anything before it judges a model by it.
    """
    return {
        "cond_acc_floor": conditional_accuracy(real_logits, real_labels),
        "cond_acc_floor_count": float(len(real_labels)),
        "cond_acc_noise": conditional_accuracy(noise_logits, noise_labels),
        "cond_acc_chance": 1.0 / categories,
    }
