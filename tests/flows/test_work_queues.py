"""The work pool's two queues: the nightly run coordinates from `cpu`, GPU work takes `gpu` slots.

A real `prefect server` on loopback and `prodgan deploy --gpu-slots 1` from prefect.yaml; then
the workers a GPU machine would run, each polling one queue: a CPU worker (`--work-queue cpu`)
and one GPU worker with one slot (`--work-queue gpu --limit 1`). The nightly run must end: were
it on the `gpu` queue, it would hold the only slot while its retrain waits for it (a deadlock);
on the pool's `default` queue no worker here would pick it up. Which queue each flow run ran from
is read back from the API. The retrain's own outcome is not the point (tests/stack/test_fan_out.py
trains three datasets): its recipe names a config that does not exist, so it fails in seconds on
the GPU worker, and the nightly run reports that failure, which proves the retrain really ran.
"""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path

import pytest

from prodgan.adapters import stack_services as svc
from prodgan.adapters.processes import log_tail, spawn, stop
from prodgan.names import CPU_QUEUE, GPU_QUEUE
from prodgan.settings import Settings
from tests.conftest import run
from tests.flows.helpers import NIGHTLY, prefect_api
from tests.prefect_server import prefect_env, prefect_server

pytestmark = [pytest.mark.server, pytest.mark.slow]
POOL = "prodgan"
QUEUE_OF = {  # deployment -> the queue its work needs
    NIGHTLY: CPU_QUEUE,
    "promote/promote": CPU_QUEUE,
    "retrain/retrain": GPU_QUEUE,
    "evaluate/evaluate": GPU_QUEUE,
}


def _worker(api: str, home: Path, cwd: Path, name: str, queue: str, limit: int | None):
    """A process worker polling only `queue`, with its own Prefect home and log."""
    args = [*svc.worker_args(POOL, (queue,), limit), "--name", name]
    log = home / f"{name}.log"
    extra = {"PREFECT_WORKER_QUERY_SECONDS": "2", **svc.flow_heartbeat_env()}  # poll: not 10 s
    env = prefect_env(home / name, api, extra)
    return spawn(args, log, env, cwd=cwd), log


def _online(client) -> set[str]:
    return {w.name for w in client.read_workers_for_work_pool(POOL) if w.status == "ONLINE"}


def test_the_nightly_run_never_holds_a_gpu_slot(small_project: Settings, tmp_path: Path) -> None:
    import time
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId
    from prefect.deployments import run_deployment

    home = tmp_path / "prefect"
    with ExitStack() as stack:
        api = stack.enter_context(prefect_server(home, timeout=300))
        run(
            [sys.executable, "-m", "prodgan", "deploy", "--api-url", api, "--gpu-slots", "1"],
            cwd=small_project.root,
        )
        stack.enter_context(prefect_api(api))
        client = stack.enter_context(get_client(sync_client=True))
        placed = {name: client.read_deployment_by_name(name).work_queue_name for name in QUEUE_OF}
        assert placed == QUEUE_OF
        assert client.read_work_queue_by_name(GPU_QUEUE, POOL).concurrency_limit == 1
        assert client.read_work_queue_by_name(CPU_QUEUE, POOL).concurrency_limit is None

        workers = {
            "cpu-worker": _worker(api, home, small_project.root, "cpu-worker", CPU_QUEUE, None),
            "gpu-worker": _worker(api, home, small_project.root, "gpu-worker", GPU_QUEUE, 1),
        }
        for proc, _ in workers.values():
            stack.callback(stop, proc)
        deadline = time.monotonic() + 180
        while _online(client) != set(workers):
            assert time.monotonic() < deadline, {
                n: log_tail(log, 20) for n, (_, log) in workers.items()
            }
            time.sleep(0.5)

        nightly = run_deployment(
            NIGHTLY,
            parameters={"recipes": {"fashion-mnist": "configs/no-such-recipe.yaml"}},
            timeout=300,
            poll_interval=1,
        )
        logs = "\n".join(f"{n}:\n{log_tail(log, 40)}" for n, (_, log) in workers.items())
        assert nightly.state.is_final(), f"the nightly run never ended: {nightly.state}\n{logs}"
        [retrain] = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[UUID(str(nightly.id))])
            )
        )
    assert (nightly.work_queue_name, retrain.work_queue_name) == (CPU_QUEUE, GPU_QUEUE)
    assert retrain.state.is_failed() and retrain.start_time is not None, retrain.state
    assert nightly.state.is_failed(), nightly.state  # it reports the retrain that failed
    said = f"{nightly.state.message} / {retrain.state.message}"
    assert "no-such-recipe.yaml" in said, said
