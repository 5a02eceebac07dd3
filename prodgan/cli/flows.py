"""`prodgan retrain` (the retrain flow, embedded Prefect by default) and `prodgan schedule` (deployments)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import List, Optional

import typer

from prodgan.console import out
from prodgan.errors import ProdganError


class _NoTracebackForUserErrors(logging.Filter):
    """Prefect logs a failed task/flow with its traceback; a ProdganError is one line for a user."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], ProdganError):
            record.exc_info, record.exc_text = None, None
        return True


def _flows_package():
    """Import `flows/` from the checkout that holds this prodgan package (flows are not installed)."""
    from prodgan.pipeline import CODE_ROOT

    if not (CODE_ROOT / "flows" / "retrain.py").is_file():
        raise ProdganError(f"no flows/ folder next to the prodgan package in {CODE_ROOT}; install prodgan from a source checkout (`pip install -e .`)")
    if str(CODE_ROOT) not in sys.path:
        sys.path.insert(0, str(CODE_ROOT))
    import flows.retrain

    for name in ("prefect.flow_runs", "prefect.task_runs"):
        logging.getLogger(name).addFilter(_NoTracebackForUserErrors())
    return flows


def retrain(
    config: Optional[Path] = typer.Option(None, help="Training config (YAML); relative paths are looked up in the project, then in prodgan's configs/. [default: configs/fmnist.yaml with CUDA, else configs/smoke.yaml]"),
    dataset: str = typer.Option("fashion-mnist", help="Dataset under data/ to validate and train on."),
    force: bool = typer.Option(False, help="Retrain even if the data and config are what the champion was trained on."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="Override a config key, e.g. --set steps=200 (repeatable)."),
) -> None:
    """Validate -> train -> evaluate -> register -> promote, as a Prefect flow (embedded API unless PREFECT_API_URL is set).

    Example: prodgan retrain --config configs/smoke.yaml
    """
    from prodgan import pipeline
    from prodgan.settings import Settings

    settings = Settings.load()
    config_path = pipeline.resolve_config(settings, str(config or pipeline.default_config()))
    pipeline.config_sha256(config_path, set_ or [])  # bad config or --set: one red line before Prefect starts
    summary = _flows_package().retrain.retrain(config=str(config_path), dataset=dataset, force=force, overrides=set_ or [])
    _print_summary(settings, summary)


def _print_summary(settings, summary: dict) -> None:
    from rich.table import Table

    from prodgan import pipeline

    out.print(f"[bold]{summary['decision']}[/]: {summary['reason']}")
    champion = summary.get("champion") or {}
    if champion:
        table = Table(title=f"champion: {settings.model_name} v{champion['version']}")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for name, value in sorted(champion.get("metrics", {}).items()):
            table.add_row(name, f"{value:.4g}")
        out.print(table)
    else:
        out.print(f"no champion for {settings.model_name} yet")
    for label, where in pipeline.where_to_look(settings, summary):
        out.print(f"{label}: {where}", highlight=False)


def schedule(
    api_url: Optional[str] = typer.Option(None, envvar="PREFECT_API_URL", help="Prefect server API, e.g. http://127.0.0.1:4200/api"),
    pool: str = typer.Option("prodgan", help="Process work pool the deployments run on (created if missing)."),
) -> None:
    """Register the deployments of prefect.yaml (nightly data-aware retrain, evaluate, promote) on a Prefect server.

    Example: prefect server start &  prodgan schedule --api-url http://127.0.0.1:4200/api  &&  prefect worker start --pool prodgan
    """
    from prodgan.pipeline import CODE_ROOT

    if not api_url:
        raise ProdganError("deployments need a Prefect server: start one (`prefect server start`) and pass --api-url http://127.0.0.1:4200/api or set PREFECT_API_URL")
    env = {**os.environ, "PREFECT_API_URL": api_url}
    prefect = str(Path(sys.executable).with_name("prefect"))
    for args in (["work-pool", "create", pool, "--type", "process", "--overwrite"],
                 ["--no-prompt", "deploy", "--all", "--pool", pool]):
        proc = subprocess.run([prefect, *args], cwd=CODE_ROOT, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            last = next((line for line in reversed((proc.stderr or proc.stdout).splitlines()) if line.strip()), "no output")
            raise ProdganError(f"`prefect {' '.join(args)}` failed against {api_url}: {last.strip()}; is the server running?")
    out.print(f"deployments registered on {api_url} (pool [bold]{pool}[/]): retrain/retrain-nightly (cron 0 3 * * * UTC), evaluate/evaluate, promote/promote")
    out.print(f"start a worker: PRODGAN_ROOT={os.environ.get('PRODGAN_ROOT', Path.cwd())} prefect worker start --pool {pool}", highlight=False)


def register(root: typer.Typer) -> None:
    root.command("retrain")(retrain)
    root.command("schedule")(schedule)
