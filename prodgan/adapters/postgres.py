"""A private PostgreSQL cluster on 127.0.0.1 (initdb + pg_ctl),
for the team stack and server-mode tests.

Trust authentication on loopback only and no unix socket: it is a throwaway cluster for one
machine. PostgreSQL refuses to run as root, so as root it runs as the `postgres` account, which
must be able to reach the data directory (pytest's 0700 temp folders are not reachable: use /tmp).
"""

from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path

from prodgan.adapters.processes import log_tail
from prodgan.errors import ProdganError
from prodgan.settings import postgres_bin

SUPERUSER = "postgres"


def account() -> tuple[int, int] | None:
    """(uid, gid) to run PostgreSQL as when we are root, else None (run as ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError:
        entry = pwd.getpwnam("nobody")
    return entry.pw_uid, entry.pw_gid


def _run(args: list[str], log: Path) -> subprocess.CompletedProcess:
    ids = account()
    as_account = {"user": ids[0], "group": ids[1], "extra_groups": []} if ids else {}
    tool = postgres_bin() / args[0]
    if not tool.is_file():
        raise ProdganError(
            f"{tool} not found: install PostgreSQL 15 (`apt-get install postgresql-15`) or set "
            f"PRODGAN_PG_BIN to its bin folder, or pass an existing database URL"
        )
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        # own session: the server pg_ctl leaves behind must not get the caller's Ctrl-C
        return subprocess.run(
            [str(tool), *args[1:]],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            **as_account,
        )


def init_cluster(data: Path, log: Path) -> None:
    """`initdb` into `data` (created, and handed to the postgres account when we are root)."""
    data.mkdir(parents=True, exist_ok=True)
    ids = account()
    if ids:
        os.chown(data, *ids)
    proc = _run(
        [
            "initdb",
            "-D",
            str(data),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ],
        log,
    )
    if proc.returncode != 0:
        raise ProdganError(
            f"initdb failed in {data} (see {log}): {log_tail(log, 1)}; "
            "as root the data folder must be reachable by the postgres account (e.g. under /tmp)"
        )


def start_cluster(data: Path, port: int, log: Path, timeout: int = 60) -> bool:
    """`pg_ctl start` on 127.0.0.1:port; False when the port was taken
    (the caller picks another)."""
    server_log = data / "server.log"
    options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories='' -c fsync=off"
    proc = _run(
        [
            "pg_ctl",
            "-D",
            str(data),
            "-l",
            str(server_log),
            "-o",
            options,
            "-w",
            "-t",
            str(timeout),
            "start",
        ],
        log,
    )
    if proc.returncode == 0:
        return True
    if "in use" in log_tail(server_log).lower():
        return False
    raise ProdganError(f"postgres did not start (see {server_log}): {log_tail(server_log, 1)}")


def stop_cluster(data: Path, log: Path) -> None:
    _run(["pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop"], log)


def postmaster_pid(data: Path) -> int | None:
    """The running server's pid from `postmaster.pid`, None when it is not running."""
    try:
        return int((data / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None


def ensure_database(port: int, name: str) -> str:
    """Create database `name` if missing; its SQLAlchemy URI."""
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", port=port, user=SUPERUSER, dbname="postgres")
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        conn.close()
    return f"postgresql+psycopg2://{SUPERUSER}@127.0.0.1:{port}/{name}"
