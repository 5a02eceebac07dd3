"""Bad evaluation requests, refused as one-line errors before any image is generated."""

from __future__ import annotations

from typing import Any

from prodgan.errors import ProdganError
from prodgan.metrics.defaults import DEFAULTS


def check_inputs(
    G_spec: Any,
    real: Any,
    *,
    samples: int,
    real_samples: int | None = None,
    kid_subset_size: int | None = None,
    evaluator: Any = None,
    metrics: tuple[str, ...] = (),
    train: Any = None,
    known: tuple[str, ...] = (),
) -> int:
    """Refuse bad requests before any work, as one-line errors; returns the real sample count."""
    real_samples = min(samples, len(real)) if real_samples is None else real_samples
    lo, hi = DEFAULTS["min_samples"], DEFAULTS["max_samples"]
    if not lo <= samples <= hi:
        raise ProdganError(
            f"--samples {samples} is out of range: use {lo}..{hi} "
            f"(FID needs a covariance; above {hi} split the work)"
        )
    if len(real) < lo:
        raise ProdganError(
            f"the {real.split} split holds {len(real)} image(s); "
            f"FID needs at least {lo}: import more data"
        )
    if not lo <= real_samples <= len(real):
        raise ProdganError(
            f"real sample count {real_samples} is out of range: "
            f"the {real.split} split holds {len(real)} images"
        )
    channels, size = real.images.shape[1], real.images.shape[2]
    if G_spec.channels != channels:
        kinds = {1: "grayscale", 3: "RGB"}
        raise ProdganError(
            f"the generator makes {kinds.get(G_spec.channels, G_spec.channels)} images "
            f"but {real.dataset} is {kinds.get(channels, channels)}: "
            "evaluate it against the dataset it was trained on"
        )
    if G_spec.size != size:
        raise ProdganError(
            f"the generator makes {G_spec.size}x{G_spec.size} images "
            f"but {real.dataset} is {size}x{size}: "
            "evaluate it against the dataset it was trained on"
        )
    if (
        kid_subset_size is not None
        and "kid" in metrics
        and not 2 <= kid_subset_size <= min(samples, real_samples)
    ):
        raise ProdganError(
            f"--kid-subset-size {kid_subset_size} must be within 2..{min(samples, real_samples)} "
            "(the sample counts); lower it or raise --samples"
        )
    if G_spec.num_classes and tuple(G_spec.categories) != tuple(real.categories):
        raise ProdganError(
            f"the generator's categories {list(G_spec.categories)} differ from "
            f"{real.dataset}'s {list(real.categories)}"
        )
    if evaluator is not None and tuple(evaluator.categories) != tuple(real.categories):
        raise ProdganError(
            f"the evaluator was trained on categories {list(evaluator.categories)}, "
            f"not {real.dataset}'s; "
            "retrain it with `prodgan evaluator train`"
        )
    if train is not None and train.images.shape[1:] != real.images.shape[1:]:
        raise ProdganError(f"train and {real.split} images differ in shape; re-import the dataset")
    unknown = set(metrics) - set(known)
    if unknown:
        raise ProdganError(f"unknown metric(s) {sorted(unknown)}; choose from {sorted(known)}")
    return real_samples
