"""Throwaway real servers for server-mode tests: PostgreSQL and `mlflow server` on 127.0.0.1.

Both are context managers that start the real program, wait until it answers, yield its
address and stop it on exit (also when the test fails). Nothing is mocked.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

PG_BIN = Path(os.environ.get("PRODGAN_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_DATABASE = "mlflow"
PG_SUPERUSER = "postgres"


def free_port() -> int:
    """A port free right now on 127.0.0.1 (the OS picks it; a tiny race is accepted in tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _pg_account() -> tuple[int, int] | None:
    """PostgreSQL refuses to run as root: when we are root, run it as the `postgres` account."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError:
        entry = pwd.getpwnam("nobody")
    return entry.pw_uid, entry.pw_gid


def _pg_run(args: list[str], account: tuple[int, int] | None, log: Path) -> None:
    ids = {"user": account[0], "group": account[1], "extra_groups": []} if account else {}
    with open(log, "ab") as out:
        proc = subprocess.run(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **ids)
    if proc.returncode != 0:
        raise RuntimeError(f"{Path(args[0]).name} failed ({proc.returncode}):\n{_log_tail(log)}")


@contextmanager
def postgres(tmp_dir: Path) -> Iterator[str]:
    """A private PostgreSQL 15 cluster (trust auth, 127.0.0.1 only) holding an empty `mlflow` db.

    Yields a SQLAlchemy URI `postgresql+psycopg2://postgres@127.0.0.1:PORT/mlflow`. The cluster lives in
    a fresh folder under /tmp (deleted on exit); its logs go to `tmp_dir`.
    """
    import psycopg2

    account = _pg_account()
    tmp_dir = Path(tmp_dir)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    # /tmp keeps the unix socket path short and, as root, reachable by the `postgres` account.
    base = Path(tempfile.mkdtemp(prefix="prodgan-pg-", dir="/tmp"))
    if account:
        os.chown(base, *account)
    data, log = base / "data", tmp_dir / "postgres.log"
    _pg_run([str(PG_BIN / "initdb"), "-D", str(data), "-U", PG_SUPERUSER, "--auth=trust",
             "--no-sync", "-E", "UTF8", "--locale=C"], account, log)
    started = False
    try:
        for _attempt in range(3):  # another process may grab the free port before we bind it
            port = free_port()
            options = f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off"
            try:
                _pg_run([str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(base / "server.log"),
                         "-o", options, "-w", "-t", "60", "start"], account, log)
                started = True
                break
            except RuntimeError:
                if _attempt == 2 or "in use" not in _log_tail(base / "server.log").lower():
                    raise RuntimeError(f"postgres did not start:\n{_log_tail(base / 'server.log')}") from None
        conn = psycopg2.connect(host="127.0.0.1", port=port, user=PG_SUPERUSER, dbname="postgres")
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE {PG_DATABASE}")
        finally:
            conn.close()
        yield f"postgresql+psycopg2://{PG_SUPERUSER}@127.0.0.1:{port}/{PG_DATABASE}"
    finally:
        if started:
            _pg_run([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], account, log)
        shutil.rmtree(base, ignore_errors=True)


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float, name: str = "mlflow server") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{_log_tail(log)}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{name} not healthy at {url} after {timeout:.0f} s:\n{_log_tail(log)}")


def _stop_group(proc: subprocess.Popen, grace: float = 15.0) -> None:
    """SIGTERM the whole process group (gunicorn/uvicorn workers included), SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=grace)
    except ProcessLookupError:
        pass


@contextmanager
def mlflow_server(backend_uri: str, artifacts_dir: Path, app_name: str | None = None,
                  env: dict[str, str] | None = None, timeout: float = 240.0) -> Iterator[str]:
    """A real `mlflow server` with proxied artifacts in `artifacts_dir`; yields `http://127.0.0.1:PORT`.

    `env` is added to the server's environment (e.g. the basic-auth admin password with
    `app_name="basic-auth"`). Its log is `artifacts_dir/../mlflow-server.log`.
    """
    artifacts_dir = Path(artifacts_dir)
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    log = artifacts_dir.parent / "mlflow-server.log"
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    server_env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", **(env or {})}
    server_env.pop("MLFLOW_TRACKING_URI", None)
    for _attempt in range(3):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        args = [str(mlflow_bin), "server", "--backend-store-uri", backend_uri,
                "--artifacts-destination", str(artifacts_dir), "--host", "127.0.0.1",
                "--port", str(port), "--workers", "1"]
        if app_name:
            args += ["--app-name", app_name]
        with open(log, "ab") as out:
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=server_env, start_new_session=True, cwd=artifacts_dir.parent)
        try:
            _wait_healthy(url, proc, log, timeout)
            break
        except RuntimeError:
            _stop_group(proc)
            if _attempt == 2 or "address already in use" not in _log_tail(log).lower():
                raise
    try:
        yield url
    finally:
        _stop_group(proc)
