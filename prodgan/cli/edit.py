"""`prodgan edit ...`: invert a product photo into the generator, interpolate, transfer category."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from prodgan.cli.options import BUNDLE_HELP, MODEL_HELP
from prodgan.console import out
from prodgan.settings import Settings

app = typer.Typer(
    help="Edit product images: invert a photo, interpolate, transfer category.",
    no_args_is_help=True,
)

FROM_HELP = "Start from the latent (and category) found by `prodgan edit invert` (its edit.json)."


@app.command()
def invert(
    image: Path = typer.Argument(
        ..., help="A product photo (PNG/JPEG/WebP); converted to the generator's size and mode."
    ),
    out_dir: Path = typer.Option(
        ..., help="Folder for input.png, reconstruction.png, transfer.png and edit.json."
    ),
    to: list[str] = typer.Option(
        [], "--to", help="Also render the inverted product as these categories (repeatable)."
    ),
    model: Optional[str] = typer.Option(None, "--model", "-m", help=MODEL_HELP),
    bundle: Optional[Path] = typer.Option(None, help=BUNDLE_HELP),
    seed: int = typer.Option(0, help="Seed of the starting latents (same seed -> same result)."),
    restarts: int = typer.Option(4, min=1, max=16, help="Starting latents tried per category."),
    steps: int = typer.Option(400, min=10, max=5000, help="Optimisation steps in total."),
) -> None:
    """Find the latent (and category) whose image is closest to a photo; report PSNR and SSIM.

    Example: prodgan edit invert shoe.png --out-dir inverted --to sneaker --to sandal
    """
    from prodgan.ops import edit

    record = edit.invert(
        Settings.load(),
        image,
        out_dir,
        to,
        model,
        bundle,
        seed=seed,
        restarts=restarts,
        steps=steps,
    )
    found = f" as [bold]{record['category']}[/]" if record["category"] else ""
    out.print(
        f"inverted {image}{found}: PSNR {record['psnr_db']:.2f} dB, "
        f"SSIM {record['ssim']:.3f} -> {out_dir}"
    )
    for note in record["input_notes"]:
        out.print(f"[yellow]note:[/] input {note}")


@app.command()
def interpolate(
    out_file: Path = typer.Option(
        ..., "--out", help="Strip PNG to write (its record goes beside it as .json)."
    ),
    seed_a: Optional[int] = typer.Option(None, help="Seed of the first latent [default: 0]."),
    seed_b: Optional[int] = typer.Option(None, help="Seed of the last latent [default: 1]."),
    category_a: Optional[str] = typer.Option(
        None, help="Category at the start (conditional models)."
    ),
    category_b: Optional[str] = typer.Option(
        None, help="Category at the end [default: category-a]."
    ),
    from_a: Optional[Path] = typer.Option(None, help=FROM_HELP + " Replaces --seed-a."),
    from_b: Optional[Path] = typer.Option(None, help=FROM_HELP + " Replaces --seed-b."),
    steps: int = typer.Option(8, help="Images in the strip (2..64)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help=MODEL_HELP),
    bundle: Optional[Path] = typer.Option(None, help=BUNDLE_HELP),
) -> None:
    """A strip that moves smoothly from one product (and category) to another.

    Example: prodgan edit interpolate --seed-a 1 --seed-b 2 \\
      --category-a pullover --category-b coat --out strip.png
    """
    from prodgan.ops import edit

    record = edit.interpolate(
        Settings.load(),
        out_file,
        seed_a=seed_a,
        seed_b=seed_b,
        category_a=category_a,
        category_b=category_b,
        from_a=from_a,
        from_b=from_b,
        steps=steps,
        model=model,
        bundle=bundle,
    )
    out.print(
        f"wrote a {steps}-image interpolation to {out_file} (record {record['record']})",
        highlight=False,
    )


@app.command()
def transfer(
    out_file: Path = typer.Option(
        ..., "--out", help="PNG to write: the product first, then one image per target category."
    ),
    to: list[str] = typer.Option(..., "--to", help="Target category (repeatable)."),
    seed: Optional[int] = typer.Option(None, help="Seed of the product's latent [default: 0]."),
    category: Optional[str] = typer.Option(
        None, help="The product's own category [default: the first]."
    ),
    from_inversion: Optional[Path] = typer.Option(None, help=FROM_HELP),
    model: Optional[str] = typer.Option(None, "--model", "-m", help=MODEL_HELP),
    bundle: Optional[Path] = typer.Option(None, help=BUNDLE_HELP),
) -> None:
    """Keep a product's latent (its style) and render it as other categories.

    Example: prodgan edit transfer --seed 3 --category pullover --to coat --to shirt \\
      --out transfer.png
    """
    from prodgan.ops import edit

    record = edit.transfer(
        Settings.load(),
        out_file,
        to,
        seed=seed,
        category=category,
        from_inversion=from_inversion,
        model=model,
        bundle=bundle,
    )
    out.print(
        f"wrote {record['from']} -> {', '.join(record['to'])} to {out_file} "
        f"(record {record['record']})",
        highlight=False,
    )
