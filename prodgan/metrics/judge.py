"""The category judge behind cond_acc: fitted on a split's Inception features, asked for logits.

`fit_judge` fits the linear probe (prodgan.models.probe) on the train split's features and
measures it on the test split's; both splits' features are cached under the same keys the
evaluation's real side uses, so a whole split is extracted once for both. `Judge` is how an
evaluation asks any evaluator for logits: the probe reads the Inception features the evaluation
already has (one matrix product), a pixel classifier (prodgan.models.evaluator) runs on images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from prodgan.errors import ProdganError
from prodgan.metrics.defaults import DEFAULTS
from prodgan.metrics.features import Progress, extract, make_extractor
from prodgan.metrics.inception_weights import InceptionWeights
from prodgan.metrics.protocol import real_features_key, real_subset
from prodgan.metrics.shards import Shards
from prodgan.models.probe import LinearProbe, ProbeSpec, fit_probe

INCEPTION = "2048"


@dataclass(frozen=True)
class FittedJudge:
    probe: LinearProbe
    test_accuracy: float  # on the whole test split, none of which it was fitted on
    test_images: int
    train_images: int


def capped(split: Any, limit: int | None) -> Any:
    """At most `limit` photos of `split` (ImageSplit): the protocol's seed-0 subset, in split
    order, so its features share the cache with an evaluation that uses as many real photos."""
    from prodgan.data.tensors import ImageSplit

    if limit is None or limit >= len(split):
        return split
    keep = real_subset(limit, len(split))
    return ImageSplit(
        split.images[keep],
        split.labels[keep],
        split.categories,
        split.dataset,
        split.split,
        split.data_hash,
    )


def split_features(
    split: Any,
    weights: InceptionWeights,
    cache_dir: Path,
    *,
    device: str = "cpu",
    progress: Progress | None = None,
) -> np.ndarray:
    """Inception features [N, 2048] of every image of `split` (ImageSplit), cached."""
    key = real_features_key(
        split.dataset,
        split.data_hash,
        split.split,
        len(split),
        DEFAULTS["extractor"],
        weights.sha256,
        DEFAULTS["resize"],
        DEFAULTS["precision"],
    )
    inception = make_extractor(DEFAULTS["extractor"], [INCEPTION], str(weights.path), device)
    features, _ = Shards().cached(  # one process: fitting is not sharded
        cache_dir,
        key,
        lambda: extract(
            split.images, inception, f"real:{split.split}", DEFAULTS["batch_size"], progress
        ),
    )
    return features[INCEPTION]


def fit_judge(
    train: Any,
    test: Any,
    weights: InceptionWeights,
    cache_dir: Path,
    *,
    device: str = "cpu",
    progress: Progress | None = None,
) -> FittedJudge:
    """Fit the probe on `train`'s features; its accuracy on `test`'s (both ImageSplits)."""
    if tuple(train.categories) != tuple(test.categories):
        raise ProdganError(
            "train and test splits declare different categories; re-import the dataset"
        )
    spec = ProbeSpec(tuple(train.categories), 2048, DEFAULTS["extractor"], weights.sha256)
    train_x = split_features(train, weights, cache_dir, device=device, progress=progress)
    test_x = split_features(test, weights, cache_dir, device=device, progress=progress)
    probe = fit_probe(spec, train_x, train.labels)
    return FittedJudge(probe, probe.accuracy(test_x, test.labels), len(test), len(train))


class Judge:
    """One evaluator as the evaluation asks it for logits.

    The probe reads Inception features (`from_features`); a pixel classifier is run as a
    torch-fidelity extractor (`extractor`) on the images, however the caller shares them out.
    """

    def __init__(self, evaluator: torch.nn.Module, weights: InceptionWeights, device: str) -> None:
        self.evaluator = evaluator
        self.reads_features = getattr(evaluator, "reads_features", False)
        if self.reads_features and evaluator.spec.inception_sha256 != weights.sha256:
            raise ProdganError(
                "the category judge was fitted on features of other Inception weights "
                f"({evaluator.spec.inception_sha256[:12]}, these are {weights.sha256[:12]}); "
                "fit it again with `prodgan evaluator train`"
            )
        self.extractor = (
            None
            if self.reads_features
            else make_extractor("prodgan-evaluator", ["logits"], evaluator.to(device), device)
        )

    def from_features(self, features: dict[str, np.ndarray] | None) -> np.ndarray | None:
        """[N, categories] from Inception features by layer; None where there are none (ranks
        other than the lead)."""
        return None if features is None else self.evaluator.logits(features[INCEPTION])
