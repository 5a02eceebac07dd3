"""`prodgan edit ...`: invert a product photo into the generator, interpolate, transfer category.

Every command writes its picture(s) and a JSON record of what was done (model, seeds, latents,
categories, quality), so an edit can be reproduced or continued (`--from-inversion`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from prodgan.console import out
from prodgan.cli.generate import BUNDLE_HELP, MODEL_HELP, load_generator
from prodgan.errors import ProdganError

app = typer.Typer(help="Edit product images: invert a photo, interpolate, transfer category.", no_args_is_help=True)

FROM_HELP = "Start from the latent (and category) found by `prodgan edit invert` (its edit.json)."


def _category(spec: Any, value: Optional[str]) -> Optional[int]:
    from prodgan.generate import category_index

    return category_index(spec, value)


def _categories(spec: Any, values: list[str]) -> list[int]:
    picked = [_category(spec, v) for v in values]
    if not picked:
        raise ProdganError(f"give at least one target category with --to ({', '.join(spec.categories)})")
    return picked


def _name(spec: Any, index: Optional[int]) -> Optional[str]:
    return None if index is None else spec.categories[index]


def _start(spec: Any, seed: Optional[int], category: Optional[str], inversion: Optional[Path]) -> tuple[Any, Optional[int], dict[str, Any]]:
    """(latent, category index, how it was chosen): from a seed, or from an earlier inversion."""
    import torch

    from prodgan.models.sampling import latents

    if inversion is not None:
        if seed is not None:
            raise ProdganError("give either a seed or --from-inversion, not both")
        try:
            record = json.loads(Path(inversion).read_text())
            z = torch.tensor(record["latent"], dtype=torch.float32)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ProdganError(f"{inversion} is not an edit.json written by `prodgan edit invert` ({exc})") from None
        if z.shape != (spec.z_dim,):
            raise ProdganError(f"{inversion} holds a {list(z.shape)} latent but this generator takes {spec.z_dim}: use the same model")
        found = record.get("category")
        index = _category(spec, category if category is not None else found)
        return z, index, {"from_inversion": str(inversion), "category": _name(spec, index)}
    seed = 0 if seed is None else seed
    index = _category(spec, category)
    if spec.num_classes and index is None:
        index = 0
    return latents(1, spec.z_dim, seed)[0], index, {"seed": seed, "category": _name(spec, index)}


def _write(png: Path, pixels: Any, record: dict[str, Any]) -> Path:
    """The picture at `png`, the record beside it as `<png stem>.json`."""
    from prodgan import imaging
    from prodgan.fsutil import write_json_atomic

    imaging.save_png(png, pixels)
    meta = Path(png).with_suffix(".json")
    write_json_atomic(meta, record)
    return meta


@app.command()
def invert(
    image: Path = typer.Argument(..., help="A product photo (PNG/JPEG/WebP); converted to the generator's size and mode."),
    out_dir: Path = typer.Option(..., help="Folder for input.png, reconstruction.png, transfer.png and edit.json."),
    to: list[str] = typer.Option([], "--to", help="Also render the inverted product as these categories (repeatable)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help=MODEL_HELP),
    bundle: Optional[Path] = typer.Option(None, help=BUNDLE_HELP),
    seed: int = typer.Option(0, help="Seed of the starting latents (same seed -> same result)."),
    restarts: int = typer.Option(4, min=1, max=16, help="Starting latents tried per category."),
    steps: int = typer.Option(400, min=10, max=5000, help="Optimisation steps in total."),
) -> None:
    """Find the latent (and category) whose image is closest to a photo; report PSNR and SSIM.

    Example: prodgan edit invert shoe.png --out-dir inverted --to sneaker --to sandal
    """
    import torch

    from prodgan import edit, imaging
    from prodgan.fsutil import write_json_atomic
    from prodgan.generate import hwc

    G, spec, source = load_generator(model, bundle)
    targets = _categories(spec, to) if to else []
    pixels, notes = edit.load_image(image, spec)
    search = max(1, steps * 3 // 8)
    result = edit.invert(G, spec, pixels[None], seed=seed, restarts=restarts, search_steps=search, refine_steps=steps - search)[0]
    record = {"action": "invert", "source": source, "image": str(image), "input_notes": notes, "seed": seed,
              "restarts": restarts, "steps": steps, "category": _name(spec, result.category),
              "psnr_db": round(result.psnr, 3), "ssim": round(result.ssim, 4), "latent": result.z.tolist()}
    out_dir.mkdir(parents=True, exist_ok=True)
    imaging.save_png(out_dir / "input.png", hwc(pixels))
    imaging.save_png(out_dir / "reconstruction.png", hwc(result.reconstruction))
    if targets:
        strip = edit.transfer(G, spec, result.z, targets)
        imaging.save_png(out_dir / "transfer.png", imaging.grid(torch.cat([pixels[None], strip]), nrow=len(targets) + 1))
        record["transfer_to"] = [_name(spec, t) for t in targets]
    write_json_atomic(out_dir / "edit.json", record)
    found = f" as [bold]{record['category']}[/]" if record["category"] else ""
    out.print(f"inverted {image}{found}: PSNR {result.psnr:.2f} dB, SSIM {result.ssim:.3f} -> {out_dir}")
    for note in notes:
        out.print(f"[yellow]note:[/] input {note}")


@app.command()
def interpolate(
    out_file: Path = typer.Option(..., "--out", help="Strip PNG to write (its record goes beside it as .json)."),
    seed_a: Optional[int] = typer.Option(None, help="Seed of the first latent [default: 0]."),
    seed_b: Optional[int] = typer.Option(None, help="Seed of the last latent [default: 1]."),
    category_a: Optional[str] = typer.Option(None, help="Category at the start (conditional models)."),
    category_b: Optional[str] = typer.Option(None, help="Category at the end [default: category-a]."),
    from_a: Optional[Path] = typer.Option(None, help=FROM_HELP + " Replaces --seed-a."),
    from_b: Optional[Path] = typer.Option(None, help=FROM_HELP + " Replaces --seed-b."),
    steps: int = typer.Option(8, help="Images in the strip (2..64)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help=MODEL_HELP),
    bundle: Optional[Path] = typer.Option(None, help=BUNDLE_HELP),
) -> None:
    """A strip that moves smoothly from one product (and category) to another.

    Example: prodgan edit interpolate --seed-a 1 --seed-b 2 --category-a pullover --category-b coat --out strip.png
    """
    from prodgan import edit, imaging

    G, spec, source = load_generator(model, bundle)
    za, ca, how_a = _start(spec, seed_a, category_a, from_a)
    if from_b is None:
        seed_b = 1 if seed_b is None else seed_b
        category_b = category_b or _name(spec, ca)
    zb, cb, how_b = _start(spec, seed_b, category_b, from_b)
    strip = edit.interpolate(G, spec, za, zb, ca, cb, steps)
    meta = _write(out_file, imaging.grid(strip, nrow=steps), {"action": "interpolate", "source": source, "start": how_a, "end": how_b, "steps": steps})
    out.print(f"wrote a {steps}-image interpolation to {out_file} (record {meta})", highlight=False)


@app.command()
def transfer(
    out_file: Path = typer.Option(..., "--out", help="PNG to write: the product first, then one image per target category."),
    to: list[str] = typer.Option(..., "--to", help="Target category (repeatable)."),
    seed: Optional[int] = typer.Option(None, help="Seed of the product's latent [default: 0]."),
    category: Optional[str] = typer.Option(None, help="The product's own category [default: the first]."),
    from_inversion: Optional[Path] = typer.Option(None, help=FROM_HELP),
    model: Optional[str] = typer.Option(None, "--model", "-m", help=MODEL_HELP),
    bundle: Optional[Path] = typer.Option(None, help=BUNDLE_HELP),
) -> None:
    """Keep a product's latent (its style) and render it as other categories.

    Example: prodgan edit transfer --seed 3 --category pullover --to coat --to shirt --out transfer.png
    """
    from prodgan import edit, imaging

    G, spec, source = load_generator(model, bundle)
    z, own, how = _start(spec, seed, category, from_inversion)
    targets = _categories(spec, to)
    images = edit.transfer(G, spec, z, [own, *targets])
    record = {"action": "transfer", "source": source, "start": how, "to": [_name(spec, t) for t in targets]}
    meta = _write(out_file, imaging.grid(images, nrow=len(targets) + 1), record)
    out.print(f"wrote {_name(spec, own)} -> {', '.join(record['to'])} to {out_file} (record {meta})", highlight=False)
