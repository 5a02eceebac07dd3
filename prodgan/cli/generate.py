"""`prodgan generate` and `prodgan serve`: images from a generator, in files or over HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from prodgan.cli.options import BUNDLE_HELP, FORCE_HELP, MODEL_HELP, port_option
from prodgan.console import out
from prodgan.settings import Settings


def generate(
    model: Optional[str] = typer.Option(None, "--model", "-m", help=MODEL_HELP),
    bundle: Optional[Path] = typer.Option(None, help=BUNDLE_HELP),
    category: Optional[str] = typer.Option(
        None, help="Category name or index; default: all categories, balanced."
    ),
    n: int = typer.Option(64, "-n", "--count", help="How many images."),
    seed: int = typer.Option(0, help="Same seed, same model -> same images."),
    out_file: Optional[Path] = typer.Option(None, "--out", help="Write one grid PNG here."),
    out_dir: Optional[Path] = typer.Option(None, help="Write one PNG per image into this folder."),
    nrow: int = typer.Option(
        8, help="Images per grid row (a grid over every category: one column per category)."
    ),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
) -> None:
    """Generate product images, deterministic for a seed.

    Example: prodgan generate --model models:/prodgan-generator@champion \\
      --category sneaker -n 64 --seed 1 --out grid.png
    """
    from prodgan.ops import serve

    record = serve.generate(
        Settings.load(),
        model,
        bundle,
        seed=seed,
        category=category,
        n=n,
        out_file=out_file,
        out_dir=out_dir,
        nrow=nrow,
        force=force,
    )
    if out_file is not None:
        out.print(f"wrote a grid of {record['n']} images to {out_file}")
    else:
        out.print(f"wrote {record['n']} PNGs and generate.json to {out_dir}")


def serve(
    model: Optional[str] = typer.Option(None, "--model", "-m", help=MODEL_HELP),
    host: str = typer.Option(
        "127.0.0.1", help="Interface to listen on (127.0.0.1 = this machine only)."
    ),
    port: int = port_option(5001),
    max_body_bytes: Optional[int] = typer.Option(
        None, help="Refuse request bodies over this size with 413 [default: 64 KiB]."
    ),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
) -> None:
    """Serve the generator over HTTP: MLflow's scoring server (POST /invocations) plus a
    request-size cap.

    Example: prodgan serve --model models:/prodgan-generator@champion --port 5001
    """
    from prodgan.ops import serve as ops

    settings = Settings.load()
    target = ops.serve_target(settings, model, force=force)
    out.print(
        f"serving {model or '@champion'} ({target.served_uri}) on "
        f"http://{host}:{port}/invocations (Ctrl+C stops)",
        highlight=False,
    )
    ops.serve(settings, target, host, port, max_body_bytes)


def register(root: typer.Typer) -> None:
    root.command("generate")(generate)
    root.command("serve")(serve)
