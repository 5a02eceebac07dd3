"""`prodgan retrain` (the retrain flow, embedded Prefect by default) and `prodgan deploy`
(prefect.yaml on a server)."""

from __future__ import annotations

import logging
from typing import List, Optional

import typer

from prodgan.cli.options import nproc_option
from prodgan.console import out
from prodgan.errors import ProdganError


class _NoTracebackForUserErrors(logging.Filter):
    """Prefect logs a failed task/flow with its traceback; a ProdganError is one line for a user."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], ProdganError):
            record.exc_info, record.exc_text = None, None
        return True


def retrain(
    config: Optional[str] = typer.Option(
        None,
        help="Training config (YAML); relative paths are looked up in the project, "
        "then in prodgan's configs/. "
        "[default: configs/fmnist.yaml with CUDA, else configs/cpu.yaml]",
    ),
    dataset: Optional[str] = typer.Option(
        None, help="Dataset under data/ to validate and train on [default: the config's]."
    ),
    force: bool = typer.Option(
        False, help="Retrain even if the data and config are what the champion was trained on."
    ),
    set_: Optional[List[str]] = typer.Option(
        None, "--set", help="Override a config key, e.g. --set steps=200 (repeatable)."
    ),
    every: bool = typer.Option(
        False,
        "--all",
        help="Every dataset of --recipe (default: the default dataset's), as the nightly run: one "
        "flow run each on the work pool when `prodgan deploy` applied the deployments there.",
    ),
    recipes: Optional[List[str]] = typer.Option(
        None, "--recipe", help="With --all: DATASET=CONFIG (repeatable)."
    ),
    nproc: int = nproc_option(
        "Processes (one per GPU; gloo on a CPU) that train and then evaluate, each over all of "
        "them; not with --all (the work pool spreads those)."
    ),
) -> None:
    """Validate -> train -> evaluate -> register -> promote, as a Prefect flow (embedded API
    unless PREFECT_API_URL is set).

    Example: prodgan retrain --config configs/smoke.yaml
             prodgan retrain --all --recipe clothing=configs/products64.yaml
    """
    from prodgan.ops import report
    from prodgan.ops import retrain as ops
    from prodgan.ops.train import config_sha256
    from prodgan.settings import Settings

    settings = Settings.load()
    for name in ("prefect.flow_runs", "prefect.task_runs"):
        logging.getLogger(name).addFilter(_NoTracebackForUserErrors())
    if every:
        if nproc > 1:
            raise ProdganError(
                "--nproc goes with one retrain: --all runs one flow run per dataset on the work "
                "pool, each on a worker's GPU slot; drop --nproc or --all"
            )
        _retrain_all(_recipes(recipes or []), force, set_ or [])
        return
    config = ops.recipe(dataset, config)
    # a bad config or --set: one red line before Prefect starts
    config_sha256(settings.config_path(config), set_ or [])
    import flows.retrain

    summary = flows.retrain.retrain(
        config=config, dataset=dataset, force=force, overrides=set_ or [], nproc=nproc
    )
    _print_summary(summary, report.where_to_look(settings, summary))


def _recipes(pairs: list[str]) -> dict[str, str | None] | None:
    """--recipe DATASET=CONFIG pairs as the nightly run's `recipes` (None: the default)."""
    recipes: dict[str, str | None] = {}
    for pair in pairs:
        dataset, sep, config = pair.partition("=")
        if not sep or not dataset or not config:
            raise ProdganError(
                f"--recipe {pair!r} is not DATASET=CONFIG; "
                "use e.g. --recipe clothing=configs/products64.yaml"
            )
        recipes[dataset] = config
    return recipes or None


def _retrain_all(recipes: dict[str, str | None] | None, force: bool, overrides: list[str]) -> None:
    from rich.table import Table

    import flows.nightly

    results = flows.nightly.retrain_datasets(recipes=recipes, force=force, overrides=overrides)
    table = Table(title="retrain, every scheduled dataset")
    for column in ("dataset", "model", "decision", "version", "reason"):
        table.add_column(column)
    for dataset, row in results.items():
        table.add_row(
            dataset, row["model"], row["decision"], str(row.get("version") or "-"), row["reason"]
        )
    out.print(table)


def _print_summary(summary: dict, where: list[tuple[str, str]]) -> None:
    from rich.table import Table

    out.print(f"[bold]{summary['decision']}[/]: {summary['reason']}")
    champion = summary.get("champion") or {}
    if champion:
        table = Table(title=f"champion: {summary['model']} v{champion['version']}")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for name, value in sorted(champion.get("metrics", {}).items()):
            table.add_row(name, f"{value:.4g}")
        out.print(table)
    else:
        out.print(f"no champion for {summary['model']} yet")
    for label, place in where:
        out.print(f"{label}: {place}", highlight=False)


def deploy(
    api_url: Optional[str] = typer.Option(
        None, help="Prefect server API, e.g. http://127.0.0.1:4200/api [default: PREFECT_API_URL]"
    ),
    pool: str = typer.Option(
        "prodgan", help="Process work pool the deployments run on (created only if missing)."
    ),
    gpu_slots: Optional[int] = typer.Option(
        None,
        "--gpu-slots",
        help="Concurrency limit of the pool's gpu queue, where each dataset's retrain runs: the "
        "GPUs the workers have (default: 1 for a new queue; an existing queue keeps its limit).",
    ),
) -> None:
    """Apply prefect.yaml's deployments (nightly data-aware retrain, evaluate, promote) to a
    Prefect server.

    Example:
      prefect server start &
      prodgan deploy --api-url http://127.0.0.1:4200/api --gpu-slots 2
      export PREFECT_FLOWS_HEARTBEAT_FREQUENCY=30   # a dead worker's runs end CRASHED
      prefect worker start --pool prodgan --work-queue cpu
      prefect worker start --pool prodgan --work-queue gpu --limit 1   # once per GPU
    """
    from prodgan.names import CPU_QUEUE, GPU_QUEUE, HEARTBEAT_ENV, HEARTBEAT_SECONDS
    from prodgan.ops.deploy import deploy as apply
    from prodgan.settings import Settings

    settings = Settings.load()
    done = apply(settings, pool=pool, api_url=api_url, gpu_slots=gpu_slots)
    pool_state = "created" if done.pool_created else "kept as it was"
    slots = f", {done.gpu_slots} slots" if done.gpu_slots else ""
    out.print(
        f"deployments of {done.prefect_yaml} applied on {done.api_url} "
        f"(pool [bold]{pool}[/], {pool_state}): "
        f"queue {CPU_QUEUE}: retrain-datasets/retrain-nightly (cron 0 3 * * * UTC), "
        f"promote/promote; queue {GPU_QUEUE}{slots}: retrain/retrain, evaluate/evaluate"
    )
    # heartbeats let the zombie automation crash a dead worker's runs, so the fan-out re-runs them
    start = (
        f"PRODGAN_ROOT={settings.root} {HEARTBEAT_ENV}={HEARTBEAT_SECONDS} "
        f"prefect worker start --pool {pool}"
    )
    out.print(
        f"start the workers: {start} --work-queue {CPU_QUEUE}   and on each GPU: "
        f"{start} --work-queue {GPU_QUEUE} --limit 1   (one machine: {start})",
        highlight=False,
    )


def register(root: typer.Typer) -> None:
    root.command("retrain")(retrain)
    root.command("deploy")(deploy)
