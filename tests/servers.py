"""Throwaway real servers for server-mode tests: PostgreSQL and `mlflow server` on 127.0.0.1.

Both are context managers that start the real program, wait until it answers, yield its
address and stop it on exit (also when the test fails). Nothing is mocked. The process and
PostgreSQL handling is prodgan's own (`prodgan.adapters.processes`, `.postgres`), the code
`prodgan stack` runs.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from prodgan.adapters import postgres as pg
from prodgan.adapters.processes import free_port, log_tail, spawn, stop, wait_healthy
from prodgan.adapters.stack_services import mlflow_args, mlflow_env


@contextmanager
def postgres(tmp_dir: Path) -> Iterator[str]:
    """A private PostgreSQL 15 cluster (trust auth, 127.0.0.1 only) holding an empty `mlflow` db.

    Yields a SQLAlchemy URI `postgresql+psycopg2://postgres@127.0.0.1:PORT/mlflow`. The cluster
    lives in a fresh folder under /tmp (deleted on exit: reachable by the `postgres` account when we
    are root); its logs go to `tmp_dir`.
    """
    tmp_dir = Path(tmp_dir)
    base = Path(tempfile.mkdtemp(prefix="prodgan-pg-", dir="/tmp"))
    os.chmod(base, 0o755)
    data, log = base / "data", tmp_dir / "postgres.log"
    started = False
    try:
        pg.init_cluster(data, log)
        for _attempt in range(3):  # another process may grab the free port before we bind it
            port = free_port()
            if pg.start_cluster(data, port, log):
                started = True
                break
        else:
            raise RuntimeError(f"postgres found no free port:\n{log_tail(data / 'server.log')}")
        yield pg.ensure_database(port, "mlflow")
    finally:
        if started:
            pg.stop_cluster(data, log)
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def mlflow_server(
    backend_uri: str,
    artifacts_dir: Path,
    app_name: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 240.0,
) -> Iterator[str]:
    """A real `mlflow server` with proxied artifacts in `artifacts_dir`; yields `http://127.0.0.1:PORT`.

    `env` is added to the server's environment (e.g. the basic-auth admin password with
    `app_name="basic-auth"`). Its log is `artifacts_dir/../mlflow-server.log`.
    """
    artifacts_dir = Path(artifacts_dir)
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    log = artifacts_dir.parent / "mlflow-server.log"
    server_env = mlflow_env(dict(os.environ), env or {})
    server_env.pop("MLFLOW_TRACKING_URI", None)
    for _attempt in range(3):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = spawn(
            mlflow_args(backend_uri, str(artifacts_dir), port, app_name),
            log,
            server_env,
            cwd=artifacts_dir.parent,
        )
        try:
            wait_healthy(f"{url}/health", proc, log, timeout, "mlflow server")
            break
        except RuntimeError:
            stop(proc)
            if _attempt == 2 or "address already in use" not in log_tail(log).lower():
                raise
    try:
        yield url
    finally:
        stop(proc)
