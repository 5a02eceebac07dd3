"""The bare trainer: `python -m prodgan.training`, or `torchrun ... -m prodgan.training` for DDP.

No tracking, files only: checkpoints, the bundle, `train_log.jsonl` and sample grids land in
`--out` (files.py); `prodgan train --nproc N` launches this and replays the log into MLflow.
With `eval_every`, every rank holds out the same validation images and shares each quick FID
(selection.py), so the best checkpoint is picked as in one process.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from prodgan.data.layout import read_meta
from prodgan.data.tensors import ImageSplit, decode_split, load_split
from prodgan.settings import Settings
from prodgan.training.config import load_config
from prodgan.training.distributed import rank_env, rank_process
from prodgan.training.files import FileHooks
from prodgan.training.loop import run_summary, train
from prodgan.training.selection import quick_fid_selection, sized


def main(argv: list[str] | None = None) -> None:
    """Train without tracking (a bare GPU box, or `torchrun`).

    Checkpoints, bundle, train_log.jsonl and grids land in --out.
    """
    parser = argparse.ArgumentParser(prog="python -m prodgan.training", description=main.__doc__)
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
    rank = rank_env("RANK", 0)
    with rank_process():
        cfg = load_config(args.config, args.overrides)
        settings = Settings.load()
        root = args.data_dir or settings.data_dir / cfg.dataset
        if args.data_hash:
            data = load_split(settings.tensor_cache_dir, root, "train", args.data_hash)
        else:
            meta = read_meta(root)
            images, labels = decode_split(root, meta, "train")
            categories = tuple(meta.categories)
            data = ImageSplit(images, labels, categories, meta.name, "train", "unpinned")
        on_eval = None
        if cfg.eval_every:
            cfg, note = sized(cfg, len(data))
            if note and rank == 0:
                print(note, file=sys.stderr, flush=True)
            data, on_eval = quick_fid_selection(cfg, data, settings.cache_dir)
        hooks = FileHooks(args.out)
        result = train(
            cfg,
            data,
            args.out,
            resume=args.resume,
            hooks=hooks,
            on_eval=on_eval,
            progress=rank == 0,
        )
        print(f"rank {rank} step {result.step} weights sha256 {result.weights_sha256}", flush=True)
        if rank == 0:
            # the run's summary (train_seconds, best_*), for the launcher to log
            hooks.on_metrics(result.step, run_summary(result.metrics))
            print(f"bundle: {result.bundle_dir}", flush=True)


if __name__ == "__main__":
    main()
