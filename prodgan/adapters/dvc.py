"""DVC adapter: the real `dvc` command, run with argument lists (never a shell),
in the project root.

`data.dvc` pins `data/`, which holds one folder per dataset side by side (Fashion-MNIST, a
shop's photos, ...). Each dataset's version is DVC's own directory hash of `data/<name>`
(what `dvc add data/<name>` would write), computed from the listing `data.dvc` pins: changing
one dataset leaves every other dataset's hash, validation record, tensor cache and lineage as
they were. Everything downstream (validation records, tensor cache, training runs, evaluation
protocols) is keyed by the dataset's hash.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from prodgan.adapters.processes import port_open, run_watched
from prodgan.errors import ProdganError
from prodgan.fsutil import write_bytes_atomic
from prodgan.settings import DEFAULT_DVC_REMOTE, Settings

REMOTE_NAME = "local"
DVC_FILE = "data.dvc"


@dataclass(frozen=True)
class DataVersion:
    data_hash: (
        str  # DVC md5 of data/ as pinned by data.dvc, or of data/<dataset> when `dataset` is set
    )
    git_rev: str
    git_dirty: bool
    files: int
    size: int
    dataset: str | None = None


def _run(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=os.environ.copy())
    return _checked(proc, args) if check else proc


def _checked(
    proc: subprocess.CompletedProcess[str], args: list[str]
) -> subprocess.CompletedProcess[str]:
    if proc.returncode != 0:
        detail = [line for line in (proc.stderr or proc.stdout).splitlines() if line.strip()]
        # DVC ends with a support banner; its own `ERROR:` line says what went wrong
        last = next(
            (line for line in reversed(detail) if line.startswith("ERROR")),
            detail[-1] if detail else "no output",
        )
        command = " ".join([Path(args[0]).name, *args[1:]])
        raise ProdganError(f"`{command}` failed: {last.strip()}")
    return proc


def dvc(settings: Settings, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return _run([sys.executable, "-m", "dvc", *args], settings.root, check=check)


def git(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return _run(["git", *args], root, check=check)


def git_revision(root: Path) -> tuple[str, bool]:
    """(commit, dirty) of the project, or ("unknown", True) outside a git repository."""
    proc = git(root, "rev-parse", "HEAD", check=False)
    if proc.returncode != 0:
        return "unknown", True
    dirty = bool(
        git(root, "status", "--porcelain", "--untracked-files=no", check=False).stdout.strip()
    )
    return proc.stdout.strip(), dirty


def ensure_repo(settings: Settings) -> None:
    """`dvc init` (with analytics and update checks off) where the project has no `.dvc/` yet.

    The committed `.dvc/config` names the default remote beside the project; `PRODGAN_DVC_REMOTE`
    goes to the untracked `.dvc/config.local` (one person's remote is not the team's). prodgan's
    own state folder (`.prodgan/`) is git-ignored.
    """
    if (settings.root / ".dvc").is_dir():
        return
    if git(settings.root, "rev-parse", "--git-dir", check=False).returncode != 0:
        raise ProdganError(
            f"{settings.root} is not a git repository; "
            "run `git init` there first (DVC versions data beside git)"
        )
    _ignore_home(settings)
    dvc(settings, "init", "--quiet")
    dvc(settings, "config", "core.analytics", "false")
    dvc(settings, "config", "core.check_update", "false")
    default = os.path.relpath(settings.root.parent / DEFAULT_DVC_REMOTE, settings.root)
    dvc(settings, "remote", "add", "--default", REMOTE_NAME, default)
    _use_remote_override(settings)


def _ignore_home(settings: Settings) -> None:
    """Add prodgan's state folder to the project's `.gitignore` when it lies inside the project."""
    if not settings.home.is_relative_to(settings.root):
        return
    entry = f"/{settings.home.relative_to(settings.root).as_posix()}/"
    ignore = settings.root / ".gitignore"
    text = ignore.read_text() if ignore.is_file() else ""
    if entry in text.splitlines():
        return
    write_bytes_atomic(
        ignore, (text + ("" if not text or text.endswith("\n") else "\n") + entry + "\n").encode()
    )


def _use_remote_override(settings: Settings) -> None:
    """`PRODGAN_DVC_REMOTE` wins over the committed remote,
    written to the untracked `.dvc/config.local`.

    An `s3://` remote on storage that is not Amazon's (the team stack's SeaweedFS, MinIO) also gets
    its endpoint from AWS_ENDPOINT_URL; the keys stay in the environment, never in DVC's config.
    """
    if settings.dvc_remote_overridden:
        dvc(settings, "remote", "modify", "--local", REMOTE_NAME, "url", str(settings.dvc_remote))
        if settings.s3_endpoint_url and str(settings.dvc_remote).startswith("s3://"):
            dvc(
                settings,
                "remote",
                "modify",
                "--local",
                REMOTE_NAME,
                "endpointurl",
                settings.s3_endpoint_url,
            )


def pinned(settings: Settings) -> dict:
    """The `outs` entry of `data.dvc`: md5, nfiles, size."""
    path = settings.root / DVC_FILE
    if not path.is_file():
        raise ProdganError(
            f"{path} is missing: import a dataset (`prodgan data import fashion-mnist`) "
            "and run `prodgan data add`"
        )
    try:
        return yaml.safe_load(path.read_text())["outs"][0]
    except (yaml.YAMLError, KeyError, IndexError, TypeError) as exc:
        raise ProdganError(
            f"{path} is not a valid DVC file ({exc}); restore it with `git checkout {DVC_FILE}`"
        ) from exc


def add(settings: Settings) -> DataVersion:
    """Pin the current `data/` in `data.dvc` and the DVC cache."""
    ensure_repo(settings)
    if not settings.data_dir.is_dir():
        raise ProdganError(
            f"{settings.data_dir} does not exist: "
            "import a dataset first (`prodgan data import fashion-mnist`)"
        )
    dvc(settings, "add", "--quiet", os.path.relpath(settings.data_dir, settings.root))
    pinned_version = version(settings)
    _remember_clean(settings, pinned_version.data_hash)
    return pinned_version


def version(settings: Settings, dataset: str | None = None) -> DataVersion:
    """The pinned version of data/ (all datasets), or of one dataset in it."""
    out = pinned(settings)
    rev, dirty = git_revision(settings.root)
    if dataset is None:
        return DataVersion(
            out["md5"], rev, dirty, int(out.get("nfiles", 0)), int(out.get("size", 0))
        )
    entries = _dataset_entries(settings, out["md5"], dataset)
    size = sum(f.stat().st_size for f in (settings.data_dir / dataset).rglob("*") if f.is_file())
    return DataVersion(dataset_hash(settings, dataset), rev, dirty, len(entries), size, dataset)


def _dir_listing(settings: Settings, md5: str) -> list[dict[str, str]]:
    """The `.dir` object data.dvc pins: every file of data/ as {"md5", "relpath"}."""
    obj = settings.root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    try:
        return json.loads(obj.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ProdganError(
            f"the DVC cache lacks the listing of data {md5} ({exc.__class__.__name__}); "
            "run `prodgan data pull`"
        ) from exc


def _dataset_entries(settings: Settings, md5: str, dataset: str) -> list[dict[str, str]]:
    prefix = f"{dataset}/"
    entries = [
        {**e, "relpath": e["relpath"][len(prefix) :]}
        for e in _dir_listing(settings, md5)
        if e["relpath"].startswith(prefix)
    ]
    if not entries:
        raise _not_pinned(dataset, datasets(settings))
    return entries


def _not_pinned(dataset: str, known: list[str]) -> ProdganError:
    return ProdganError(
        f"data.dvc pins no dataset {dataset!r} (it holds: {', '.join(known) or 'none'}); "
        "import it and run `prodgan data add`, or pick one of those with --dataset"
    )


def datasets(settings: Settings) -> list[str]:
    """The datasets data.dvc pins: the folders at the top of data/."""
    return sorted(
        {
            e["relpath"].split("/")[0]
            for e in _dir_listing(settings, pinned(settings)["md5"])
            if "/" in e["relpath"]
        }
    )


def require_pinned(settings: Settings, dataset: str) -> None:
    """Refuse a dataset data.dvc does not pin, naming the ones it does."""
    known = datasets(settings)
    if dataset not in known:
        raise _not_pinned(dataset, known)


def dataset_hash(settings: Settings, dataset: str) -> str:
    """DVC's directory hash of data/<dataset> as data.dvc pins it
    (memoised per pinned data/ hash)."""
    from dvc_data.hashfile.tree import Tree

    from prodgan.fsutil import write_json_atomic

    md5 = pinned(settings)["md5"]
    memo_file = settings.home / "dataset-hashes.json"
    try:
        memo = json.loads(memo_file.read_text())
    except (OSError, json.JSONDecodeError):
        memo = {}
    known = memo.get(md5, {})
    if dataset not in known:
        tree = Tree.from_list(_dataset_entries(settings, md5, dataset))
        tree.digest()
        known[dataset] = tree.hash_info.value
        write_json_atomic(memo_file, {md5: known})
    return known[dataset]


def remote_location(settings: Settings, md5: str) -> str:
    """Where the DVC remote keeps a dataset version's listing (DVC 3 layout
    `files/md5/ab/cdef….dir`)."""
    remote = str(settings.dvc_remote).rstrip("/")  # a folder, or an s3:// URL
    return f"{remote}/files/md5/{md5[:2]}/{md5[2:]}"


def changed_files(settings: Settings) -> list[str]:
    """Files under `data/` that differ from what `data.dvc` pins (added, modified, deleted)."""
    proc = dvc(settings, "data", "status", "--granular", "--json")
    status = json.loads(proc.stdout or "{}")
    changes = status.get("uncommitted", {})
    return sorted(f"{kind}: {path}" for kind, paths in changes.items() for path in paths)


def _stat_digest(data_dir: Path) -> str:
    """Digest of every file's path, size, mtime and inode: changes whenever any file could have."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(data_dir):
        dirnames.sort()
        # once per folder: relpath per file cost seconds on 70k files
        rel_dir = os.path.relpath(dirpath, data_dir)
        for name in sorted(filenames):
            st = os.stat(os.path.join(dirpath, name))
            rel = name if rel_dir == "." else f"{rel_dir}{os.sep}{name}"
            h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\n".encode())
    return h.hexdigest()


def _remember_clean(settings: Settings, md5: str) -> None:
    from prodgan.fsutil import write_json_atomic

    write_json_atomic(
        settings.data_state_file, {"md5": md5, "stat": _stat_digest(settings.data_dir)}
    )


def require_clean(settings: Settings, dataset: str | None = None) -> str:
    """The pinned hash of data/ (or of data/<dataset>), but only if it is on disk exactly as pinned.

    With `dataset`, only that dataset's files must match: another dataset changing beside it
    does not stop it. `dvc status` reads 70k files' metadata in ~8 s; a stat digest recorded the
    last time DVC confirmed the data answers the common case (nothing touched)
    in well under a second.
    """
    md5 = pinned(settings)["md5"]
    try:
        state = json.loads(settings.data_state_file.read_text())
    except (OSError, json.JSONDecodeError):
        state = {}
    if not (state.get("md5") == md5 and state.get("stat") == _stat_digest(settings.data_dir)):
        everything = changed_files(settings)
        inside = (
            os.path.relpath(settings.data_dir / dataset, settings.root).replace(os.sep, "/") + "/"
            if dataset
            else ""
        )
        diff = [d for d in everything if d.partition(": ")[2].startswith(inside)]
        if diff:
            shown = ", ".join(diff[:5]) + (f" and {len(diff) - 5} more" if len(diff) > 5 else "")
            raise ProdganError(
                f"{'data/' + dataset if dataset else 'data/'} differs from data.dvc ({shown}); "
                "run `prodgan data add` to version the change "
                "or `prodgan data pull` to restore the pinned version"
            )
        if not everything:
            _remember_clean(settings, md5)
    return dataset_hash(settings, dataset) if dataset else md5


def _transfer(settings: Settings, verb: str, *options: str) -> None:
    """`dvc push|pull data.dvc`. Each object lands whole or not at all, so after a failure (storage
    gone midway) a rerun moves only what is missing.

    Against an S3 endpoint of our own (the team stack) it stops as soon as the endpoint stops
    answering: DVC would otherwise retry every remaining file against it for minutes.
    """
    _use_remote_override(settings)
    args = [
        sys.executable,
        "-m",
        "dvc",
        verb,
        *options,
        DVC_FILE,
    ]  # not --quiet: it also hides DVC's ERROR line
    endpoint = settings.s3_endpoint_url if isinstance(settings.dvc_remote, str) else None
    if (
        not endpoint and sys.stderr.isatty()
    ):  # DVC's own progress bars on a terminal; its ERROR line shows above ours
        if subprocess.run(
            args, cwd=settings.root, env=os.environ.copy(), stdout=subprocess.DEVNULL
        ).returncode:
            raise ProdganError(
                f"`dvc {verb}` failed (DVC's reason is printed above); "
                f"fix it and rerun `prodgan data {verb}`"
            )
        return
    if not endpoint:  # captured: its last line becomes the error
        _run(args, settings.root)
        return
    where = urlsplit(endpoint)
    proc = run_watched(
        args, settings.root, lambda: port_open(where.port or 443, where.hostname or "127.0.0.1")
    )
    if proc is None:
        raise ProdganError(
            f"the S3 storage at {endpoint} stopped answering during `dvc {verb}`; "
            f"what was transferred is complete: run `prodgan data {verb}` again once it is back "
            "(`prodgan stack status`)"
        )
    _checked(proc, args)


def push(settings: Settings) -> None:
    _transfer(settings, "push")


def pull(settings: Settings) -> None:
    pinned(settings)
    _transfer(settings, "pull", "--force")
    _remember_clean(settings, pinned(settings)["md5"])
