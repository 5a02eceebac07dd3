"""Which code an outside trainer runs, as one identity string: the git revision of the repository
its folder is in plus a hash of that folder's uncommitted changes, or, outside git, a hash of the
files its recipe names.

The identity is what freshness compares with the champion's (a changed trainer retrains, an
unchanged one skips) and what the model version records as its code revision. Nothing of the
trainer is imported or run here: git reads the repository, and files are hashed as bytes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from prodgan.adapters.dvc import git
from prodgan.errors import ProdganError
from prodgan.fsutil import sha256_file


@dataclass(frozen=True)
class TrainerCode:
    identity: str  # `REV`, `REV+changes-SHA16` (uncommitted changes) or `files-SHA256`
    url: str  # where the code lives: the repository's origin, else its folder


def trainer_code(workdir: Path, files: list[Path]) -> TrainerCode:
    """The identity of the code in `workdir`: git's when it is in a work tree, else the hash of
    `files` (paths and contents); refused when neither says anything."""
    head = git(workdir, "rev-parse", "HEAD", check=False)
    if head.returncode == 0:
        origin = git(workdir, "remote", "get-url", "origin", check=False).stdout.strip()
        changes = _uncommitted(workdir)
        identity = head.stdout.strip() + (f"+changes-{changes[:16]}" if changes else "")
        return TrainerCode(identity, origin or workdir.as_uri())
    if not files:
        raise ProdganError(
            f"cannot tell which code the trainer runs: {workdir} is not in a git repository and "
            "the recipe names no file of it; list them under trainer.code (e.g. [train.py])"
        )
    digest = hashlib.sha256()
    for path in files:
        name = path.relative_to(workdir) if path.is_relative_to(workdir) else path
        digest.update(f"{name}\0{sha256_file(path)}\0".encode())
    return TrainerCode(f"files-{digest.hexdigest()}", workdir.as_uri())


def _uncommitted(workdir: Path) -> str:
    """sha256 of what differs from HEAD under `workdir` (tracked diffs and untracked files), or
    "" when nothing does."""
    diff = git(workdir, "diff", "HEAD", "--binary", "--", ".").stdout
    untracked = [
        name
        for name in git(
            workdir, "ls-files", "--others", "--exclude-standard", "-z", "--", "."
        ).stdout.split("\0")
        if name
    ]
    if not diff and not untracked:
        return ""
    digest = hashlib.sha256(diff.encode())
    for name in sorted(untracked):
        digest.update(f"\0{name}\0{sha256_file(workdir / name)}".encode())
    return digest.hexdigest()
