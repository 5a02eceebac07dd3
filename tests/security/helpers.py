"""Real tiny generator versions in a real MLflow registry, without training (security tests need many).

A version here is what `prodgan train` + `register` make: a training run holding a generator bundle
(random weights of a tiny DCGAN, different per seed), registered by `registry.register_generator`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from prodgan import registry
from prodgan.models.bundle import GeneratorSpec, build_generator, save_bundle
from prodgan.settings import Settings
from prodgan.tracking import EVAL_EXPERIMENT, TRAIN_EXPERIMENT, RunLogger
from prodgan.training_run import GENERATOR_ARTIFACT

PROTOCOL = "f" * 64  # one fixed evaluation protocol fingerprint for every test version
TINY = GeneratorSpec(arch="dcgan", z_dim=8, num_classes=0, channels=1, size=28, width=4)


def training_run(settings: Settings, seed: int) -> str:
    """A finished run in prodgan-train whose bundle artifact holds a tiny generator (weights from `seed`)."""
    torch.manual_seed(seed)
    logger = RunLogger.start(settings, TRAIN_EXPERIMENT, f"tiny-{seed}", tags={"prodgan.seed": str(seed)})
    with tempfile.TemporaryDirectory() as tmp:
        bundle = save_bundle(Path(tmp) / "bundle", build_generator(TINY), TINY, {"data_hash": "test-data"})
        logger.log_artifacts(bundle, GENERATOR_ARTIFACT)
    logger.finish()
    return logger.run_id


def evaluation_run(settings: Settings, train_run_id: str, fid: float) -> str:
    """A finished prodgan-eval run for `train_run_id` with the metrics the gates read (50-sample protocol)."""
    logger = RunLogger.start(settings, EVAL_EXPERIMENT, "tiny-eval",
                             tags={registry.TRAIN_RUN: train_run_id, registry.PROTOCOL: PROTOCOL})
    logger.log_metrics({"fid_50": fid, "fid_50_ci_low": fid - 5, "fid_50_ci_high": fid + 5, "kid_50": 0.1,
                        "kid_50_std": 0.01, "memorization_50": 0.0, "cond_acc_50": 1.0}, step=0)
    logger.finish()
    return logger.run_id


def register(settings: Settings, seed: int, fid: float = 300.0) -> str:
    """Train-free registration of a new, evaluated version (lower `fid` = better); returns its number."""
    run_id = training_run(settings, seed)
    evaluation_run(settings, run_id, fid)
    return str(registry.register_from_run(settings, run_id).version)
