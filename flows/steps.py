"""Prefect glue shared by the flows: ops functions as tasks, flow-run <-> MLflow links, artifacts.

Retries are declared here, per step, only where a step is safe to repeat: training resumes from
its checkpoint, registration is idempotent by training run id and promotion by version. User
errors (bad data, failed gates, bad config) are not retried: they would fail the same way.
"""

from __future__ import annotations

from typing import Any, Callable

from prefect import get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from prodgan.errors import ProdganError, TrackingUnreachable
from prodgan.ops import announce, report
from prodgan.settings import Settings, configure_environment

RETRIES = {"freshness": 1, "validate": 1, "train": 2, "evaluate": 2, "register": 3, "promote": 3}
RETRY_DELAY_S = 2


def _worth_retrying(task: Any, task_run: Any, state: Any) -> bool:
    """Bad data, a failed gate or a bad config fail the same way again; an unreachable server may
    not."""
    exc = state.data
    return not isinstance(exc, ProdganError) or isinstance(exc, TrackingUnreachable)


def as_task(name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`ops.retrain.Step` that runs `fn` as a Prefect task named after the step."""
    step = task(
        fn,
        name=name,
        retries=RETRIES.get(name, 0),
        retry_delay_seconds=RETRY_DELAY_S,
        retry_condition_fn=_worth_retrying,
        cache_policy=NO_CACHE,
        persist_result=False,
        log_prints=True,
    )
    return step(*args, **kwargs)


def settings() -> Settings:
    """The project this flow run works on (PRODGAN_ROOT or the working directory)."""
    return configure_environment(Settings.load())


def link_tags(settings: Settings) -> dict[str, str]:
    """Tags every MLflow run started by this flow run carries, so MLflow links back to Prefect."""
    return report.flow_tags(settings, str(flow_run.get_id()), str(flow_run.get_name()))


def publish(key: str, markdown: str, description: str) -> None:
    """A markdown artifact on the flow run, and the same text in its log."""
    create_markdown_artifact(markdown=markdown, key=key, description=description)
    get_run_logger().info(markdown)


def publish_row(key: str, row: dict[str, Any], description: str) -> None:
    """A one-row table artifact: what a run reports to the run that submitted it."""
    create_table_artifact(table=[row], key=key, description=description)


def emit(event: announce.Event) -> None:
    """A prodgan event on Prefect's event bus, tied to this flow run (automations match on the
    name)."""
    from prefect.events import emit_event

    emit_event(
        event=event.name,
        resource=event.resource,
        payload=event.payload,
        related=[
            {
                "prefect.resource.id": f"prefect.flow-run.{flow_run.get_id()}",
                "prefect.resource.role": "flow-run",
            }
        ],
    )


def publish_decision(outcome: Any, result: dict[str, Any]) -> None:
    """The decision's own artifacts: champion vs challenger table, every gate's reason, links to
    MLflow and the sheet."""
    decision = outcome.decision
    if decision is not None and decision.action != "noop":
        create_table_artifact(
            table=announce.comparison_rows(decision),
            key="champion-vs-challenger",
            description=f"v{decision.version} vs "
            + (
                f"champion v{decision.champion_before}"
                if decision.champion_before
                else "no champion yet"
            )
            + ": values and intervals, one protocol",
        )
        create_markdown_artifact(
            markdown=announce.decision_markdown(decision),
            key="promotion-gates",
            description=f"{decision.action}: every gate's reason",
        )
    for link in announce.links(result):
        create_link_artifact(
            link=link.url,
            link_text=link.text,
            key=link.key,
            description=link.text + result["ui_note"],
        )
