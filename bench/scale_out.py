"""Scale-out: one evaluation on 1 vs 2 processes (torchrun, gloo on this CPU), the same job.

Both runs are `torchrun --standalone --nproc-per-node K -m prodgan.metrics JOB.json` on the first
`--n` Fashion-MNIST images of each split (Debian's package, written to a temp folder) with an
empty stats cache (generated side, real side, floor and
noise all computed), so each pays the same start-up; the ratio is wall time 1 / wall time 2, and
FID must agree to 1e-6 relative. No GPU is lent here: on a GPU host `--nproc` is the GPU count.

    .venv/bin/python bench/scale_out.py [--n 200] [--nproc 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="generated and real images per side")
    parser.add_argument("--nproc", type=int, default=2, help="processes of the sharded run")
    args = parser.parse_args()

    import torch

    from prodgan.data.fashion_mnist import CATEGORIES, DEBIAN_SOURCE, write_fashion_mnist
    from prodgan.data.layout import META_FILE
    from prodgan.fsutil import write_json_atomic
    from prodgan.metrics.inception_weights import inception_dir, resolve_inception_weights
    from prodgan.metrics.result_file import load_result
    from prodgan.models import GeneratorSpec, build_generator, save_bundle
    from prodgan.ops.torchrun import Launch
    from prodgan.settings import Settings, configure_environment

    settings = configure_environment(Settings.load())
    weights = resolve_inception_weights(settings.cache_dir)
    torch.manual_seed(0)
    spec = GeneratorSpec("cdcgan", 32, len(CATEGORIES), 1, 28, 8, tuple(CATEGORIES))
    settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.tmp_dir) as tmp:
        tmp = Path(tmp)
        meta = write_fashion_mnist(DEBIAN_SOURCE, tmp / "data", limit=args.n)
        (tmp / "data" / META_FILE).write_bytes(meta.to_json())
        bundle = save_bundle(tmp / "bundle", build_generator(spec), spec, {})
        results = {}
        for nproc in (1, args.nproc):
            cache = tmp / f"cache-{nproc}"
            inception_dir(cache).mkdir(parents=True)
            (inception_dir(cache) / weights.path.name).symlink_to(weights.path)
            job = {
                "bundle": str(bundle),
                "dataset_root": str(tmp / "data"),
                "data_hash": f"bench-scale-out-{args.n}",
                "split": "test",
                "tensor_cache": str(tmp / "tensors"),
                "evaluator": None,
                "cache_dir": str(cache),
                "options": {"samples": args.n, "seed": 0, "bootstrap": 0},
                "out": str(tmp / f"result-{nproc}"),
            }
            write_json_atomic(tmp / f"job-{nproc}.json", job)
            began = time.perf_counter()
            code = Launch(nproc).run("prodgan.metrics", [str(tmp / f"job-{nproc}.json")])
            seconds = time.perf_counter() - began
            assert code == 0, f"the {nproc}-process evaluation exited with {code}"
            results[nproc] = (seconds, load_result(tmp / f"result-{nproc}"))
    (t1, one), (tk, many) = results[1], results[args.nproc]
    fid = f"fid_{one.protocol.suffix}"
    drift = abs(many.metrics[fid] - one.metrics[fid]) / one.metrics[fid]
    print(f"{args.n} generated vs {args.n} real images (+ floor, noise), every side computed")
    print(f"  1 process:  {t1:7.1f} s   {fid} {one.metrics[fid]:.6f}")
    print(f"  {args.nproc} processes: {tk:7.1f} s   {fid} {many.metrics[fid]:.6f}")
    print(f"  speed-up {t1 / tk:.2f}x   FID relative difference {drift:.1e} (must be < 1e-6)")
    assert drift < 1e-6


if __name__ == "__main__":
    main()
