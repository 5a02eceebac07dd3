"""Real Prefect servers and workers for server-mode tests: started here, stopped here.

`prefect_server(home)` runs `prefect server start` on 127.0.0.1 with its own PREFECT_HOME
(and so its own sqlite database) and yields the API URL once `/api/health` answers.
`process_worker(api_url, pool, home)` creates a process work pool and runs `prefect worker start`.

Both run in their own process group (`start_new_session=True`): background processes started
from a non-interactive shell ignore SIGINT, and the worker turns SIGTERM into SIGINT, so the
whole group is stopped with SIGTERM (then SIGKILL if it lingers).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from tests.servers import _log_tail, _stop_group, _wait_healthy, free_port

PREFECT = str(Path(sys.executable).with_name("prefect"))


def prefect_env(home: Path, api_url: str | None = None, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a Prefect process that sees only `home` (and `api_url`, if given)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update({
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    })
    if api_url:
        env["PREFECT_API_URL"] = api_url
    env.update(extra or {})
    return env


def _default_sigint() -> None:
    """Undo an inherited SIG_IGN for SIGINT (shells without job control set it on background jobs)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextmanager
def prefect_server(home: Path, timeout: float = 90.0) -> Iterator[str]:
    """`prefect server start` on a free 127.0.0.1 port; yields the API URL (`http://127.0.0.1:P/api`)."""
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = home / "server.log"
    with open(log, "ab") as sink:
        proc = subprocess.Popen(
            [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-ui", "--analytics-off"],
            env=prefect_env(home), stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, preexec_fn=_default_sigint, cwd=home,
        )
    api = f"http://127.0.0.1:{port}/api"
    try:
        _wait_healthy(api, proc, log, timeout, name="prefect server")
        yield api
    finally:
        _stop_group(proc)


def create_process_pool(api_url: str, pool: str, home: Path) -> None:
    subprocess.run(
        [PREFECT, "work-pool", "create", pool, "--type", "process", "--overwrite"],
        env=prefect_env(home, api_url), check=True, capture_output=True, text=True,
    )


@contextmanager
def process_worker(api_url: str, pool: str, home: Path, cwd: Path, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    """`prefect worker start --pool POOL` (process type); flow runs inherit `env` and run in `cwd`."""
    create_process_pool(api_url, pool, home)
    log = home / f"worker-{pool}.log"
    with open(log, "ab") as sink:
        proc = subprocess.Popen(
            [PREFECT, "worker", "start", "--pool", pool, "--type", "process", "--prefetch-seconds", "5"],
            env=prefect_env(home, api_url, env), stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, preexec_fn=_default_sigint, cwd=cwd,
        )
    try:
        yield proc
    finally:
        _stop_group(proc)


def worker_log(home: Path, pool: str) -> str:
    return _log_tail(home / f"worker-{pool}.log", 60)
