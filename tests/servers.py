"""Throwaway real servers for server-mode tests: PostgreSQL and `mlflow server` on 127.0.0.1.

The servers are context managers that start the real program, wait until it answers, yield its
address and stop it on exit (also when the test fails). `TrackingDatabases` hands out migrated,
empty tracking databases on one cluster (the session's: the `tracking_databases` fixture).
Nothing is mocked. The process and PostgreSQL handling is prodgan's own
(`prodgan.adapters.processes`, `.postgres`), the code `prodgan stack` runs.
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
def postgres_cluster(tmp_dir: Path) -> Iterator[int]:
    """A private PostgreSQL 15 cluster (trust auth, 127.0.0.1 only); yields its port.

    The cluster lives in a fresh folder under /tmp (deleted on exit: reachable by the `postgres`
    account when we are root); its logs go to `tmp_dir`.
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
        yield port
    finally:
        if started:
            pg.stop_cluster(data, log)
        shutil.rmtree(base, ignore_errors=True)


class TrackingDatabases:
    """Empty MLflow tracking databases on one running cluster, each its own database.

    Each is a copy (`CREATE DATABASE ... TEMPLATE`, a file copy) of one database that MLflow's
    schema migrations ran on once, as `mlflow server` runs them on a fresh database (10-20 s on a
    loaded 2-core machine, paid by every server start on a new database otherwise).
    """

    TEMPLATE = "mlflow_template"

    def __init__(self, port: int) -> None:
        self.port, self.made = port, 0

    def _migrate_template(self) -> None:
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        # the server's own default artifact root when it proxies artifacts
        store = SqlAlchemyStore(pg.ensure_database(self.port, self.TEMPLATE), "mlflow-artifacts:/")
        store.engine.dispose()  # a template must have no open connection to be copied

    def new(self) -> str:
        """A fresh, migrated, empty tracking database; its SQLAlchemy URI."""
        import psycopg2

        if self.made == 0:
            self._migrate_template()
        self.made += 1
        name = f"mlflow_{self.made}"
        conn = psycopg2.connect(
            host="127.0.0.1", port=self.port, user=pg.SUPERUSER, dbname="postgres"
        )
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.TEMPLATE}"')
        finally:
            conn.close()
        return pg.ensure_database(self.port, name)


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
