"""Evaluation throughput of one network in every format prodgan loads: its native bundle (the
baseline), and the same weights exported as `.pt2`, TorchScript and ONNX and imported.

Each is loaded the way evaluation loads it (`prodgan.models.load_bundle`, through
`formats.load_generator`) and timed on evaluation's generation step (`generate_uint8`: seeded
latents and labels, fp32, batches of 256, uint8 out); Inception's part of an evaluation does not
depend on the format. An interleaved A/B per format: in each of --rounds alternations the native
bundle and the format run back to back (ABBA: the order flips every round, so a drift in the
machine's load falls on both alike), giving one time ratio per alternation; the printed ratio is
their median, with the quartiles beside it, for CPU time (this process's, which other processes
on a shared machine do not inflate: the stable number) and for wall time. A best-of-N over
separate runs swung from +11 % to +88 % for `.pt2` on a loaded machine. ONNX Runtime runs its
own thread pool whatever --threads says, so its CPU time also counts that pool's threads.

    python bench/generator_formats.py [--images 256] [--rounds 15] [--threads 1]
        [--width 64] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BASELINE = "native bundle"
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


def _seconds(loaded: tuple, n: int, seed: int, device: str) -> tuple[float, float]:
    """(wall, CPU) seconds of one generation call. CPU time is what this process spent computing,
    so other processes taking the cores away do not count in it."""
    from prodgan.models import generate_uint8

    generator, spec = loaded
    wall, cpu = time.perf_counter(), time.process_time()
    generate_uint8(generator, spec, n, seed=seed, device=device, batch=256)
    return time.perf_counter() - wall, time.process_time() - cpu


def paired_ratios(loaded: dict, n: int, rounds: int, device: str) -> dict[str, dict[str, list]]:
    """Per format: its wall and CPU time ratios to the native bundle, one per alternation, and
    the images/s (wall) of every call (the native bundle's from all its pairings)."""
    from prodgan.models import generate_uint8

    for generator, spec in loaded.values():
        generate_uint8(generator, spec, 256, seed=0, device=device)  # warm-up
    found = {name: {"wall": [], "cpu": [], "rate": []} for name in loaded}
    for round_ in range(rounds):
        for name in loaded:
            if name == BASELINE:
                continue
            order = (BASELINE, name) if round_ % 2 == 0 else (name, BASELINE)
            taken = {which: _seconds(loaded[which], n, round_, device) for which in order}
            for i, clock in enumerate(("wall", "cpu")):
                found[name][clock].append(taken[name][i] / taken[BASELINE][i])
            for which, (wall, _) in taken.items():
                found[which]["rate"].append(n / wall)
    return found


def _spread(ratios: list[float]) -> str:
    low, mid, high = statistics.quantiles(ratios, n=4)
    return f"{mid:5.3f} ({(mid - 1) * 100:+5.1f} %) quartiles {low:.3f}..{high:.3f}"


def main() -> None:
    import torch

    from prodgan.models import GeneratorSpec, build_generator, load_bundle, save_bundle
    from prodgan.models.bundle import save_imported_bundle
    from prodgan.models.contract import GeneratorContract, check_contract
    from prodgan.models.formats import IMPORTED, load_raw, raw_call

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256, help="images per timed call")
    parser.add_argument("--rounds", type=int, default=15, help="A/B alternations per format")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: default)")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

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
        loaded[BASELINE] = load_bundle(native, device=args.device)
        for kind, ext in (("pt2", ".pt2"), ("torchscript", ".pt"), ("onnx", ".onnx")):
            path = export(generator, kind, Path(tmp) / f"g{ext}", spec.z_dim)
            check_contract(raw_call(load_raw(kind, path), True), contract)
            bundle = save_imported_bundle(
                Path(tmp) / kind, kind, path, imported_spec, contract, None, {}
            )
            loaded[kind] = load_bundle(bundle, device=args.device)
        found = paired_ratios(loaded, args.images, args.rounds, args.device)

    print(
        f"generation step of an evaluation: {args.images} images per call, cdcgan width "
        f"{args.width}, 28x28, {args.device}, {torch.get_num_threads()} torch thread(s), torch "
        f"{torch.__version__}; {args.rounds} ABBA alternations per format; ratios are "
        "format time / native time, medians over the alternations"
    )
    print(f"  {BASELINE:14s} {statistics.median(found[BASELINE]['rate']):7.0f} images/s")
    for name, got in found.items():
        if name != BASELINE:
            print(
                f"  {name:14s} {statistics.median(got['rate']):7.0f} images/s  "
                f"CPU {_spread(got['cpu'])}  wall {_spread(got['wall'])}"
            )


if __name__ == "__main__":
    main()
