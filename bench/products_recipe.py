"""configs/products64.yaml with and without DiffAugment: same steps, FID against the test split,
memorization, inversion.

Data: clothing-small imported at 64x64 (`--fit pad`, the importer's policy) as uint8 arrays in one
.npz (train = train + validation photos, 3,409; test, 372), made here with `prepare` and carried to
a GPU box: the GPU side needs python3 + torch/numpy/yaml/rich/pillow only (no MLflow, DVC, GX or
torch-fidelity), like bench/gpu_recipe.py.

    # here: import once, write the arrays (about 30 MB compressed)
    .venv/bin/python bench/products_recipe.py prepare --out .gpu_carry/clothing64.npz
    # CPU: both variants at the CPU size (CPU_VIEW + CPU_SIZE, two processes), then evaluate here
    .venv/bin/python bench/products_recipe.py run --data .gpu_carry/clothing64.npz --cpu --out DIR
    # GPU box (repository root, the .npz carried): full recipe, train only, samples into $OUT (2 x
    ~9 MiB) PYTHONPATH=. python3 bench/products_recipe.py run --data .gpu_carry/clothing64.npz
    --train-only --out $OUT # back here: evaluate the samples the GPU run wrote
    .venv/bin/python bench/products_recipe.py evaluate --data .gpu_carry/clothing64.npz --runs DIR

The CPU size, and why (measured on the 2-core reference machine, one thread per process):
- 64x64 at the recipe's width 64 costs seconds per step; width 16 at 64x64 for 150 steps
(the first CPU
  size) measured only noise: both variants were equally bad, FID far above any trained model.
- DiffAugment pays off where D sees the same few photos many times (discriminator overfitting),
so the
  CPU size keeps *that* and shrinks everything else: 50 photos per category (500, seeded and
  stratified: `--per-category`), area-downsampled to 32x32 (`--size`; the test split the same way,
  so FID compares 32x32 images, each upsampled to 299 by the Inception resize: comparable between
  the two variants, not with 64x64 FIDs), width 32, batch 32 (~0.25 s a step): 1500 steps = ~100
  epochs of the 500 photos. The two variants train side by side in two processes of one thread each
  (`--jobs`, 2 with `--cpu`): 7-11 minutes measured on the shared machine (load average 3-3.7),
  evaluation ~10 more. EMA decay 0.995 from step 300: the recipe's 0.999 from step 1000 would still
  be averaging early generators at step 1500. Measured numbers: docs/training.md,
  "Small RGB catalogues".

Metrics (evaluate, CPU, the project's metrics code and Inception weights): FID of the N samples each
run kept (`--samples`, 1000: EMA generator, seed 0, categories in the test split's proportions,
exact fp32) vs all 372 test photos, with the paired bootstrap interval of the difference;
memorization_N = share of generated images closer (pixels) to a photo the run trained on than the
`memorization_quantile` of test photos are: a generator that copies its few photos per category
scores high. Inversion (runs that kept their bundle, i.e. not `--train-only`: two GPU bundles would
not fit the 64 MiB transfer): `--invert K` test photos (10: one per category, seeded) inverted into
each EMA generator with `prodgan.edit.invert` (150 + 250 Adam steps, its defaults; `--restarts` 1
start per category, not its 4: at width 32 a 4-restart search of 10 photos is 400 latents through G
and back for 150 steps, over 10 minutes per variant on the shared 2 cores): mean PSNR and SSIM, and
how often the category found is the true one. Reference: the best PSNR of 100 plain samples of the
true category, no optimisation: what inversion adds over picking the nearest sample.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if importlib.util.find_spec("prodgan") is None:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from prodgan.data.draws import balanced_draw  # noqa: E402
from prodgan.data.tensors import ImageSplit  # noqa: E402

SEED = 0  # prodgan.metrics.defaults DEFAULTS["seed"]: the generated side `prodgan evaluate` uses
VARIANTS = {"diffaugment": "color,translation,cutout", "none": ""}
# What 2 shared CPU cores afford in ~10 minutes for both variants: see the module docstring.
CPU_VIEW = {"size": 32, "per_category": 50}
CPU_SIZE = [
    "width=32",
    "d_width=32",
    "batch_size=32",
    "steps=1500",
    "ema_decay=0.995",
    "ema_start=300",
    "eval_every=0",
    "device=cpu",
    "threads=1",
    "checkpoint_every=1000",
    "grid_every=1000",
    "log_every=50",
]
REFERENCE_DRAWS = (
    100  # plain samples of the true category per photo: the no-optimisation reference PSNR
)


def prepare(out: Path) -> None:
    from prodgan.data.folder import write_folder
    from prodgan.data.tensors import decode_split
    from prodgan.settings import shared_dataset

    with tempfile.TemporaryDirectory() as tmp:
        report = write_folder(
            shared_dataset("clothing-small"), Path(tmp), "clothing", size=64, fit="pad"
        )
        arrays = {}
        for split in ("train", "test"):
            arrays[f"{split}_images"], arrays[f"{split}_labels"] = decode_split(
                Path(tmp), report.meta, split
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, categories=np.array(report.meta.categories), **arrays)
    print(
        f"{out}: {len(arrays['train_labels'])} train + {len(arrays['test_labels'])} test, "
        f"{out.stat().st_size / 2**20:.1f} MiB"
    )


def load(path: Path) -> tuple[ImageSplit, ImageSplit]:
    import hashlib

    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    with np.load(path) as z:
        cats = tuple(str(c) for c in z["categories"])
        return tuple(
            ImageSplit(
                z[f"{s}_images"],
                z[f"{s}_labels"].astype(np.int64),
                cats,
                "clothing",
                s,
                f"npz-{digest}",
            )
            for s in ("train", "test")
        )


def view_of(data: Path, view: dict) -> tuple[ImageSplit, ImageSplit]:
    """Train and test splits as a run saw them: area-downsampled to view["size"] (both splits),
    train cut to view["per_category"] photos per category
    (seeded, stratified). An empty view is the full 64x64 data."""
    import torch
    import torch.nn.functional as F

    train, test = load(data)
    if view.get("size"):

        def shrink(split: ImageSplit) -> ImageSplit:
            # area average
            x = F.adaptive_avg_pool2d(torch.from_numpy(split.images).float(), view["size"])
            return replace(
                split,
                images=x.round().to(torch.uint8).numpy(),
                data_hash=f"{split.data_hash}-{view['size']}px",
            )

        train, test = shrink(train), shrink(test)
    if view.get("per_category"):
        idx = np.sort(
            balanced_draw(train.labels, view["per_category"] * len(train.categories), SEED)
        )
        train = replace(
            train,
            images=train.images[idx],
            labels=train.labels[idx],
            data_hash=f"{train.data_hash}-{view['per_category']}pc",
        )
    return train, test


def train_variant(
    name: str,
    data: Path,
    view: dict,
    out: Path,
    overrides: list[str],
    samples: int,
    keep_bundle: bool,
) -> dict:
    """Train one variant; keep its EMA generator's `samples` images (the evaluated side) in
    samples.npz, and its bundle when `keep_bundle` (for the inversion in `evaluate`)."""
    import torch

    from prodgan.models import load_bundle
    from prodgan.models.sampling import exact_fp32, generate_uint8, labels_like
    from prodgan.training.config import load_config
    from prodgan.training.loop import train

    train_split, test_split = view_of(data, view)
    cfg = replace(
        load_config(ROOT / "configs" / "products64.yaml", overrides), diffaugment=VARIANTS[name]
    )
    start = time.perf_counter()
    with (
        tempfile.TemporaryDirectory() as run_dir
    ):  # checkpoints stay behind; samples (and a small bundle) travel
        result = train(cfg, train_split, Path(run_dir), progress=False)
        train_s = time.perf_counter() - start
        G, spec = load_bundle(result.bundle_dir)
        (out / name).mkdir(parents=True, exist_ok=True)
        if keep_bundle:
            shutil.rmtree(out / name / "bundle", ignore_errors=True)
            shutil.copytree(result.bundle_dir, out / name / "bundle")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with (
        exact_fp32()
    ):  # as `prodgan evaluate` generates: seed 0, categories in the test split's proportions
        labels = labels_like(test_split.labels, samples, spec.num_classes, SEED)
        images = generate_uint8(
            G.to(device), spec, samples, SEED, labels=labels, device=device
        ).numpy()
    np.savez_compressed(out / name / "samples.npz", images=images, labels=labels.numpy())
    row = {
        "steps": result.step,
        "train_s": train_s,
        "device": device,
        "train_images": len(train_split),
        "size": spec.size,
        "loss_d": result.metrics.get("loss_d"),
        "loss_g": result.metrics.get("loss_g"),
        "cpus": os.cpu_count(),
        "load_avg_1m_at_end": os.getloadavg()[0],
    }
    print(
        f"{name}: {result.step} steps in {train_s:.0f} s on {device} "
        f"(load average {row['load_avg_1m_at_end']:.1f})",
        flush=True,
    )
    return row


def train_variants(
    data: Path,
    out: Path,
    view: dict,
    overrides: list[str],
    samples: int,
    *,
    jobs: int,
    keep_bundle: bool,
) -> dict[str, dict]:
    """Both variants, `jobs` at a time (separate processes: one thread each on a CPU);
    rows into train.json."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "view.json").write_text(json.dumps(view))
    args = [(name, data, view, out, overrides, samples, keep_bundle) for name in VARIANTS]
    if jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
            trained = pool.map(train_variant, *zip(*args, strict=True))
            rows = dict(zip(VARIANTS, trained, strict=True))
    else:
        rows = {a[0]: train_variant(*a) for a in args}
    (out / "train.json").write_text(json.dumps(rows, indent=2))
    return rows


def inversion(bundle: Path, test_split: ImageSplit, count: int, restarts: int) -> dict:
    """Invert `count` test photos (balanced over categories) into the bundle's generator: mean
    PSNR/SSIM, share of the true category found, and the reference: best PSNR of REFERENCE_DRAWS
    plain samples of the true category."""
    import torch

    from prodgan import edit
    from prodgan.models import generate_uint8, load_bundle

    G, spec = load_bundle(bundle)
    idx = balanced_draw(test_split.labels, count, SEED)
    photos, truth = torch.from_numpy(test_split.images[idx]), test_split.labels[idx]
    start = time.perf_counter()
    results = []
    for i in range(
        0, count, 10
    ):  # bounded memory: 10 photos x restarts x categories latents per batch
        results += edit.invert(G, spec, photos[i : i + 10], seed=SEED, restarts=restarts)
    seconds = time.perf_counter() - start
    draws = REFERENCE_DRAWS
    with torch.no_grad():
        plain = generate_uint8(
            G,
            spec,
            count * draws,
            SEED + 1,
            labels=torch.from_numpy(truth).repeat_interleave(draws),
        )
    reference = [
        max(edit.psnr(s, photos[i]) for s in plain[i * draws : (i + 1) * draws])
        for i in range(count)
    ]
    return {
        "photos": count,
        "psnr": float(np.mean([r.psnr for r in results])),
        "ssim": float(np.mean([r.ssim for r in results])),
        "category_found": float(
            np.mean([r.category == t for r, t in zip(results, truth, strict=True)])
        ),
        "reference_psnr": float(np.mean(reference)),
        "reference_draws": draws,
        "restarts": restarts,
        "seconds": seconds,
    }


def evaluate(data: Path, runs: Path, invert: int, restarts: int) -> None:
    """FID of each variant's samples vs all test photos (Inception 2048-d) with the paired bootstrap
    interval of the difference, memorization vs the photos trained on, and inversion of `invert`
    test photos where a bundle was kept."""
    from prodgan.metrics.confidence import fid_delta_interval
    from prodgan.metrics.defaults import DEFAULTS
    from prodgan.metrics.features import extract, make_extractor
    from prodgan.metrics.fid import fid
    from prodgan.metrics.inception_weights import resolve_inception_weights
    from prodgan.metrics.memorization import memorization
    from prodgan.models.sampling import exact_fp32
    from prodgan.settings import Settings

    view = json.loads((runs / "view.json").read_text()) if (runs / "view.json").is_file() else {}
    train_split, test_split = view_of(data, view)
    trained = json.loads((runs / "train.json").read_text())
    weights = resolve_inception_weights(Settings.load().cache_dir)
    side = test_split.images.shape[-1]
    resized = " (FID: each image upsampled to 299 by the Inception resize)" if side != 64 else ""
    print(
        f"data: {len(train_split)} train photos ({view.get('per_category', 'all')} per category), "
        f"{len(test_split)} test, {side}x{side}{resized}"
    )
    rows, features = {}, {}
    with exact_fp32():
        inception = make_extractor(DEFAULTS["extractor"], ["2048"], str(weights.path), "cpu")
        real = extract(test_split.images, inception, "real")["2048"]
        for name, row in trained.items():
            with np.load(runs / name / "samples.npz") as z:
                images = z["images"]
            features[name] = extract(images, inception, "generated")["2048"]
            row = {
                **row,
                "samples": len(images),
                "fid": fid(features[name], real),
                "memorization": memorization(
                    images,
                    train_split.images,
                    test_split.images,
                    quantile=DEFAULTS["memorization_quantile"],
                ),
            }
            bundle = runs / name / "bundle"
            if invert and bundle.is_dir():
                row["inversion"] = inversion(bundle, test_split, invert, restarts)
            elif invert:
                print(
                    f"{name}: no bundle in {bundle} (a --train-only run ships samples only): "
                    "inversion skipped"
                )
            rows[name] = row
        # the real photos: what a copy scores
        floor = fid(extract(train_split.images, inception, "train")["2048"], real)
    delta = fid_delta_interval(
        features["diffaugment"], features["none"], real, resamples=DEFAULTS["bootstrap"], seed=SEED
    )
    (runs / "evaluate.json").write_text(
        json.dumps(
            {"view": view, "rows": rows, "fid_train_photos": floor, "fid_delta": delta.__dict__},
            indent=2,
        )
    )
    print(
        f"\n{'variant':<12} {'steps':>6} {'train s':>8} {'fid vs test':>12} {'memorization':>13} "
        f"{'inv PSNR':>9} {'inv SSIM':>9} {'cat found':>10} {'ref PSNR':>9}"
    )
    for name, row in rows.items():
        inv = row.get("inversion")
        cells = (
            f"{inv['psnr']:>9.2f} {inv['ssim']:>9.3f} "
            f"{inv['category_found']:>10.0%} {inv['reference_psnr']:>9.2f}"
            if inv
            else f"{'-':>9} {'-':>9} {'-':>10} {'-':>9}"
        )
        print(
            f"{name:<12} {row['steps']:>6} {row['train_s']:>8.0f} {row['fid']:>12.1f} "
            f"{row['memorization']:>13.3f} {cells}"
        )
    print(
        f"{f'{len(train_split)} train photos':<28} {floor:>12.1f}   "
        "(reference: the real photos trained on, as a copy would score)"
    )
    print(
        f"FID(diffaugment) - FID(none) = {delta.value:+.1f}, "
        f"{delta.confidence:.0%} paired bootstrap interval [{delta.low:+.1f}, {delta.high:+.1f}] "
        f"({delta.resamples} resamples of the generated side)"
    )
    if any("inversion" in r for r in rows.values()):
        inv = next(r["inversion"] for r in rows.values() if "inversion" in r)
        print(
            f"inversion: {inv['photos']} test photos per variant, "
            f"edit.invert ({inv['restarts']} start(s) per category, "
            f"150 + 250 steps, {inv['seconds']:.0f} s); "
            f"ref PSNR = best of {inv['reference_draws']} plain samples of the true category"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--out", type=Path, required=True)
    r = sub.add_parser("run")
    r.add_argument("--data", type=Path, required=True)
    r.add_argument("--out", type=Path)
    r.add_argument(
        "--cpu",
        action="store_true",
        help="the CPU size (CPU_VIEW, CPU_SIZE, 2 jobs) instead of the full recipe",
    )
    r.add_argument(
        "--train-only",
        action="store_true",
        help="GPU box: train both variants, samples only, evaluate later here",
    )
    r.add_argument("--samples", type=int, default=1000)
    r.add_argument(
        "--size", type=int, help="area-downsample train and test to this side (32) [--cpu: 32]"
    )
    r.add_argument(
        "--per-category",
        type=int,
        help="train on this many photos per category (seeded) [--cpu: 50]",
    )
    r.add_argument(
        "--jobs", type=int, help="variants trained at once, one process each [--cpu: 2, else 1]"
    )
    r.add_argument(
        "--invert",
        type=int,
        default=10,
        help="test photos inverted per variant in evaluate (0: none)",
    )
    r.add_argument(
        "--restarts",
        type=int,
        default=1,
        help="inversion starts per category (edit.invert's default: 4)",
    )
    r.add_argument(
        "--set", dest="overrides", action="append", default=[], help="config override key=value"
    )
    e = sub.add_parser("evaluate")
    e.add_argument("--data", type=Path, required=True)
    e.add_argument("--runs", type=Path, required=True)
    e.add_argument(
        "--invert", type=int, default=10, help="test photos inverted per variant (0: none)"
    )
    e.add_argument(
        "--restarts",
        type=int,
        default=1,
        help="inversion starts per category (edit.invert's default: 4)",
    )
    args = parser.parse_args()
    if args.command == "prepare":
        return prepare(args.out)
    if args.command == "evaluate":
        return evaluate(args.data, args.runs, args.invert, args.restarts)
    defaults = CPU_VIEW if args.cpu else {}
    view = {
        k: v
        for k, v in {
            "size": args.size or defaults.get("size"),
            "per_category": args.per_category or defaults.get("per_category"),
        }.items()
        if v
    }
    out = args.out or Path(tempfile.mkdtemp(prefix="prodgan-products-recipe-"))
    train_variants(
        args.data,
        out,
        view,
        [*(CPU_SIZE if args.cpu else []), *args.overrides],
        args.samples,
        jobs=args.jobs or (2 if args.cpu else 1),
        keep_bundle=not args.train_only,
    )
    if not args.train_only:
        evaluate(args.data, out, args.invert, args.restarts)
    print(f"runs in {out}")


if __name__ == "__main__":
    main()
