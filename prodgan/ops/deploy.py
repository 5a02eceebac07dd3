"""Use case: `prodgan deploy`, the deployments of `prefect.yaml` applied to a Prefect server.

The work pool is created only when it is missing: an existing pool keeps the concurrency,
job variables and queues someone tuned. The pool's `gpu` queue, where each dataset's retrain and
each evaluation runs, gets a concurrency limit of the GPU slots: set when the queue is created, or
by `--gpu-slots`. The `cpu` queue (the nightly run, promotion; no limit) is created by the server
when the first deployment names it. GPU workers poll only `gpu` (`--work-queue gpu --limit 1`), so
the nightly run, which waits on its retrains, never holds the slot one of them needs.
Flow entrypoints are module paths (`flows.retrain.retrain`), so a worker runs them from the
installed package, inside or outside a checkout. It also installs the automation that marks a flow
run whose heartbeats stopped (its worker died) CRASHED, so the nightly fan-out can re-run it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from prodgan.adapters import work_pool
from prodgan.errors import ProdganError
from prodgan.names import GPU_QUEUE
from prodgan.settings import Settings, shipped


@dataclass(frozen=True)
class Deployed:
    api_url: str
    pool: str
    pool_created: bool
    prefect_yaml: Path
    gpu_slots: int | None  # the GPU queue's limit as set now; None: kept as it was


def _prefect(args: list[str], api_url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PREFECT_API_URL": api_url}
    return subprocess.run(
        [str(Path(sys.executable).with_name("prefect")), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
    )


def _require(proc: subprocess.CompletedProcess[str], args: list[str], api_url: str) -> None:
    if proc.returncode != 0:
        last = next(
            (line for line in reversed((proc.stderr or proc.stdout).splitlines()) if line.strip()),
            "no output",
        )
        raise ProdganError(
            f"`prefect {' '.join(args)}` failed against {api_url}: {last.strip()}; "
            "is the server running?"
        )


def deploy(
    settings: Settings,
    pool: str = "prodgan",
    api_url: str | None = None,
    gpu_slots: int | None = None,
) -> Deployed:
    """Create the process work pool and its GPU queue if missing, then `prefect deploy --all` from
    the project's (or shipped) prefect.yaml.

    `gpu_slots`: the GPU queue's concurrency limit (a new queue gets 1 unless told).
    """
    if gpu_slots is not None and gpu_slots < 1:
        raise ProdganError(f"--gpu-slots {gpu_slots}: give the number of GPUs, 1 or more")
    api_url = api_url or settings.prefect_api_url
    if not api_url:
        raise ProdganError(
            "deployments need a Prefect server: start one (`prefect server start`) and pass "
            "--api-url http://127.0.0.1:4200/api or set PREFECT_API_URL"
        )
    prefect_yaml = shipped("prefect.yaml", settings.root)
    cwd = prefect_yaml.parent
    created = _prefect(["work-pool", "inspect", pool], api_url, cwd).returncode != 0
    steps = [["work-pool", "create", pool, "--type", "process"]] if created else []
    queue_missing = created or (
        _prefect(["work-queue", "inspect", GPU_QUEUE, "--pool", pool], api_url, cwd).returncode
    )
    if queue_missing:
        gpu_slots = gpu_slots or 1
        steps.append(["work-queue", "create", GPU_QUEUE, "--pool", pool, "--limit", str(gpu_slots)])
    elif gpu_slots is not None:
        steps.append(
            ["work-queue", "set-concurrency-limit", GPU_QUEUE, str(gpu_slots), "--pool", pool]
        )
    steps.append(
        ["--no-prompt", "deploy", "--all", "--pool", pool, "--prefect-file", str(prefect_yaml)]
    )
    for args in steps:
        _require(_prefect(args, api_url, cwd), args, api_url)
    # a dead worker's flow runs end CRASHED (then the fan-out re-runs them) instead of RUNNING
    work_pool.ensure_zombie_automation(api_url)
    return Deployed(api_url, pool, created, prefect_yaml, gpu_slots)
