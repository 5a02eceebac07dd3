"""Training with an outside command (a recipe's `trainer:`), inside the MLflow run prodgan started.

The validated dataset version's train split is copied where the command can read it (never the
test split the gates measure on); the command runs as a child process in its own folder with
`MLFLOW_RUN_ID` and `MLFLOW_TRACKING_URI` exported, so its own `mlflow.log_metric` calls land in
prodgan's run, and with the rest of prodgan's environment (`CUDA_VISIBLE_DEVICES` included). Its
output streams to the log; a non-zero exit fails the run and registers nothing. What it leaves in
`{out_dir}` is imported through `ops.imports.import_generator` into the same run, which checks
every claim of its spec before a version exists. Used by `ops.train` (so `prodgan train` and the
retrain flow alike) and by `ops.retrain.freshness` (the trainer's code identity).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable

from prodgan.adapters import tracking
from prodgan.adapters.trainer_code import TrainerCode, trainer_code
from prodgan.adapters.trainer_process import run_streamed
from prodgan.errors import ProdganError
from prodgan.settings import Settings, environment
from prodgan.training.config import TrainConfig

TRAINER_LOG = "trainer.log"


def code_of(cfg: TrainConfig, config_path: Path) -> TrainerCode | None:
    """The outside trainer's code identity (None for prodgan's own loop)."""
    if cfg.trainer is None:
        return None
    return trainer_code(cfg.trainer.workdir(config_path), cfg.trainer.code_files(config_path))


def materialise_train_split(settings: Settings, dataset: str, target: Path) -> Path:
    """The train split as `<category>/<image>.png` plus `dataset.json`, copied to `target` (the
    command may read or even change its copy; the DVC workspace stays as validated)."""
    from prodgan.data.layout import META_FILE

    source = settings.data_dir / dataset
    shutil.copytree(source / "train", target)
    shutil.copy2(source / META_FILE, target / META_FILE)
    return target


def train(
    settings: Settings,
    logger: tracking.RunLogger,
    cfg: TrainConfig,
    config_path: Path,
    run_dir: Path,
    code: TrainerCode,
    say: Callable[[str], None],
) -> Any:
    """Run the recipe's command in `logger`'s run, then import what it left; the imported version
    (`ops.imports.ImportedVersion`). The run ends FINISHED by the import, FAILED otherwise."""
    from prodgan.data.layout import read_meta
    from prodgan.ops.imports import import_generator

    trainer = cfg.trainer
    meta = read_meta(settings.data_dir / cfg.dataset)
    out_dir = run_dir / "out"
    out_dir.mkdir(parents=True)
    data_dir = materialise_train_split(settings, cfg.dataset, run_dir / "data")
    command = trainer.command_for(
        {
            "data_dir": str(data_dir),
            "out_dir": str(out_dir),
            "dataset": cfg.dataset,
            "size": str(meta.size),
            "channels": str(meta.channels),
            "seed": str(cfg.seed),
        }
    )
    shown = " ".join(command)
    env = {
        **environment(),
        "MLFLOW_RUN_ID": logger.run_id,
        "MLFLOW_TRACKING_URI": settings.tracking_uri,
        "PYTHONUNBUFFERED": "1",
    }
    log = run_dir / TRAINER_LOG
    say(f"running the trainer: {shown} (in {trainer.workdir(config_path)}, code {code.identity})")
    try:
        finished = run_streamed(command, trainer.workdir(config_path), env, log, say)
        logger.log_artifact(log, "trainer")
        if finished.returncode != 0:
            raise ProdganError(
                f"trainer `{shown}` exited with code {finished.returncode}; nothing was "
                f"registered. Its last lines: {' | '.join(finished.tail[-5:]) or '(no output)'} "
                f"(whole log: {log})"
            )
        missing = [name for name in (trainer.model, trainer.spec) if not (out_dir / name).is_file()]
        if missing:
            raise ProdganError(
                f"trainer `{shown}` exited 0 but left no {' and no '.join(missing)} in "
                f"{{out_dir}} ({out_dir}); make it write trainer.model and trainer.spec there"
            )
        return import_generator(
            settings,
            model_file=out_dir / trainer.model,
            spec_file=out_dir / trainer.spec,
            dataset=cfg.dataset,
            code_url=code.url,
            code_rev=code.identity,
            run_id=logger.run_id,
        )
    except BaseException:
        logger.finish("FAILED")
        raise
