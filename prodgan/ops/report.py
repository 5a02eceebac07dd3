"""Reports of a use case's result: plain data, markdown artifacts, and where a person looks next.

What the CLI prints and the flows publish (Prefect artifacts, logs) after a retrain, a nightly
run, or one step (validation, training, evaluation, promotion), built once here and shared by
both faces. Nothing here imports Prefect.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from prodgan.adapters import registry, tracking
from prodgan.names import AUDIT_SHEET, FLOW_API, FLOW_RUN, FLOW_RUN_NAME
from prodgan.settings import Settings

LOCAL_PREFECT_UI_PORT = 4200  # where `prefect server start` listens by default

if TYPE_CHECKING:
    from prodgan.ops.retrain import RetrainOutcome


def summary(outcome: RetrainOutcome, links: dict[str, str] | None = None) -> dict[str, Any]:
    """What a retrain did, as plain data: the flow's return value, the CLI's output, the artifact.

    `links` are the orchestrator's ids of this run (the Prefect flow run), if there is one.
    """
    settings, fresh, decision = outcome.settings, outcome.freshness, outcome.decision
    champion = registry.champion_version(settings)
    audit_run = decision.audit_run_id if decision else None
    return {
        "decision": decision.action if decision else "skipped",
        "reason": "; ".join(decision.reasons) if decision else fresh.reason,
        "reasons": list(decision.reasons) if decision else [fresh.reason],
        "freshness": fresh.reason,
        "model": settings.model_name,
        "dataset": outcome.dataset,
        "data_hash": fresh.data_hash,
        "config_sha256": fresh.config_sha256,
        "version": str(outcome.version.version) if outcome.version else None,
        "metrics": registry.headline_metrics(outcome.version),
        "champion": {
            "version": str(champion.version),
            "metrics": registry.headline_metrics(champion),
        }
        if champion
        else None,
        "mlflow": {
            "tracking_uri": settings.tracking_uri,
            "train_run_id": outcome.train.run_id if outcome.train else None,
            "eval_run_id": outcome.evaluation.run_id if outcome.evaluation else None,
            "audit_run_id": audit_run,
        },
        "data_docs": str(outcome.validation.docs_path) if outcome.validation else None,
        "sheet": tracking.artifact_url(settings, audit_run, AUDIT_SHEET) if audit_run else None,
        "links": {
            key: tracking.run_url(settings, run_id)
            for key, run_id in (
                ("train_run_id", outcome.train.run_id if outcome.train else None),
                ("eval_run_id", outcome.evaluation.run_id if outcome.evaluation else None),
                ("audit_run_id", audit_run),
            )
            if run_id
        },
        "ui_note": tracking.ui_note(settings),
        "orchestrator": links or {},
    }


def _metrics_table(metrics: dict[str, float]) -> str:
    rows = "".join(f"| {name} | {value:.4g} |\n" for name, value in sorted(metrics.items()))
    return f"| metric | value |\n|---|---|\n{rows}" if rows else "(no metrics)\n"


def report_markdown(result: dict[str, Any]) -> str:
    """The retrain flow's artifact: decision, metrics,
    MLflow runs and the champion-vs-challenger sheet."""
    runs = result["mlflow"]
    lines = [
        f"# retrain {result['model']}: {result['decision']}",
        "",
        *[f"- {reason}" for reason in result["reasons"]],
        "",
        f"- data: `{result['data_hash']}`, config sha256 `{result['config_sha256'][:12]}`",
    ]
    if result["version"]:
        lines.append(f"- challenger: version {result['version']}")
    for label, key in (
        ("training run", "train_run_id"),
        ("evaluation run", "eval_run_id"),
        ("audit record", "audit_run_id"),
    ):
        if runs[key]:
            lines.append(f"- MLflow {label}: [{runs[key]}]({result['links'][key]})")
    if result["data_docs"]:
        lines.append(f"- Data Docs: `{result['data_docs']}`")
    if result["sheet"]:
        lines.append(f"- [champion vs challenger sheet]({result['sheet']})")
    if result["links"]:
        lines.append(f"- MLflow: {runs['tracking_uri']}{result['ui_note']}")
    if result["version"]:
        lines += ["", f"## challenger v{result['version']}", "", _metrics_table(result["metrics"])]
    champion = result["champion"]
    lines += ["", f"## champion v{champion['version']}" if champion else "## no champion yet", ""]
    if champion:
        lines.append(_metrics_table(champion["metrics"]))
    return "\n".join(lines)


def datasets_markdown(results: dict[str, dict[str, Any]], unscheduled: Sequence[str]) -> str:
    """The nightly run's artifact: one row per scheduled dataset,
    then the datasets nobody scheduled."""
    rows = "".join(
        f"| {dataset} | {r.get('model', '-')} | {r['decision']} | {r.get('version') or '-'} | "
        f"{' '.join(str(r['reason']).split()).replace('|', '/')} |\n"
        for dataset, r in results.items()
    )
    lines = [
        "# nightly retrain",
        "",
        "| dataset | model | decision | version | reason |",
        "|---|---|---|---|---|",
        rows.rstrip(),
    ]
    if unscheduled:
        lines += [
            "",
            f"Not scheduled (no recipe): {', '.join(unscheduled)}; "
            "add them to the deployment's `recipes` to retrain them.",
        ]
    return "\n".join(lines)


def failure_markdown(exc: Exception) -> str:
    return f"# retrain stopped\n\n{exc}\n"


def where_to_look(settings: Settings, result: dict[str, Any]) -> list[tuple[str, str]]:
    """Where a person goes next, each UI with the command that starts it (runnable as printed):
    the MLflow UI, the Data Docs, the sample sheet, the Prefect flow run."""
    found = [("MLflow UI", tracking.ui_url(settings))]
    command = tracking.ui_command(settings)
    if command:
        found.append(("  start it with", command))
    if result.get("data_docs"):
        found.append(("Data Docs", result["data_docs"]))
    if result.get("sheet"):
        found.append(("champion vs challenger", result["sheet"]))
    flow_run = (result.get("orchestrator") or {}).get(FLOW_RUN)
    if flow_run:
        found += prefect_ui(settings, flow_run, result["orchestrator"].get(FLOW_API))
    return found


def prefect_ui(settings: Settings, flow_run: str, api: str | None) -> list[tuple[str, str]]:
    """The flow run's page in the Prefect UI; without a Prefect server, the command that serves
    the embedded runs' database (PREFECT_UI_API_URL: the UI finds its API on any port)."""
    if api:
        return [
            ("Prefect flow run", f"{api.rstrip('/').removesuffix('/api')}/runs/flow-run/{flow_run}")
        ]
    ui = f"http://127.0.0.1:{LOCAL_PREFECT_UI_PORT}"
    prefect = Path(sys.executable).with_name("prefect")
    command = (
        f"PREFECT_HOME={settings.prefect_home} PREFECT_UI_API_URL={ui}/api "
        f"PREFECT_SERVER_ANALYTICS_ENABLED=false {prefect if prefect.is_file() else 'prefect'} "
        f"server start --host 127.0.0.1 --port {LOCAL_PREFECT_UI_PORT}"
    )
    return [("Prefect flow run", f"{ui}/runs/flow-run/{flow_run}"), ("  start it with", command)]


def flow_tags(settings: Settings, flow_run_id: str, flow_run_name: str) -> dict[str, str]:
    """The tags linking MLflow runs to the orchestrator's flow run."""
    tags = {FLOW_RUN: flow_run_id, FLOW_RUN_NAME: flow_run_name}
    if settings.prefect_api_url:
        tags[FLOW_API] = settings.prefect_api_url
    return tags


def plain(record: Any) -> dict[str, Any]:
    """A dataclass record as JSON-able data (paths as strings): what a flow returns."""
    data = record.to_dict() if hasattr(record, "to_dict") else dataclasses.asdict(record)
    return json.loads(json.dumps(data, default=str))


def record_markdown(title: str, fields: dict[str, Any]) -> str:
    """One step's result as a markdown artifact: a title and a field/value list."""
    lines = [f"# {title}", ""] + [
        f"- {key}: `{value}`" for key, value in fields.items() if value not in (None, "", [], {})
    ]
    return "\n".join(lines)
