"""`retrain`: validate -> train -> evaluate -> register -> promote, skipped when nothing changed."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from flows import steps
from prodgan.errors import GateFailed
from prodgan.ops import fan_out, report
from prodgan.ops import retrain as ops


@flow(name="retrain", log_prints=True)
def retrain(
    config: str | None = None,
    dataset: str | None = None,
    force: bool = False,
    overrides: list[str] | None = None,
    nproc: int = 1,
) -> dict[str, Any]:
    """Retrain the generator when the data or config changed since the champion (or when forced).

    `config=None`: the GPU recipe where the worker has CUDA, the CPU recipe elsewhere. `nproc`:
    processes (GPUs) that train and then evaluate, each step over all of them.
    """
    settings = steps.settings()
    links = steps.link_tags(settings)
    try:
        outcome = ops.retrain(
            settings,
            config,
            overrides or [],
            dataset,
            force,
            step=steps.as_task,
            tags=links,
            notify=steps.emit,
            nproc=nproc,
        )
    except GateFailed as exc:
        steps.publish("retrain-decision", report.failure_markdown(exc), "retrain stopped by a gate")
        raise
    get_run_logger().info(
        "retrain %s: %s",
        "runs" if outcome.freshness.retrain else "skipped",
        outcome.freshness.reason,
    )
    result = report.summary(outcome, links)
    steps.publish(
        "retrain-decision",
        report.report_markdown(result),
        "retrain decision, metrics, sample sheet",
    )
    steps.publish_decision(outcome, result)
    steps.publish_row(fan_out.REPORT_KEY, fan_out.report_row(result), "this retrain's nightly row")
    return result
