"""One-line descriptions MLflow's UI shows for runs and model versions: what it is, on which data,
from which recipe, and (for a version) the last decision about it. Built from what the tags and
the decision already record; audit runs get a name that says what happened.
"""

from __future__ import annotations

from typing import Any

from mlflow.utils.mlflow_tags import MLFLOW_RUN_NOTE

from prodgan.adapters.tracking import is_run_id, logged_model_id
from prodgan.names import (
    AUDIT_FILE,
    CONFIG,
    DATA_HASH,
    DATASET,
    TRAIN_RUN,
    is_headline,
    production_model,
)
from prodgan.policy.decision import DONE, FORCE, PROMOTE, REJECT, ROLLBACK, Decision


def headline(metrics: dict[str, float]) -> str:
    """`fid_500 83.2, cond_acc_500 0.77`: the metrics a person compares first."""
    shown = [
        f"{k} {v:.3g}"
        for k, v in sorted(metrics.items())
        if is_headline(k) and k.startswith(("fid_", "cond_acc_"))
    ]
    return ", ".join(shown)


def training(
    arch: str, dataset: str, data_hash: str, config_file: str, overrides: list[str], steps: int
) -> str:
    recipe = config_file + (f" + {' '.join(overrides)}" if overrides else "")
    return (
        f"Training: {arch} generator on {dataset} {data_hash[:8]}, recipe {recipe}, {steps} steps"
    )


def evaluation(
    model: str, dataset: str, split: str, data_hash: str, protocol: str, metrics: dict[str, float]
) -> str:
    return (
        f"Evaluation of {model} on {dataset} {split} {data_hash[:8]} "
        f"(protocol {protocol[:12]}): {headline(metrics)}"
    )


def describe_version(client: Any, name: str, version: str, decision: Decision | None = None) -> str:
    """Set a version's description: its data and recipe, plus the decision when one was just
    taken."""
    mv = client.get_model_version(name, version)
    tags = mv.tags or {}
    run_tags = client.get_run(tags[TRAIN_RUN]).data.tags if is_run_id(tags.get(TRAIN_RUN)) else {}
    dataset = run_tags.get(DATASET, "dataset")
    recipe = run_tags.get(CONFIG, "an unknown recipe")
    text = (
        f"v{version}: trained on {dataset} {str(tags.get(DATA_HASH, '?'))[:8]} with {recipe} "
        f"(training run {str(tags.get(TRAIN_RUN, '?'))[:8]})"
    )
    if decision is not None:
        text += f"; {decision.action} {decision.at} by {decision.actor}: {decision.summary}"
        if decision.moves and decision.production_version:
            text += (
                f"; champion as {production_model(name)} v{decision.production_version} "
                f"since {decision.at}"
            )
    client.update_model_version(name, version, description=text)
    if logged_model_id(mv):  # the logged model's page shows the same line
        client.set_logged_model_tags(logged_model_id(mv), {MLFLOW_RUN_NOTE: text})
    return text


def production(decision: Decision, links: dict[str, str]) -> str:
    """A production version's description (markdown, one paragraph): what it copies, the decision
    that made it, the gates' headline values, and links to the runs behind it."""
    name = production_model(decision.model)
    headline_values = headline(((decision.challenger or {}).get("metrics")) or {})
    text = (
        f"{name} v{decision.production_version}: the promoter's copy of {decision.model} "
        f"v{decision.version}, champion since {decision.at}. {audit_run_name(decision.to_dict())} "
        f"by {decision.actor}: {decision.summary}"
    )
    text += f" ({headline_values})." if headline_values else "."
    shown = [f"[{label}]({url})" for label, url in links.items()]
    return text + (" " + " · ".join(shown) if shown else "")


def audit_run_name(record: dict[str, Any]) -> str:
    """What happened, as an audit run's name: `promote v3 over v2`, `reject v4 (v3 stays
    champion)`, `rollback to v1 from v2`, `done: record 5 took effect`."""
    action, version = record.get("action"), record.get("version")
    before = record.get("champion_before")
    if action == DONE:
        return f"done: record {record.get('done_of')} (v{version}) took effect"
    if action == ROLLBACK:
        return f"rollback to v{version} from v{before}"
    if action in (PROMOTE, FORCE):
        return f"{action} v{version} " + (f"over v{before}" if before else "(no champion yet)")
    if action == REJECT:
        return f"reject v{version} " + (
            f"(v{before} stays champion)" if before else "(no champion yet)"
        )
    return f"{action} v{version}"


def audit_run(record: dict[str, Any]) -> str:
    """An audit run's description: the decision, who took it, why, and what it changed; a `done`
    record says it only closes a pending one."""
    if record.get("action") == DONE:
        return (
            f"Closes audit record {record.get('done_of')} of {record.get('model')}: the aliases "
            f"moved as it decided. A move is recorded pending before the aliases change and "
            f"closed by this record after, so a crash in between shows as a pending record."
        )
    decision = Decision.from_record(record)
    return (
        f"{audit_run_name(record)} of {decision.model} by {decision.actor} at {decision.at}: "
        f"{decision.summary}. Champion before {_named(decision.champion_before)}, after "
        f"{_named(decision.champion_after)}; gates {decision.gates_path or '-'} "
        f"(sha256 {decision.gates_sha256[:12] or '-'}); the signed record is {AUDIT_FILE}."
    )


def _named(version: str | None) -> str:
    return f"v{version}" if version else "none"
