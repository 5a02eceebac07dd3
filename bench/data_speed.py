"""Foundation benchmark: full Fashion-MNIST import + `dvc add`, tensor loading, `dvc pull`.

Targets on the 2-core reference machine: import + add <= 90 s; cached tensors <= 2 s
(baseline: decoding the 70k PNGs every run); pull of the whole dataset from the local remote
into an empty cache <= 90 s. Runs in a throwaway git repo; prints the figures and ratios.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from prodgan.adapters import dvc
from prodgan.data.fashion_mnist import DEBIAN_SOURCE, write_fashion_mnist
from prodgan.data.importer import import_into
from prodgan.data.layout import read_meta
from prodgan.data.tensors import decode_split, load_split
from prodgan.settings import Settings, configure_environment


def timed(label: str, fn, target: float | None = None):
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    verdict = (
        ""
        if target is None
        else ("  OK" if seconds <= target else f"  OVER TARGET ({target:.0f} s)")
    )
    print(f"{label:<48} {seconds:8.2f} s{verdict}", flush=True)
    return result, seconds


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="prodgan-bench-data-"))
    root = work / "proj"
    root.mkdir()
    os.environ.update(
        PRODGAN_ROOT=str(root),
        PRODGAN_HOME=str(root / ".prodgan"),
        PRODGAN_DVC_REMOTE=str(work / "remote"),
    )
    settings = configure_environment(Settings.load())
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    dvc.ensure_repo(settings)
    try:
        _, t_import = timed(
            "import 70k Fashion-MNIST images",
            lambda: import_into(
                settings.data_dir,
                "fashion-mnist",
                "fashion-mnist",
                lambda tmp: write_fashion_mnist(DEBIAN_SOURCE, tmp),
            ),
        )
        version, t_add = timed("dvc add data/", lambda: dvc.add(settings))
        total = t_import + t_add
        verdict = "OK" if total <= 90 else "OVER TARGET (90 s)"
        print(f"{'import + dvc add':<48} {total:8.2f} s  {verdict}")

        ds = settings.data_dir / "fashion-mnist"
        meta = read_meta(ds)
        _, t_decode = timed(
            "baseline: decode 70k PNGs (no cache)",
            lambda: [decode_split(ds, meta, s) for s in ("train", "test")],
        )
        timed(
            "first load_split (decode + write cache)",
            lambda: [
                load_split(settings.tensor_cache_dir, ds, s, version.data_hash)
                for s in ("train", "test")
            ],
        )
        _, t_cached = timed(
            "cached load_split, train + test",
            lambda: [
                load_split(settings.tensor_cache_dir, ds, s, version.data_hash)
                for s in ("train", "test")
            ],
            target=2,
        )
        print(f"{'ratio decode / cached':<48} {t_decode / t_cached:8.1f} x")

        timed("dvc push", lambda: dvc.push(settings))
        shutil.rmtree(settings.data_dir)
        shutil.rmtree(root / ".dvc" / "cache")
        timed("dvc pull into an empty cache", lambda: dvc.pull(settings), target=90)
        assert dvc.require_clean(settings) == version.data_hash
        print(
            f"data hash {version.data_hash} "
            "(data.dvc in the repo pins the same when the bytes match)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
