"""Model store: stored model files -> a local copy, downloaded once and hashed on every read.

The cache under `<home>/models/` is content-addressed: a copy's key is a digest of the hashes
its files must have (the promoter's signed record for a production copy, the registration tags
for a trained version), so it is never trusted for its name. A copy is hashed each time it is
read; one that no longer matches is fetched again once, then reported. Which copy a reference
names, and what its files must hash to, is `prodgan.adapters.production_state`'s to say.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from prodgan.errors import GateFailed, ProdganError
from prodgan.names import GENERATOR_ARTIFACT, WEIGHTS, production_model
from prodgan.settings import Settings

Problems = Callable[
    [dict[str, str]], list[str]
]  # {path: sha256} of a copy -> what is wrong with it


@dataclass(frozen=True)
class ResolvedModel:
    """A local generator bundle plus where it came from."""

    bundle_dir: Path
    uri: str
    name: str | None = None
    version: str | None = None
    run_id: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    production_version: str | None = None  # set when the files are the promoter's copy
    # {file name inside the bundle: sha256} as checked against the record it was resolved by;
    # `prodgan serve` hands these to prodgan's own loader, which hashes the files again on load
    bundle_hashes: dict[str, str] = field(default_factory=dict)

    @property
    def served_uri(self) -> str:
        """The pinned URI of exactly these files: the production version, else the trained one."""
        if self.production_version:
            return f"models:/{production_model(str(self.name))}/{self.production_version}"
        return f"models:/{self.name}/{self.version}"

    @property
    def trained_version(self) -> str | None:
        """The trained version whose own stored files are used (None for the promoter's copy)."""
        return None if self.production_version else self.version

    def info(self) -> dict[str, Any]:
        found = {
            "model_name": self.name,
            "model_version": self.version,
            "run_id": self.run_id,
            "production_version": self.production_version,
            "weights_sha256": self.tags.get(WEIGHTS),
        }
        return {k: v for k, v in found.items() if v}


def content_key(kind: str, *hashes: str) -> str:
    """The cache key of a copy whose files must hash to `hashes`: the same files, the same key."""
    digest = hashlib.sha256("\n".join(hashes).encode()).hexdigest()[:32]
    return f"{kind}-{digest}"


def _download(source: str, dest: Path) -> None:
    """Every file under the artifact URI `source` (a `models:/…` URI included) into `dest`."""
    import mlflow

    got = Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(dest)))
    if got != dest:
        shutil.copytree(got, dest, dirs_exist_ok=True)


def _cached(settings: Settings, key: str, source: str) -> Path:
    """`<home>/models/<key>`, downloaded from `source` if absent; the folder appears atomically.

    Two processes fetching the same key at once both download; the first rename wins.
    """
    from prodgan.fsutil import atomic_dir

    target = settings.model_cache_dir / key
    if not target.is_dir():
        with atomic_dir(target, keep_existing=True) as tmp:
            _download(source, tmp)
    return target


def checked_copy(
    settings: Settings, key: str, source: str, problems: Problems
) -> tuple[Path, list[str], dict[str, str]]:
    """The cached copy of `source`, what `problems` finds in its files as hashed now, and those
    hashes.

    A failing copy (a damaged cache, or a download of changed files) is dropped and fetched once
    more; what the second copy still shows is returned, and that copy is dropped too."""
    from prodgan.fsutil import file_hashes

    found: list[str] = []
    hashes: dict[str, str] = {}
    for _ in range(2):
        folder = _cached(settings, key, source)
        hashes = file_hashes(folder)
        found = problems(hashes)
        if not found:
            return folder, [], hashes
        shutil.rmtree(folder, ignore_errors=True)
    return folder, found, hashes


def loaded_copy(
    settings: Settings, key: str, source: str, problems: Problems, what: str
) -> tuple[Path, dict[str, str]]:
    """The checked copy's bundle folder and {file in the bundle: sha256} as checked; GateFailed
    naming `what` and the problems otherwise."""
    folder, found, hashes = checked_copy(settings, key, source, problems)
    if found:
        raise GateFailed(
            f"refusing to load {what}: {'; '.join(found)}; inspect it with `prodgan audit verify`"
        )
    bundle = bundle_in(folder)
    inside = bundle.relative_to(folder).as_posix()
    prefix = "" if inside == "." else f"{inside}/"
    return bundle, {p.removeprefix(prefix): h for p, h in hashes.items() if p.startswith(prefix)}


def fresh_hashes(settings: Settings, source: str) -> dict[str, str]:
    """{path: sha256} of the files stored under `source` now, from a download of its own
    (what a plain MLflow client would load; `prodgan audit verify` checks the store, not the
    cache)."""
    from prodgan.fsutil import file_hashes

    settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.tmp_dir) as tmp:
        _download(source, Path(tmp))
        return file_hashes(Path(tmp))


def weights_path(hashes: dict[str, str], source: str) -> str:
    """Where the weights (generator.pt, or an imported model file) lie among a stored model's
    files (its bundle artifact's folder)."""
    from prodgan.models.bundle import SPEC_FILE, WEIGHTS_FILE, WEIGHTS_NAMES

    bundles = sorted(p for p in hashes if p == SPEC_FILE or p.endswith("/" + SPEC_FILE))
    if not bundles:
        raise ProdganError(
            f"{source} holds no generator bundle ({SPEC_FILE}); the model was not logged by prodgan"
        )
    folder = bundles[0].removesuffix(SPEC_FILE)
    found = [folder + name for name in WEIGHTS_NAMES if folder + name in hashes]
    return found[0] if found else f"{folder}{WEIGHTS_FILE}"


def bundle_in(folder: Path) -> Path:
    from prodgan.models.bundle import SPEC_FILE

    hits = sorted(folder.rglob(SPEC_FILE))
    if not hits:
        raise ProdganError(
            f"{folder} holds no generator bundle ({SPEC_FILE}); the model was not logged by prodgan"
        )
    return hits[0].parent


def _download_run_artifact(client: Any, run_id: str, path: str, dest: Path) -> Path:
    from mlflow.exceptions import MlflowException

    try:
        return Path(client.download_artifacts(run_id, path, str(dest)))
    except (MlflowException, OSError) as exc:
        raise ProdganError(
            f"run {run_id} has no artifact {path!r} ({exc}); use runs:/RUN_ID/PATH to a bundle "
            f"folder written by `prodgan train`"
        ) from None


def download_run_bundle(
    client: Any, run_id: str, dest: Path, path: str = GENERATOR_ARTIFACT
) -> Path:
    """A training run's generator bundle, checked against the weights sha256 its record states."""
    from prodgan.fsutil import sha256_file
    from prodgan.models.bundle import read_bundle_record, weights_file

    local = bundle_in(_download_run_artifact(client, run_id, path, dest))
    record = read_bundle_record(local)
    weights = local / weights_file(record)
    if not weights.is_file() or sha256_file(weights) != record.get("weights_sha256"):
        raise ProdganError(
            f"run {run_id}: {weights.name} does not match its recorded sha256; "
            "the artifact is corrupt"
        )
    return local


def run_copy(settings: Settings, client: Any, run_id: str, path: str) -> Path:
    """A training run's bundle, downloaded once per run and path, checked against its own record."""
    from prodgan.fsutil import atomic_dir

    target = settings.model_cache_dir / f"run-{run_id}-{path.replace('/', '_')}"
    if not target.is_dir():
        with atomic_dir(target, keep_existing=True) as tmp:
            download_run_bundle(client, run_id, tmp, path)
    return bundle_in(target)
