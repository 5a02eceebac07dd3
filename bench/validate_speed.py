"""Validation benchmark: the GX gate over all 70k Fashion-MNIST images, from scratch and from cache.

Targets on the 2-core reference machine: from scratch (no manifest, no DVC state, fresh GX
project) <= 60 s; from cache (unchanged data and suite: the earlier result, DVC fast path) <= 5 s.
Also printed, without a target: `--fresh` (the GX checkpoint and Data Docs re-run on the cached
manifest), the cost of re-checking unchanged data under GX itself.
Each run is a fresh `python` process, as `prodgan data validate` would be, so imports count.
It validates the repository's pinned data/fashion-mnist read-only, with a throwaway
PRODGAN_HOME (manifest cache, GX project, records) that is removed afterwards.

    .venv/bin/python bench/validate_speed.py [--keep]
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"scratch": 60.0, "cache": 5.0, "fresh": None}

_ONE_RUN = """
import json, sys, time
t0 = time.perf_counter()
from prodgan.settings import Settings, configure_environment
from prodgan.ops.validate import validate as validate_dataset
settings = configure_environment(Settings.load())
record = validate_dataset(settings, "fashion-mnist", fresh=sys.argv[1] == "fresh")
print(json.dumps({
    "seconds": time.perf_counter() - t0,
    "success": record.success,
    "rows": record.rows,
    "cached": record.manifest_cached,
    "reused": record.reused,
    "docs": record.docs_path,
}))
"""


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def one_run(home: Path, label: str) -> dict:
    """Wall time, and CPU time of the run and everything it started (workers, dvc): on a shared
    machine the CPU figure shows what the run itself costs."""
    env = {**os.environ, "PRODGAN_ROOT": str(ROOT), "PRODGAN_HOME": str(home)}
    start, cpu = time.perf_counter(), _children_cpu()
    proc = subprocess.run(
        [sys.executable, "-c", _ONE_RUN, label], cwd=ROOT, env=env, capture_output=True, text=True
    )
    wall, cpu = time.perf_counter() - start, _children_cpu() - cpu
    if proc.returncode != 0:
        raise SystemExit(f"validation run failed:\n{proc.stderr[-3000:]}")
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "wall": wall, "cpu": cpu}


def main() -> None:
    keep = "--keep" in sys.argv
    scratch_home = ROOT / ".prodgan" / "tmp"
    scratch_home.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="bench-validate-", dir=scratch_home))
    print(
        f"validating {ROOT / 'data' / 'fashion-mnist'} with PRODGAN_HOME={home}; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs",
        flush=True,
    )
    try:
        results = {}
        for label, target in TARGETS.items():
            results[label] = run = one_run(home, label)
            if target is None:
                verdict = ""
            elif run["wall"] <= target:
                verdict = "OK"
            else:
                verdict = f"OVER TARGET ({target:.0f} s)"
            print(
                f"{label:<8} {run['rows']} images  success={run['success']}  "
                f"manifest cached={run['cached']}  reused={run['reused']}  "
                f"{run['wall']:7.2f} s wall, {run['cpu']:6.2f} s CPU  {verdict}",
                flush=True,
            )
        print(
            "ratio scratch/cache: "
            f"{results['scratch']['wall'] / results['cache']['wall']:.1f}x wall; "
            f"load average now {os.getloadavg()[0]:.1f}"
        )
        print(f"Data Docs: {results['cache']['docs']}")
    finally:
        if not keep:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
