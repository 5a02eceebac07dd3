"""What one `prodgan generate -m @champion` reads from MLflow, against a registry with a long
history.

Builds a real sqlite project with PROMOTIONS moves of `champion` (two promotions, then rollbacks
back and forth: each one a signed audit record), then counts, in this process:
- calls into MLflow's tracking and registry stores (every query the command makes),
- audit-chain reads (searches of the `prodgan-audit` experiment),
- artifact bytes and files downloaded.
Side by side: the baseline, a plain `mlflow.pyfunc.load_model(models:/…-production@champion)` (which
checks nothing), and prodgan's verified load, cold (empty model cache) and warm. Prints the ratios.

    python bench/production_reads.py [--promotions 50]
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class Reads:
    """Counts store calls, audit-chain searches and downloaded artifact bytes while active."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.files = 0
        self.bytes = 0
        self.active = False

    def reset(self) -> None:
        self.calls.clear()
        self.files = self.bytes = 0

    def wrap_store(self, cls: type) -> None:
        for name in dir(cls):
            if name.startswith("_") or not callable(getattr(cls, name, None)):
                continue
            setattr(cls, name, self._counted(cls.__name__, name, getattr(cls, name)))

    def _counted(self, owner: str, name: str, method):
        reads = self

        @functools.wraps(method)
        def counted(*args, **kwargs):
            if reads.active:
                reads.calls[f"{owner}.{name}"] += 1
                if name == "search_runs" and _searches_audit(args, kwargs):
                    reads.calls["audit chain searches"] += 1
            return method(*args, **kwargs)

        return counted

    def wrap_downloads(self, cls: type) -> None:
        original = cls._download_file
        reads = self

        def download(repo, remote_file_path, local_path):
            result = original(repo, remote_file_path, local_path)
            if reads.active:
                reads.files += 1
                reads.bytes += os.path.getsize(local_path)
            return result

        cls._download_file = download

    @property
    def store_calls(self) -> int:
        return sum(v for k, v in self.calls.items() if k != "audit chain searches")


def _searches_audit(args: tuple, kwargs: dict) -> bool:
    from prodgan.names import AUDIT_TAG

    text = " ".join(str(a) for a in (*args, *kwargs.values()))
    return f"{AUDIT_TAG}model" in text


def _project(root: Path) -> None:
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    os.environ.update(
        {
            "PRODGAN_ROOT": str(root),
            "PRODGAN_HOME": str(root / ".prodgan"),
            "PRODGAN_GATES": str(ROOT / "tests" / "gates-mechanics.yaml"),
            "MLFLOW_DISABLE_TELEMETRY": "true",
        }
    )
    os.environ.pop("MLFLOW_TRACKING_URI", None)


def _history(settings, promotions: int) -> None:
    from prodgan.ops import promote
    from tests.registry import helpers

    versions = [helpers.registered(settings, seed=s, fid=f) for s, f in ((1, 300.0), (2, 200.0))]
    for version in versions:
        promote.promote(settings, version, actor="bench")
    for done in range(2, promotions):
        promote.rollback(settings, actor="bench", reason=f"bench move {done + 1}")
        print(f"\r{done + 1}/{promotions} champion moves", end="", flush=True)
    print()


def _measure(reads: Reads, what) -> dict[str, int]:
    reads.reset()
    reads.active = True
    try:
        what()
    finally:
        reads.active = False
    return {
        "store calls": reads.store_calls,
        "audit chain searches": reads.calls["audit chain searches"],
        "files downloaded": reads.files,
        "bytes downloaded": reads.bytes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--promotions", type=int, default=50)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="prodgan-bench-reads-")) / "proj"
    _project(root)

    import mlflow
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as RegistryStore
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore as TrackingStore

    from prodgan.names import CHAMPION, production_model
    from prodgan.ops.serve import load_generator
    from prodgan.settings import Settings, configure_environment

    settings = Settings.load()
    configure_environment(settings)
    _history(settings, args.promotions)

    reads = Reads()
    for cls in (TrackingStore, RegistryStore):
        reads.wrap_store(cls)
    reads.wrap_downloads(LocalArtifactRepository)

    production = production_model(settings.model_name)
    rows = {
        "plain MLflow load (checks nothing)": _measure(
            reads, lambda: mlflow.pyfunc.load_model(f"models:/{production}@{CHAMPION}")
        )
    }
    shutil.rmtree(settings.model_cache_dir, ignore_errors=True)
    rows["prodgan generate -m @champion, cold cache"] = _measure(
        reads, lambda: load_generator(settings, "@champion")
    )
    rows["prodgan generate -m @champion, warm cache"] = _measure(
        reads, lambda: load_generator(settings, "@champion")
    )

    print(f"registry: {args.promotions} champion moves of {settings.model_name}")
    columns = ("store calls", "audit chain searches", "files downloaded", "bytes downloaded")
    print(f"{'':45}" + "".join(f"{c:>22}" for c in columns))
    for label, row in rows.items():
        print(f"{label:45}" + "".join(f"{row[c]:>22,}" for c in columns))
    baseline = rows["plain MLflow load (checks nothing)"]
    for label in list(rows)[1:]:
        ratio = rows[label]["store calls"] / max(baseline["store calls"], 1)
        print(f"{label}: {ratio:.1f}x the baseline's store calls")
    shutil.rmtree(root.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
