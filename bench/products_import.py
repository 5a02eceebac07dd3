"""Import + validation benchmark: all of clothing-small (3,781 RGB photos) as a new shop would.

Stages, timed one by one in one process (imports included where they first happen):
import (decode, orient, convert, pad, resize, encode, split) -> `dvc add` -> manifest (read every
PNG, hashes, pixel statistics, near-duplicates) -> GX checkpoint and Data Docs.
It works in a throwaway git + DVC project under the system temp folder, reads the photos from
`settings.shared_dataset("clothing-small")` (PRODGAN_SHARED_DATA overrides) and never copies them
into the project. `--flat` first copies them (outside the project) as `<category>/` without the
published split, as a new user would hand them over: the importer then stratifies the split itself.

    .venv/bin/python bench/products_import.py [--flat] [--keep]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from prodgan.settings import Settings, configure_environment, shared_dataset


def _project(root: Path) -> Settings:
    root.mkdir(parents=True)
    for args in (
        ["init", "-q", "-b", "main"],
        ["config", "user.email", "bench@prodgan.local"],
        ["config", "user.name", "bench"],
    ):
        subprocess.run(["git", *args], cwd=root, check=True)
    os.environ.update(
        PRODGAN_ROOT=str(root),
        PRODGAN_HOME=str(root / ".prodgan"),
        PRODGAN_DVC_REMOTE=str(root.parent / "remote"),
    )
    for key in ("MLFLOW_TRACKING_URI", "PREFECT_HOME", "DVC_SITE_CACHE_DIR", "TMPDIR"):
        os.environ.pop(key, None)
    return configure_environment(Settings.load())


def main() -> None:
    src = shared_dataset("clothing-small")
    if not src.is_dir():
        raise SystemExit(
            f"{src} not found: set PRODGAN_SHARED_DATA to the folder holding clothing-small/"
        )
    work = Path(tempfile.mkdtemp(prefix="bench-products-"))
    if "--flat" in sys.argv:
        for photo in sorted(src.glob("*/*/*.jpg")):
            (work / "flat" / photo.parent.name).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(photo, work / "flat" / photo.parent.name / photo.name)
        src = work / "flat"
    print(
        f"{src} -> {work}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs",
        flush=True,
    )
    times: dict[str, float] = {}
    try:
        settings = _project(work / "proj")
        t = time.perf_counter()
        from prodgan.ops import data

        meta, skipped = data.import_folder(settings, src, "clothing", size=64, fit="pad")
        times["import"] = time.perf_counter() - t
        t = time.perf_counter()
        data_hash = data.add(settings).data_hash
        times["dvc add"] = time.perf_counter() - t
        t = time.perf_counter()
        from prodgan.adapters import dvc
        from prodgan.data.manifest import load_manifest

        key = dvc.require_clean(settings, "clothing")
        manifest, _ = load_manifest(
            settings.manifest_cache_dir, settings.data_dir / "clothing", key
        )
        times["manifest"] = time.perf_counter() - t
        t = time.perf_counter()
        from prodgan.ops.validate import validate

        record = validate(settings, "clothing")
        times["GX + Data Docs"] = time.perf_counter() - t
        print(
            f"imported {meta.total('train')} train + {meta.total('test')} test, "
            f"{len(skipped)} skipped; data {data_hash}, clothing {key}; "
            f"{len(manifest)} manifest rows; closest pair across the split by "
            f"perceptual_dup_distance: {manifest['perceptual_dup_distance'].min():.2f}"
        )
        warned = ", ".join(w.rule.split(":")[0] for w in record.warnings) or "none"
        print(
            f"validation success={record.success}: {record.expectations} expectations, "
            f"{record.failed} failed, {len(record.warnings)} warnings ({warned})"
        )
        for failure in record.failures:
            print(f"  failed: {failure.rule} ({failure.unexpected_count} unexpected)")
            for item in failure.offending:
                print(f"    {item.get('source', item['file'])}: {item['value']}")
        total = sum(times.values())
        for stage, seconds in times.items():
            print(f"{stage:<16} {seconds:7.2f} s  {100 * seconds / total:5.1f}%")
        print(f"{'total':<16} {total:7.2f} s; Data Docs: {record.docs_path}")
    finally:
        if "--keep" not in sys.argv:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
