"""The bare trainer (`python -m prodgan.train`, `torchrun ... -m prodgan.train`): no tracking, files only.

Rank 0 writes its reports to `train_log.jsonl` and its sample grids beside the checkpoints; the
launching process (`prodgan train --nproc N`) replays that log into its one MLflow run.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch.distributed as dist

from prodgan.data.tensors import ImageSplit
from prodgan.distributed import rank_env
from prodgan.errors import ProdganError
from prodgan.fsutil import atomic_path
from prodgan.train import TrainHooks, train
from prodgan.train_config import load_config

TRAIN_LOG = "train_log.jsonl"  # what rank 0 of a bare run reported, one JSON object per line
GRIDS_DIR = "samples"


class FileHooks(TrainHooks):
    """Rank 0 of a bare (torchrun) run appends its reports to files, so a tracking parent can log them."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)

    def _append(self, record: dict[str, Any]) -> None:
        import json

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
    """Feed what a bare run wrote after byte `offset` of its log to `hooks`; returns the last metrics."""
    import json

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
                last = record["metrics"]
            elif "grid" in record:
                hooks.on_grid(
                    record["step"], record["epoch"], np.load(Path(out_dir) / record["grid"])
                )
    return last


def main(argv: list[str] | None = None) -> None:
    """Train without tracking (a bare GPU box, or `torchrun`): checkpoints, bundle, train_log.jsonl and grids land in --out."""
    from prodgan.data.layout import read_meta
    from prodgan.data.tensors import decode_split, load_split
    from prodgan.settings import Settings

    parser = argparse.ArgumentParser(prog="python -m prodgan.train", description=main.__doc__)
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--out", required=True, type=Path, help="run folder (checkpoints/, bundle/)"
    )
    parser.add_argument(
        "--data-dir", type=Path, help="dataset folder [default: <project>/data/<dataset>]"
    )
    parser.add_argument(
        "--data-hash", help="DVC hash of the data: enables the decoded-tensor cache"
    )
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
        settings = Settings.load()
        root = args.data_dir or settings.data_dir / cfg.dataset
        if args.data_hash:
            data = load_split(settings.tensor_cache_dir, root, "train", args.data_hash)
        else:
            meta = read_meta(root)
            images, labels = decode_split(root, meta, "train")
            data = ImageSplit(
                images, labels, tuple(meta.categories), meta.name, "train", "unpinned"
            )
        result = train(
            cfg,
            data,
            args.out,
            resume=args.resume,
            hooks=FileHooks(args.out),
            progress=rank_env("RANK", 0) == 0,
        )
        print(
            f"rank {rank_env('RANK', 0)} step {result.step} weights sha256 {result.weights_sha256}",
            flush=True,
        )
        if rank_env("RANK", 0) == 0:
            print(f"bundle: {result.bundle_dir}", flush=True)
    except ProdganError as exc:
        raise SystemExit(f"error: {exc}") from None
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
