"""Import a dataset into `data/<name>` all-or-nothing: built in a temp folder, then renamed in."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from prodgan.data.layout import META_FILE, DatasetMeta, dataset_dir, read_meta
from prodgan.errors import ProdganError
from prodgan.fsutil import atomic_dir


def _check_target(target: Path, kind: str, force: bool) -> None:
    if not target.exists() or force:
        return
    if not (target / META_FILE).is_file():
        if any(target.iterdir()):
            raise ProdganError(
                f"{target} exists and is not a prodgan dataset; "
                "move it away or pass --force to replace it"
            )
        return
    existing = read_meta(target)
    if existing.kind != kind:
        raise ProdganError(
            f"{target} already holds a different dataset ({existing.kind!r}); "
            "choose another --name or pass --force to replace it"
        )


def import_into(
    data_dir: Path,
    name: str,
    kind: str,
    build: Callable[[Path], DatasetMeta],
    force: bool = False,
) -> DatasetMeta:
    """Run `build(tmp_dir)` and swap the result in as `data/<name>`; on an error nothing changes."""
    if not name or "/" in name or name.startswith("."):
        raise ProdganError(f"invalid dataset name {name!r}: use letters, digits, '-' or '_'")
    target = dataset_dir(data_dir, name)
    _check_target(target, kind, force)
    with atomic_dir(target) as tmp:
        meta = build(tmp)
        (tmp / META_FILE).write_bytes(meta.to_json())
    return meta
