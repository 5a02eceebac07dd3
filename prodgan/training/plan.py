"""What a training run will do, checked before its first step: the generator spec for a config and
a dataset, the schedule against the data and the ranks, and each epoch's image order.
"""

from __future__ import annotations

import torch

from prodgan.data.tensors import ImageSplit
from prodgan.errors import ProdganError
from prodgan.models import GeneratorSpec
from prodgan.models.augment import parse_policy
from prodgan.models.losses import LOSSES
from prodgan.training.config import TrainConfig


def make_spec(cfg: TrainConfig, data: ImageSplit) -> GeneratorSpec:
    """The generator spec for this config and dataset; bad arch/loss/sizes are user errors."""
    if cfg.loss not in LOSSES:
        raise ProdganError(f"unknown loss {cfg.loss!r}; valid: {', '.join(LOSSES)}")
    from prodgan.models import ARCHS

    if cfg.arch not in ARCHS:
        raise ProdganError(f"unknown architecture {cfg.arch!r}; valid: {', '.join(ARCHS)}")
    _, channels, height, width = data.images.shape
    if height != width:
        raise ProdganError(
            f"images must be square, got {height}x{width}; re-import the dataset with `--size`"
        )
    conditional = ARCHS[cfg.arch]
    return GeneratorSpec(
        arch=cfg.arch,
        z_dim=cfg.z_dim,
        num_classes=len(data.categories) if conditional else 0,
        channels=channels,
        size=height,
        width=cfg.width,
        categories=tuple(data.categories),
    ).check()


# At most this share of a small catalogue's train split is held out to pick the best checkpoint.
SELECTION_SHARE = 0.2


def selection_samples(requested: int, train_images: int) -> int:
    """How many train images to hold out for checkpoint selection: the config's `eval_samples`,
    or a fifth of the train split when that is fewer (a catalogue of 377 photos keeps 302 to
    train on instead of being refused for holding fewer than 2 x 500); at least 2."""
    return max(2, min(requested, int(train_images * SELECTION_SHARE)))


def check_schedule(cfg: TrainConfig, n_images: int, world: int) -> None:
    """What TrainConfig cannot check alone: the batch against the data and the ranks, precision,
    the DiffAugment policy, and a time limit (one process's clock) under DDP.

    Every number's own range (steps >= 1, ema_decay in [0, 1), max_seconds >= 0, ...) is
    TrainConfig's: pydantic refuses a config outside it, so none is checked again here.
    """
    if cfg.batch_size > n_images:
        raise ProdganError(
            f"batch_size {cfg.batch_size} is larger than the dataset ({n_images} images); "
            f"use --set batch_size=<= {n_images}"
        )
    if cfg.batch_size % world:
        raise ProdganError(
            f"batch_size {cfg.batch_size} does not split evenly over {world} processes; "
            f"use a multiple of {world}"
        )
    if cfg.precision not in ("auto", "bf16", "fp32"):
        raise ProdganError(f"unknown precision {cfg.precision!r}; valid: auto, bf16, fp32")
    try:
        parse_policy(cfg.diffaugment)
    except ValueError as exc:
        raise ProdganError(f"diffaugment: {exc}") from None
    if cfg.max_seconds and world > 1:
        raise ProdganError(
            "max_seconds stops on one process's clock: use it for single-process runs, "
            "or set steps for DDP"
        )


def epoch_order(n: int, seed: int, epoch: int, labels: torch.Tensor | None = None) -> torch.Tensor:
    """The image order of one epoch: a pure function of (seed, epoch), same on every rank.

    Without `labels`, a shuffle (each image once). With them, class-balanced: `n` draws with
    replacement, every category equally likely, so a category with 120 photos is seen as often
    as one with 800 (its photos repeat; the one with 800 shows a different subset each epoch).
    """
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    if labels is None:
        return torch.randperm(n, generator=generator)
    weights = 1.0 / torch.bincount(labels)[labels].double()
    return torch.multinomial(weights, n, replacement=True, generator=generator)
