"""Model store: a model reference -> a local generator bundle, downloaded once and checked.

Registered versions are cached under `<home>/models/<weights sha256>`; a bundle pulled from a
training run is checked against the sha256 its own record states before anything uses it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from prodgan.adapters.registry import client_for, find_version
from prodgan.adapters.tracking import get_run
from prodgan.errors import ProdganError
from prodgan.names import GENERATOR_ARTIFACT, WEIGHTS, ModelRef, parse_model_ref
from prodgan.settings import Settings


@dataclass(frozen=True)
class ResolvedModel:
    """A local generator bundle plus where it came from."""

    bundle_dir: Path
    uri: str
    name: str | None = None
    version: str | None = None
    run_id: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    def info(self) -> dict[str, Any]:
        return {k: v for k, v in {"model_name": self.name, "model_version": self.version, "run_id": self.run_id,
                                  "weights_sha256": self.tags.get(WEIGHTS)}.items() if v}


def _cached_download(settings: Settings, key: str, fetch: Callable[[Path], None]) -> Path:
    """Download once per key into <home>/models/<key>; the folder appears atomically.

    Two processes resolving the same model at once both download; the first rename wins.
    """
    from prodgan.fsutil import atomic_dir
    from prodgan.models.bundle import SPEC_FILE

    target = settings.model_cache_dir / key
    if not (target / SPEC_FILE).is_file():
        with atomic_dir(target, keep_existing=True) as tmp:
            fetch(tmp)
    return target


def _bundle_in(folder: Path) -> Path:
    from prodgan.models.bundle import SPEC_FILE

    hits = sorted(folder.rglob(SPEC_FILE))
    if not hits:
        raise ProdganError(f"{folder} holds no generator bundle ({SPEC_FILE}); the model was not logged by prodgan")
    return hits[0].parent


def _download_run_artifact(client: Any, run_id: str, path: str, dest: Path) -> Path:
    from mlflow.exceptions import MlflowException

    try:
        return Path(client.download_artifacts(run_id, path, str(dest)))
    except (MlflowException, OSError) as exc:
        raise ProdganError(f"run {run_id} has no artifact {path!r} ({exc}); use runs:/RUN_ID/PATH to a bundle folder "
                           f"written by `prodgan train`") from None


def download_run_bundle(client: Any, run_id: str, dest: Path, path: str = GENERATOR_ARTIFACT) -> Path:
    """A training run's generator bundle, checked against the weights sha256 its record states."""
    from prodgan.fsutil import sha256_file
    from prodgan.models.bundle import WEIGHTS_FILE, read_bundle_record

    local = _bundle_in(_download_run_artifact(client, run_id, path, dest))
    if sha256_file(local / WEIGHTS_FILE) != read_bundle_record(local).get("weights_sha256"):
        raise ProdganError(f"run {run_id}: {WEIGHTS_FILE} does not match its recorded sha256; the artifact is corrupt")
    return local


def resolve_model(settings: Settings, ref: ModelRef | str) -> ResolvedModel:
    """A registered version or a run's bundle (a ModelRef or any form it parses) -> local bundle + origin (cached)."""
    import mlflow

    ref = parse_model_ref(ref, settings.model_name) if isinstance(ref, str) else ref
    if ref.bundle is not None:
        raise ProdganError("a local bundle needs no resolving; load it with `prodgan.models.load_bundle`")
    client = client_for(settings)
    if ref.run_id:
        run = get_run(client, ref.run_id, "run")
        path = ref.path or GENERATOR_ARTIFACT
        key = f"run-{ref.run_id}-{path.replace('/', '_')}"
        folder = _cached_download(settings, key, lambda tmp: download_run_bundle(client, ref.run_id, tmp, path))
        return ResolvedModel(_bundle_in(folder), ref.uri, run_id=ref.run_id, tags=dict(run.data.tags))
    mv = find_version(settings, ref)
    tags = dict(mv.tags or {})
    source = f"models:/{mv.name}/{mv.version}"

    def fetch(tmp: Path) -> None:
        got = Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(tmp)))
        if got != tmp:
            shutil.copytree(got, tmp, dirs_exist_ok=True)

    folder = _cached_download(settings, tags.get(WEIGHTS) or f"{mv.name}-v{mv.version}", fetch)
    return ResolvedModel(_bundle_in(folder), ref.uri, mv.name, str(mv.version), mv.run_id, tags)
