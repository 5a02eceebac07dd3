"""Evaluation throughput of one network in every format prodgan loads: its native bundle (the
baseline), and the same weights exported as `.pt2`, TorchScript and ONNX and imported.

Each is loaded the way evaluation loads it (`prodgan.models.load_bundle`, through
`formats.load_generator`) and timed on evaluation's generation step (`generate_uint8`: seeded
latents and labels, fp32, batches of 256, uint8 out); Inception's part of an evaluation does not
depend on the format. Formats interleaved in each of REPEATS rounds, best round per format,
images/s, and each format's time ratio to the native bundle.

    python bench/generator_formats.py [--images 2048] [--width 64] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REPEATS = 3
CATEGORIES = tuple(f"c{i}" for i in range(10))


def export(generator, kind: str, path: Path, z_dim: int) -> Path:
    """docs/generators.md's recipes (TorchScript traced here, as that page allows)."""
    import torch

    example = (torch.randn(2, z_dim), torch.tensor([0, 1]))
    n = torch.export.Dim("n", min=1, max=4096)
    shapes = {"z": {0: n}, "labels": {0: n}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "pt2":
            torch.export.save(torch.export.export(generator, example, dynamic_shapes=shapes), path)
        elif kind == "torchscript":  # traced: prodgan's Generator has an Optional label input
            torch.jit.save(torch.jit.trace(generator, example), str(path))
        else:
            torch.onnx.export(
                generator,
                example,
                str(path),
                dynamo=True,
                external_data=False,
                dynamic_shapes=shapes,
                input_names=["z", "labels"],
                verbose=False,
            )
    return path


def images_per_second(loaded: dict, n: int, device: str) -> dict[str, float]:
    """Best of REPEATS per format, the formats interleaved in each round (a shared machine's load
    then falls on all of them alike)."""
    from prodgan.models import generate_uint8

    best = dict.fromkeys(loaded, float("inf"))
    for generator, spec in loaded.values():
        generate_uint8(generator, spec, 256, seed=0, device=device)  # warm-up
    for repeat in range(REPEATS):
        for name, (generator, spec) in loaded.items():
            tick = time.perf_counter()
            generate_uint8(generator, spec, n, seed=repeat, device=device, batch=256)
            best[name] = min(best[name], time.perf_counter() - tick)
    return {name: n / seconds for name, seconds in best.items()}


def main() -> None:
    import torch

    from prodgan.models import GeneratorSpec, build_generator, load_bundle, save_bundle
    from prodgan.models.bundle import save_imported_bundle
    from prodgan.models.contract import GeneratorContract, check_contract
    from prodgan.models.formats import IMPORTED, load_raw, raw_call

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    spec = GeneratorSpec("cdcgan", 64, len(CATEGORIES), 1, 28, args.width, CATEGORIES)
    torch.manual_seed(0)
    generator = build_generator(spec).eval()
    for module in generator.modules():  # fresh category embeddings are zero: make labels matter
        if isinstance(module, torch.nn.Embedding):
            torch.nn.init.normal_(module.weight, 0.0, 0.5)
    contract = GeneratorContract(z_dim=64, channels=1, resolution=28, categories=CATEGORIES)
    imported_spec = GeneratorSpec(IMPORTED, 64, len(CATEGORIES), 1, 28, 0, CATEGORIES)
    loaded = {}
    with tempfile.TemporaryDirectory() as tmp:
        native = save_bundle(Path(tmp) / "native", generator, spec)
        loaded["native bundle"] = load_bundle(native, device=args.device)
        for kind, ext in (("pt2", ".pt2"), ("torchscript", ".pt"), ("onnx", ".onnx")):
            path = export(generator, kind, Path(tmp) / f"g{ext}", spec.z_dim)
            check_contract(raw_call(load_raw(kind, path), True), contract)
            bundle = save_imported_bundle(
                Path(tmp) / kind, kind, path, imported_spec, contract, None, {}
            )
            loaded[kind] = load_bundle(bundle, device=args.device)
        results = images_per_second(loaded, args.images, args.device)

    base = results["native bundle"]
    print(
        f"generation step of an evaluation: {args.images} images, cdcgan width {args.width}, "
        f"28x28, {args.device}, torch {torch.__version__}, best of {REPEATS}"
    )
    for name, rate in results.items():
        overhead = (base / rate - 1) * 100
        print(
            f"  {name:14s} {rate:9.0f} images/s  time ratio {base / rate:5.2f}  ({overhead:+.0f} %)"
        )


if __name__ == "__main__":
    main()
