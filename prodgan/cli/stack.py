"""`prodgan stack up|down|status`: the team stack (PostgreSQL, SeaweedFS S3, MLflow, Prefect, a
worker) on loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from prodgan.console import out
from prodgan.errors import GateFailed
from prodgan.names import GPU_QUEUE, HEARTBEAT_ENV, HEARTBEAT_SECONDS

app = typer.Typer(
    help="The team stack on this machine's loopback: start, inspect, stop.", no_args_is_help=True
)
DIR_HELP = (
    "Folder for the stack's state, logs and data [default: PRODGAN_STACK_DIR, else .prodgan/stack]."
)


def _table(services, title: str) -> None:
    from rich.table import Table

    table = Table("service", "pid", "port", "healthy", "started in", title=title)
    for s in services:
        took = (
            f"{s.started_s:.1f} s"
            if s.started_s is not None
            else ("already running" if s.healthy else "-")
        )
        health = "[green]yes[/]" if s.healthy else "[red]no[/]"
        table.add_row(
            s.name,
            str(s.pid or "-"),
            str(s.port or "-"),
            health + (f" ({s.detail})" if s.detail else ""),
            took,
        )
    out.print(table)


@app.command("up")
def up(
    directory: Optional[Path] = typer.Option(None, "--dir", help=DIR_HELP),
    postgres_url: Optional[str] = typer.Option(
        None,
        help="Use this existing PostgreSQL database (SQLAlchemy URI) "
        "instead of a throwaway cluster.",
    ),
    postgres_port: Optional[int] = typer.Option(
        None, help="Port of the throwaway PostgreSQL [default: a free one, then kept]."
    ),
    mlflow_port: Optional[int] = typer.Option(
        None, help="Port of `mlflow server` [default: a free one, then kept]."
    ),
    prefect_port: Optional[int] = typer.Option(
        None, help="Port of `prefect server` [default: a free one, then kept]."
    ),
    s3_port: Optional[int] = typer.Option(
        None, help="Port of SeaweedFS's S3 gateway [default: a free one, then kept]."
    ),
    worker_dir: Optional[Path] = typer.Option(
        None, help="Working folder of the Prefect worker [default: the project root]."
    ),
) -> None:
    """Start what is not running yet and write the env file prodgan (and other machines) read.

    Example: prodgan stack up --mlflow-port 5000 --prefect-port 4200
    """
    import time

    from prodgan.ops.stack import up as start
    from prodgan.settings import Settings

    began = time.monotonic()
    ports = {
        "postgres": postgres_port,
        "mlflow": mlflow_port,
        "prefect": prefect_port,
        "s3": s3_port,
    }
    state, services = start(Settings.load(), directory, ports, postgres_url, worker_dir)
    fresh = any(s.started_s is not None for s in services)
    how = f"up in {time.monotonic() - began:.1f} s" if fresh else "already running"
    _table(services, f"stack in {state.directory}: {how}")
    out.print(
        f"MLflow {state.mlflow_url}  Prefect {state.prefect_api}  "
        f"S3 {state.s3_endpoint} (bucket {state.bucket})",
        highlight=False,
    )
    out.print(
        f"env file: {state.env_file} "
        "(prodgan in this project reads it; elsewhere set PRODGAN_STACK_ENV to a copy)",
        highlight=False,
    )
    out.print(
        f"its worker serves every queue of pool {state.pool}; a worker per GPU joins with: "
        f"PREFECT_API_URL={state.prefect_api} PRODGAN_STACK_ENV={state.env_file} "
        f"{HEARTBEAT_ENV}={HEARTBEAT_SECONDS} "
        f"prefect worker start --pool {state.pool} --work-queue {GPU_QUEUE} --limit 1",
        highlight=False,
    )


@app.command("status")
def status(directory: Optional[Path] = typer.Option(None, "--dir", help=DIR_HELP)) -> None:
    """Each service: process id, port, healthy or not. Exits 1 when any is not healthy.

    Example: prodgan stack status
    """
    from prodgan.ops.stack import status as inspect
    from prodgan.settings import Settings

    state, services = inspect(Settings.load(), directory)
    _table(services, f"stack in {state.directory}")
    sick = [s.name for s in services if not s.healthy]
    if sick:
        raise GateFailed(f"not healthy: {', '.join(sick)}; `prodgan stack up` restarts them")


@app.command("down")
def down(directory: Optional[Path] = typer.Option(None, "--dir", help=DIR_HELP)) -> None:
    """Stop every service by its recorded process id; the data stays for the next `up`.

    Example: prodgan stack down
    """
    from prodgan.ops.stack import down as stop
    from prodgan.settings import Settings

    for s in stop(Settings.load(), directory):
        out.print(f"{s.name}: {s.detail}" + (f" (pid {s.pid})" if s.pid else ""), highlight=False)
