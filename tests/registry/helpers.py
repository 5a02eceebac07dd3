"""Real MLflow runs for registry tests: a tiny untrained generator logged as a training run, and
evaluation runs whose metrics a test chooses (to drive the promotion policy deliberately).

The runs go through the same tracking adapter and tag names as `prodgan train` / `prodgan
evaluate`, into the test project's real sqlite store; nothing is mocked.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from prodgan import names
from prodgan.adapters.tracking import RunLogger, dataset_version
from prodgan.models import GeneratorSpec, build_generator, read_bundle_record, save_bundle
from prodgan.names import EVAL_EXPERIMENT, GENERATOR_ARTIFACT, TRAIN_EXPERIMENT
from prodgan.ops.promote import register as promotion_register
from prodgan.settings import Settings

CATEGORIES = ("t-shirt", "trouser", "pullover")
SPEC = GeneratorSpec(
    arch="cdcgan",
    z_dim=8,
    num_classes=len(CATEGORIES),
    channels=1,
    size=28,
    width=4,
    categories=CATEGORIES,
)
DATA_HASH = "0123456789abcdef0123456789abcdef.dir"


def train_run(
    settings: Settings, seed: int, spec: GeneratorSpec = SPEC, data_hash: str = DATA_HASH
) -> str:
    """A finished training run holding an (untrained, seeded) generator bundle and lineage tags."""
    torch.manual_seed(seed)
    generator = build_generator(spec)
    log = RunLogger.start(
        settings,
        TRAIN_EXPERIMENT,
        f"test-train-{seed}",
        tags={
            names.DATA_HASH: data_hash,
            names.GIT_REV: "deadbeef",
            names.VALIDATION: "validation/test.json",
        },
    )
    log.log_params({"seed": seed, "arch": spec.arch})
    with tempfile.TemporaryDirectory() as tmp:
        save_bundle(Path(tmp), generator, spec, {"data_hash": data_hash, "seed": seed})
        log.log_artifacts(Path(tmp), GENERATOR_ARTIFACT)
        log.set_tags(
            {names.WEIGHTS: read_bundle_record(Path(tmp))["weights_sha256"]}
        )  # what eval_run says it evaluated
    log.finish()
    return log.run_id


def eval_run(
    settings: Settings,
    train_run_id: str,
    fid: float,
    half_width: float = 5.0,
    protocol: str = "proto-a" * 4,
    samples: str = "50",
    per_category: dict[str, float] | None = None,
) -> str:
    """A finished evaluation run of `train_run_id` with the given FID (and interval) under
    `protocol`."""
    weights = _weights_of(settings, train_run_id)
    log = RunLogger.start(
        settings,
        EVAL_EXPERIMENT,
        f"test-eval-{fid}",
        tags={names.PROTOCOL: protocol, names.TRAIN_RUN: train_run_id, names.WEIGHTS: weights},
    )
    metrics = {
        f"fid_{samples}": fid,
        f"fid_{samples}_ci_low": fid - half_width,
        f"fid_{samples}_ci_high": fid + half_width,
        f"kid_{samples}": fid / 1000,
        f"kid_{samples}_std": 0.001,
        f"cond_acc_{samples}": 0.5,
        f"memorization_{samples}": 0.0,
    }
    metrics.update({f"fid_{samples}/{cat}": value for cat, value in (per_category or {}).items()})
    log.log_metrics(metrics, step=0)
    log.log_dataset(  # as `prodgan evaluate` declares its test split
        dataset_version("fashion-mnist:test", DATA_HASH, str(settings.root / "dvc-remote")),
        "evaluation",
    )
    log.finish()
    return log.run_id


def _weights_of(settings: Settings, train_run_id: str) -> str:
    from prodgan.adapters.registry import client_for

    return client_for(settings).get_run(train_run_id).data.tags[names.WEIGHTS]


def registered(settings: Settings, seed: int, fid: float, **kwargs) -> str:
    """Train run + eval run + registration: the version number."""
    run_id = train_run(settings, seed)
    eval_id = eval_run(settings, run_id, fid, **kwargs)
    return str(promotion_register(settings, run_id, eval_run_id=eval_id).version)
