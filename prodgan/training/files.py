"""A bare run's reports as files: rank 0 writes them, the launching process replays them.

Under torchrun (`python -m prodgan.training`) no process tracks anything: rank 0 appends its
reports to `train_log.jsonl` and saves its sample grids beside the checkpoints; the launching
process (`prodgan train --nproc N`) replays that log into its one MLflow run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from prodgan.fsutil import atomic_path
from prodgan.training.loop import TrainHooks

TRAIN_LOG = "train_log.jsonl"  # what rank 0 of a bare run reported, one JSON object per line
GRIDS_DIR = "samples"


class FileHooks(TrainHooks):
    """Rank 0 of a bare (torchrun) run appends its reports to files for a tracking parent to log."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)

    def _append(self, record: dict[str, Any]) -> None:
        with open(self.out_dir / TRAIN_LOG, "a") as log:
            log.write(json.dumps(record) + "\n")

    def on_start(self, info: dict[str, Any]) -> None:
        self._append({"start": info})

    def on_metrics(self, step: int, metrics: dict[str, float]) -> None:
        self._append({"step": step, "metrics": metrics})

    def on_grid(self, step: int, epoch: int, image: np.ndarray) -> None:
        relative = f"{GRIDS_DIR}/step_{step:07d}.npy"
        (self.out_dir / GRIDS_DIR).mkdir(exist_ok=True)
        with atomic_path(self.out_dir / relative, suffix=".npy") as tmp:
            np.save(tmp, image)
        self._append({"step": step, "grid": relative, "epoch": epoch})


def replay_file_log(out_dir: Path, offset: int, hooks: TrainHooks) -> dict[str, float]:
    """Feed what a bare run wrote after byte `offset` of its log to `hooks`.

    Returns the latest value of every metric it reported.
    """
    last: dict[str, float] = {}
    path = Path(out_dir) / TRAIN_LOG
    if not path.is_file():
        return last
    with open(path) as log:
        log.seek(offset)
        for line in log:
            record = json.loads(line)
            if "start" in record:
                hooks.on_start(record["start"])
            elif "metrics" in record:
                hooks.on_metrics(record["step"], record["metrics"])
                last.update(record["metrics"])
            elif "grid" in record:
                hooks.on_grid(
                    record["step"], record["epoch"], np.load(Path(out_dir) / record["grid"])
                )
    return last
