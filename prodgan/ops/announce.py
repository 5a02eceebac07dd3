"""What a retrain tells its orchestrator, as plain data: comparison table rows, links and events.

Prefect-free (the flows turn these into table/link artifacts and `emit_event` calls), so the
content is built once and tested without a flow. Events carry what an automation needs to act
without asking back: model name, versions and the dataset hash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prodgan.adapters import registry
from prodgan.names import is_headline
from prodgan.policy.decision import FORCE, PROMOTE, REJECT, Decision
from prodgan.settings import Settings

CHAMPION_MOVED = "prodgan.champion.moved"
CHALLENGER_REJECTED = "prodgan.challenger.rejected"
VALIDATION_FAILED = "prodgan.validation.failed"


@dataclass(frozen=True)
class Event:
    name: str
    resource: dict[str, str]
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Link:
    key: str
    url: str
    text: str


def _interval(metrics: dict[str, float], name: str) -> str:
    if f"{name}_ci_low" in metrics and f"{name}_ci_high" in metrics:
        return f"[{metrics[f'{name}_ci_low']:.4g}, {metrics[f'{name}_ci_high']:.4g}]"
    return f"± {metrics[f'{name}_std']:.3g} (std)" if f"{name}_std" in metrics else ""


def comparison_rows(decision: Decision) -> list[dict[str, str]]:
    """One row per headline metric: champion and challenger values with their intervals (same
    protocol)."""
    challenger = (decision.challenger or {}).get("metrics") or {}
    champion = (decision.champion or {}).get("metrics") or {}
    rows = []
    for name in sorted(n for n in {*challenger, *champion} if is_headline(n)):
        rows.append(
            {
                "metric": name,
                f"champion v{decision.champion_before}"
                if decision.champion_before
                else "no champion yet": f"{champion[name]:.4g}" if name in champion else "",
                "champion interval": _interval(champion, name),
                f"challenger v{decision.version}": f"{challenger[name]:.4g}"
                if name in challenger
                else "",
                "challenger interval": _interval(challenger, name),
            }
        )
    return rows


def decision_markdown(decision: Decision) -> str:
    """The decision and every gate's reason, one line each."""
    lines = [
        f"# v{decision.version} of {decision.model}: {decision.action}",
        "",
        f"champion before: {decision.champion_before or 'none'}, "
        f"after: {decision.champion_after or 'none'}; "
        f"data `{decision.data_hash}`; gates `{decision.gates_path}` "
        f"(sha256 `{decision.gates_sha256[:12]}`)",
        "",
    ]
    lines += [f"- {'✅' if c.passed else '❌'} {c.line}" for c in decision.checks]
    lines += [f"- • {note}" for note in decision.notes]
    return "\n".join(lines)


def links(result: dict[str, Any]) -> list[Link]:
    """Links to the MLflow runs behind a retrain and to the sheet, at the tracking server's address
    (for a local store: where the printed `mlflow ui` command serves it)."""
    runs, urls = result["mlflow"], result["links"]
    found = [
        Link(
            f"mlflow-{key.removesuffix('_id').replace('_', '-')}",
            urls[key],
            f"MLflow {label} {runs[key][:8]}",
        )
        for key, label in (
            ("train_run_id", "training run"),
            ("eval_run_id", "evaluation run"),
            ("audit_run_id", "audit record"),
        )
        if key in urls
    ]
    if result.get("sheet"):
        found.append(
            Link("champion-vs-challenger-sheet", result["sheet"], "champion vs challenger sheet")
        )
    return found


def _model_resource(decision: Decision) -> dict[str, str]:
    return {
        "prefect.resource.id": f"prodgan.model.{decision.model}",
        "prefect.resource.name": decision.model,
    }


def decision_event(decision: Decision) -> Event | None:
    """champion.moved for a promotion (or a forced one), challenger.rejected for a rejection; else
    none."""
    payload = {
        "model": decision.model,
        "version": decision.version,
        "champion_before": decision.champion_before,
        "champion_after": decision.champion_after,
        "data_hash": decision.data_hash,
        "action": decision.action,
        "audit_run_id": decision.audit_run_id,
    }
    if decision.action in (PROMOTE, FORCE):
        return Event(CHAMPION_MOVED, _model_resource(decision), payload)
    if decision.action == REJECT:
        failed = [c.line for c in decision.failed]
        return Event(CHALLENGER_REJECTED, _model_resource(decision), {**payload, "failed": failed})
    return None


def validation_event(settings: Settings, record: Any) -> Event:
    """validation.failed: which dataset version, which rules, and the model it would have
    trained."""
    champion = registry.champion_version(settings)
    return Event(
        VALIDATION_FAILED,
        {
            "prefect.resource.id": f"prodgan.dataset.{record.dataset}",
            "prefect.resource.name": record.dataset,
        },
        {
            "model": settings.model_name,
            "dataset": record.dataset,
            "data_hash": record.data_hash,
            "champion_version": str(champion.version) if champion else None,
            "failed": [f.rule for f in record.failures],
            "data_docs": str(record.docs_path),
        },
    )
