"""Use cases: generate images from a model (files) and serve it over HTTP; the loader `edit` shares.

Registered models are verified (the chain, the aliases and this version, `ops.verification`)
before their weights are loaded, from one production state read once per command;
`@champion`/`@previous` load the promoter's copy, each file checked against its signed record. What
is verified is the local copy that is loaded (and served); a local bundle is loaded as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prodgan.adapters import tracking
from prodgan.adapters.model_store import ResolvedModel
from prodgan.adapters.production_state import ProductionState
from prodgan.errors import ProdganError
from prodgan.names import ModelRef, model_ref
from prodgan.ops.verification import require_verified
from prodgan.settings import Settings

MAX_CLI_IMAGES = 4096


def load_generator(
    settings: Settings,
    model: str | None = None,
    bundle: Path | None = None,
    device: str = "cpu",
    force: bool = False,
    purpose: str = "generate from",
) -> tuple[Any, Any, dict[str, Any]]:
    """(generator, spec, where it came from) for a model reference (default `@champion`) or a local
    bundle."""
    from prodgan.models.bundle import load_bundle

    ref = model_ref(model, bundle, settings.model_name)
    if ref.bundle is not None:
        generator, spec = load_bundle(ref.bundle, device=device)
        return generator, spec, {"bundle": str(ref.bundle.resolve())}
    resolved = verified_model(settings, ref, force, f"{purpose} {ref.uri}")
    generator, spec = load_bundle(resolved.bundle_dir, device=device)
    return generator, spec, {"model_uri": ref.uri, **resolved.info()}


def _labelled_grid(spec: Any, request: Any, images: Any, nrow: int) -> Any:
    """The grid a person reads: titled with the category asked, or one titled column per category
    when none was asked; untitled for an unconditional generator."""
    from prodgan import imaging

    if not spec.num_classes:
        return imaging.grid(images, nrow=nrow)
    if request.category is None:
        return imaging.column_titled_grid(images, list(spec.categories))
    return imaging.labelled_sheet([(spec.categories[request.category], images)], nrow=nrow)


def generate(
    settings: Settings,
    model: str | None = None,
    bundle: Path | None = None,
    *,
    seed: int = 0,
    category: str | None = None,
    n: int = 64,
    out_file: Path | None = None,
    out_dir: Path | None = None,
    nrow: int = 8,
    force: bool = False,
) -> dict[str, Any]:
    """Write a grid PNG (`out_file`) or one PNG per image plus generate.json (`out_dir`); returns
    the record."""
    from prodgan import imaging
    from prodgan.fsutil import atomic_dir, write_json_atomic
    from prodgan.generate import generate as generate_images
    from prodgan.generate import hwc, parse_request

    if (out_file is None) == (out_dir is None):
        raise ProdganError(
            "give exactly one of --out FILE.png (a grid) or --out-dir DIR (one PNG per image)"
        )
    if (
        out_dir is not None
        and out_dir.exists()
        and any(out_dir.iterdir())
        and not (out_dir / "generate.json").is_file()
    ):
        raise ProdganError(
            f"{out_dir} already holds other files: pass a new or empty folder to --out-dir"
        )
    G, spec, source = load_generator(settings, model, bundle, force=force)
    request = parse_request(spec, seed, category, n, max_images=MAX_CLI_IMAGES)
    images, labels = generate_images(G, spec, request)
    names = [spec.categories[int(c)] for c in labels] if labels is not None else [None] * request.n
    record = {
        "source": source,
        "seed": request.seed,
        "n": request.n,
        "category": None if request.category is None else spec.categories[request.category],
    }
    if out_file is not None:
        imaging.save_png(out_file, _labelled_grid(spec, request, images, nrow))
        return {**record, "grid": str(out_file)}
    with atomic_dir(out_dir) as tmp:
        files = []
        for i in range(request.n):
            name = f"{i:04d}" + (f"-{names[i]}" if names[i] else "") + ".png"
            imaging.save_png(tmp / name, hwc(images[i]))
            files.append({"file": name, "index": i, "category": names[i]})
        write_json_atomic(tmp / "generate.json", {**record, "images": files})
    return {**record, "folder": str(out_dir)}


def verified_model(settings: Settings, ref: ModelRef, force: bool, purpose: str) -> ResolvedModel:
    """The verified local copy a registered reference names: one production state read, the
    copy resolved (downloaded once, hashed), then the registry verified against that same copy."""
    with tracking.reachable(settings, f"loading {ref.uri}"):
        state, ref = ProductionState.for_ref(settings, ref)
        resolved = state.resolve(ref)
        require_verified(state, force, purpose=purpose, version=resolved.trained_version)
    return resolved


def serve_target(
    settings: Settings, model: str | None = None, force: bool = False
) -> ResolvedModel:
    """The verified model to serve (default `@champion`); a clear error before any server starts."""
    ref = model_ref(model, None, settings.model_name)
    if not ref.registered:
        raise ProdganError(
            f"{ref.uri} is not a registered model: serve models:/NAME@ALIAS or models:/NAME/VERSION"
        )
    return verified_model(settings, ref, force, f"serve {ref.uri}")


def serve(
    settings: Settings,
    target: ResolvedModel,
    host: str,
    port: int,
    max_body_bytes: int | None = None,
) -> None:
    """MLflow's scoring server for prodgan's installed model code around the verified local bundle
    (what was hashed is what is served; no stored code runs), behind the body-size cap; blocks
    until stopped."""
    import tempfile

    from prodgan.adapters import serving

    settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.tmp_dir) as workdir:
        serving.serve(
            target.bundle_dir,
            target.bundle_hashes,
            Path(workdir),
            host,
            port,
            max_body_bytes or serving.MAX_BODY_BYTES,
        )
