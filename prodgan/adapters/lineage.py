"""The champion's lineage on MLflow's pages, written after each decision.

The production version and its logged model say what they copy and why, link the training,
evaluation and audit runs, and carry the evaluation's metrics with its dataset; the trained
version says when it held `champion` and as which production version; an audit run carries its
decision's metrics and dataset. All of it is for people: the signed audit record stays the
evidence, and no check reads any of this back.
"""

from __future__ import annotations

from typing import Any

from prodgan.adapters import descriptions, registry, tracking
from prodgan.names import (
    AUDIT_RUN,
    CHAMPION_SINCE,
    CHAMPION_UNTIL,
    DATA_HASH,
    EVAL_RUN,
    PRODUCTION_VERSION,
    TRAIN_RUN,
    is_headline,
    production_model,
)
from prodgan.policy.decision import Decision
from prodgan.settings import Settings

_RUN_LABELS = {TRAIN_RUN: "training run", EVAL_RUN: "evaluation run", AUDIT_RUN: "audit record"}


def describe_production(settings: Settings, client: Any, decision: Decision) -> str:
    """The production version `decision` made: description with links, the runs behind it as
    tags, and the evaluation's metrics linked to its logged model (so its page shows the dataset
    too). Returns the description."""
    from mlflow.utils.mlflow_tags import MLFLOW_RUN_NOTE

    production, version = production_model(decision.model), str(decision.production_version)
    trained = (client.get_model_version(decision.model, decision.version).tags) or {}
    evaluation = (decision.challenger or {}).get("eval_run_id") or trained.get(EVAL_RUN)
    if evaluation:
        registry.attach_evaluation(
            settings, production, version, registry.read_eval_run(client, evaluation)
        )
    runs = {
        TRAIN_RUN: trained.get(TRAIN_RUN),
        EVAL_RUN: evaluation,
        AUDIT_RUN: decision.audit_run_id,
    }
    runs = {key: run_id for key, run_id in runs.items() if run_id}
    links = {_RUN_LABELS[key]: tracking.run_url(settings, run_id) for key, run_id in runs.items()}
    text = descriptions.production(decision, links)
    tags = {**runs, **({DATA_HASH: trained[DATA_HASH]} if trained.get(DATA_HASH) else {})}
    for key, value in tags.items():
        client.set_model_version_tag(production, version, key, value)
    client.update_model_version(production, version, description=text)
    model_id = tracking.logged_model_id(client.get_model_version(production, version))
    if model_id:  # the logged model's page says the same
        client.set_logged_model_tags(model_id, {MLFLOW_RUN_NOTE: text, **tags})
    return text


def mark_champion(client: Any, decision: Decision) -> None:
    """Trained versions say, as tags anyone reads, since when they hold `champion` (as which
    production version) and until when the one before held it."""
    name, now = decision.model, decision.at
    champion = str(decision.champion_after)
    with tracking.unless_forbidden():  # the trainer's model: a UI convenience for a promoter
        client.set_model_version_tag(name, champion, CHAMPION_SINCE, now)
        client.set_model_version_tag(
            name,
            champion,
            PRODUCTION_VERSION,
            f"{production_model(name)} v{decision.production_version}",
        )
        if CHAMPION_UNTIL in (client.get_model_version(name, champion).tags or {}):
            client.delete_model_version_tag(name, champion, CHAMPION_UNTIL)  # champion again
        before = decision.champion_before
        if before and str(before) != champion:
            client.set_model_version_tag(name, str(before), CHAMPION_UNTIL, now)


def audit_page(client: Any, run_id: str, record: dict[str, Any]) -> None:
    """An audit run's metrics (the challenger's and the champion's headline values, as the gates
    read them) and the dataset they were measured on."""
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [
        Metric(f"{role}/{key}", float(value), now, 0)
        for role in ("challenger", "champion")
        for key, value in ((record.get(role) or {}).get("metrics") or {}).items()
        if is_headline(key)
    ]
    if metrics:
        client.log_batch(run_id, metrics=metrics)
    evaluation = (record.get("challenger") or {}).get("eval_run_id")
    inputs = client.get_run(evaluation).inputs if evaluation else None
    if inputs and inputs.dataset_inputs:
        client.log_inputs(run_id, datasets=list(inputs.dataset_inputs))
