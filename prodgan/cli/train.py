"""`prodgan train`: train a GAN from a YAML config, tracked in MLflow, resumable after a crash."""

from __future__ import annotations

from typing import List, Optional

import typer

from prodgan.cli.options import nproc_option
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
        "DDP processes (torchrun; one per GPU, gloo on CPU); this process keeps the MLflow run."
    ),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Train a generator; the MLflow run (experiment prodgan-train) holds params, losses, sample
    grids and the model.

    Example: prodgan train --config configs/smoke.yaml --set steps=100
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
        progress=not quiet,
        say=lambda msg: err.print(f"[yellow]{msg}[/]", highlight=False),
    )
    table = Table(title="training run", show_header=False)
    table.add_row("mlflow run", result.run_id)
    table.add_row("steps", str(result.step))
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
