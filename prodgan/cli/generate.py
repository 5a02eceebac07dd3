"""`prodgan generate` and `prodgan serve`: images from a registered generator, in files or over HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from prodgan.console import out
from prodgan.errors import ProdganError
from prodgan.settings import Settings

MODEL_HELP = "Model URI: models:/NAME@ALIAS, models:/NAME/VERSION or runs:/RUN_ID/... [default: models:/<model_name>@champion]"
BUNDLE_HELP = "A local generator bundle folder (generator.pt + generator.json) instead of a registry model."
MAX_CLI_IMAGES = 4096


def default_model_uri(settings: Settings) -> str:
    return f"models:/{settings.model_name}@champion"


FORCE_HELP = "Use the registry even if `prodgan audit verify` fails (the bypass is audited)."


def load_generator(model: Optional[str], bundle: Optional[Path], device: str = "cpu",
                   force: bool = False) -> tuple[Any, Any, dict[str, Any]]:
    """(generator, spec, where it came from) from a registry URI or a local bundle."""
    from prodgan.models.bundle import load_bundle

    if model and bundle:
        raise ProdganError("give either --model or --bundle, not both")
    if bundle:
        generator, spec = load_bundle(bundle, device=device)
        return generator, spec, {"bundle": str(Path(bundle).resolve())}
    from prodgan.registry import resolve_model
    from prodgan.verify import require_verified

    settings = Settings.load()
    uri = model or default_model_uri(settings)
    resolved = resolve_model(uri, settings=settings)
    require_verified(settings, force, purpose=f"generate from {uri}", version=resolved.version)
    generator, spec = load_bundle(resolved.bundle_dir, device=device)
    return generator, spec, {"model_uri": uri, **resolved.info()}


def generate(
    model: Optional[str] = typer.Option(None, "--model", "-m", help=MODEL_HELP),
    bundle: Optional[Path] = typer.Option(None, help=BUNDLE_HELP),
    category: Optional[str] = typer.Option(None, help="Category name or index; default: all categories, balanced."),
    n: int = typer.Option(64, "-n", "--count", help="How many images."),
    seed: int = typer.Option(0, help="Same seed, same model -> same images."),
    out_file: Optional[Path] = typer.Option(None, "--out", help="Write one grid PNG here."),
    out_dir: Optional[Path] = typer.Option(None, help="Write one PNG per image into this folder."),
    nrow: int = typer.Option(8, help="Images per grid row."),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
) -> None:
    """Generate product images, deterministic for a seed.

    Example: prodgan generate --model models:/prodgan-generator@champion --category sneaker -n 64 --seed 1 --out grid.png
    """
    from prodgan import imaging
    from prodgan.fsutil import atomic_dir, write_json_atomic
    from prodgan.generate import generate as generate_images
    from prodgan.generate import hwc, parse_request

    if (out_file is None) == (out_dir is None):
        raise ProdganError("give exactly one of --out FILE.png (a grid) or --out-dir DIR (one PNG per image)")
    G, spec, source = load_generator(model, bundle, force=force)
    request = parse_request(spec, seed, category, n, max_images=MAX_CLI_IMAGES)
    images, labels = generate_images(G, spec, request)
    names = [spec.categories[int(c)] for c in labels] if labels is not None else [None] * request.n
    record = {"source": source, "seed": request.seed, "n": request.n,
              "category": None if request.category is None else spec.categories[request.category]}
    if out_file is not None:
        imaging.save_png(out_file, imaging.grid(images, nrow=nrow))
        out.print(f"wrote a grid of {request.n} images to {out_file}")
        return
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / "generate.json").is_file():
        raise ProdganError(f"{out_dir} already holds other files: pass a new or empty folder to --out-dir")
    with atomic_dir(out_dir) as tmp:
        files = []
        for i in range(request.n):
            name = f"{i:04d}" + (f"-{names[i]}" if names[i] else "") + ".png"
            imaging.save_png(tmp / name, hwc(images[i]))
            files.append({"file": name, "index": i, "category": names[i]})
        write_json_atomic(tmp / "generate.json", {**record, "images": files})
    out.print(f"wrote {request.n} PNGs and generate.json to {out_dir}")


def serve(
    model: Optional[str] = typer.Option(None, "--model", "-m", help=MODEL_HELP),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (127.0.0.1 = this machine only)."),
    port: int = typer.Option(5001, help="TCP port."),
    max_body_bytes: Optional[int] = typer.Option(None, help="Refuse request bodies over this size with 413 [default: 64 KiB]."),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
) -> None:
    """Serve the generator over HTTP: MLflow's scoring server (POST /invocations) plus a request-size cap.

    Example: prodgan serve --model models:/prodgan-generator@champion --port 5001
    """
    from prodgan import serving
    from prodgan.registry import resolve_model
    from prodgan.verify import require_verified

    settings = Settings.load()
    uri = model or default_model_uri(settings)
    resolved = resolve_model(uri, settings=settings)  # a clear error for a missing model, before the server starts
    if not resolved.version:
        raise ProdganError(f"{uri} is not a registered model: serve models:/NAME@ALIAS or models:/NAME/VERSION")
    require_verified(settings, force, purpose=f"serve {uri}", version=resolved.version)
    pinned = f"models:/{resolved.name}/{resolved.version}"
    out.print(f"serving {uri} ({pinned}) on http://{host}:{port}/invocations (Ctrl+C stops)", highlight=False)
    serving.serve(pinned, host, port, max_body_bytes or serving.MAX_BODY_BYTES)


def register(root: typer.Typer) -> None:
    root.command("generate")(generate)
    root.command("serve")(serve)
