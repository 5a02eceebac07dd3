"""Picking the best checkpoint: a held-out validation split and the quick FID on it.

One recipe for both ways training runs, so a run picks the same checkpoint on the same images
whether it trains in this process (`prodgan train`) or under torchrun (`python -m
prodgan.training`, every rank). Under torchrun every rank calls the hook at each eval step and
`quick_fid` shares the samples out over the ranks (metrics/shards.py): the same images whatever
the world size, and rank 0 gets the value.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from prodgan.data.tensors import ImageSplit, hold_out
from prodgan.errors import ProdganError
from prodgan.names import sample_suffix
from prodgan.training.config import TrainConfig
from prodgan.training.loop import EvalHook
from prodgan.training.plan import make_spec, selection_samples


def sized(cfg: TrainConfig, train_images: int) -> tuple[TrainConfig, str | None]:
    """The config with `eval_samples` sized to the catalogue (plan.selection_samples) and
    `eval_metric` naming the quick FID; a sentence saying so when the size changed, else None."""
    samples = selection_samples(cfg.eval_samples, train_images)
    name = f"fid_{sample_suffix(samples)}"
    if cfg.eval_metric not in ("", name):
        raise ProdganError(
            f"eval_metric {cfg.eval_metric!r} is not what training evaluates; "
            f"use eval_metric={name} (the quick FID of eval_samples images) or leave it empty"
        )
    note = None
    if samples != cfg.eval_samples:
        note = (
            f"eval_samples {cfg.eval_samples} -> {samples}: the catalogue has {train_images} "
            f"train photos, so {samples} (at most a fifth) are held out to pick the best "
            f"checkpoint and {train_images - samples} are trained on"
        )
    return dataclasses.replace(cfg, eval_samples=samples, eval_metric=name), note


def quick_fid_selection(
    cfg: TrainConfig, data: ImageSplit, cache_dir: Path
) -> tuple[ImageSplit, EvalHook]:
    """(the images to train on, the hook) for a `sized` config: `eval_samples` train images held
    out (seeded by `cfg.seed`), and the EMA generator's FID against them every `eval_every` steps.

    The real side is extracted once and cached in `cache_dir`, so each check costs one
    generated-side pass. The hook returns {eval_metric: FID} on rank 0 and {} on other ranks.
    """
    from prodgan.metrics import quick_fid
    from prodgan.metrics.defaults import DEFAULTS
    from prodgan.metrics.shards import Shards

    data, validation = hold_out(data, cfg.eval_samples, cfg.seed)
    spec = make_spec(cfg, data)

    def on_eval(G, step: int) -> dict[str, float]:
        # shares are whole batches: batches small enough that every rank gets one
        batch = min(DEFAULTS["batch_size"], -(-cfg.eval_samples // Shards.joined().world))
        value = quick_fid(
            G, spec, validation, cfg.eval_samples, cache_dir=cache_dir, batch_size=batch
        )
        return {} if value is None else {cfg.eval_metric: value}

    return data, on_eval
