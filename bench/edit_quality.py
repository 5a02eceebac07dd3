"""Editing quality on held-out Fashion-MNIST test images: inversion PSNR/SSIM and category transfer.

For N test images (seeded, balanced draw): invert each into the generator (latent + category),
report mean PSNR/SSIM of the reconstruction and how often the category found is the true one;
then render each inverted latent as another category and ask the domain evaluator (a CNN
classifier trained on the train split) whether it sees the target. Target: transfer success
>= 90 %. Reference rows: the evaluator on real test images, and on plain samples of the
generator per requested category (the most transfer can be expected to reach).

Generator: --bundle DIR, --model URI, else the project's `models:/<name>@champion`.
Evaluator: --evaluator DIR, else one trained here on the train split (cached per data hash).

    .venv/bin/python bench/edit_quality.py --images 100
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from prodgan import edit
from prodgan.adapters import dvc
from prodgan.data.draws import balanced_draw
from prodgan.data.tensors import load_split
from prodgan.errors import ProdganError
from prodgan.models import generate_uint8, load_bundle
from prodgan.models.evaluator import load_evaluator, save_evaluator, train_evaluator
from prodgan.settings import Settings, configure_environment

TRANSFER_TARGET = 0.90


def generator_bundle(args: argparse.Namespace, settings: Settings) -> tuple[Path, str]:
    if args.bundle:
        return args.bundle, str(args.bundle)
    from prodgan.adapters.production_state import resolve_model

    uri = args.model or f"models:/{settings.model_name}@champion"
    return resolve_model(settings, uri).bundle_dir, uri


def evaluator(args: argparse.Namespace, settings: Settings, train, test, data_hash: str):
    folder = args.evaluator or settings.home / "bench" / "evaluator" / data_hash.replace(".", "-")
    if (folder / "evaluator.json").is_file():
        return load_evaluator(folder)[0], f"{folder} (cached)"
    start = time.perf_counter()
    model, acc = train_evaluator(train, test, epochs=2, limit=20000, seed=0)
    folder.mkdir(parents=True, exist_ok=True)
    save_evaluator(folder, model, {"data_hash": data_hash, "test_accuracy": acc})
    return model, f"trained here in {time.perf_counter() - start:.0f} s, saved to {folder}"


@torch.no_grad()
def classify(model, images: torch.Tensor) -> np.ndarray:
    return model(images.float().div(127.5).sub(1)).argmax(1).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, help="local generator bundle folder")
    parser.add_argument("--model", help="model URI [default: models:/<name>@champion]")
    parser.add_argument(
        "--evaluator", type=Path, help="evaluator folder (evaluator.pt + evaluator.json)"
    )
    parser.add_argument("--images", type=int, default=100, help="held-out test images to invert")
    parser.add_argument(
        "--steps", type=int, default=300, help="inversion optimisation steps per image"
    )
    parser.add_argument("--restarts", type=int, default=2, help="starting latents per category")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    settings = configure_environment(Settings.load())
    try:
        data_hash = dvc.require_clean(settings)
        bundle, source = generator_bundle(args, settings)
    except ProdganError as exc:
        sys.exit(f"error: {exc}\n(train and promote one first: `make demo`, or pass --bundle DIR)")
    G, spec = load_bundle(bundle)
    if not spec.num_classes:
        sys.exit("error: category transfer needs a class-conditional generator (arch cdcgan)")
    root = settings.data_dir / "fashion-mnist"
    train, test = (
        load_split(settings.tensor_cache_dir, root, s, data_hash) for s in ("train", "test")
    )
    classifier, how = evaluator(args, settings, train, test, data_hash)
    classifier.eval()
    print(f"generator  {source}  ({spec.arch}, z_dim {spec.z_dim}, width {spec.width})")
    print(f"evaluator  {how}")

    idx = balanced_draw(test.labels, args.images, args.seed)
    images, truth = torch.from_numpy(test.images[idx]), test.labels[idx]
    search = args.steps * 3 // 8
    start = time.perf_counter()
    results = []
    for i in range(0, len(idx), 10):
        results += edit.invert(
            G,
            spec,
            images[i : i + 10],
            seed=args.seed,
            restarts=args.restarts,
            search_steps=search,
            refine_steps=args.steps - search,
        )
    t_invert = time.perf_counter() - start
    psnr = np.array([r.psnr for r in results])
    ssim = np.array([r.ssim for r in results])
    found = np.array([r.category for r in results])

    rng = np.random.RandomState(args.seed + 1)
    # always another category
    targets = (truth + rng.randint(1, spec.num_classes, size=len(truth))) % spec.num_classes
    moved = torch.cat(
        [edit.transfer(G, spec, r.z, [int(t)]) for r, t in zip(results, targets, strict=True)]
    )
    transfer_ok = classify(classifier, moved) == targets
    samples = generate_uint8(G, spec, len(targets), args.seed, labels=torch.from_numpy(targets))
    real_ok = classify(classifier, images) == truth

    print(
        f"\n{'held-out test images inverted':<44} {len(idx):>8}   "
        f"({t_invert / len(idx):.2f} s per image, {args.steps} steps)"
    )
    print(
        f"{'inversion PSNR, mean (min..max)':<44} {psnr.mean():8.2f} dB "
        f"({psnr.min():.1f}..{psnr.max():.1f})"
    )
    print(f"{'inversion SSIM, mean':<44} {ssim.mean():8.3f}")
    print(f"{'category found by inversion = true category':<44} {np.mean(found == truth):8.1%}")
    print(f"{'reference: evaluator on the real images':<44} {real_ok.mean():8.1%}")
    samples_ok = classify(classifier, samples) == targets
    print(f"{'reference: evaluator on samples of target':<44} {samples_ok.mean():8.1%}")
    verdict = (
        "OK" if transfer_ok.mean() >= TRANSFER_TARGET else f"BELOW TARGET ({TRANSFER_TARGET:.0%})"
    )
    print(
        f"{'category transfer success (evaluator agrees)':<44} {transfer_ok.mean():8.1%}  {verdict}"
    )
    print(f"{'ratio transfer success / target':<44} {transfer_ok.mean() / TRANSFER_TARGET:8.2f} x")


if __name__ == "__main__":
    main()
