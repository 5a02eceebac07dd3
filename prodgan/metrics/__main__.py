"""The bare sharded evaluation: `torchrun ... -m prodgan.metrics JOB.json`, one share per rank.

No tracking: every rank loads the generator bundle, the splits and the category judge the job file
names, generates and featurises its share of the samples (shards.py), and rank 0 writes the result
folder (result_file.py) for `prodgan evaluate --nproc N` to log. The job file is data (paths and
numbers, JSON); the bundle and the evaluator are loaded with their recorded sha256 checked.
"""

from __future__ import annotations

import argparse
import json
from contextlib import nullcontext
from pathlib import Path

from prodgan.console import sides_progress
from prodgan.data.tensors import load_split
from prodgan.metrics.bundle_job import BundleJob
from prodgan.metrics.calibration import bundle_noise_reference
from prodgan.metrics.result_file import save_result
from prodgan.models.bundle import load_bundle
from prodgan.models.probe import load_probe
from prodgan.training.distributed import init_distributed, pick_device, rank_process


def evaluate_job(job: BundleJob) -> None:
    """Run this rank's share of the evaluation `job` describes; rank 0 writes `job.out`."""
    rank, world = init_distributed("auto")
    device = pick_device("auto")
    generator, spec = load_bundle(job.bundle, device)
    real, train = (
        load_split(job.tensor_cache, job.dataset_root, split, job.data_hash)
        for split in (job.split, "train")
    )
    evaluator = load_probe(job.evaluator)[0] if job.evaluator else None
    bars = sides_progress(f"evaluating on {world} ranks:") if rank == 0 else nullcontext()
    with bars as progress:
        result = job.evaluate(
            generator,
            spec,
            real,
            train=train,
            evaluator=evaluator,
            noise=bundle_noise_reference(job.bundle),
            progress=progress,
            device=str(device),
        )
    if result is not None:
        save_result(job.out, result)


def main(argv: list[str] | None = None) -> None:
    """Evaluate one generator over torchrun's ranks as the job file says; rank 0 writes it."""
    parser = argparse.ArgumentParser(prog="python -m prodgan.metrics", description=main.__doc__)
    parser.add_argument("job", type=Path, help="JSON job (`prodgan evaluate --nproc` writes it)")
    args = parser.parse_args(argv)
    with rank_process():
        evaluate_job(BundleJob.from_json(json.loads(args.job.read_text())))


if __name__ == "__main__":
    main()
