"""Use case: train a generator on validated, DVC-pinned data, tracked as one MLflow run.

`train` is the one entry point of `prodgan train` and of the flows' train step. It refuses data
that differs from what DVC pins or that failed validation, reuses a finished run of the same
data and config (a flow retry, or a rerun after a later step failed), resumes an unfinished
one after a crash, and makes the MLflow run hold what a later decision depends on: config and
its hash, dataset hash, validation record, code revision, package versions, device, losses,
sample grids, the EMA generator bundle and the last checkpoint.

Run folders live under `<home>/train/<config>-<time>/` with a `state.json` naming the MLflow
run, so a resume continues the same folder *and* the same MLflow run.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from prodgan.adapters import descriptions, dvc, tracking
from prodgan.adapters.trainer_code import TrainerCode
from prodgan.errors import ProdganError
from prodgan.fsutil import write_json_atomic
from prodgan.names import (
    CHECKPOINT_ARTIFACT,
    CONFIG,
    CONFIG_SHA,
    DATA_HASH,
    DATASET,
    FLOW_RUN,
    GENERATOR_ARTIFACT,
    GIT_DIRTY,
    GIT_REV,
    RESUMED,
    STOPPED_BY,
    TRAIN_EXPERIMENT,
    VALIDATION,
    WEIGHTS,
    ModelRef,
)
from prodgan.ops import outside_training
from prodgan.ops.torchrun import Launch
from prodgan.settings import Settings
from prodgan.training.config import TrainConfig, load_config

STATE_FILE = "state.json"


@dataclass
class TrainingRun:
    """A finished, tracked training run: its MLflow run id and the generator bundle it logged."""

    run_id: str
    bundle_dir: Path
    metrics: dict[str, float] = field(default_factory=dict)
    run_dir: Path | None = None
    step: int = 0
    data_hash: str = ""
    reused: bool = False
    stopped_by: str = "steps"  # or "max_seconds": the time budget ended it before `steps`


def default_config() -> str:
    """The GPU recipe where CUDA is present, else the five-minute CPU recipe: one rule for the CLI,
    the demo and workers."""
    import torch

    return "configs/fmnist.yaml" if torch.cuda.is_available() else "configs/cpu.yaml"


def config_sha256(config_path: Path, overrides: Sequence[str] = ()) -> str:
    """Hash of the training config as it will run (file values + `key=value` overrides,
    resolved)."""
    resolved = load_config(Path(config_path), overrides).to_dict()
    return hashlib.sha256(json.dumps(resolved, sort_keys=True).encode()).hexdigest()


def _read_state(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}


def find_resumable(
    settings: Settings, config_name: str, overrides: Sequence[str] | None = None
) -> Path | None:
    """The newest run folder of this config that did not finish (crashed, killed or diverged);
    with `overrides`, the newest of exactly those overrides (one config trains several datasets,
    `dataset=...`: a fan-out's other datasets' runs are never this one's)."""
    runs = settings.train_runs_dir
    for run_dir in sorted(runs.glob(f"{config_name}-*"), reverse=True) if runs.is_dir() else []:
        state = _read_state(run_dir)
        if state.get("config_name") != config_name or state.get("status") == "finished":
            continue
        if overrides is None or state.get("overrides") == list(overrides):
            return run_dir
    return None


def _reusable(
    settings: Settings,
    data_hash: str,
    cfg_sha: str,
    tags: dict[str, str],
    reuse: bool,
    code: TrainerCode | None,
):
    """The finished run this flow run made before (a retry), else, if `reuse`,
    one of the same data and config (and an outside trainer's same code)."""
    same = {DATA_HASH: data_hash, CONFIG_SHA: cfg_sha}
    if code is not None:
        same[GIT_REV] = code.identity
    mine = (
        tracking.newest_finished_run(settings, TRAIN_EXPERIMENT, {**same, FLOW_RUN: tags[FLOW_RUN]})
        if FLOW_RUN in tags
        else None
    )
    return mine or (
        tracking.newest_finished_run(settings, TRAIN_EXPERIMENT, same) if reuse else None
    )


def train(
    settings: Settings,
    config: str | Path,
    overrides: Sequence[str] = (),
    *,
    resume: bool | None = None,
    reuse: bool = True,
    dataset: str | None = None,
    nproc: int = 1,
    nnodes: int = 1,
    rdzv_endpoint: str | None = None,
    tags: dict[str, str] | None = None,
    progress: bool = True,
    say: Callable[[str], None] = print,
) -> TrainingRun | None:
    """Check data, then reuse, resume or start a training run;
    returns the MLflow run id and the bundle.

    `resume`: True continues the newest unfinished run of this config (error if none), False
    never resumes, None resumes one if it exists. `reuse=False` trains even when a finished
    run of the same data and config exists. `nproc > 1` trains with that many DDP processes
    (torchrun); this process keeps the MLflow run and logs what rank 0 reported. `nnodes > 1`:
    every host runs this with the same `rdzv_endpoint` (HOST:PORT); the host whose processes
    included rank 0 opens and logs the one MLflow run once training ends, every other host
    returns None and keeps no run folder.
    """
    launch = Launch(nproc, nnodes, rdzv_endpoint)
    if launch.nnodes > 1:
        if resume:
            raise ProdganError(
                f"--resume --nnodes {nnodes}: the checkpoints are on the host that ran rank 0; "
                "continue there alone with `prodgan train --resume --nproc N`"
            )
        resume = False  # a host resuming alone would leave the others on another step
    config_path = settings.config_path(config)
    overrides = [*overrides, *([f"dataset={dataset}"] if dataset else [])]
    config_name = config_path.stem
    load_config(config_path, overrides)  # a bad key fails before anything else is looked at
    # auto-resume continues only a run of exactly this config; --resume the newest of its name
    run_dir = (
        find_resumable(settings, config_name, overrides if resume is None else None)
        if resume is not False
        else None
    )
    if resume and run_dir is None:
        raise ProdganError(
            f"nothing to resume: no unfinished run of {config_name} "
            f"under {settings.train_runs_dir}; start one without --resume"
        )
    if resume and not overrides:  # a bare --resume continues with the run's own overrides
        overrides = list(_read_state(run_dir).get("overrides", []))
    cfg = load_config(config_path, overrides)
    if cfg.trainer is not None and (resume or launch.spread):
        raise ProdganError(
            f"{config_path.name} runs an outside trainer (trainer:), one command that prodgan "
            "starts once: drop --resume and --nproc (the command resumes and spreads itself)"
        )
    data_root = settings.data_dir / cfg.dataset
    if not (data_root / "dataset.json").is_file():
        raise ProdganError(
            f"dataset {cfg.dataset!r} is not in {settings.data_dir}; "
            "run `prodgan data pull` (or import it), or pick another with --dataset"
        )
    from prodgan.ops.validate import require_validated

    record = require_validated(settings, cfg.dataset)  # data/ is what data.dvc pins (require_clean)
    cfg_sha, tags = config_sha256(config_path, overrides), dict(tags or {})
    code = outside_training.code_of(cfg, config_path)
    with tracking.reachable(settings, f"training {config_path.name}"):
        done = _reusable(settings, record.data_hash, cfg_sha, tags, reuse, code)
        if done is not None:
            say(
                f"reusing finished training run {done.info.run_id} "
                f"(same data, config{' and trainer code' if code else ''}; --force trains again)"
            )
            bundle = run_bundle(settings, done.info.run_id)
            return TrainingRun(
                done.info.run_id,
                bundle,
                dict(done.data.metrics),
                data_hash=record.data_hash,
                reused=True,
            )
        lineage_tags = {
            DATA_HASH: record.data_hash,
            VALIDATION: record.reference,
            DATASET: cfg.dataset,
            CONFIG: config_path.name,
            CONFIG_SHA: cfg_sha,
            **tags,
        }
        if code is not None:
            return _run_outside(
                settings, cfg, config_path, overrides, record, lineage_tags, code, say
            )
        return _run(
            settings,
            cfg,
            config_path,
            overrides,
            run_dir,
            record,
            lineage_tags,
            launch,
            progress,
            say,
        )


def run_bundle(settings: Settings, run_id: str) -> Path:
    """A training run's generator bundle, downloaded once and checked."""
    from prodgan.adapters.production_state import resolve_model

    return resolve_model(settings, ModelRef(run_id=run_id, path=GENERATOR_ARTIFACT)).bundle_dir


def _run_outside(
    settings: Settings,
    cfg: TrainConfig,
    config_path: Path,
    overrides: list[str],
    record: Any,
    lineage_tags: dict[str, str],
    code: TrainerCode,
    say: Callable[[str], None],
) -> TrainingRun:
    """The recipe's outside command in a new MLflow run, its output imported into it."""
    started = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    run_dir = settings.train_runs_dir / f"{config_path.stem}-{started}-{secrets.token_hex(2)}"
    tags = {**lineage_tags, GIT_REV: code.identity}
    logger = tracking.RunLogger.start(settings, TRAIN_EXPERIMENT, run_dir.name, tags=tags)
    lineage = {
        "data_hash": record.data_hash,
        "dataset": cfg.dataset,
        "git_rev": code.identity,
        "code_url": code.url,
        "validation": record.reference,
        "config_file": config_path.name,
    }
    _log_run_inputs(logger, cfg, config_path, overrides, lineage, tracking.package_versions())
    imported = outside_training.train(settings, logger, cfg, config_path, run_dir, code, say)
    say(f"imported the trainer's {imported.kind} generator as {imported.name} v{imported.version}")
    return TrainingRun(
        logger.run_id,
        run_dir / "out",
        dict(tracking.get_run(logger.client, logger.run_id).data.metrics),
        run_dir,
        data_hash=record.data_hash,
    )


def _run(
    settings: Settings,
    cfg: TrainConfig,
    config_path: Path,
    overrides: list[str],
    run_dir: Path | None,
    record: Any,
    lineage_tags: dict[str, str],
    launch: Launch,
    progress: bool,
    say: Callable[[str], None],
) -> TrainingRun | None:
    from prodgan.data.tensors import load_split
    from prodgan.training import selection
    from prodgan.training.loop import TrainingDiverged, run_summary
    from prodgan.training.loop import train as train_loop

    data_hash, data_root = record.data_hash, settings.data_dir / cfg.dataset
    data = load_split(settings.tensor_cache_dir, data_root, "train", data_hash)
    on_eval, sized_from = None, None
    if cfg.eval_every:
        # The best checkpoint is picked on images held out of train, never on the gates' test
        # split. Under torchrun the ranks hold them out themselves, and rank 0 says so.
        configured = cfg.eval_samples
        cfg, note = selection.sized(cfg, len(data))
        sized_from = configured if note else None
        if not launch.spread:
            if note:
                say(note)
            data, on_eval = selection.quick_fid_selection(cfg, data, settings.cache_dir)
    git_rev, git_dirty = dvc.git_revision(settings.root)
    lineage = {
        "data_hash": data_hash,
        "dataset": cfg.dataset,
        "git_rev": git_rev,
        "git_dirty": git_dirty,
        "validation": record.reference,
        "config_file": config_path.name,
        "selection_split": f"validation: {cfg.eval_samples} train images held out (seed {cfg.seed})"
        if cfg.eval_every
        else "none",
        **({"eval_samples_configured": sized_from} if sized_from else {}),
    }
    resume = run_dir is not None
    if resume:
        state = _read_state(run_dir)
    else:
        started = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        run_dir = settings.train_runs_dir / f"{config_path.stem}-{started}-{secrets.token_hex(2)}"
        state = {"config_name": config_path.stem}

    def save_state(status: str) -> None:
        write_json_atomic(
            run_dir / STATE_FILE, {**state, "status": status, "overrides": list(overrides)}
        )

    logger: tracking.RunLogger | None = None
    hooks: Any = None

    def tracked() -> Any:
        """The MLflow run's training hooks, the run opened on first use: before training on one
        host; after it across hosts, by the host that ran rank 0 (the others have nothing)."""
        nonlocal logger, hooks
        if logger is None:
            logger = _start_run(
                settings, cfg, config_path, overrides, run_dir, state, record, lineage_tags, lineage
            )
            state["mlflow_run_id"] = lineage["train_run_id"] = logger.run_id
            hooks = tracking.training_hooks(logger, say)
            save_state("running")
        return hooks

    if launch.nnodes == 1:
        tracked()  # opens the run and writes state.json naming it
    else:
        save_state("running")  # the run is opened after training, by rank 0's host
    try:
        if launch.spread:
            result = _train_processes(
                launch, config_path, overrides, run_dir, data_root, data_hash, resume, tracked
            )
        else:
            result = train_loop(
                cfg,
                data,
                run_dir,
                resume=resume,
                hooks=tracked(),
                on_eval=on_eval,
                lineage=lineage,
                progress=progress,
            )
    except BaseException as exc:
        if isinstance(exc, TrainingDiverged):
            save_state("diverged")
        if logger is not None:
            logger.finish("FAILED")
        raise
    if result is None:
        say("rank 0 ran on another host, which logs the training run; nothing to log here")
        return None
    if not launch.spread:  # a bare run reported its summary itself, replayed above
        logger.log_metrics(run_summary(result.metrics), result.step)
    logger.log_artifacts(result.bundle_dir, GENERATOR_ARTIFACT)
    logger.log_artifact(result.checkpoint, CHECKPOINT_ARTIFACT)
    stopped_by = "max_seconds" if cfg.max_seconds and result.step < cfg.steps else "steps"
    logger.set_tags({WEIGHTS: _bundle_weights_sha(result.bundle_dir), STOPPED_BY: stopped_by})
    if stopped_by == "max_seconds":
        say(
            f"stopped by max_seconds={cfg.max_seconds:g} at step {result.step} of {cfg.steps}: "
            "the logged generator has had only those steps; raise max_seconds (0 = no limit) "
            "to train longer"
        )
    logger.finish("FINISHED")
    save_state("finished")
    return TrainingRun(
        logger.run_id,
        result.bundle_dir,
        result.metrics,
        run_dir,
        result.step,
        data_hash,
        stopped_by=stopped_by,
    )


def _start_run(
    settings: Settings,
    cfg: TrainConfig,
    config_path: Path,
    overrides: list[str],
    run_dir: Path,
    state: dict[str, Any],
    record: Any,
    lineage_tags: dict[str, str],
    lineage: dict[str, Any],
) -> tracking.RunLogger:
    """The MLflow run state.json names (a resume continues it), else a new one holding the
    run's inputs: params, validation record, dataset and description."""
    from prodgan.ops.validate import log_training_data

    if state.get("mlflow_run_id"):
        logger = tracking.RunLogger.start(
            settings, TRAIN_EXPERIMENT, run_dir.name, run_id=state["mlflow_run_id"]
        )
        logger.set_tags(
            {RESUMED: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **lineage_tags}
        )
        return logger
    git = {GIT_REV: lineage["git_rev"], GIT_DIRTY: str(lineage["git_dirty"]).lower()}
    logger = tracking.RunLogger.start(
        settings, TRAIN_EXPERIMENT, run_dir.name, tags={**lineage_tags, **git}
    )
    _log_run_inputs(logger, cfg, config_path, overrides, lineage, tracking.package_versions())
    log_training_data(settings, logger, cfg.dataset, record)
    logger.describe(
        descriptions.training(
            cfg.arch, cfg.dataset, record.data_hash, config_path.name, overrides, cfg.steps
        )
    )
    return logger


def _train_processes(
    launch: Launch,
    config_path: Path,
    overrides: list[str],
    run_dir: Path,
    data_root: Path,
    data_hash: str,
    resume: bool,
    tracked: Callable[[], Any],
) -> Any:
    """Run the bare trainer under torchrun, then replay rank 0's log into this process's MLflow
    hooks (`tracked()`). None on a host whose processes did not include rank 0: its run folder
    (empty: rank 0 writes everything) is removed."""
    import shutil

    from prodgan.models.bundle import GeneratorSpec, read_bundle_record
    from prodgan.training.checkpoints import list_checkpoints
    from prodgan.training.files import TRAIN_LOG, replay_file_log
    from prodgan.training.loop import TrainResult

    log = run_dir / TRAIN_LOG
    # a resumed run replays only what this launch adds
    offset = log.stat().st_size if log.is_file() else 0
    try:
        code = launch.run(
            "prodgan.training",
            [
                "--config",
                str(config_path),
                *[a for o in overrides for a in ("--set", o)],
                "--out",
                str(run_dir),
                "--data-dir",
                str(data_root),
                "--data-hash",
                data_hash,
                *(["--resume"] if resume else []),
            ],
        )
    finally:  # also when this launcher is interrupted: a host without rank 0 keeps nothing
        lead_here = launch.nnodes == 1 or log.is_file()
        if not lead_here:
            shutil.rmtree(run_dir, ignore_errors=True)
    metrics = replay_file_log(run_dir, offset, tracked()) if lead_here else {}
    if code:
        where, there = f"{launch.nproc}-process", ""
        if launch.nnodes > 1:
            where = f"{launch.nnodes}-host ({launch.nproc} processes each)"
            there = " on the host that ran rank 0"
        raise ProdganError(
            f"the {where} training exited with {code} (its error is printed above); fix it and "
            f"continue with `prodgan train --resume --nproc N`{there}"
        )
    if not lead_here:
        return None
    bundle = run_dir / "bundle"
    record = read_bundle_record(bundle)
    step = int((record.get("extra") or {}).get("step", 0))
    return TrainResult(
        run_dir,
        bundle,
        list_checkpoints(run_dir)[0],
        step,
        GeneratorSpec.from_dict(record["spec"]),
        metrics,
    )


def _bundle_weights_sha(bundle_dir: Path) -> str:
    from prodgan.models.bundle import read_bundle_record

    return str(read_bundle_record(bundle_dir).get("weights_sha256", ""))


def _log_run_inputs(
    logger: Any,
    cfg: TrainConfig,
    config_path: Path,
    overrides: list[str],
    lineage: dict[str, Any],
    versions: dict[str, str],
) -> None:
    params = {
        **cfg.to_dict(),
        "config_file": config_path.name,
        "overrides": " ".join(overrides) or "-",
        **{f"lineage.{k}": v for k, v in lineage.items()},
        **{f"version.{k}": v for k, v in versions.items()},
    }
    logger.log_params(params)
    logger.log_dict(
        {"config": cfg.to_dict(), "overrides": overrides, "lineage": lineage, "versions": versions},
        "run_inputs.json",
    )
