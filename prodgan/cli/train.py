"""`prodgan train`: train a GAN from a YAML config, tracked in MLflow, resumable after a crash."""

from __future__ import annotations

from typing import List, Optional

import typer

from prodgan.cli.options import nnodes_option, nproc_option, rdzv_option
from prodgan.console import err, out


def train(
    config: str = typer.Option(
        ..., "--config", "-c", help="Training config (YAML), e.g. configs/smoke.yaml."
    ),
    overrides: Optional[List[str]] = typer.Option(
        None, "--set", help="Override a config key: --set steps=200 (repeatable)."
    ),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Continue the newest unfinished run of this config from its last checkpoint.",
    ),
    force: bool = typer.Option(
        False,
        "--force",
        help="Train even if a finished run of the same data and config exists (else it is reused).",
    ),
    dataset: Optional[str] = typer.Option(
        None, "--dataset", help="Dataset under data/ (default: the config's)."
    ),
    nproc: int = nproc_option(
        "DDP processes on this host (torchrun; one per GPU, gloo on CPU); this process keeps "
        "the MLflow run."
    ),
    nnodes: int = nnodes_option(),
    rdzv_endpoint: Optional[str] = rdzv_option(),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Train a generator; the MLflow run (experiment prodgan-train) holds params, losses, sample
    grids and the model.

    Example: prodgan train --config configs/smoke.yaml --set steps=100
    Two hosts, 8 GPUs each (the same command on both; one MLflow run, logged by rank 0's host):
             prodgan train --config configs/fmnist.yaml --nproc 8 --nnodes 2
             --rdzv-endpoint 10.0.0.5:29400
    """
    import time

    from rich.table import Table

    from prodgan.ops.train import train as run_training
    from prodgan.settings import Settings

    started = time.perf_counter()
    result = run_training(
        Settings.load(),
        config,
        overrides or [],
        resume=resume or None,
        reuse=not force,
        dataset=dataset,
        nproc=nproc,
        nnodes=nnodes,
        rdzv_endpoint=rdzv_endpoint,
        progress=not quiet,
        say=lambda msg: err.print(f"[yellow]{msg}[/]", highlight=False),
    )
    if result is None:  # rank 0 ran on another host, which prints and logs the run
        return
    table = Table(title="training run", show_header=False)
    table.add_row("mlflow run", result.run_id)
    stopped = " (stopped by max_seconds)" if result.stopped_by == "max_seconds" else ""
    table.add_row("steps", f"{result.step}{stopped}")
    table.add_row("bundle", str(result.bundle_dir))
    if result.reused:
        table.add_row("reused", "yes (same data and config; --force trains again)")
    for key in ("loss_d", "loss_g", "images_per_s"):
        if key in result.metrics:
            table.add_row(key, f"{result.metrics[key]:.4g}")
    table.add_row("wall time", f"{time.perf_counter() - started:.1f} s")
    out.print(table)


def register(root: typer.Typer) -> None:
    root.command("train")(train)
