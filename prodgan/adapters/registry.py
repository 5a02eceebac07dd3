"""MLflow model registry adapter: versions, evaluation links, registration, and the champion
compare-and-set.

Registration is idempotent by training run id (the version tag `prodgan.train_run_id`): a retry
finds the version it made before, and two racing registrations keep only the lowest version.
Production is a second registered model (`<name>-production`) that only promoters may write: its
versions are the promoter's copies of trained versions, and `champion`/`previous` live there.
They move only through `fence`, a compare-and-set on the production version numbers the server
assigns, so exactly one of two racing promotions wins, on sqlite and on a PostgreSQL-backed server
alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prodgan.adapters.tracking import (
    checked_text,
    denied,
    get_run,
    is_run_id,
    link_to_model,
    logged_model_id,
    not_found,
    setup_mlflow,
    unless_forbidden,
)
from prodgan.errors import ChampionMoved, ProdganError
from prodgan.names import (
    AUDIT_HEAD,
    CHAMPION,
    EVAL_BY_PROTOCOL,
    EVAL_EXPERIMENT,
    EVAL_RUN,
    FENCE,
    KIND,
    METRIC_TAG,
    MODEL_FILES,
    MODEL_FILES_ARTIFACT,
    MODEL_FILES_SHA,
    NOISE_REFERENCE,
    PREVIOUS,
    PROTOCOL,
    SAMPLES_KIND,
    SAMPLES_SHA,
    SOURCE_VERSION,
    TRAIN_RUN,
    WEIGHTS,
    is_headline,
    production_model,
)
from prodgan.policy.files import file_map_sha256
from prodgan.settings import Settings


def client_for(settings: Settings):
    return setup_mlflow(settings)


# ---------------------------------------------------------------- versions


def get_version(client: Any, name: str, version: str | int):
    from mlflow.exceptions import MlflowException

    if not str(version).isdigit():
        raise ProdganError(
            f"model version must be a number, got {version!r}; see `prodgan audit history`"
        )
    try:
        return client.get_model_version(name, str(version))
    except MlflowException as exc:
        if not_found(exc) or denied(exc):
            raise ProdganError(
                f"model {name} has no version {version} (or this user may not read it); "
                f"list versions with `prodgan audit history` "
                f"or register one with `prodgan register --run RUN_ID`"
            ) from None
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
        raise ProdganError(
            f"model {name} has no alias @{alias}; promote a version first "
            f"(`prodgan promote VERSION`) or use models:/{name}/VERSION"
        )
    return mv


def version_by_train_run(client: Any, name: str, train_run_id: str):
    """The lowest version registered from `train_run_id` (the idempotency key), or None."""
    found = client.search_model_versions(
        f"name = '{name}' and tags.`{TRAIN_RUN}` = '{train_run_id}'"
    )
    return min(found, key=lambda mv: int(mv.version)) if found else None


def headline_metrics(mv: Any) -> dict[str, float]:
    """A version's headline metrics, as its tags recorded them at registration or promotion."""
    return (
        {
            k.removeprefix(METRIC_TAG): float(v)
            for k, v in (mv.tags or {}).items()
            if k.startswith(METRIC_TAG)
        }
        if mv
        else {}
    )


def register_version(
    client: Any, name: str, model_uri: str, train_run_id: str, tags: dict[str, str]
):
    """Register `model_uri` once per training run; a concurrent registration of the same run keeps
    the lowest version."""
    import mlflow

    for key, value in tags.items():
        checked_text(value, f"tag {key} of the new version of {name}")
    mine = mlflow.register_model(model_uri, name, tags=tags)
    existing = version_by_train_run(client, name, train_run_id)
    if str(existing.version) != str(mine.version):
        client.delete_model_version(name, mine.version)
    return existing


def store_file_map(client: Any, train_run_id: str, files: str) -> dict[str, str]:
    """Keep a version's file map (JSON text) beside its training run, out of the tag table; the
    tag that records its hash."""
    client.log_text(train_run_id, files, MODEL_FILES_ARTIFACT)
    return {MODEL_FILES_SHA: file_map_sha256(files)}


def registered_file_map(client: Any, mv: Any) -> str | None:
    """A trained version's file map as registered: the training run's artifact, only if it still
    hashes to the version's tag (else None, which verification reports); a version registered
    before the map moved out of the tag table keeps it in its `prodgan.model_files` tag."""
    import mlflow

    tags = mv.tags or {}
    if tags.get(MODEL_FILES):
        return tags[MODEL_FILES]
    run_id = mv.run_id or tags.get(TRAIN_RUN)
    if not run_id or not tags.get(MODEL_FILES_SHA):
        return None
    try:
        text = mlflow.artifacts.load_text(
            f"{client.get_run(run_id).info.artifact_uri}/{MODEL_FILES_ARTIFACT}"
        )
    except Exception:  # noqa: BLE001 - a missing or unreadable map is a finding, not a crash
        return None
    return text if file_map_sha256(text) == tags[MODEL_FILES_SHA] else None


# ---------------------------------------------------------------- evaluations


@dataclass(frozen=True)
class EvalRun:
    run_id: str
    protocol: str
    metrics: dict[str, float]
    train_run_id: str | None
    weights_sha256: str | None = None  # of the generator evaluated
    experiment_id: str | None = None
    noise_reference: str | None = None  # the untrained generator its gaps are measured to
    kind: str = "generator"  # or `samples`: samples handed in, no model (see `require_model`)
    samples_sha256: str | None = None

    def require_model(self, what: str) -> None:
        """Refuse a samples-only evaluation where a model's evaluation is needed (to register,
        attach or promote): samples name no model, so nothing they measure can be promoted."""
        if self.kind == SAMPLES_KIND:
            raise ProdganError(
                f"{what}: evaluation run {self.run_id} is a samples-only evaluation (samples "
                f"sha256 {str(self.samples_sha256)[:12]}) and names no model, so it cannot be "
                "promoted or attached to a version; import the generator itself "
                "(`prodgan register --model FILE --spec SPEC`) and evaluate that"
            )

    def summary(self, reevaluated: bool = False) -> dict[str, Any]:
        found = {
            "eval_run_id": self.run_id,
            "protocol": self.protocol,
            "metrics": self.metrics,
            "reevaluated": reevaluated,
        }
        return {**found, "noise_reference": self.noise_reference} if self.noise_reference else found


def read_eval_run(client: Any, run_id: str) -> EvalRun:
    run = get_run(client, run_id, "evaluation run")
    tags = run.data.tags
    protocol = tags.get(PROTOCOL) or run.data.params.get("protocol_fingerprint")
    if not protocol:
        raise ProdganError(
            f"evaluation run {run_id} records no protocol fingerprint (tag {PROTOCOL}); "
            "re-run `prodgan evaluate`"
        )
    return EvalRun(
        run_id,
        protocol,
        dict(run.data.metrics),
        tags.get(TRAIN_RUN),
        tags.get(WEIGHTS),
        run.info.experiment_id,
        tags.get(NOISE_REFERENCE),
        tags.get(KIND, "generator"),
        tags.get(SAMPLES_SHA),
    )


def latest_eval_run(
    settings: Settings, train_run_id: str, protocol: str | None = None
) -> EvalRun | None:
    """The newest finished evaluation of a training run's generator (optionally under one
    protocol)."""
    client = client_for(settings)
    exp = client.get_experiment_by_name(EVAL_EXPERIMENT)
    if exp is None:
        return None
    query = f"tags.`{TRAIN_RUN}` = '{train_run_id}' and attributes.status = 'FINISHED'"
    if protocol:
        query += f" and tags.`{PROTOCOL}` = '{protocol}'"
    runs = client.search_runs(
        [exp.experiment_id], query, order_by=["attributes.start_time DESC"], max_results=1
    )
    return read_eval_run(client, runs[0].info.run_id) if runs else None


def check_same_weights(evaluation: EvalRun, weights: str | None, what: str) -> None:
    if evaluation.weights_sha256 and weights and evaluation.weights_sha256 != weights:
        raise ProdganError(
            f"evaluation run {evaluation.run_id} evaluated other weights "
            f"({evaluation.weights_sha256[:12]}) than "
            f"{what} ({weights[:12]}); pass that model's own evaluation"
        )


def attach_evaluation(
    settings: Settings, name: str, version: str, evaluation: EvalRun, primary: bool = True
) -> None:
    """Tie an evaluation run to a version: by protocol always; as the headline evaluation if
    `primary`."""
    evaluation.require_model(f"{name} v{version}")
    client = client_for(settings)
    mv = client.get_model_version(name, version)
    check_same_weights(evaluation, (mv.tags or {}).get(WEIGHTS), f"{name} v{version}")
    if logged_model_id(mv):  # the logged model's page shows the evaluation's metrics
        with unless_forbidden():
            link_to_model(client, evaluation.run_id, logged_model_id(mv))
    tags = {f"{EVAL_BY_PROTOCOL}{evaluation.protocol[:16]}": evaluation.run_id}
    if primary:
        tags.update({EVAL_RUN: evaluation.run_id, PROTOCOL: evaluation.protocol})
        tags.update(
            {
                f"{METRIC_TAG}{k}": f"{v:.6g}"
                for k, v in evaluation.metrics.items()
                if is_headline(k)
            }
        )
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, checked_text(value, f"tag {key}"))


def version_evaluation(settings: Settings, mv: Any, protocol: str | None = None) -> EvalRun | None:
    """The evaluation of a version: under `protocol` if given, else its headline evaluation."""
    tags = mv.tags or {}
    key = f"{EVAL_BY_PROTOCOL}{protocol[:16]}" if protocol else EVAL_RUN
    for tag in (key, TRAIN_RUN):  # trainer-writable: a value that is not a run id is named
        if tags.get(tag) and not is_run_id(tags[tag]):
            raise ProdganError(
                f"{mv.name} v{mv.version}: tag {tag}={str(tags[tag])[:40]!r} is not a run id; "
                f"a promoter sets it back (`prodgan register --run RUN_ID --eval-run EVAL_RUN_ID`) "
                f"or promotes another version"
            )
    if tags.get(key):
        return read_eval_run(client_for(settings), tags[key])
    return latest_eval_run(settings, tags[TRAIN_RUN], protocol) if tags.get(TRAIN_RUN) else None


# -------------------------------------------------------- production: aliases and compare-and-set


def ensure_registered_model(client: Any, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
            raise


@dataclass(frozen=True)
class Production:
    """Where `champion`/`previous` stand: production versions, the trained versions they copy, the
    fence token."""

    champion: str | None = None  # trained version (of the model this project promotes)
    previous: str | None = None
    champion_version: str | None = None  # production version
    previous_version: str | None = None
    seq: int = 0  # the newest production version number: assigned by the server, only ever grows
    head: str | None = (
        None  # the production model's `prodgan.audit_head` tag: `n:hash` of the newest record
    )


def _source_version(client: Any, production: str, version: str) -> str:
    """The trained version a production version copies; a malformed tag is a one-line error naming
    the repair."""
    value = str((client.get_model_version(production, version).tags or {}).get(SOURCE_VERSION, ""))
    if not value.isdigit():
        raise ProdganError(
            f"production version {version} of {production} has {SOURCE_VERSION}={value[:40]!r}, "
            f"not a version number; a promoter repairs it by setting the tag back to the trained "
            f"version that `prodgan audit history` recorded for production v{version}"
        )
    return value


def production_state(client: Any, name: str) -> Production:
    """The production model's aliases and fence token (all zero/None before the first promotion)."""
    from mlflow.exceptions import MlflowException

    production = production_model(name)
    try:
        model = client.get_registered_model(production)
    except MlflowException as exc:
        if not_found(exc):
            return Production()
        raise
    aliases = model.aliases or {}
    newest = client.search_model_versions(
        f"name = '{production}'", max_results=1, order_by=["version_number DESC"]
    )
    champion, previous = (str(aliases[a]) if a in aliases else None for a in (CHAMPION, PREVIOUS))
    return Production(
        champion=_source_version(client, production, champion) if champion else None,
        previous=_source_version(client, production, previous) if previous else None,
        champion_version=champion,
        previous_version=previous,
        seq=int(newest[0].version) if newest else 0,
        head=(model.tags or {}).get(AUDIT_HEAD),
    )


def trained_aliases(client: Any, name: str) -> dict[str, str]:
    """{alias: version} on the trained model itself (prodgan sets none there; trainers can)."""
    from mlflow.exceptions import MlflowException

    try:
        return {a: str(v) for a, v in (client.get_registered_model(name).aliases or {}).items()}
    except MlflowException as exc:
        if not_found(exc):
            return {}
        raise


def champion_state(client: Any, name: str) -> tuple[str | None, int]:
    """(champion's trained version or None, fence token): the state a decision is computed
    against."""
    state = production_state(client, name)
    return state.champion, state.seq


def champion_version(settings: Settings):
    """The trained version `champion` copies (its lineage lives there), or None."""
    client = client_for(settings)
    champion = production_state(client, settings.model_name).champion
    return get_version(client, settings.model_name, champion) if champion else None


def production_aliases(client: Any, name: str) -> dict[str, str]:
    """{alias: trained version} of the production model: what `champion` and `previous` serve."""
    state = production_state(client, name)
    return {alias: v for alias, v in ((CHAMPION, state.champion), (PREVIOUS, state.previous)) if v}


def fence(
    settings: Settings,
    name: str,
    expected: tuple[str | None, int],
    source_version: str,
    model_uri: str,
    tags: dict[str, str],
) -> str:
    """Create the production version for a transition, only if the state is still `expected`; its
    number.

    Every production version number is assigned by the registry server and only grows. The
    transition belongs to the lowest number above `expected`'s token: of two racing promoters each
    creates a version, and exactly one of them holds the lowest; the other's is tagged lost.
    """
    import mlflow

    client = client_for(settings)
    champion, seq = champion_state(client, name)
    if (champion, seq) != expected:
        raise ChampionMoved(
            f"champion moved: {name} champion is now {champion or 'unset'} (transition #{seq}), "
            f"was {expected[0] or 'unset'} (#{expected[1]}) when the decision was computed; re-run"
        )
    production = production_model(name)
    ensure_registered_model(client, production)
    mine = str(
        mlflow.register_model(
            model_uri, production, tags={SOURCE_VERSION: source_version, **tags}
        ).version
    )
    newer = client.search_model_versions(f"name = '{production}'", order_by=["version_number ASC"])
    first = min(int(mv.version) for mv in newer if int(mv.version) > expected[1])
    if str(first) != mine:
        client.set_model_version_tag(production, mine, FENCE, "lost")
        raise ChampionMoved(
            f"champion moved: another promotion or rollback of {name} "
            f"took transition #{first} first; "
            f"re-run to decide against the new champion"
        )
    return mine


def withdraw_production_version(client: Any, name: str, version: str) -> None:
    """Delete a production version made for a move whose pending record could not be written:
    nothing refers to it, and leaving it would be an unexplained copy beside the audited ones."""
    client.delete_model_version(production_model(name), version)


def set_production_aliases(client: Any, name: str, champion: str, previous: str | None) -> None:
    """Point the production model's `champion` (and `previous`) at production versions."""
    production = production_model(name)
    if previous is not None:
        client.set_registered_model_alias(production, PREVIOUS, previous)
    client.set_registered_model_alias(production, CHAMPION, champion)


def dataset_models(client: Any, family: str) -> list[str]:
    """The trained models of other datasets (`<family>-<dataset>`), for a hint when a bare
    version number names none of the default dataset's model."""
    found = client.search_registered_models(filter_string=f"name LIKE '{family}-%'")
    return sorted(m.name for m in found if m.name != production_model(m.name))
