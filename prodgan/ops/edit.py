"""Use case: edit product images with a generator: invert a photo, interpolate, transfer category.

Every edit writes its picture(s) and a JSON record of what was done (model, seeds, latents,
categories, quality), so an edit can be reproduced or continued (`from_inversion`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prodgan.errors import ProdganError
from prodgan.ops.serve import load_generator
from prodgan.settings import Settings


def _category(spec: Any, value: str | None) -> int | None:
    from prodgan.generate import category_index

    return category_index(spec, value)


def _categories(spec: Any, values: list[str]) -> list[int]:
    picked = [_category(spec, v) for v in values]
    if not picked:
        raise ProdganError(
            f"give at least one target category with --to ({', '.join(spec.categories)})"
        )
    return picked


def _name(spec: Any, index: int | None) -> str | None:
    return None if index is None else spec.categories[index]


def _start(
    spec: Any, seed: int | None, category: str | None, inversion: Path | None
) -> tuple[Any, int | None, dict[str, Any]]:
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
            raise ProdganError(
                f"{inversion} is not an edit.json written by `prodgan edit invert` ({exc})"
            ) from None
        if z.shape != (spec.z_dim,):
            raise ProdganError(
                f"{inversion} holds a {list(z.shape)} latent "
                f"but this generator takes {spec.z_dim}: use the same model"
            )
        index = _category(spec, category if category is not None else record.get("category"))
        return z, index, {"from_inversion": str(inversion), "category": _name(spec, index)}
    seed = 0 if seed is None else seed
    index = _category(spec, category)
    if spec.num_classes and index is None:
        index = 0
    return latents(1, spec.z_dim, seed)[0], index, {"seed": seed, "category": _name(spec, index)}


def _write(png: Path, pixels: Any, record: dict[str, Any]) -> dict[str, Any]:
    """The picture at `png`, the record beside it as `<png stem>.json`."""
    from prodgan import imaging
    from prodgan.fsutil import write_json_atomic

    imaging.save_png(png, pixels)
    meta = Path(png).with_suffix(".json")
    write_json_atomic(meta, record)
    return {**record, "out": str(png), "record": str(meta)}


def invert(
    settings: Settings,
    image: Path,
    out_dir: Path,
    to: list[str],
    model: str | None = None,
    bundle: Path | None = None,
    seed: int = 0,
    restarts: int = 4,
    steps: int = 400,
) -> dict[str, Any]:
    """Find the latent (and category) whose image is closest to a photo; PSNR and SSIM in the
    record."""
    import torch

    from prodgan import edit, imaging
    from prodgan.fsutil import write_json_atomic
    from prodgan.generate import hwc

    edit.check_image(image)  # a bomb is refused from its header, before the model loads
    G, spec, source = load_generator(settings, model, bundle, purpose="edit with")
    if not getattr(G, "differentiable", True):
        raise ProdganError(
            "this generator is an ONNX model: inverting a photo needs gradients through it, which "
            "ONNX Runtime does not give; import a .pt2 or TorchScript export to invert "
            "(interpolate within a category and transfer work on ONNX), see docs/generators.md"
        )
    targets = _categories(spec, to) if to else []
    pixels, notes = edit.load_image(image, spec)
    search = max(1, steps * 3 // 8)
    result = edit.invert(
        G,
        spec,
        pixels[None],
        seed=seed,
        restarts=restarts,
        search_steps=search,
        refine_steps=steps - search,
    )[0]
    record = {
        "action": "invert",
        "source": source,
        "image": str(image),
        "input_notes": notes,
        "seed": seed,
        "restarts": restarts,
        "steps": steps,
        "category": _name(spec, result.category),
        "psnr_db": round(result.psnr, 3),
        "ssim": round(result.ssim, 4),
        "latent": result.z.tolist(),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    imaging.save_png(out_dir / "input.png", hwc(pixels))
    imaging.save_png(out_dir / "reconstruction.png", hwc(result.reconstruction))
    if targets:
        strip = edit.transfer(G, spec, result.z, targets)
        imaging.save_png(
            out_dir / "transfer.png",
            imaging.grid(torch.cat([pixels[None], strip]), nrow=len(targets) + 1),
        )
        record["transfer_to"] = [_name(spec, t) for t in targets]
    write_json_atomic(out_dir / "edit.json", record)
    return record


def interpolate(
    settings: Settings,
    out_file: Path,
    *,
    seed_a: int | None = None,
    seed_b: int | None = None,
    category_a: str | None = None,
    category_b: str | None = None,
    from_a: Path | None = None,
    from_b: Path | None = None,
    steps: int = 8,
    model: str | None = None,
    bundle: Path | None = None,
) -> dict[str, Any]:
    """A strip that moves smoothly from one product (and category) to another."""
    from prodgan import edit, imaging

    G, spec, source = load_generator(settings, model, bundle, purpose="edit with")
    za, ca, how_a = _start(spec, seed_a, category_a, from_a)
    if from_b is None:
        seed_b = 1 if seed_b is None else seed_b
        category_b = category_b or _name(spec, ca)
    zb, cb, how_b = _start(spec, seed_b, category_b, from_b)
    strip = edit.interpolate(G, spec, za, zb, ca, cb, steps)
    return _write(
        out_file,
        imaging.grid(strip, nrow=steps),
        {"action": "interpolate", "source": source, "start": how_a, "end": how_b, "steps": steps},
    )


def transfer(
    settings: Settings,
    out_file: Path,
    to: list[str],
    *,
    seed: int | None = None,
    category: str | None = None,
    from_inversion: Path | None = None,
    model: str | None = None,
    bundle: Path | None = None,
) -> dict[str, Any]:
    """Keep a product's latent (its style) and render it as its own and other categories."""
    from prodgan import edit, imaging

    G, spec, source = load_generator(settings, model, bundle, purpose="edit with")
    z, own, how = _start(spec, seed, category, from_inversion)
    targets = _categories(spec, to)
    images = edit.transfer(G, spec, z, [own, *targets])
    record = {
        "action": "transfer",
        "source": source,
        "start": how,
        "from": _name(spec, own),
        "to": [_name(spec, t) for t in targets],
    }
    return _write(out_file, imaging.grid(images, nrow=len(targets) + 1), record)
