"""Training adapter: checks the data, runs the torch-only loop, records everything in MLflow.

`run_training` is the one entry point the CLI (`prodgan train`) and the Prefect flows call.
It refuses data that differs from what DVC pins or that failed validation, then makes the
MLflow run hold what a later decision depends on: config, dataset hash, validation record,
code revision, package versions, device, per-step losses, sample grids, the EMA generator
bundle and the last checkpoint.

Run folders live under `<home>/train/<config>-<time>/` with a `state.json` naming the MLflow
run, so `--resume` continues the same folder *and* the same MLflow run after a crash.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from prodgan.errors import ProdganError
from prodgan.fsutil import write_json_atomic
from prodgan.settings import Settings
from prodgan.train_config import TrainConfig, load_config

STATE_FILE = "state.json"
GENERATOR_ARTIFACT = "generator"
CHECKPOINT_ARTIFACT = "checkpoint"


@dataclass
class TrainResult:
    run_id: str
    bundle_dir: Path
    metrics: dict[str, float] = field(default_factory=dict)
    run_dir: Path = Path()
    step: int = 0
    data_hash: str = ""


def runs_dir(settings: Settings) -> Path:
    return settings.home / "train"


def _read_state(run_dir: Path) -> dict[str, Any]:
    import json

    try:
        return json.loads((run_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}


def find_resumable(settings: Settings, config_name: str) -> Path:
    """The newest run folder of this config that did not finish (crashed, killed or diverged)."""
    candidates = sorted(runs_dir(settings).glob(f"{config_name}-*"), reverse=True) if runs_dir(settings).is_dir() else []
    for run_dir in candidates:
        state = _read_state(run_dir)
        if state.get("config_name") == config_name and state.get("status") != "finished":
            return run_dir
    raise ProdganError(f"nothing to resume: no unfinished run of {config_name} under {runs_dir(settings)}; start one without --resume")


def _validation_reference(record: Any) -> str:
    """`<suite>:<data key>@<timestamp>`: names the validation record under `<home>/validation/<dataset>/`."""
    return f"{record.suite_name}:{record.data_key}@{record.timestamp}"


def _make_hooks(logger: Any, say: Callable[[str], None]):
    from prodgan.train import TrainHooks

    class MlflowHooks(TrainHooks):
        """Forward the loop's reports to the MLflow run."""

        def on_start(self, info: dict[str, Any]) -> None:
            logger.set_tags({"prodgan.device": info["device"], "prodgan.precision": info["precision"],
                             "prodgan.world_size": info["world_size"]})
            say(f"training on {info['device']} ({info['precision']}, {info['world_size']} process(es)), "
                f"{info['images']} images, steps {info['start_step']} -> {info['steps']}")

        def on_metrics(self, step: int, metrics: dict[str, float]) -> None:
            logger.log_metrics(metrics, step)

        def on_grid(self, step: int, epoch: int, image: np.ndarray) -> None:
            logger.log_image(image, f"samples/step_{step:07d}.png")

        def on_checkpoint(self, step: int, path: Path) -> None:
            logger.flush()  # metrics up to a checkpoint survive a crash after it

        def on_message(self, message: str) -> None:
            say(message)

    return MlflowHooks()


def run_training(
    settings: Settings,
    config_path: Path,
    overrides: Iterable[str] = (),
    resume: bool = False,
    *,
    dataset: str | None = None,
    on_eval: Callable[..., dict[str, float]] | None = None,
    nproc: int = 1,
    progress: bool = True,
    say: Callable[[str], None] = print,
) -> TrainResult:
    """Check data, train (or resume), and log the run; returns the MLflow run id and the bundle.

    `nproc > 1` trains with that many DDP processes (torchrun, gloo on CPU, NCCL on GPUs); this
    process keeps the MLflow run and logs what rank 0 reported once they finish.
    """
    from prodgan import tracking
    from prodgan.data import dvc
    from prodgan.data.tensors import load_split

    config_path = Path(config_path)
    overrides = [*overrides, *([f"dataset={dataset}"] if dataset else [])]
    config_name = config_path.stem
    load_config(config_path, overrides)  # a bad key fails before anything else is looked at
    run_dir = find_resumable(settings, config_name) if resume else None
    if run_dir is not None and not overrides:  # a bare --resume continues with the run's own overrides
        overrides = list(_read_state(run_dir).get("overrides", []))
    cfg = load_config(config_path, overrides)
    if nproc > 1 and (cfg.eval_every or on_eval):  # a usage error: refuse before any data is checked or loaded
        raise ProdganError(f"evaluation during training runs in one process: drop eval_every (--set eval_every=0) or --nproc {nproc}")
    data_root = settings.data_dir / cfg.dataset
    if not (data_root / "dataset.json").is_file():
        raise ProdganError(f"dataset {cfg.dataset!r} is not in {settings.data_dir}; run `prodgan data pull` (or import it), or pick another with --dataset")
    record = _require_validated(settings, cfg.dataset)  # runs dvc.require_clean: data/ is what data.dvc pins
    data_hash = record.data_hash
    data = load_split(settings.tensor_cache_dir, data_root, "train", data_hash)
    if cfg.eval_every and on_eval is None:
        cfg, on_eval = _quick_fid_hook(settings, cfg, data, load_split(settings.tensor_cache_dir, data_root, "test", data_hash))
    git_rev, git_dirty = dvc.git_revision(settings.root)
    lineage = {"data_hash": data_hash, "dataset": cfg.dataset, "git_rev": git_rev, "git_dirty": git_dirty,
               "validation": _validation_reference(record), "config_file": config_path.name}

    if run_dir is not None:
        state = _read_state(run_dir)
        logger = tracking.RunLogger.start(settings, tracking.TRAIN_EXPERIMENT, run_dir.name, run_id=state["mlflow_run_id"])
        logger.set_tags({"prodgan.resumed": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    else:
        run_dir = runs_dir(settings) / f"{config_name}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(2)}"
        tags = {"prodgan.data_hash": data_hash, "prodgan.git_rev": git_rev, "prodgan.git_dirty": str(git_dirty).lower(),
                "prodgan.validation": lineage["validation"], "prodgan.dataset": cfg.dataset, "prodgan.config": config_path.name}
        logger = tracking.RunLogger.start(settings, tracking.TRAIN_EXPERIMENT, run_dir.name, tags=tags)
        state = {"config_name": config_name, "mlflow_run_id": logger.run_id}
        _log_run_inputs(logger, cfg, config_path, overrides, lineage, tracking.package_versions())
        logger.log_dict(record.to_dict(), "validation.json")
    lineage["train_run_id"] = logger.run_id
    write_json_atomic(run_dir / STATE_FILE, {**state, "status": "running", "overrides": list(overrides)})

    from prodgan.train import TrainingDiverged, train

    try:
        if nproc > 1:
            result = _train_processes(nproc, config_path, overrides, run_dir, data_root, data_hash, resume, _make_hooks(logger, say))
        else:
            result = train(cfg, data, run_dir, resume=resume, hooks=_make_hooks(logger, say), on_eval=on_eval,
                           lineage=lineage, progress=progress)
    except TrainingDiverged:
        write_json_atomic(run_dir / STATE_FILE, {**state, "status": "diverged", "overrides": list(overrides)})
        logger.finish("FAILED")
        raise
    except BaseException:
        logger.finish("FAILED")
        raise
    logger.log_metrics({k: v for k, v in result.metrics.items() if k == "train_seconds" or k.startswith("best_")}, result.step)
    logger.log_artifacts(result.bundle_dir, GENERATOR_ARTIFACT)
    logger.log_artifact(result.checkpoint, CHECKPOINT_ARTIFACT)
    logger.set_tags({"prodgan.weights_sha256": _bundle_weights_sha(result.bundle_dir)})
    logger.finish("FINISHED")
    write_json_atomic(run_dir / STATE_FILE, {**state, "status": "finished", "overrides": list(overrides)})
    return TrainResult(logger.run_id, result.bundle_dir, result.metrics, run_dir, result.step, data_hash)


def _train_processes(nproc: int, config_path: Path, overrides: list[str], run_dir: Path, data_root: Path,
                     data_hash: str, resume: bool, hooks: Any) -> Any:
    """Run the bare trainer under torchrun, then replay rank 0's log into this process's MLflow hooks."""
    import subprocess
    import sys

    from prodgan.models.bundle import GeneratorSpec, read_bundle_record
    from prodgan.train import TRAIN_LOG, TrainResult, list_checkpoints, replay_file_log

    log = run_dir / TRAIN_LOG
    offset = log.stat().st_size if log.is_file() else 0  # a resumed run replays only what this launch adds
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", "-m", "prodgan.train",
           "--config", str(config_path), *[a for o in overrides for a in ("--set", o)], "--out", str(run_dir),
           "--data-dir", str(data_root), "--data-hash", data_hash, *(["--resume"] if resume else [])]
    code = subprocess.run(cmd, stdout=sys.stderr).returncode  # progress and errors stay visible; stdout is for results
    metrics = replay_file_log(run_dir, offset, hooks)
    if code:
        raise ProdganError(f"the {nproc}-process training exited with {code} (its error is printed above); "
                           "fix it and continue with `prodgan train --resume --nproc N`")
    bundle = run_dir / "bundle"
    record = read_bundle_record(bundle)
    step = int((record.get("extra") or {}).get("step", 0))
    return TrainResult(run_dir, bundle, list_checkpoints(run_dir)[0], step, GeneratorSpec.from_dict(record["spec"]), metrics)


def _quick_fid_hook(settings: Settings, cfg: TrainConfig, train_split: Any, test_split: Any) -> tuple[TrainConfig, Callable[..., dict[str, float]]]:
    """FID of the EMA generator every `eval_every` steps, `eval_samples` vs as many test images.

    The real side is extracted once and cached, so each check costs one generated-side pass;
    the lowest value picks the bundle that gets logged. Returns the config with `eval_metric` set.
    """
    import dataclasses

    from prodgan.metrics import quick_fid, sample_suffix
    from prodgan.train import make_spec

    name = f"fid_{sample_suffix(cfg.eval_samples)}"
    if cfg.eval_metric not in ("", name):
        raise ProdganError(f"eval_metric {cfg.eval_metric!r} is not what training evaluates; use eval_metric={name} "
                           "(the quick FID of eval_samples images) or leave it empty")
    if not 2 <= cfg.eval_samples <= len(test_split):
        raise ProdganError(f"eval_samples={cfg.eval_samples} must be between 2 and the {len(test_split)} test images; "
                           "lower it with --set eval_samples=N")
    spec = make_spec(cfg, train_split)

    def on_eval(G: Any, step: int) -> dict[str, float]:
        return {name: quick_fid(G, spec, test_split, cfg.eval_samples, cache_dir=settings.cache_dir)}

    return dataclasses.replace(cfg, eval_metric=name), on_eval


def _require_validated(settings: Settings, dataset: str) -> Any:
    from prodgan.validation import require_validated  # GX is heavy: imported only when training

    return require_validated(settings, dataset)


def _bundle_weights_sha(bundle_dir: Path) -> str:
    from prodgan.models.bundle import read_bundle_record

    return str(read_bundle_record(bundle_dir).get("weights_sha256", ""))


def _log_run_inputs(logger: Any, cfg: TrainConfig, config_path: Path, overrides: list[str],
                    lineage: dict[str, Any], versions: dict[str, str]) -> None:
    params = {**cfg.to_dict(), "config_file": config_path.name, "overrides": " ".join(overrides) or "-",
              **{f"lineage.{k}": v for k, v in lineage.items()}, **{f"version.{k}": v for k, v in versions.items()}}
    logger.log_params(params)
    logger.log_dict({"config": cfg.to_dict(), "overrides": overrides, "lineage": lineage, "versions": versions}, "run_inputs.json")
