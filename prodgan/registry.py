"""MLflow registry adapter: log + register generators, resolve model URIs, move aliases, audit records.

Registration is idempotent by training run id (the version tag `prodgan.train_run_id`): a retry
finds the version it made before, and two racing registrations keep only the lowest version.
Aliases move only through `move_champion`, a compare-and-set built on a uniquely named MLflow
experiment per champion transition (experiment names are unique in every backend store), so
exactly one of two racing promotions wins, on sqlite and on a PostgreSQL-backed server alike.
"""

from __future__ import annotations

import getpass
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prodgan.errors import ProdganError
from prodgan.settings import Settings
from prodgan.training_run import GENERATOR_ARTIFACT

CHAMPION, PREVIOUS = "champion", "previous"
LOGGED_MODEL_NAME = "generator"
SEQ_TAG = "prodgan.champion_seq"  # registered-model tag: how many times `champion` has moved
LOCK_PREFIX = "prodgan-lock"
LOCK_STALE_S = 300  # a transition lock older than this whose holder never finished is abandoned

# model-version tags (the lineage contract in the brief)
TRAIN_RUN, DATA_HASH, GIT_REV, VALIDATION = "prodgan.train_run_id", "prodgan.data_hash", "prodgan.git_rev", "prodgan.validation"
EVAL_RUN, PROTOCOL, WEIGHTS = "prodgan.eval_run_id", "prodgan.protocol", "prodgan.weights_sha256"
MODEL_FILES = "prodgan.model_files"  # JSON {path: sha256} of every file of the logged model (code, MLmodel, env)
EVAL_BY_PROTOCOL = "prodgan.eval."  # + protocol fingerprint[:16] -> eval run id under that protocol
HEADLINE = ("fid", "kid", "is", "precision", "recall", "cond_acc", "memorization")
_HEADLINE_NAME = re.compile(rf"^({'|'.join(HEADLINE)})_\d+k?$")

AUDIT_EXPERIMENT = "prodgan-audit"
AUDIT_FILE = "decision.json"
AUDIT_SHEET = "champion_vs_challenger.png"


def client_for(settings: Settings):
    from prodgan.tracking import setup_mlflow

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no per-file bars in CLI output
    return setup_mlflow(settings)


def _not_found(exc: Exception) -> bool:
    return getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST"


def actor_name(explicit: str | None = None) -> str:
    """Who acts: the authenticated MLflow user (a different explicit name is kept beside it, never instead
    of it, so nobody can sign as someone else), else the explicit name, else the OS user; never a password."""
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    if user and explicit and explicit != user:
        return f"{user} (as {explicit})"
    return user or explicit or getpass.getuser()


# ---------------------------------------------------------------- runs and versions

def get_run(client: Any, run_id: str, what: str = "run"):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id)
    except MlflowException as exc:
        if _not_found(exc):
            raise ProdganError(f"{what} {run_id!r} not found in {client.tracking_uri}; check the id (`mlflow runs list`) "
                               f"or MLFLOW_TRACKING_URI") from None
        raise


def train_run_tag(settings: Settings, run_id: str | None, key: str) -> str | None:
    """One tag of a training run (None when the run or the tag is missing)."""
    if not run_id:
        return None
    try:
        return get_run(client_for(settings), run_id).data.tags.get(key)
    except ProdganError:
        return None


def get_version(client: Any, name: str, version: str | int):
    from mlflow.exceptions import MlflowException

    if not str(version).isdigit():
        raise ProdganError(f"model version must be a number, got {version!r}; see `prodgan audit history`")
    try:
        return client.get_model_version(name, str(version))
    except MlflowException as exc:
        if _not_found(exc):
            raise ProdganError(f"model {name} has no version {version}; list versions with `prodgan audit history` "
                               f"or register one with `prodgan register --run RUN_ID`") from None
        raise


def alias_version(client: Any, name: str, alias: str):
    """The version an alias points to, or None (no alias, or no such model yet)."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if _not_found(exc) or ("alias" in str(exc) and "not found" in str(exc)):
            return None
        raise


def champion_version(settings: Settings):
    return alias_version(client_for(settings), settings.model_name, CHAMPION)


def version_by_train_run(client: Any, name: str, train_run_id: str):
    """The lowest version registered from `train_run_id` (the idempotency key), or None."""
    found = client.search_model_versions(f"name = '{name}' and tags.`{TRAIN_RUN}` = '{train_run_id}'")
    return min(found, key=lambda mv: int(mv.version)) if found else None


# ---------------------------------------------------------------- evaluations

@dataclass(frozen=True)
class EvalRun:
    run_id: str
    protocol: str
    metrics: dict[str, float]
    train_run_id: str | None
    weights_sha256: str | None = None  # of the generator evaluated


def read_eval_run(client: Any, run_id: str) -> EvalRun:
    run = get_run(client, run_id, "evaluation run")
    tags = run.data.tags
    protocol = tags.get(PROTOCOL) or run.data.params.get("protocol_fingerprint")
    if not protocol:
        raise ProdganError(f"evaluation run {run_id} records no protocol fingerprint (tag {PROTOCOL}); re-run `prodgan evaluate`")
    return EvalRun(run_id, protocol, dict(run.data.metrics), tags.get(TRAIN_RUN), tags.get(WEIGHTS))


def latest_eval_run(settings: Settings, train_run_id: str, protocol: str | None = None) -> EvalRun | None:
    """The newest finished evaluation of a training run's generator (optionally under one protocol)."""
    from prodgan.tracking import EVAL_EXPERIMENT

    client = client_for(settings)
    exp = client.get_experiment_by_name(EVAL_EXPERIMENT)
    if exp is None:
        return None
    query = f"tags.`{TRAIN_RUN}` = '{train_run_id}' and attributes.status = 'FINISHED'"
    if protocol:
        query += f" and tags.`{PROTOCOL}` = '{protocol}'"
    runs = client.search_runs([exp.experiment_id], query, order_by=["attributes.start_time DESC"], max_results=1)
    return read_eval_run(client, runs[0].info.run_id) if runs else None


def attach_evaluation(settings: Settings, name: str, version: str, evaluation: EvalRun, primary: bool = True) -> None:
    """Tie an evaluation run to a version: by protocol always; as the headline evaluation if `primary`."""
    client = client_for(settings)
    weights = (client.get_model_version(name, version).tags or {}).get(WEIGHTS)
    if evaluation.weights_sha256 and weights and evaluation.weights_sha256 != weights:
        raise ProdganError(f"evaluation run {evaluation.run_id} evaluated other weights ({evaluation.weights_sha256[:12]}) than "
                           f"{name} v{version} ({weights[:12]}); pass the evaluation of this version's training run")
    tags = {f"{EVAL_BY_PROTOCOL}{evaluation.protocol[:16]}": evaluation.run_id}
    if primary:
        tags.update({EVAL_RUN: evaluation.run_id, PROTOCOL: evaluation.protocol})
        tags.update({f"metric.{k}": f"{v:.6g}" for k, v in evaluation.metrics.items() if _HEADLINE_NAME.match(k)})
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)


def version_evaluation(settings: Settings, mv: Any, protocol: str | None = None) -> EvalRun | None:
    """The evaluation of a version: under `protocol` if given, else its headline evaluation."""
    client = client_for(settings)
    tags = mv.tags or {}
    run_id = tags.get(f"{EVAL_BY_PROTOCOL}{protocol[:16]}") if protocol else tags.get(EVAL_RUN)
    if run_id:
        return read_eval_run(client, run_id)
    found = latest_eval_run(settings, tags.get(TRAIN_RUN, ""), protocol) if tags.get(TRAIN_RUN) else None
    return found


# ---------------------------------------------------------------- registration

def _download_bundle(client: Any, run_id: str, dest: Path) -> Path:
    from mlflow.exceptions import MlflowException

    from prodgan.fsutil import sha256_file
    from prodgan.models.bundle import SPEC_FILE, WEIGHTS_FILE, read_bundle_record

    try:
        local = Path(client.download_artifacts(run_id, GENERATOR_ARTIFACT, str(dest)))
    except (MlflowException, OSError) as exc:
        raise ProdganError(f"training run {run_id} has no generator bundle at artifact {GENERATOR_ARTIFACT!r} ({exc}); "
                           f"was it trained with `prodgan train`?") from None
    if not (local / SPEC_FILE).is_file():
        raise ProdganError(f"training run {run_id}: artifact {GENERATOR_ARTIFACT!r} holds no {SPEC_FILE}; it is not a generator bundle")
    record = read_bundle_record(local)
    if sha256_file(local / WEIGHTS_FILE) != record.get("weights_sha256"):
        raise ProdganError(f"training run {run_id}: {WEIGHTS_FILE} does not match its recorded sha256; the artifact is corrupt")
    return local


def _logged_generator(client: Any, train_run: Any, bundle_dir: Path) -> str:
    """The pyfunc model logged for this training run (reused on retry), as a `models:/m-...` URI."""
    import mlflow

    from prodgan import serving

    run_id, exp_id = train_run.info.run_id, train_run.info.experiment_id
    for lm in client.search_logged_models([exp_id], filter_string=f"source_run_id = '{run_id}'"):
        if lm.name == LOGGED_MODEL_NAME and str(lm.status).endswith("READY"):
            return f"models:/{lm.model_id}"
    logged = mlflow.initialize_logged_model(name=LOGGED_MODEL_NAME, source_run_id=run_id, experiment_id=exp_id,
                                            tags={TRAIN_RUN: run_id})
    info = mlflow.pyfunc.log_model(
        name=LOGGED_MODEL_NAME, python_model=str(serving.MODEL_CODE / "generator.py"), artifacts={"bundle": str(bundle_dir)},
        signature=serving.signature(), input_example=serving.input_example(),
        pip_requirements=serving.pip_requirements(), model_id=logged.model_id,
    )
    return info.model_uri


def _model_files(model_uri: str, dest: Path) -> str:
    """The logged model's file hashes as stored (the `MODEL_FILES` tag `prodgan audit verify` replays)."""
    import json

    import mlflow

    from prodgan.fsutil import file_hashes

    location = mlflow.get_logged_model(model_uri.removeprefix("models:/")).artifact_location
    return json.dumps(file_hashes(Path(mlflow.artifacts.download_artifacts(artifact_uri=location, dst_path=str(dest)))),
                      sort_keys=True, separators=(",", ":"))


def _lineage_tags(train_run: Any, bundle_dir: Path) -> dict[str, str]:
    from prodgan.models.bundle import read_bundle_record

    record = read_bundle_record(bundle_dir)
    run_tags, extra = train_run.data.tags, record.get("extra") or {}
    tags = {TRAIN_RUN: train_run.info.run_id, WEIGHTS: record["weights_sha256"]}
    for key, extra_key in ((DATA_HASH, "data_hash"), (GIT_REV, "git_rev"), (VALIDATION, "validation")):
        value = run_tags.get(key) or extra.get(extra_key)
        if value:
            tags[key] = str(value)
    return tags


def register_from_run(settings: Settings, train_run_id: str, eval_run_id: str | None = None):
    """Register the training run's generator as a version of `settings.model_name` (idempotent)."""
    import mlflow

    client = client_for(settings)
    name = settings.model_name
    train_run = get_run(client, train_run_id, "training run")
    if train_run.info.status != "FINISHED":
        raise ProdganError(f"training run {train_run_id} is {train_run.info.status}, not FINISHED: only a finished run's generator "
                           f"can be registered; resume it with `prodgan train --resume` or pick another run")
    evaluation = read_eval_run(client, eval_run_id) if eval_run_id else latest_eval_run(settings, train_run_id)
    existing = version_by_train_run(client, name, train_run_id)
    if existing is None:
        settings.tmp_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=settings.tmp_dir) as tmp:
            bundle_dir = _download_bundle(client, train_run_id, Path(tmp))
            model_uri = _logged_generator(client, train_run, bundle_dir)
            tags = {**_lineage_tags(train_run, bundle_dir), MODEL_FILES: _model_files(model_uri, Path(tmp) / "logged")}
        if evaluation is not None and evaluation.weights_sha256 not in (None, tags[WEIGHTS]):
            raise ProdganError(f"evaluation run {evaluation.run_id} evaluated other weights ({evaluation.weights_sha256[:12]}) than "
                               f"training run {train_run_id} produced ({tags[WEIGHTS][:12]}); pass that run's own evaluation")
        mine = mlflow.register_model(model_uri, name, tags=tags)
        existing = version_by_train_run(client, name, train_run_id)
        if str(existing.version) != str(mine.version):  # a concurrent registration of the same run got there first
            client.delete_model_version(name, mine.version)
    if evaluation is not None:
        attach_evaluation(settings, name, existing.version, evaluation,
                          primary=EVAL_RUN not in (existing.tags or {}) or bool(eval_run_id))
    return client.get_model_version(name, existing.version)


# ---------------------------------------------------------------- resolving model URIs

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


_MODEL_ALIAS = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[\w-]+)$")
_MODEL_VERSION = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+)$")
_RUN = re.compile(r"^runs:/(?P<run>[0-9a-f]{32})(?:/(?P<path>.*))?$")


def _cached_download(settings: Settings, key: str, fetch: Any) -> Path:
    """Download once per weights hash into <home>/models/<key>; the folder appears atomically.

    Two processes resolving the same model at once both download; the first rename wins.
    """
    from prodgan.fsutil import atomic_dir
    from prodgan.models.bundle import SPEC_FILE

    target = settings.home / "models" / key
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


def resolve_model(uri: str, settings: Settings | None = None) -> ResolvedModel:
    """`models:/NAME@ALIAS`, `models:/NAME/VERSION` or `runs:/RUN_ID[/PATH]` -> local bundle + version info."""
    import shutil

    import mlflow

    settings = settings or Settings.load()
    client = client_for(settings)
    if m := _MODEL_ALIAS.match(uri):
        mv = alias_version(client, m["name"], m["alias"])
        if mv is None:
            raise ProdganError(f"model {m['name']} has no alias @{m['alias']}; promote a version first "
                               f"(`prodgan promote VERSION`) or use models:/{m['name']}/VERSION")
    elif m := _MODEL_VERSION.match(uri):
        mv = get_version(client, m["name"], m["version"])
    elif m := _RUN.match(uri):
        run = get_run(client, m["run"], "run")
        path = m["path"] or GENERATOR_ARTIFACT
        key = f"run-{m['run']}-{path.strip('/').replace('/', '_')}"
        folder = _cached_download(settings, key, lambda tmp: _download_bundle_to(client, m["run"], path, tmp))
        return ResolvedModel(_bundle_in(folder), uri, run_id=m["run"], tags=dict(run.data.tags))
    else:
        raise ProdganError(f"unknown model URI {uri!r}; use models:/NAME@ALIAS, models:/NAME/VERSION or runs:/RUN_ID")
    tags = dict(mv.tags or {})
    key = tags.get(WEIGHTS) or f"{mv.name}-v{mv.version}"
    source = f"models:/{mv.name}/{mv.version}"

    def fetch(tmp: Path) -> None:
        got = Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(tmp)))
        if got != tmp:
            shutil.copytree(got, tmp, dirs_exist_ok=True)

    folder = _cached_download(settings, key, fetch)
    return ResolvedModel(_bundle_in(folder), uri, mv.name, str(mv.version), mv.run_id, tags)


def _download_bundle_to(client: Any, run_id: str, path: str, dest: Path) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.download_artifacts(run_id, path, str(dest))
    except (MlflowException, OSError) as exc:
        raise ProdganError(f"run {run_id} has no artifact {path!r} ({exc}); use runs:/RUN_ID/PATH to a bundle folder") from None


# ---------------------------------------------------------------- aliases: compare-and-set

class ChampionMoved(ProdganError):
    """Another promotion or rollback moved `champion` after this decision was computed."""

    exit_code = 1


def champion_state(client: Any, name: str) -> tuple[str | None, int]:
    """(champion version or None, transition counter): the state a decision is computed against."""
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if _not_found(exc):
            return None, 0
        raise
    champion = model.aliases.get(CHAMPION) if model.aliases else None
    return (str(champion) if champion is not None else None), int((model.tags or {}).get(SEQ_TAG, 0))


def _take_transition(settings: Settings, client: Any, name: str, seq: int, holder: str) -> None:
    """Create the unique lock experiment for transition `seq`; its name can be created only once."""
    from mlflow.exceptions import MlflowException

    from prodgan.tracking import is_local_store

    lock = f"{LOCK_PREFIX}/{name}/{CHAMPION}/{seq}"
    location = (settings.artifact_dir / LOCK_PREFIX).as_uri() if is_local_store(settings.tracking_uri) else None
    try:
        exp_id = client.create_experiment(lock, artifact_location=location, tags={"prodgan.lock.holder": holder})
    except MlflowException:
        found = client.get_experiment_by_name(lock)
        age = time.time() - (found.creation_time or 0) / 1000 if found else 0
        if found is not None and age > LOCK_STALE_S and champion_state(client, name)[1] == seq - 1:
            # the holder died between taking the lock and moving the alias: abandon that transition
            client.set_registered_model_tag(name, SEQ_TAG, str(seq))
        raise ChampionMoved(f"champion moved: another promotion or rollback of {name} took transition #{seq} first; "
                            f"re-run to decide against the new champion") from None
    client.delete_experiment(exp_id)  # hidden from lists; the name stays taken, which is the point


def move_champion(settings: Settings, name: str, expected: tuple[str | None, int], new_champion: str,
                  holder: str) -> tuple[str | None, int]:
    """Point `champion` at `new_champion` and `previous` at the old one, only if the state is still `expected`."""
    client = client_for(settings)
    champion, seq = champion_state(client, name)
    if (champion, seq) != expected:
        raise ChampionMoved(f"champion moved: {name} champion is now {champion or 'unset'} (transition #{seq}), "
                            f"was {expected[0] or 'unset'} (#{expected[1]}) when the decision was computed; re-run")
    _take_transition(settings, client, name, seq + 1, holder)
    if champion is not None:
        client.set_registered_model_alias(name, PREVIOUS, champion)
    client.set_registered_model_alias(name, CHAMPION, new_champion)
    client.set_registered_model_tag(name, SEQ_TAG, str(seq + 1))
    return new_champion, seq + 1


# ---------------------------------------------------------------- audit records

def write_audit(settings: Settings, record: dict[str, Any], sheet: Any = None) -> str:
    """One finished run in `prodgan-audit` per decision: searchable tags + the whole record as JSON."""
    from prodgan.tracking import ensure_experiment

    client = client_for(settings)
    exp_id = ensure_experiment(AUDIT_EXPERIMENT, settings)
    tags = {f"prodgan.audit.{k}": str(record.get(k) if record.get(k) is not None else "") for k in (
        "action", "model", "version", "actor", "champion_before", "champion_after", "previous_after", "gates_sha256", "seq")}
    tags[DATA_HASH] = str(record.get("data_hash") or "")
    run = client.create_run(exp_id, run_name=f"{record['action']} {record['model']} v{record['version']}", tags=tags)
    run_id = run.info.run_id
    client.log_dict(run_id, record, AUDIT_FILE)
    if sheet is not None:
        client.log_image(run_id, sheet, artifact_file=AUDIT_SHEET)
    client.set_terminated(run_id, "FINISHED")
    return run_id


def audit_records(settings: Settings, model: str | None = None, version: str | None = None) -> list[dict[str, Any]]:
    """Every audit record (optionally for one model / version), oldest first, each with its run id."""
    import mlflow

    client = client_for(settings)
    exp = client.get_experiment_by_name(AUDIT_EXPERIMENT)
    if exp is None:
        return []
    clauses = []
    if model:
        clauses.append(f"tags.`prodgan.audit.model` = '{model}'")
    if version:
        clauses.append(f"tags.`prodgan.audit.version` = '{version}'")
    runs = []
    page = None
    while True:
        batch = client.search_runs([exp.experiment_id], " and ".join(clauses), order_by=["attributes.start_time ASC"],
                                   max_results=1000, page_token=page)
        runs += batch
        page = batch.token
        if not page:
            break
    records = []
    for run in runs:
        try:
            record = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/{AUDIT_FILE}")
        except Exception:  # noqa: BLE001 - a record whose JSON failed to upload still shows its tags
            record = {k.removeprefix("prodgan.audit."): v for k, v in run.data.tags.items() if k.startswith("prodgan.audit.")}
            record["incomplete"] = True
        record["audit_run_id"] = run.info.run_id
        records.append(record)
    return records
