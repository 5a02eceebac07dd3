"""configs/products64.yaml with and without DiffAugment: same steps, FID against the test split, memorization.

Data: clothing-small imported at 64x64 (`--fit pad`, the importer's policy) as uint8 arrays in one
.npz (train = train + validation photos, 3,409; test, 372), made here with `prepare` and carried to
a GPU box: the GPU side needs python3 + torch/numpy/yaml/rich/pillow only (no MLflow, DVC, GX or
torch-fidelity), like bench/gpu_recipe.py.

    # here: import once, write the arrays (about 30 MB compressed)
    .venv/bin/python bench/products_recipe.py prepare --out .gpu_carry/clothing64.npz
    # CPU: both variants at a size that fits ~10 minutes on 2 cores, then evaluate here
    .venv/bin/python bench/products_recipe.py run --data .gpu_carry/clothing64.npz --cpu
    # GPU box (repository root, the .npz carried): full recipe, train only, samples into $OUT (2 x ~9 MiB)
    PYTHONPATH=. python3 bench/products_recipe.py run --data .gpu_carry/clothing64.npz --train-only --out $OUT
    # back here: evaluate the samples the GPU run wrote
    .venv/bin/python bench/products_recipe.py evaluate --data .gpu_carry/clothing64.npz --runs DIR

Metrics (evaluate, CPU, the project's metrics code and Inception weights): FID of the N samples each
run kept (`--samples`, 1000: EMA generator, seed 0, categories in the test split's proportions, exact
fp32) vs all 372 test photos; memorization_N = share of
generated images closer (pixels) to a training photo than the `memorization_quantile` of test photos
are: a generator that copies its few hundred photos per category scores high.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if importlib.util.find_spec("prodgan") is None:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from prodgan.data.tensors import ImageSplit  # noqa: E402

SEED = 0  # prodgan.metrics.defaults DEFAULTS["seed"]: the generated side `prodgan evaluate` uses
VARIANTS = {"diffaugment": "color,translation,cutout", "none": ""}
# What 2 shared CPU cores afford in ~10 minutes for both variants (measured ~1-2 s per step at this size).
CPU_SIZE = ["width=16", "d_width=16", "batch_size=32", "steps=150", "eval_every=0", "device=cpu", "threads=1",
            "checkpoint_every=1000", "grid_every=1000", "log_every=25"]


def prepare(out: Path) -> None:
    from prodgan.data.folder import write_folder
    from prodgan.data.tensors import decode_split
    from prodgan.settings import shared_dataset

    with tempfile.TemporaryDirectory() as tmp:
        report = write_folder(shared_dataset("clothing-small"), Path(tmp), "clothing", size=64, fit="pad")
        arrays = {}
        for split in ("train", "test"):
            arrays[f"{split}_images"], arrays[f"{split}_labels"] = decode_split(Path(tmp), report.meta, split)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, categories=np.array(report.meta.categories), **arrays)
    print(f"{out}: {len(arrays['train_labels'])} train + {len(arrays['test_labels'])} test, {out.stat().st_size / 2**20:.1f} MiB")


def load(path: Path) -> tuple[ImageSplit, ImageSplit]:
    import hashlib

    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    with np.load(path) as z:
        cats = tuple(str(c) for c in z["categories"])
        return tuple(ImageSplit(z[f"{s}_images"], z[f"{s}_labels"].astype(np.int64), cats, "clothing", s, f"npz-{digest}")
                     for s in ("train", "test"))


def train_variants(data: Path, out: Path, overrides: list[str], samples: int) -> dict[str, dict]:
    """Train both variants; keep each EMA generator's `samples` images (the evaluated side) in samples.npz."""
    import torch

    from prodgan.models import load_bundle
    from prodgan.models.sampling import exact_fp32, generate_uint8, labels_like
    from prodgan.train import train
    from prodgan.train_config import load_config

    train_split, test_split = load(data)
    rows = {}
    for name, policy in VARIANTS.items():
        cfg = replace(load_config(ROOT / "configs" / "products64.yaml", overrides), diffaugment=policy)
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as run_dir:  # checkpoints and the 30 MiB bundle stay behind; samples travel
            result = train(cfg, train_split, Path(run_dir), progress=False)
            G, spec = load_bundle(result.bundle_dir)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        with exact_fp32():  # as `prodgan evaluate` generates: seed 0, categories in the test split's proportions
            labels = labels_like(test_split.labels, samples, spec.num_classes, SEED)
            images = generate_uint8(G.to(device), spec, samples, SEED, labels=labels, device=device).numpy()
        (out / name).mkdir(parents=True, exist_ok=True)
        np.savez_compressed(out / name / "samples.npz", images=images, labels=labels.numpy())
        rows[name] = {"steps": result.step, "train_s": time.perf_counter() - start, "device": device,
                      "loss_d": result.metrics.get("loss_d"), "loss_g": result.metrics.get("loss_g")}
        print(f"{name}: {result.step} steps in {rows[name]['train_s']:.0f} s on {device}", flush=True)
    (out / "train.json").write_text(json.dumps(rows, indent=2))
    return rows


def evaluate(data: Path, runs: Path) -> None:
    """FID of each variant's samples vs all test photos (Inception 2048-d), and memorization vs the train split."""
    from prodgan.metrics.defaults import DEFAULTS
    from prodgan.metrics.features import extract, make_extractor
    from prodgan.metrics.fid import fid
    from prodgan.metrics.inception_weights import resolve_inception_weights
    from prodgan.metrics.memorization import memorization
    from prodgan.models.sampling import exact_fp32
    from prodgan.settings import Settings

    train_split, test_split = load(data)
    trained = json.loads((runs / "train.json").read_text())
    weights = resolve_inception_weights(Settings.load().cache_dir)
    with exact_fp32():
        inception = make_extractor(DEFAULTS["extractor"], ["2048"], str(weights.path), "cpu")
        real = extract(test_split.images, inception, "real")["2048"]
        print(f"\n{'variant':<12} {'steps':>6} {'train s':>8} {'samples':>8} {'fid vs test':>12} {'memorization':>13}")
        for name, row in trained.items():
            with np.load(runs / name / "samples.npz") as z:
                images = z["images"]
            value = fid(extract(images, inception, "generated")["2048"], real)
            copied = memorization(images, train_split.images, test_split.images, quantile=DEFAULTS["memorization_quantile"])
            print(f"{name:<12} {row['steps']:>6} {row['train_s']:>8.0f} {len(images):>8} {value:>12.1f} {copied:>13.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--out", type=Path, required=True)
    r = sub.add_parser("run")
    r.add_argument("--data", type=Path, required=True)
    r.add_argument("--out", type=Path)
    r.add_argument("--cpu", action="store_true", help="the CPU size (CPU_SIZE) instead of the full recipe")
    r.add_argument("--train-only", action="store_true", help="GPU box: train both variants, evaluate later here")
    r.add_argument("--samples", type=int, default=1000)
    r.add_argument("--set", dest="overrides", action="append", default=[], help="config override key=value")
    e = sub.add_parser("evaluate")
    e.add_argument("--data", type=Path, required=True)
    e.add_argument("--runs", type=Path, required=True)
    args = parser.parse_args()
    if args.command == "prepare":
        return prepare(args.out)
    if args.command == "evaluate":
        return evaluate(args.data, args.runs)
    out = args.out or Path(tempfile.mkdtemp(prefix="prodgan-products-recipe-"))
    train_variants(args.data, out, [*(CPU_SIZE if args.cpu else []), *args.overrides], args.samples)
    if not args.train_only:
        evaluate(args.data, out)
    print(f"runs in {out}")


if __name__ == "__main__":
    main()
