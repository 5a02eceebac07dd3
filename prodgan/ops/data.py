"""Use case: datasets under `data/`: import, version with DVC, restore,
and a fresh clone's set-up."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable

from prodgan.adapters import dvc, gx
from prodgan.adapters.dvc import DataVersion
from prodgan.data.category_sizes import CategoryMinimums, SmallCategory, small_categories
from prodgan.data.fashion_mnist import DEBIAN_SOURCE, write_fashion_mnist
from prodgan.data.importer import import_into
from prodgan.data.layout import DatasetMeta
from prodgan.errors import ProdganError
from prodgan.names import DEFAULT_DATASET
from prodgan.settings import Settings

Progress = Callable[[int, int], None]


def import_fashion_mnist(
    settings: Settings,
    source: Path | None = None,
    limit: int | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> DatasetMeta:
    """Decode Fashion-MNIST into data/fashion-mnist (deterministic PNG bytes)."""
    src = source or DEBIAN_SOURCE
    return import_into(
        settings.data_dir,
        "fashion-mnist",
        "fashion-mnist",
        lambda tmp: write_fashion_mnist(src, tmp, limit=limit, progress=progress),
        force=force,
    )


def category_minimums(settings: Settings, kind: str) -> CategoryMinimums:
    """The per-category train/test minimums the kind's expectation suite checks: the importer
    warns against the very rules validation will apply."""
    suite, _ = gx.load_suite(settings.suite_path(kind))
    found: dict[str, int] = {}
    for entry in suite["expectations"]:
        kwargs = entry.get("kwargs", {})
        if kwargs.get("column") in ("category_train_count", "category_test_count"):
            found[kwargs["column"]] = kwargs.get("min_value")
    return CategoryMinimums(found.get("category_train_count"), found.get("category_test_count"))


def too_small(
    settings: Settings, meta: DatasetMeta, counts: dict[str, dict[str, int]] | None = None
) -> list[SmallCategory]:
    """The dataset's categories that validation would refuse as too small, each with its fix.

    `counts` (split -> category -> images) defaults to what `dataset.json` declares.
    """
    fraction = meta.source.get("test_fraction")
    return small_categories(
        meta.counts if counts is None else counts,
        meta.display,
        category_minimums(settings, meta.kind),
        float(fraction) if fraction else None,
    )


def in_git_repository(settings: Settings) -> bool:
    """Whether `prodgan data add` can version data here (DVC keeps its pins beside git)."""
    return dvc.git(settings.root, "rev-parse", "--git-dir", check=False).returncode == 0


def import_folder(
    settings: Settings,
    src: Path,
    name: str,
    size: int = 64,
    mode: str = "RGB",
    force: bool = False,
    progress: Progress | None = None,
    strict: bool = False,
    **policy: Any,
) -> tuple[DatasetMeta, list[tuple[str, str]]]:
    """Import a folder of product photos into data/<name>; (metadata,
    skipped files with the reason).

    policy: fit, test_fraction, min_test, min_side, ambiguous, product_pattern (see
    `prodgan.data.folder.write_folder`). `strict`: refuse (nothing written) when a category would
    be too small for validation (`too_small`); otherwise the caller warns.
    """
    from prodgan.data.folder import write_folder

    reports: list[Any] = []

    def build(tmp: Path) -> DatasetMeta:
        reports.append(
            write_folder(src, tmp, name, size=size, mode=mode, progress=progress, **policy)
        )
        small = too_small(settings, reports[0].meta)
        if strict and small:
            minimums = category_minimums(settings, "folder")
            raise ProdganError(
                f"import refused (--strict), data/{name} unchanged: "
                + "; ".join(s.describe(minimums) for s in small)
            )
        return reports[0].meta

    meta = import_into(settings.data_dir, name, "folder", build, force=force)
    return meta, list(reports[0].skipped)


def require_known(settings: Settings, dataset: str) -> str:
    """`dataset`, if it is the default dataset or one data.dvc pins;
    else a one-line error naming those.

    Every `--dataset` option that picks a model runs this while parsing, so a typo is refused
    before a command reads (and reports on) a model nobody trained. A pinned dataset with no model
    yet passes; so does the default one, pinned or not: it is what a command without --dataset
    acts on, in a fresh project too.
    """
    if dataset != DEFAULT_DATASET:
        dvc.require_pinned(settings, dataset)
    return dataset


def add(settings: Settings) -> DataVersion:
    return dvc.add(settings)


def version(settings: Settings, dataset: str | None = None) -> DataVersion:
    """data/'s pinned version, or one dataset's: its own DVC hash,
    unchanged when another dataset changes."""
    return dvc.version(settings, dataset)


def changed_files(settings: Settings) -> list[str]:
    return dvc.changed_files(settings)


def push(settings: Settings) -> DataVersion:
    dvc.push(settings)
    return dvc.version(settings)


def pull(settings: Settings) -> DataVersion:
    dvc.pull(settings)
    return dvc.version(settings)


def ensure_debian_dataset(source: Path = DEBIAN_SOURCE) -> Path:
    """Install Debian's dataset-fashion-mnist when it is missing and we are root;
    otherwise say how."""
    if source.is_dir() and any(source.glob("*-idx*-ubyte*")):
        return source
    if source != DEBIAN_SOURCE or os.geteuid() != 0 or not shutil.which("apt-get"):
        raise ProdganError(
            f"Fashion-MNIST idx files not found in {source}; "
            "run `sudo apt-get install dataset-fashion-mnist` or pass --source DIR"
        )
    proc = subprocess.run(
        ["apt-get", "install", "-y", "-q", "dataset-fashion-mnist"], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise ProdganError(
            "`apt-get install dataset-fashion-mnist` failed: "
            f"{proc.stderr.strip().splitlines()[-1:]}; run it yourself"
        )
    return source


def setup(settings: Settings, source: Path | None = None) -> str:
    """Fresh clone: get data/ to the version data.dvc pins (pull,
    else rebuild from the Debian files), then push."""
    dvc.ensure_repo(settings)
    dvc_file = settings.root / dvc.DVC_FILE
    if dvc_file.is_file():
        if settings.data_dir.is_dir() and not dvc.changed_files(settings):
            return f"data/ already matches data.dvc ({dvc.pinned(settings)['md5']})"
        try:
            dvc.pull(settings)
            return f"data/ pulled from the DVC remote ({dvc.pinned(settings)['md5']})"
        except ProdganError:
            pass  # not in the remote yet: rebuild it from the source files below
    src = ensure_debian_dataset(source or DEBIAN_SOURCE)
    import_fashion_mnist(settings, src, force=True)
    pinned_text = dvc_file.read_text() if dvc_file.is_file() else None
    expected = dvc.pinned(settings)["md5"] if pinned_text else None
    rebuilt = dvc.add(settings)
    if expected and rebuilt.data_hash != expected:
        dvc_file.write_text(pinned_text)
        raise ProdganError(
            f"rebuilt data/ hashes to {rebuilt.data_hash}, but data.dvc pins {expected}; "
            "get that version from its DVC remote (`prodgan data pull` with PRODGAN_DVC_REMOTE set)"
        )
    dvc.push(settings)
    return (
        f"data/ rebuilt from {src}, matches data.dvc ({rebuilt.data_hash}), "
        "pushed to the DVC remote"
    )
