"""Use case: the nightly fan-out, one `retrain` flow run per scheduled dataset on the work pool.

Each dataset's retrain becomes its own flow run of the `retrain` deployment (prefect.yaml), so
whichever worker of the pool is free picks it up; the pool's GPU queue has a concurrency limit of
the GPU slots, so N GPU workers train N datasets at once and never two on one GPU. The nightly
flow and `prodgan retrain --all` both come here (`flows.nightly`), wait for every run, and
report each. Where no retrain deployment is on the API (the embedded one), the flow runs the
retrains itself, one after another.

Idempotence across workers: a dataset's run is submitted under an idempotency key of the
submitting run and the dataset, so a retried nightly run gets its children back instead of a
second set (a re-run of a crashed one has its own key, `.../rerun-1`); inside each run, freshness
(nothing changed since the champion), reuse of a finished training run of the same data and
config, resuming an unfinished one, and registration keyed by training run id keep one dataset
version from being trained or registered twice.
"""

from __future__ import annotations

from typing import Any, Callable

from prodgan.adapters import work_pool
from prodgan.names import GPU_QUEUE, RETRAIN_DEPLOYMENT, RETRAIN_REPORT
from prodgan.settings import Settings

REPORTED = ("model", "decision", "version", "reason")  # the nightly table's columns
REPORT_KEY = RETRAIN_REPORT  # the artifact key a retrain flow run reports under
RERUNS = 1  # times a crashed retrain is submitted again before its dataset is reported failed


def deployed() -> bool:
    """Whether the retrain deployment is on the Prefect API this process talks to."""
    return work_pool.deployment_exists(RETRAIN_DEPLOYMENT)


def report_row(summary: dict[str, Any]) -> dict[str, Any]:
    """What one retrain flow run publishes for the run that submitted it (`RETRAIN_REPORT`)."""
    return {key: summary.get(key) for key in ("dataset", *REPORTED)}


def retrain_each(
    settings: Settings,
    plan: dict[str, str],
    force: bool,
    overrides: list[str] | None,
    submitter: str,
    say: Callable[[str], None] = print,
) -> dict[str, dict[str, Any]]:
    """Submit one retrain flow run per dataset of `plan` (dataset -> config), wait for all, and
    return each one's row of the nightly table (dataset -> model, decision, version, reason).

    A run that ended CRASHED (its process was killed, or its worker died and the zombie automation
    marked it) is submitted once more, to whichever worker is free; the rerun resumes from what
    the crashed one left (its training checkpoint, its finished training or evaluation run, its
    version), and its row says so. A second crash, or a failure, is reported as failed.
    """
    job_variables = work_pool.current_job_variables()
    rows: dict[str, dict[str, Any]] = {}
    crashed: dict[str, str] = {}  # dataset -> the flow run that crashed before this attempt
    pending = dict(plan)
    for attempt in range(1 + RERUNS):
        submitted = {
            dataset: work_pool.submit(
                RETRAIN_DEPLOYMENT,
                {"config": config, "dataset": dataset, "force": force, "overrides": overrides},
                run_name=f"retrain-{dataset}",
                idempotency_key=f"{submitter}/{dataset}" + (f"/rerun-{attempt}" if attempt else ""),
                job_variables=job_variables,
            )
            for dataset, config in pending.items()
        }
        say(
            f"submitted {len(submitted)} retrain runs to the work pool (queue {GPU_QUEUE}): "
            + ", ".join(f"{d} {run_id[:8]}" for d, run_id in submitted.items())
        )
        ended = work_pool.wait_for(list(submitted.values()), REPORT_KEY)
        for dataset, run_id in submitted.items():
            rows[dataset] = _row(settings, dataset, ended[run_id], crashed.get(dataset))
        crashed = {d: run_id for d, run_id in submitted.items() if ended[run_id].crashed}
        pending = {dataset: plan[dataset] for dataset in crashed}
        if not pending or attempt == RERUNS:
            break
        say(
            "re-running crashed retrains: "
            + ", ".join(f"{d} ({ended[r].message})" for d, r in crashed.items())
        )
    return rows


def _row(
    settings: Settings, dataset: str, end: work_pool.FlowRunEnd, rerun_of: str | None
) -> dict[str, Any]:
    rerun = f" (re-run of crashed flow run {rerun_of[:8]})" if rerun_of else ""
    if end.completed and end.report:
        row = {key: end.report.get(key) for key in REPORTED} | {"flow_run_id": end.flow_run_id}
        return row | {"reason": f"{row['reason']}{rerun}"}
    return {
        "model": settings.model_for(dataset),
        "decision": "failed",
        "version": None,
        "reason": f"flow run {end.flow_run_id[:8]} ended {end.state}: {end.message}{rerun}",
        "flow_run_id": end.flow_run_id,
    }
