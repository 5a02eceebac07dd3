"""CPU recipe (issue 13): the project's previous recipe vs configs/cpu.yaml, same time budget,
one process.

(a) previous: configs/fmnist.yaml at the size a CPU affords (width 24, d_width 24, batch 64):
    projection D with a full-resolution 3x3 input conv and spectral norm, NS loss,
    EMA 0.999 from step 1000.
(b) new: configs/cpu.yaml as shipped.
Both train on the Fashion-MNIST train split (decoded from the idx files, no DVC) for the same
wall-clock budget (`max_seconds`) and thread count, then go through the project's evaluator:
fid_1k (1,000 generated vs 1,000 test images, InceptionV3) and cond_acc_1k (the domain classifier
on the generated images, per requested category). Targets for (b): fid_1k <= 100, cond_acc >= 0.6.
Wall AND CPU seconds are printed: on a shared 2-core machine they differ, and the budget is wall.

    .venv/bin/python bench/cpu_recipe.py [--seconds 290] [--quick] [--evaluator DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prodgan.data.fashion_mnist import CATEGORIES, DEBIAN_SOURCE, read_split  # noqa: E402
from prodgan.data.tensors import ImageSplit  # noqa: E402
from prodgan.metrics.evaluate import evaluate_generator  # noqa: E402
from prodgan.models import load_bundle  # noqa: E402
from prodgan.models.evaluator import load_evaluator, save_evaluator, train_evaluator  # noqa: E402
from prodgan.settings import Settings  # noqa: E402
from prodgan.training.config import TrainConfig, load_config  # noqa: E402
from prodgan.training.distributed import cpu_threads  # noqa: E402
from prodgan.training.loop import train  # noqa: E402

warnings.filterwarnings("ignore")
FID_TARGET, COND_ACC_TARGET = 100.0, 0.6
# What a CPU can afford of configs/fmnist.yaml (the GPU recipe);
# the previous session measured it at fid_1k ~180.
PREVIOUS_ON_CPU = ("width=24", "d_width=24", "batch_size=64", "eval_every=0", "device=cpu")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load_fashion_mnist(source: Path) -> tuple[ImageSplit, ImageSplit]:
    """Train and test splits straight from the idx files; the data hash is the files' sha256s."""
    splits = []
    for name in ("train", "test"):
        images, labels, shas = read_split(source, name)
        digest = hashlib.sha256("".join(shas[k] for k in sorted(shas)).encode()).hexdigest()[:16]
        splits.append(
            ImageSplit(
                images[:, None].copy(),
                labels.astype(np.int64),
                tuple(CATEGORIES),
                "fashion-mnist",
                name,
                f"idx-{digest}",
            )
        )
    return splits[0], splits[1]


def load_or_train_evaluator(
    folder: Path, train_split: ImageSplit, test_split: ImageSplit
) -> torch.nn.Module:
    """The project's domain classifier, trained once (3 epochs, ~150 s on 2 cores)
    and cached in `folder`."""
    if (folder / "evaluator.json").is_file():
        return load_evaluator(folder)[0]
    start = time.perf_counter()
    model, accuracy = train_evaluator(train_split, test_split)
    save_evaluator(folder, model, {"data_hash": train_split.data_hash, "test_accuracy": accuracy})
    print(
        f"evaluator trained in {time.perf_counter() - start:.0f} s "
        f"(test accuracy {accuracy:.3f}), cached in {folder}"
    )
    return load_evaluator(folder)[0]


def run_recipe(
    name: str,
    cfg: TrainConfig,
    train_split: ImageSplit,
    test_split: ImageSplit,
    evaluator: torch.nn.Module,
    samples: int,
    out_dir: Path,
) -> dict[str, float | str]:
    """Train within the budget, then evaluate the EMA generator the run saved."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = train(cfg, train_split, out_dir / name, progress=False)
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    G, spec = load_bundle(result.bundle_dir)
    with cpu_threads(cfg.threads):
        metrics = evaluate_generator(
            G,
            spec,
            test_split,
            samples=samples,
            evaluator=evaluator,
            metrics=("fid", "cond_acc"),
            bootstrap=0,
            device="cpu",
        ).metrics
    suffix = next(k for k in metrics if k.startswith("fid_")).removeprefix("fid_")
    return {
        "recipe": name,
        "steps": result.step,
        "train_wall_s": wall,
        "train_cpu_s": cpu,
        "images_per_s": result.step * cfg.batch_size / wall,
        "fid": metrics[f"fid_{suffix}"],
        "cond_acc": metrics[f"cond_acc_{suffix}"],
        "suffix": suffix,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds", type=float, help="training budget per recipe [default: cpu.yaml's max_seconds]"
    )
    parser.add_argument(
        "--samples", type=int, default=1000, help="generated and real images per FID side"
    )
    parser.add_argument(
        "--quick", action="store_true", help="sanity run: 20 s per recipe, 200 images per side"
    )
    parser.add_argument(
        "--source",
        type=Path,
        default=DEBIAN_SOURCE,
        help="folder with the four Fashion-MNIST idx files",
    )
    parser.add_argument(
        "--evaluator",
        type=Path,
        help="evaluator folder [default: <cache>/bench/evaluator-<data hash>]",
    )
    parser.add_argument("--out", type=Path, help="run folders [default: a temporary folder]")
    args = parser.parse_args()

    new = load_config(ROOT / "configs" / "cpu.yaml", ["device=cpu"])
    previous = load_config(
        ROOT / "configs" / "fmnist.yaml", [*PREVIOUS_ON_CPU, f"threads={new.threads}"]
    )
    seconds = 20.0 if args.quick else (args.seconds or new.max_seconds)
    samples = 200 if args.quick else args.samples
    # The same wall-clock budget for both; cpu.yaml may also stop at its own step count first.
    recipes = {
        "previous": replace(previous, max_seconds=seconds),
        "cpu.yaml": replace(new, max_seconds=seconds),
    }

    train_split, test_split = load_fashion_mnist(args.source)
    folder = (
        args.evaluator or Settings.load().cache_dir / "bench" / f"evaluator-{train_split.data_hash}"
    )
    evaluator = load_or_train_evaluator(folder, train_split, test_split)
    print(
        f"budget {seconds:.0f} s of training per recipe, "
        f"{new.threads or torch.get_num_threads()} thread(s); "
        f"FID: {samples} generated vs {samples} test images"
    )

    with tempfile.TemporaryDirectory(prefix="prodgan-cpu-recipe-") as tmp:
        out_dir = args.out or Path(tmp)
        rows = [
            run_recipe(name, cfg, train_split, test_split, evaluator, samples, out_dir)
            for name, cfg in recipes.items()
        ]

    suffix = rows[0]["suffix"]
    print(
        f"\n{'recipe':<10} {'steps':>6} {'wall s':>7} {'CPU s':>7} {'img/s':>7} "
        f"{'fid_' + suffix:>9} {'cond_acc_' + suffix:>14}"
    )
    for row in rows:
        print(
            f"{row['recipe']:<10} {row['steps']:>6} "
            f"{row['train_wall_s']:>7.0f} {row['train_cpu_s']:>7.0f} {row['images_per_s']:>7.0f} "
            f"{row['fid']:>9.1f} {row['cond_acc']:>14.3f}"
        )
    old, cur = rows
    print(
        f"\nratio fid previous / cpu.yaml: {old['fid'] / cur['fid']:.2f}x   "
        f"cond_acc: {cur['cond_acc']:.3f} vs {old['cond_acc']:.3f}"
    )
    if not args.quick and args.samples == 1000:
        ok = cur["fid"] <= FID_TARGET and cur["cond_acc"] >= COND_ACC_TARGET
        print(
            f"targets (fid_1k <= {FID_TARGET:.0f}, cond_acc_1k >= {COND_ACC_TARGET}): "
            f"{'MET' if ok else 'NOT MET'}"
        )


if __name__ == "__main__":
    main()
