"""Use case: `prodgan stack up|down|status`, the team stack on one machine's loopback.

PostgreSQL (a throwaway cluster, or an existing database), SeaweedFS's S3 gateway (MLflow's
artifacts and the DVC remote, one bucket), `mlflow server` with basic-auth on PostgreSQL,
`prefect server` and a process worker serving all of the pool's queues. Independent services
start in parallel (PostgreSQL, SeaweedFS, Prefect at once; MLflow when its database and bucket are
there, the worker when its server is), each timed. `up` starts only what is not already healthy,
so a second `up` finds the running stack, and one after a crash restarts just the dead service
on its old port. Everything is stopped by its recorded process group.
"""

from __future__ import annotations

import subprocess
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from prodgan.adapters import postgres
from prodgan.adapters import stack_services as svc
from prodgan.adapters.processes import (
    alive,
    http_ok,
    port_open,
    running,
    spawn,
    stop_group,
    wait_healthy,
    wait_until,
)
from prodgan.errors import ProdganError
from prodgan.ops.stack_state import SERVICES, StackState, load, prepare
from prodgan.settings import Settings, environment

START_TIMEOUT = 240.0  # seconds one service may take to answer on a loaded 2-core machine
# `weed` hangs in its filer's graceful gRPC stop after the volume server has shut down cleanly
GRACE = {"seaweedfs": 3.0}
NEEDS = {"mlflow": ("postgres", "seaweedfs"), "worker": ("prefect",)}  # the rest start at once
PROGRAM = {
    "postgres": "postgres",
    "seaweedfs": "weed",
    "mlflow": "mlflow",
    "prefect": "prefect",
    "worker": "prefect",
}
PORT_OF = {
    "postgres": "postgres",
    "seaweedfs": "s3",
    "mlflow": "mlflow",
    "prefect": "prefect",
    "worker": None,
}


@dataclass(frozen=True)
class Service:
    name: str
    pid: int | None
    port: int | None
    healthy: bool
    started_s: float | None = (
        None  # seconds this call took to start it; None when it was already running
    )
    detail: str = ""


def _pg_data(state: StackState) -> Path:
    return state.directory / "postgres"


def _pid(state: StackState, name: str) -> int | None:
    if name == "postgres":
        return None if state.postgres_url else postgres.postmaster_pid(_pg_data(state))
    return state.pids.get(name)


def _running(state: StackState, name: str) -> bool:
    """Its recorded process is there and is still the program it was (pids are reused,
    e.g. after a reboot)."""
    return running(_pid(state, name), PROGRAM[name])


def _healthy(state: StackState, name: str) -> bool:
    if name == "postgres" and state.postgres_url:
        return True  # someone else's database: mlflow's health says whether it is reachable
    if not _running(state, name):
        return False
    if name == "postgres":
        return port_open(state.ports["postgres"])
    if name == "worker":
        return svc.worker_online(state.prefect_api, state.pool)
    return http_ok(_health_url(state, name))


def _health_url(state: StackState, name: str) -> str:
    return {
        "seaweedfs": svc.s3_health_url(state.ports["s3"]),
        "mlflow": f"{state.mlflow_url}/health",
        "prefect": f"{state.prefect_api}/health",
    }[name]


def _backend_uri(state: StackState) -> str:
    return (
        state.postgres_url
        or f"postgresql+psycopg2://{postgres.SUPERUSER}@127.0.0.1:{state.ports['postgres']}/mlflow"
    )


# ---------------------------------------------- starting one service (blocks until healthy)
def _start_postgres(state: StackState) -> int:
    data, log = _pg_data(state), state.log("postgres")
    if not (data / "PG_VERSION").is_file():
        postgres.init_cluster(data, log)
    if not postgres.start_cluster(data, state.ports["postgres"], log):
        raise ProdganError(
            f"port {state.ports['postgres']} (postgres) is taken; pass --postgres-port"
        )
    postgres.ensure_database(state.ports["postgres"], "mlflow")
    return postgres.postmaster_pid(data) or 0


def _spawn_http(state: StackState, name: str, args: list[str], env: dict[str, str]) -> int:
    proc = spawn(args, state.log(name), env, cwd=state.directory)
    state.pids[name] = proc.pid
    wait_healthy(_health_url(state, name), proc, state.log(name), START_TIMEOUT, name)
    return proc.pid


def _start_seaweedfs(state: StackState) -> int:
    config = state.directory / "s3.json"
    svc.write_secret_file(
        config, svc.s3_config(state.secrets["s3_access_key"], state.secrets["s3_secret_key"])
    )
    data = state.directory / "seaweedfs"
    data.mkdir(parents=True, exist_ok=True)
    pid = _spawn_http(state, "seaweedfs", svc.weed_args(data, state.ports, config), environment())
    svc.ensure_bucket(
        state.s3_endpoint,
        state.secrets["s3_access_key"],
        state.secrets["s3_secret_key"],
        state.bucket,
    )
    return pid


def _start_mlflow(state: StackState) -> int:
    auth_ini = state.directory / "mlflow-auth.ini"
    svc.write_secret_file(
        auth_ini, svc.AUTH_INI.format(db=state.directory / "mlflow-auth.db", admin=svc.ADMIN)
    )
    env = svc.mlflow_env(
        environment(),
        {
            "MLFLOW_AUTH_CONFIG_PATH": str(auth_ini),
            "MLFLOW_FLASK_SERVER_SECRET_KEY": state.secrets["flask_secret"],
            "MLFLOW_AUTH_ADMIN_PASSWORD": state.secrets["admin_password"],
            "MLFLOW_S3_ENDPOINT_URL": state.s3_endpoint,
            "AWS_ACCESS_KEY_ID": state.secrets["s3_access_key"],
            "AWS_SECRET_ACCESS_KEY": state.secrets["s3_secret_key"],
        },
    )
    args = svc.mlflow_args(
        _backend_uri(state), f"s3://{state.bucket}/mlartifacts", state.ports["mlflow"]
    )
    return _spawn_http(state, "mlflow", args, env)


def _prefect_home(state: StackState) -> Path:
    return state.directory / "prefect"


def _start_prefect(state: StackState) -> int:
    env = svc.prefect_env(environment(), _prefect_home(state))
    return _spawn_http(state, "prefect", svc.prefect_server_args(state.ports["prefect"]), env)


def _start_worker(state: StackState, cwd: Path) -> int:
    """A process worker whose flow runs see the stack
    (its env file values win over the caller's environment).

    It polls every queue of the pool with no limit of its own: on one machine it is the CPU
    worker (the nightly run, promotion) and the GPU worker (retrains, evaluation) at once, and the
    gpu queue's limit still bounds how many retrains run together.
    """
    extra = {
        **state.client_env(),
        "PRODGAN_STACK_ENV": str(state.env_file),
        **svc.flow_heartbeat_env(),
    }
    env = svc.prefect_env(environment(), _prefect_home(state), state.prefect_api, extra)
    created = subprocess.run(
        svc.pool_create_args(state.pool), env=env, capture_output=True, text=True
    )
    if created.returncode != 0:
        raise ProdganError(
            f"creating work pool {state.pool} failed: "
            f"{(created.stderr or created.stdout).strip()[-300:]}"
        )
    proc = spawn(svc.worker_args(state.pool), state.log("worker"), env, cwd=cwd)
    state.pids["worker"] = proc.pid
    wait_until(
        lambda: svc.worker_online(state.prefect_api, state.pool),
        proc,
        state.log("worker"),
        START_TIMEOUT,
        "worker",
        "sent no heartbeat",
        every=0.5,
    )
    return proc.pid


# ---------------------------------------------------------------- the use cases
def _done() -> Future:
    """A finished, successful start (for services that were already healthy)."""
    future: Future = Future()
    future.set_result(True)
    return future


def _stack_dir(settings: Settings, directory: Path | None) -> Path:
    return (
        Path(directory).expanduser().resolve()
        if directory
        else settings.stack_dir or settings.home / "stack"
    )


def _check_port_free(state: StackState, name: str) -> None:
    port_key = PORT_OF[name]
    if port_key and port_open(state.ports[port_key]):
        raise ProdganError(
            f"port {state.ports[port_key]} ({name}) is in use by another program; choose another "
            f"with --{port_key}-port"
        )


def up(
    settings: Settings,
    directory: Path | None = None,
    ports: dict[str, int | None] | None = None,
    postgres_url: str | None = None,
    worker_dir: Path | None = None,
) -> tuple[StackState, list[Service]]:
    """Start every service of the stack that is not healthy yet; write the env file; (state,
    per-service result)."""
    state = prepare(_stack_dir(settings, directory), ports or {}, postgres_url)
    state.directory.mkdir(parents=True, exist_ok=True)
    starters: dict[str, Callable[[], int]] = {
        "postgres": lambda: _start_postgres(state),
        "seaweedfs": lambda: _start_seaweedfs(state),
        "prefect": lambda: _start_prefect(state),
        "mlflow": lambda: _start_mlflow(state),
        "worker": lambda: _start_worker(state, Path(worker_dir or settings.root)),
    }
    timings: dict[str, float] = {}
    failures: list[str] = []
    todo = [name for name in SERVICES if not _healthy(state, name)]
    for name in todo:
        if name != "postgres" and _running(state, name):
            stop_group(state.pids[name])  # alive but not answering: replace it
        if name != "worker":
            _check_port_free(state, name)

    def timed(name: str, needs: list[Future]) -> bool:
        if not all(f.result() for f in needs):
            return False
        began = time.monotonic()
        try:
            state.pids[name] = starters[name]()
        except (ProdganError, RuntimeError) as exc:
            failures.append(f"{name}: {str(exc).splitlines()[0]} (log: {state.log(name)})")
            return False
        timings[name] = time.monotonic() - began
        return True

    with ThreadPoolExecutor(max_workers=len(SERVICES)) as pool:
        futures: dict[str, Future] = {}
        for name in SERVICES:  # dependencies come first in SERVICES
            needs = [futures[d] for d in NEEDS.get(name, ()) if d in futures]
            futures[name] = pool.submit(timed, name, needs) if name in todo else _done()
    state.save()
    if failures:
        raise ProdganError(
            "stack did not come up: "
            + "; ".join(failures)
            + ". `prodgan stack down` stops what started"
        )
    state.write_env_file()  # only for a stack that answers
    return state, [_service(state, name, timings.get(name)) for name in SERVICES]


def _service(state: StackState, name: str, started_s: float | None = None) -> Service:
    port_key = PORT_OF[name]
    port = (
        None
        if (name == "postgres" and state.postgres_url)
        else (state.ports.get(port_key) if port_key else None)
    )
    detail = "existing database" if name == "postgres" and state.postgres_url else ""
    return Service(name, _pid(state, name), port, _healthy(state, name), started_s, detail)


def _require_state(settings: Settings, directory: Path | None) -> StackState:
    stack_dir = _stack_dir(settings, directory)
    state = load(stack_dir)
    if state is None:
        raise ProdganError(f"no stack recorded in {stack_dir}; start one with `prodgan stack up`")
    return state


def status(settings: Settings, directory: Path | None = None) -> tuple[StackState, list[Service]]:
    state = _require_state(settings, directory)
    return state, [_service(state, name) for name in SERVICES]


def down(settings: Settings, directory: Path | None = None) -> list[Service]:
    """Stop every service by its recorded process group (PostgreSQL with `pg_ctl stop`),
    last started first.

    Data (database, buckets, Prefect history) stays in the stack folder for the next `up`.
    """
    state = _require_state(settings, directory)
    stopped = []
    for name in reversed(SERVICES):
        pid = _pid(state, name)
        was_running = _running(state, name)
        if was_running and name == "postgres":
            postgres.stop_cluster(_pg_data(state), state.log("postgres"))
        elif was_running:
            stop_group(pid, GRACE.get(name, 15.0))
        state.pids.pop(name, None)
        stopped.append(
            Service(name, pid, None, False, detail="stopped" if was_running else "was not running")
        )
    state.save()
    left = [s for s in stopped if alive(s.pid)]
    if left:
        raise ProdganError(
            "still running after stop: " + ", ".join(f"{s.name} (pid {s.pid})" for s in left)
        )
    return stopped
