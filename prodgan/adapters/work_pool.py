"""Prefect's work pool as the fan-out uses it: submit a deployment's flow run, wait, read reports.

A flow run submitted here is picked up by whichever worker of the pool polls its queue first; the
queue's concurrency limit (GPU slots) is enforced by the Prefect server, not by prodgan. Inside a
flow run, submitted runs are its subflows and inherit its job variables (environment, working
folder), so the children run on the same project and stack as the parent.

A worker that dies with its machine reports nothing: its flow runs would stay RUNNING forever.
`ensure_zombie_automation` installs Prefect's own answer (the "zombie flow runs" recipe): flow runs
send heartbeat events, and a server-side automation marks one CRASHED when they stop, which is
what the fan-out waits for before it re-runs the dataset on another worker.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
)
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound
from prefect.runtime import flow_run

from prodgan.names import ZOMBIE_AUTOMATION, ZOMBIE_SECONDS


@dataclass(frozen=True)
class FlowRunEnd:
    """How one submitted flow run ended, and what it reported."""

    flow_run_id: str
    state: str  # COMPLETED, FAILED, CRASHED, CANCELLED
    message: str
    started: datetime | None
    ended: datetime | None
    report: dict[str, Any] | None  # the one-row table the run published, None if it did not

    @property
    def completed(self) -> bool:
        return self.state == "COMPLETED"

    @property
    def crashed(self) -> bool:
        """Its process or machine died (killed, out of memory, no heartbeat), not its code."""
        return self.state == "CRASHED"


def deployment_exists(name: str) -> bool:
    """`name` ("flow/deployment") is deployed on the API this process talks to."""
    with get_client(sync_client=True) as client:
        try:
            client.read_deployment_by_name(name)
        except ObjectNotFound:
            return False
    return True


def current_job_variables() -> dict[str, Any]:
    """The job variables of the flow run this code runs in ({} outside one, or when it has none)."""
    run_id = flow_run.get_id()
    if not run_id:
        return {}
    with get_client(sync_client=True) as client:
        return dict(client.read_flow_run(UUID(str(run_id))).job_variables or {})


def submit(
    deployment: str,
    parameters: dict[str, Any],
    run_name: str,
    idempotency_key: str,
    job_variables: dict[str, Any],
) -> str:
    """Create a flow run of `deployment` for the pool's workers and return its id at once.

    The same `idempotency_key` returns the run created first instead of a second one.
    """
    created = run_deployment(
        deployment,
        parameters=parameters,
        flow_run_name=run_name,
        idempotency_key=idempotency_key,
        job_variables=job_variables,
        timeout=0,
    )
    return str(created.id)


def wait_for(
    flow_run_ids: list[str], report_key: str, poll_s: float = 2.0
) -> dict[str, FlowRunEnd]:
    """Wait until every run is final; how each ended, with the table it published under
    `report_key`."""
    ended: dict[str, FlowRunEnd] = {}
    with get_client(sync_client=True) as client:
        while len(ended) < len(flow_run_ids):
            for run_id in flow_run_ids:
                if run_id in ended:
                    continue
                run = client.read_flow_run(UUID(run_id))
                if run.state is not None and run.state.is_final():
                    ended[run_id] = FlowRunEnd(
                        run_id,
                        run.state.type.value,
                        run.state.message or run.state.name,
                        run.start_time,
                        run.end_time,
                        _report(client, run_id, report_key),
                    )
            if len(ended) < len(flow_run_ids):
                time.sleep(poll_s)
    return ended


def _report(client: Any, run_id: str, key: str) -> dict[str, Any] | None:
    found = client.read_artifacts(
        artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(run_id)]),
            key=ArtifactFilterKey(any_=[key]),
        )
    )
    if not found:
        return None
    rows = json.loads(found[0].data) if isinstance(found[0].data, str) else found[0].data
    return dict(rows[0]) if rows else None


def ensure_zombie_automation(api_url: str) -> bool:
    """Create, on the server at `api_url`, the automation that marks a flow run CRASHED when no
    heartbeat came for ZOMBIE_SECONDS (a dead worker or machine), unless it exists; True if made."""
    from datetime import timedelta

    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification
    from prefect.settings import PREFECT_API_URL, temporary_settings

    alive_or_final = {"prefect.flow-run.heartbeat"} | {
        f"prefect.flow-run.{state}" for state in ("Completed", "Failed", "Cancelled", "Crashed")
    }
    automation = AutomationCore(
        name=ZOMBIE_AUTOMATION,
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect=alive_or_final,
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=ZOMBIE_SECONDS),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message=f"no heartbeat for {ZOMBIE_SECONDS} s: its worker or machine died",
            )
        ],
    )
    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        with get_client(sync_client=True) as client:
            if client.read_automations_by_name(ZOMBIE_AUTOMATION):
                return False
            client.create_automation(automation)
    return True
