"""Real Prefect servers and workers for server-mode tests: started here, stopped here.

`prefect_server(home)` runs `prefect server start` on 127.0.0.1 with its own PREFECT_HOME
(and so its own sqlite database) and yields the API URL once `/api/health` answers.
`process_worker(api_url, pool, home)` creates a process work pool and runs `prefect worker start`.
Command lines, environments and process groups are prodgan's own (`prodgan.adapters.stack_services`,
`.processes`), the code `prodgan stack` runs.
"""

from __future__ import annotations

import os
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from prodgan.adapters import stack_services as svc
from prodgan.adapters.processes import free_port, log_tail, spawn, stop, wait_healthy


def prefect_env(
    home: Path, api_url: str | None = None, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """The environment of a Prefect process that sees only `home` (and `api_url`, if given)."""
    return svc.prefect_env(dict(os.environ), home, api_url, extra)


@contextmanager
def prefect_server(home: Path, timeout: float = 90.0) -> Iterator[str]:
    """`prefect server start` on a free 127.0.0.1 port; yields the API URL (`http://127.0.0.1:P/api`)."""
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = home / "server.log"
    proc = spawn(svc.prefect_server_args(port), log, prefect_env(home), cwd=home)
    api = f"http://127.0.0.1:{port}/api"
    try:
        wait_healthy(f"{api}/health", proc, log, timeout, "prefect server")
        yield api
    finally:
        stop(proc)


def create_process_pool(api_url: str, pool: str, home: Path) -> None:
    subprocess.run(
        svc.pool_create_args(pool),
        env=prefect_env(home, api_url),
        check=True,
        capture_output=True,
        text=True,
    )


@contextmanager
def process_worker(
    api_url: str, pool: str, home: Path, cwd: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen]:
    """`prefect worker start --pool POOL` (process type); flow runs inherit `env` and run in
    `cwd`."""
    create_process_pool(api_url, pool, home)
    proc = spawn(
        svc.worker_args(pool), home / f"worker-{pool}.log", prefect_env(home, api_url, env), cwd=cwd
    )
    try:
        yield proc
    finally:
        stop(proc)


def worker_log(home: Path, pool: str) -> str:
    return log_tail(home / f"worker-{pool}.log", 60)
