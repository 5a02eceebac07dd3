"""MLflow model registry adapter: versions, evaluation links, registration, and the champion compare-and-set.

Registration is idempotent by training run id (the version tag `prodgan.train_run_id`): a retry
finds the version it made before, and two racing registrations keep only the lowest version.
Aliases move only through `move_champion`, a compare-and-set built on a uniquely named MLflow
experiment per champion transition (experiment names are unique in every backend store), so
exactly one of two racing promotions wins, on sqlite and on a PostgreSQL-backed server alike.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from prodgan.adapters.tracking import get_run, is_local_store, link_to_model, logged_model_id, not_found, setup_mlflow
from prodgan.errors import ChampionMoved, ProdganError
from prodgan.names import (CHAMPION, EVAL_BY_PROTOCOL, EVAL_EXPERIMENT, EVAL_RUN, LOCK_HOLDER, LOCK_PREFIX, METRIC_TAG,
                           PREVIOUS, PROTOCOL, SEQ_TAG, TRAIN_RUN, WEIGHTS, is_headline)
from prodgan.settings import Settings

LOCK_STALE_S = 300  # a transition lock older than this whose holder never finished is abandoned


def client_for(settings: Settings):
    return setup_mlflow(settings)


# ---------------------------------------------------------------- versions

def get_version(client: Any, name: str, version: str | int):
    from mlflow.exceptions import MlflowException

    if not str(version).isdigit():
        raise ProdganError(f"model version must be a number, got {version!r}; see `prodgan audit history`")
    try:
        return client.get_model_version(name, str(version))
    except MlflowException as exc:
        if not_found(exc):
            raise ProdganError(f"model {name} has no version {version}; list versions with `prodgan audit history` "
                               f"or register one with `prodgan register --run RUN_ID`") from None
        raise


def alias_version(client: Any, name: str, alias: str):
    """The version an alias points to, or None (no alias, or no such model yet)."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if not_found(exc) or ("alias" in str(exc) and "not found" in str(exc)):
            return None
        raise


def require_alias(client: Any, name: str, alias: str):
    mv = alias_version(client, name, alias)
    if mv is None:
        raise ProdganError(f"model {name} has no alias @{alias}; promote a version first "
                           f"(`prodgan promote VERSION`) or use models:/{name}/VERSION")
    return mv


def find_version(settings: Settings, ref: Any):
    """The registered version a `names.ModelRef` names (by alias or number)."""
    client = client_for(settings)
    if ref.alias:
        return require_alias(client, ref.name, ref.alias)
    return get_version(client, ref.name, ref.version)


def champion_version(settings: Settings):
    return alias_version(client_for(settings), settings.model_name, CHAMPION)


def version_by_train_run(client: Any, name: str, train_run_id: str):
    """The lowest version registered from `train_run_id` (the idempotency key), or None."""
    found = client.search_model_versions(f"name = '{name}' and tags.`{TRAIN_RUN}` = '{train_run_id}'")
    return min(found, key=lambda mv: int(mv.version)) if found else None


def headline_metrics(mv: Any) -> dict[str, float]:
    """A version's headline metrics, as its tags recorded them at registration or promotion."""
    return {k.removeprefix(METRIC_TAG): float(v) for k, v in (mv.tags or {}).items() if k.startswith(METRIC_TAG)} if mv else {}


def register_version(client: Any, name: str, model_uri: str, train_run_id: str, tags: dict[str, str]):
    """Register `model_uri` once per training run; a concurrent registration of the same run keeps the lowest version."""
    import mlflow

    mine = mlflow.register_model(model_uri, name, tags=tags)
    existing = version_by_train_run(client, name, train_run_id)
    if str(existing.version) != str(mine.version):
        client.delete_model_version(name, mine.version)
    return existing


# ---------------------------------------------------------------- evaluations

@dataclass(frozen=True)
class EvalRun:
    run_id: str
    protocol: str
    metrics: dict[str, float]
    train_run_id: str | None
    weights_sha256: str | None = None  # of the generator evaluated

    def summary(self, reevaluated: bool = False) -> dict[str, Any]:
        return {"eval_run_id": self.run_id, "protocol": self.protocol, "metrics": self.metrics, "reevaluated": reevaluated}


def read_eval_run(client: Any, run_id: str) -> EvalRun:
    run = get_run(client, run_id, "evaluation run")
    tags = run.data.tags
    protocol = tags.get(PROTOCOL) or run.data.params.get("protocol_fingerprint")
    if not protocol:
        raise ProdganError(f"evaluation run {run_id} records no protocol fingerprint (tag {PROTOCOL}); re-run `prodgan evaluate`")
    return EvalRun(run_id, protocol, dict(run.data.metrics), tags.get(TRAIN_RUN), tags.get(WEIGHTS))


def latest_eval_run(settings: Settings, train_run_id: str, protocol: str | None = None) -> EvalRun | None:
    """The newest finished evaluation of a training run's generator (optionally under one protocol)."""
    client = client_for(settings)
    exp = client.get_experiment_by_name(EVAL_EXPERIMENT)
    if exp is None:
        return None
    query = f"tags.`{TRAIN_RUN}` = '{train_run_id}' and attributes.status = 'FINISHED'"
    if protocol:
        query += f" and tags.`{PROTOCOL}` = '{protocol}'"
    runs = client.search_runs([exp.experiment_id], query, order_by=["attributes.start_time DESC"], max_results=1)
    return read_eval_run(client, runs[0].info.run_id) if runs else None


def check_same_weights(evaluation: EvalRun, weights: str | None, what: str) -> None:
    if evaluation.weights_sha256 and weights and evaluation.weights_sha256 != weights:
        raise ProdganError(f"evaluation run {evaluation.run_id} evaluated other weights ({evaluation.weights_sha256[:12]}) than "
                           f"{what} ({weights[:12]}); pass that model's own evaluation")


def attach_evaluation(settings: Settings, name: str, version: str, evaluation: EvalRun, primary: bool = True) -> None:
    """Tie an evaluation run to a version: by protocol always; as the headline evaluation if `primary`."""
    client = client_for(settings)
    mv = client.get_model_version(name, version)
    check_same_weights(evaluation, (mv.tags or {}).get(WEIGHTS), f"{name} v{version}")
    if logged_model_id(mv):  # the logged model's page shows the evaluation's metrics
        link_to_model(client, evaluation.run_id, logged_model_id(mv))
    tags = {f"{EVAL_BY_PROTOCOL}{evaluation.protocol[:16]}": evaluation.run_id}
    if primary:
        tags.update({EVAL_RUN: evaluation.run_id, PROTOCOL: evaluation.protocol})
        tags.update({f"{METRIC_TAG}{k}": f"{v:.6g}" for k, v in evaluation.metrics.items() if is_headline(k)})
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)


def version_evaluation(settings: Settings, mv: Any, protocol: str | None = None) -> EvalRun | None:
    """The evaluation of a version: under `protocol` if given, else its headline evaluation."""
    tags = mv.tags or {}
    run_id = tags.get(f"{EVAL_BY_PROTOCOL}{protocol[:16]}") if protocol else tags.get(EVAL_RUN)
    if run_id:
        return read_eval_run(client_for(settings), run_id)
    return latest_eval_run(settings, tags[TRAIN_RUN], protocol) if tags.get(TRAIN_RUN) else None


# ---------------------------------------------------------------- aliases: compare-and-set

def champion_state(client: Any, name: str) -> tuple[str | None, int]:
    """(champion version or None, transition counter): the state a decision is computed against."""
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if not_found(exc):
            return None, 0
        raise
    champion = model.aliases.get(CHAMPION) if model.aliases else None
    return (str(champion) if champion is not None else None), int((model.tags or {}).get(SEQ_TAG, 0))


def previous_version(client: Any, name: str) -> str | None:
    mv = alias_version(client, name, PREVIOUS)
    return str(mv.version) if mv is not None else None


def _take_transition(settings: Settings, client: Any, name: str, seq: int, holder: str) -> None:
    """Create the unique lock experiment for transition `seq`; its name can be created only once."""
    from mlflow.exceptions import MlflowException

    lock = f"{LOCK_PREFIX}/{name}/{CHAMPION}/{seq}"
    location = (settings.artifact_dir / LOCK_PREFIX).as_uri() if is_local_store(settings.tracking_uri) else None
    try:
        exp_id = client.create_experiment(lock, artifact_location=location, tags={LOCK_HOLDER: holder})
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
