"""Model store: a model reference -> a local generator bundle, downloaded once and checked on every read.

`champion`/`previous` (and any version of the production model) load the promoter's copy, whose
every file must hash to what the promoter's signed audit record states; other registered versions
are checked against their weights tag. The cache under `<home>/models/` is never trusted for its
name: content is hashed each time it is read, and a cached copy that no longer matches is fetched
again once, then refused. A bundle pulled from a training run is checked against its own record.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

MLFLOW_WRITTEN = frozenset(
    {"registered_model_meta"}
)  # MLflow writes this into a local copy the first time it loads
from prodgan.adapters.registry import (
    client_for,
    find_version,
    get_version,
    production_state,
    require_alias,
)
from prodgan.adapters.tracking import get_run
from prodgan.errors import GateFailed, ProdganError
from prodgan.names import (
    CHAMPION,
    GENERATOR_ARTIFACT,
    PREVIOUS,
    WEIGHTS,
    ModelRef,
    parse_model_ref,
    production_model,
)
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
    production_version: str | None = None  # set when the files are the promoter's copy

    @property
    def served_uri(self) -> str:
        """The pinned URI of exactly these files: the production version, else the trained version."""
        if self.production_version:
            return f"models:/{production_model(str(self.name))}/{self.production_version}"
        return f"models:/{self.name}/{self.version}"

    @property
    def trained_version(self) -> str | None:
        """The trained version whose own stored files are about to be used (None for the promoter's copy)."""
        return None if self.production_version else self.version

    def info(self) -> dict[str, Any]:
        return {
            k: v
            for k, v in {
                "model_name": self.name,
                "model_version": self.version,
                "run_id": self.run_id,
                "production_version": self.production_version,
                "weights_sha256": self.tags.get(WEIGHTS),
            }.items()
            if v
        }


def _cached_download(settings: Settings, key: str, fetch: Callable[[Path], None]) -> Path:
    """Download once per key into <home>/models/<key> (a run bundle or a logged model); the folder appears atomically.

    Two processes resolving the same model at once both download; the first rename wins.
    """
    from prodgan.fsutil import atomic_dir
    from prodgan.models.bundle import SPEC_FILE

    target = settings.model_cache_dir / key
    if not any(target.rglob(SPEC_FILE)):  # what it holds is checked by the caller on every read
        with atomic_dir(target, keep_existing=True) as tmp:
            fetch(tmp)
    return target


def _checked(
    settings: Settings,
    key: str,
    fetch: Callable[[Path], None],
    problems: Callable[[Path], list[str]],
    what: str,
) -> Path:
    """The cached folder for `key` once its content passes `problems`; a failing copy is fetched again once."""
    for _ in range(2):
        folder = _cached_download(settings, key, fetch)
        found = problems(folder)
        if not found:
            return folder
        shutil.rmtree(folder, ignore_errors=True)
    raise GateFailed(
        f"refusing to load {what}: {'; '.join(found)}; inspect it with `prodgan audit verify`"
    )


def file_problems(folder: Path, expected: dict[str, str]) -> list[str]:
    from prodgan.fsutil import file_hashes

    actual = {p: h for p, h in file_hashes(folder).items() if p not in MLFLOW_WRITTEN}
    changed = sorted(
        p
        for p in set(expected) | set(actual)
        if p not in MLFLOW_WRITTEN and expected.get(p) != actual.get(p)
    )
    return [
        f"{p} {'was added' if p not in expected else 'is missing' if p not in actual else 'hashes to ' + actual[p][:16] + '…, the promoter recorded ' + expected[p][:16] + '…'}"
        for p in changed
    ]


def _weights_problems(folder: Path, expected: str | None, version: str) -> list[str]:
    from prodgan.fsutil import sha256_file
    from prodgan.models.bundle import WEIGHTS_FILE

    if not expected:
        return [f"v{version} has no {WEIGHTS} tag: it was not registered by prodgan"]
    got = sha256_file(_bundle_in(folder) / WEIGHTS_FILE)
    return (
        []
        if got == expected
        else [
            f"v{version}: generator.pt hashes to {got[:16]}…, but {WEIGHTS} recorded "
            f"{expected[:16]}… at registration: the weights were replaced"
        ]
    )


def _download(source: str) -> Callable[[Path], None]:
    import mlflow

    def fetch(tmp: Path) -> None:
        got = Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(tmp)))
        if got != tmp:
            shutil.copytree(got, tmp, dirs_exist_ok=True)

    return fetch


def _resolve_production(settings: Settings, ref: ModelRef) -> ResolvedModel:
    """The promoter's copy behind `champion`, `previous` or a production version, checked against its signed record."""
    from prodgan.adapters.audit import production_record

    client, name = client_for(settings), settings.model_name
    production = production_model(name)
    if ref.alias in (CHAMPION, PREVIOUS):
        state = production_state(client, name)
        version = state.champion_version if ref.alias == CHAMPION else state.previous_version
        if version is None:
            raise ProdganError(
                f"model {name} has no alias @{ref.alias} yet; promote a version first (`prodgan promote VERSION`)"
            )
    else:
        version = str(
            require_alias(client, production, ref.alias).version
            if ref.alias
            else get_version(client, production, ref.version).version
        )
    record = production_record(settings, name, version)
    what = f"production v{version} of {name} (trained v{record['version']})"
    folder = _checked(
        settings,
        f"production-{production}-v{version}",
        _download(f"models:/{production}/{version}"),
        lambda folder: file_problems(folder, record["model_files"]),
        what,
    )
    trained = get_version(client, name, record["champion_after"])
    return ResolvedModel(
        _bundle_in(folder),
        ref.uri,
        name,
        str(trained.version),
        trained.run_id,
        {**(trained.tags or {}), WEIGHTS: record["weights_sha256"]},
        production_version=version,
    )


def _bundle_in(folder: Path) -> Path:
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
            f"run {run_id} has no artifact {path!r} ({exc}); use runs:/RUN_ID/PATH to a bundle folder "
            f"written by `prodgan train`"
        ) from None


def download_run_bundle(
    client: Any, run_id: str, dest: Path, path: str = GENERATOR_ARTIFACT
) -> Path:
    """A training run's generator bundle, checked against the weights sha256 its record states."""
    from prodgan.fsutil import sha256_file
    from prodgan.models.bundle import WEIGHTS_FILE, read_bundle_record

    local = _bundle_in(_download_run_artifact(client, run_id, path, dest))
    if sha256_file(local / WEIGHTS_FILE) != read_bundle_record(local).get("weights_sha256"):
        raise ProdganError(
            f"run {run_id}: {WEIGHTS_FILE} does not match its recorded sha256; the artifact is corrupt"
        )
    return local


def resolve_model(settings: Settings, ref: ModelRef | str) -> ResolvedModel:
    """A registered version or a run's bundle (a ModelRef or any form it parses) -> local bundle + origin (cached)."""
    ref = parse_model_ref(ref, settings.model_name) if isinstance(ref, str) else ref
    if ref.bundle is not None:
        raise ProdganError(
            "a local bundle needs no resolving; load it with `prodgan.models.load_bundle`"
        )
    settings = settings.for_model(
        ref.name
    )  # every model's champion is its promoter's verified copy, not only this project's
    client = client_for(settings)
    if ref.run_id:
        run = get_run(client, ref.run_id, "run")
        path = ref.path or GENERATOR_ARTIFACT
        key = f"run-{ref.run_id}-{path.replace('/', '_')}"
        folder = _cached_download(
            settings, key, lambda tmp: download_run_bundle(client, ref.run_id, tmp, path)
        )
        return ResolvedModel(
            _bundle_in(folder), ref.uri, run_id=ref.run_id, tags=dict(run.data.tags)
        )
    if ref.name == production_model(settings.model_name) or (
        ref.name == settings.model_name and ref.alias in (CHAMPION, PREVIOUS)
    ):
        return _resolve_production(settings, ref)
    mv = find_version(settings, ref)
    tags = dict(mv.tags or {})
    folder = _checked(
        settings,
        tags.get(WEIGHTS) or f"{mv.name}-v{mv.version}",
        _download(f"models:/{mv.name}/{mv.version}"),
        lambda folder: _weights_problems(folder, tags.get(WEIGHTS), str(mv.version)),
        f"{mv.name} v{mv.version}",
    )
    return ResolvedModel(_bundle_in(folder), ref.uri, mv.name, str(mv.version), mv.run_id, tags)
