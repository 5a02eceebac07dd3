"""`prodgan evaluate` and `prodgan evaluator train`: metrics for a generator, logged to MLflow."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from prodgan.cli.options import BUNDLE_HELP, MODEL_HELP, nnodes_option, nproc_option, rdzv_option
from prodgan.console import err, out, sides_progress
from prodgan.errors import ProdganError

evaluator_app = typer.Typer(
    help="The category judge (conditional accuracy, IS without Inception logits).",
    no_args_is_help=True,
)


def _say(message: str) -> None:
    err.print(f"[yellow]{message}[/]", highlight=False)


def evaluate(
    model: Optional[str] = typer.Argument(None, help=MODEL_HELP.split(" [default")[0] + "."),
    bundle: Optional[Path] = typer.Option(None, "--bundle", help=BUNDLE_HELP),
    images: Optional[Path] = typer.Option(
        None,
        "--images",
        help="Samples instead of a model: a folder of PNG/JPEG/WebP images or an .npz of uint8 "
        "images, at the dataset's size and channels (needs --dataset; cannot be promoted).",
    ),
    dataset: Optional[str] = typer.Option(
        None, "--dataset", help="The dataset the --images samples are measured against."
    ),
    samples: Optional[int] = typer.Option(
        None,
        "--samples",
        "-n",
        help="Generated images (default: 2000 with CUDA, 500 on CPU, or env PRODGAN_EVAL_SAMPLES).",
    ),
    seed: Optional[int] = typer.Option(
        None, "--seed", help="Seed of latents and categories (default: 0)."
    ),
    split: str = typer.Option("test", "--split", help="Real split to compare against."),
    kid_subset_size: Optional[int] = typer.Option(
        None, "--kid-subset-size", help="KID subset size (default: min(1000, samples))."
    ),
    no_evaluator: bool = typer.Option(
        False,
        "--no-evaluator",
        help="Skip the evaluator classifier "
        "(no IS without Inception logits, no conditional accuracy).",
    ),
    batch_size: Optional[int] = typer.Option(
        None, "--batch-size", min=1, help="Images per forward pass (default: 64); memory only."
    ),
    nproc: int = nproc_option(
        "Processes sharing the samples (torchrun; one per GPU, gloo on CPU): the same metrics."
    ),
    nnodes: int = nnodes_option(),
    rdzv_endpoint: Optional[str] = rdzv_option(),
) -> None:
    """FID, KID, IS, precision/recall, conditional accuracy and memorization for one generator.

    Logs one run in MLflow experiment prodgan-eval (protocol as params, metrics, sample grid).

    Example: prodgan evaluate models:/prodgan-generator@champion --samples 200 --nproc 2

    Samples only (a generator that cannot be exported, e.g. a diffusion pipeline):
    prodgan evaluate --images samples.npz --dataset fashion-mnist
    """
    import time

    from prodgan.ops import evaluate as ops
    from prodgan.settings import Settings

    options = dict(
        seed=seed,
        split=split,
        kid_subset_size=kid_subset_size,
        use_evaluator=not no_evaluator,
        say=_say,
    )
    spread = dict(
        samples=samples,
        batch_size=batch_size,
        nproc=nproc,
        nnodes=nnodes,
        rdzv_endpoint=rdzv_endpoint,
    )
    started = time.perf_counter()
    if images is None:
        if dataset is not None:
            raise ProdganError(
                "--dataset goes with --images; a model is evaluated on the dataset it was "
                "trained on"
            )
        run = ops.evaluate(Settings.load(), model, bundle, **spread, **options)
        if run is not None:  # None: rank 0 ran on another host, which prints and logs
            _print(run, time.perf_counter() - started)
        return
    if model or bundle or samples or not dataset or nproc > 1 or nnodes > 1:
        raise ProdganError(
            "--images takes --dataset NAME and no model, --bundle, --samples or --nproc/--nnodes "
            "(the samples are what is measured, in one process): "
            "prodgan evaluate --images DIR --dataset NAME"
        )
    run = ops.evaluate_samples(Settings.load(), images, dataset, **options)
    _print(run, time.perf_counter() - started)
    out.print(
        f"samples-only evaluation of samples sha256 {run.samples_sha256[:16]}: it names no "
        "model, so it cannot be promoted (import the generator with `prodgan register --model` "
        "to gate it)",
        highlight=False,
    )


def _print(run, seconds: float) -> None:
    from rich.table import Table

    result = run.result
    table = Table(title=f"evaluation {run.run_id}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in result.metrics.items():
        if "/" not in name:
            table.add_row(name, f"{value:.4g}")
    out.print(table)
    if result.per_category:
        columns = sorted({m for by in result.per_category.values() for m in by})
        cats = Table(title="per category")
        cats.add_column("category")
        for column in columns:
            cats.add_column(column, justify="right")
        for category, by in result.per_category.items():
            cats.add_row(category, *(f"{by[c]:.4g}" if c in by else "-" for c in columns))
        out.print(cats)
    real_side = "cached" if result.real_cached else "computed"
    out.print(
        f"protocol {result.protocol.fingerprint[:16]}  real side {real_side}  {seconds:.1f} s",
        highlight=False,
    )


@evaluator_app.command("train")
def evaluator_train(
    limit: Optional[int] = typer.Option(
        None,
        min=2,
        help="Fit and measure on at most N photos of each split (seeded subset) [default: 2000].",
    ),
    dataset: str = typer.Option("fashion-mnist", help="Dataset under data/."),
) -> None:
    """Fit the category judge behind cond_acc (a linear probe on the train split's Inception
    features), measure it on the test split, save it under .prodgan/evaluator/, log it to MLflow.

    Example: prodgan evaluator train --dataset clothing
    """
    from prodgan.ops.evaluate import train_evaluator
    from prodgan.settings import Settings

    settings = Settings.load()
    with sides_progress("fitting the category judge:") as progress:
        capped = {"limit": limit} if limit else {}
        probe, acc, run_id = train_evaluator(settings, dataset, progress=progress, **capped)
    out.print(
        f"category judge test accuracy [bold]{acc:.4f}[/] "
        f"(chance {1 / len(probe.categories):.3f}) -> {settings.evaluator_dir(dataset)} "
        f"(mlflow run {run_id})"
    )


def register(root: typer.Typer) -> None:
    root.command("evaluate")(evaluate)
    root.add_typer(evaluator_app, name="evaluator")
