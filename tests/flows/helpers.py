"""Reading back what a flow did, from Prefect's API and from MLflow (no mocks: the real stores)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator
from uuid import UUID

from prodgan.adapters import registry
from prodgan.names import TRAIN_EXPERIMENT
from prodgan.settings import Settings

# Training cut down to seconds: a handful of generator steps, checkpoints along the way.
FAST = ["steps=6", "checkpoint_every=3", "log_every=3", "grid_every=3"]
NIGHTLY = "retrain-datasets/retrain-nightly"  # prefect.yaml's scheduled deployment


@contextmanager
def prefect_api(url: str) -> Iterator[None]:
    """In-process Prefect clients talk to the server at `url` (Prefect read the environment at
    import)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: url}):
        yield


def flow_run(flow_run_id: str) -> Any:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(UUID(flow_run_id))


def parent_flow_run_id(flow_run_id: str) -> str | None:
    """The flow run that started `flow_run_id` as a subflow (None for a top-level run)."""
    from prefect.client.orchestration import get_client

    run = flow_run(flow_run_id)
    if run.parent_task_run_id is None:
        return None
    with get_client(sync_client=True) as client:
        return str(client.read_task_run(run.parent_task_run_id).flow_run_id)


def artifact_markdown(flow_run_id: str, key: str) -> str:
    """The markdown of the artifact `key` published by one flow run."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(flow_run_id)]),
                key=ArtifactFilterKey(any_=[key]),
            )
        )
    assert found, f"flow run {flow_run_id} published no artifact {key!r}"
    return str(found[0].data)


def train_runs(settings: Settings) -> list[Any]:
    client = registry.client_for(settings)
    exp = client.get_experiment_by_name(TRAIN_EXPERIMENT)
    return client.search_runs([exp.experiment_id]) if exp else []


def versions(settings: Settings) -> list[Any]:
    return registry.client_for(settings).search_model_versions(f"name = '{settings.model_name}'")


def artifacts(flow_run_id: str) -> dict[str, Any]:
    """Every keyed artifact one flow run published, by key (table, markdown and link artifacts
    alike)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(flow_run_id)])
            )
        )
    return {a.key: a for a in found if a.key}


def events(flow_run_id: str, name: str, timeout_s: float = 60.0) -> list[Any]:
    """Events `name` tied to one flow run, read back from the events API (the server persists them
    in batches)."""
    import time

    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventRelatedFilter

    wanted = EventFilter(
        event=EventNameFilter(name=[name]),
        related=EventRelatedFilter(id=[f"prefect.flow-run.{flow_run_id}"]),
    )
    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while True:
            found = client.read_events(
                filter=wanted, limit=50
            ).events  # the client asks 100 by default; the server allows 50
            if found or time.monotonic() > deadline:
                return found
            time.sleep(1)
