"""The category judge behind cond_acc on clothing-small: the CNN trained from scratch vs the linear
probe on Inception features, on the same split; and whether each separates a perfect from an
untrained generator well enough for the cond_acc gate to judge (else the gate is skipped).

Catalogues (photos read from ../shared/datasets/clothing-small, normalised like the importer's
`--size 64 --fit pad`, never written anywhere):
- `small` (default): 6 categories x (50 train + 13 test) photos = 378, the size of the catalogue
  on which the CNN reached 0.23 (issue 25);
- `full`: all 10 categories, train (3,068, the judge fits on its default seeded 2,000, or
  `--limit`) and test (372) as published: what a clothing champion is judged by.

For each judge: test accuracy (whole test split), then at each sample count (`--samples`, default
100 and 500) the references the evaluation records, computed as `evaluate_generator` does:
floor = the judge's accuracy on the protocol's real test photos (min(samples, test)), noise = its
accuracy on an untrained products64 generator's samples (categories in the test proportions,
seed 0), and the gate's reading of them (`prodgan.policy.gates.weak_judge`, 95 %): judged or
skipped. The noise samples' Inception features are extracted once per count and shared.

    .venv/bin/python bench/cond_acc_judge.py [--catalogue small|full] [--samples 100 500]
        [--judges CNN probe] [--limit N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # prodgan, and tests.products.helpers (reads clothing-small)

from prodgan.settings import shared_dataset  # noqa: E402
from tests.products.helpers import clothing_split  # noqa: E402  (reads the photos in place)

CATALOGUES = {
    "small": {"categories": 6, "train": 50, "test": 13},
    "full": {"categories": 10, "train": None, "test": None},
}
SEED = 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalogue", choices=sorted(CATALOGUES), default="small")
    parser.add_argument("--samples", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--cnn-epochs", type=int, default=3, help="as the CNN's last default")
    parser.add_argument("--judges", nargs="+", choices=("CNN", "probe"), default=["CNN", "probe"])
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        help="fit the probe on at most N train photos (default: as `prodgan evaluator train`); "
        "fewer photos make a weaker probe, so a gate judged with fewer is judged with the default",
    )
    args = parser.parse_args()

    import torch

    from prodgan.metrics.calibration import untrained_like
    from prodgan.metrics.conditional import judge_references
    from prodgan.metrics.evaluate import real_subset
    from prodgan.metrics.features import extract, make_extractor
    from prodgan.metrics.inception_weights import resolve_inception_weights
    from prodgan.metrics.judge import INCEPTION, Judge, capped, fit_judge, split_features
    from prodgan.models.evaluator import train_evaluator
    from prodgan.models.sampling import generate_uint8, labels_like
    from prodgan.names import metric_name
    from prodgan.ops.evaluate import JUDGE_IMAGES
    from prodgan.policy.gates import Evaluation, weak_judge
    from prodgan.settings import Settings
    from prodgan.training.config import load_config
    from prodgan.training.plan import make_spec

    torch.set_num_threads(2)
    shape = CATALOGUES[args.catalogue]
    source = shared_dataset("clothing-small")
    categories = sorted(p.name for p in (source / "train").iterdir())[: shape["categories"]]
    train, test = (clothing_split(s, categories, shape[s]) for s in ("train", "test"))
    probe_train = capped(train, args.limit or JUDGE_IMAGES)  # `prodgan evaluator train` fits on
    print(
        f"catalogue {args.catalogue}: {len(categories)} categories, train {len(train)} "
        f"(probe fits on {len(probe_train)}), test {len(test)}; chance {1 / len(categories):.3f}"
    )
    settings = Settings.load()
    weights = resolve_inception_weights(settings.cache_dir)

    judges = {}
    if "CNN" in args.judges:
        tick = time.perf_counter()
        cnn, cnn_acc = train_evaluator(train, test, epochs=args.cnn_epochs, seed=SEED)
        print(
            f"CNN from scratch ({args.cnn_epochs} epochs): test accuracy {cnn_acc:.3f} "
            f"({time.perf_counter() - tick:.0f} s)"
        )
        judges["CNN"] = Judge(cnn, weights, "cpu")
    if "probe" in args.judges:
        tick = time.perf_counter()
        fitted = fit_judge(probe_train, test, weights, settings.cache_dir)
        print(
            f"linear probe on Inception features: test accuracy {fitted.test_accuracy:.3f} "
            f"({time.perf_counter() - tick:.0f} s, Inception features of both splits included; "
            "cached after)"
        )
        judges["probe"] = Judge(fitted.probe, weights, "cpu")

    spec = make_spec(load_config(ROOT / "configs" / "products64.yaml"), train)
    inception = make_extractor("inception-v3-prodgan", [INCEPTION], str(weights.path), "cpu")
    test_features = split_features(test, weights, settings.cache_dir)
    print("\nsamples  judge  floor (photos)  noise  gap    gate (95 %)")
    for samples in args.samples:
        labels = labels_like(test.labels, samples, len(categories), SEED)
        noise_images = generate_uint8(
            untrained_like(spec), spec, samples, SEED, labels=labels, device="cpu"
        ).numpy()
        noise_features = extract(noise_images, inception, "untrained")
        real_idx = real_subset(min(samples, len(test)), len(test))
        for name, judge in judges.items():
            refs = judge_references(
                logits(judge, test.images[real_idx], {INCEPTION: test_features[real_idx]}),
                test.labels[real_idx],
                logits(judge, noise_images, noise_features),
                labels.numpy(),
                len(categories),
            )
            named = {metric_name(k, samples): v for k, v in refs.items()}
            named[metric_name("cond_acc", samples)] = refs["cond_acc_noise"]
            skipped = weak_judge(Evaluation.from_metrics("bench", named), "cond_acc", 0.95)
            floor, noise = refs["cond_acc_floor"], refs["cond_acc_noise"]
            print(
                f"{samples:>7}  {name:<5}  {floor:.3f} ({len(real_idx):>4})    {noise:.3f}  "
                f"{floor - noise:+.3f}  {'SKIPPED' if skipped else 'judged'}"
            )
            if skipped:
                print(f"         {skipped.reason}")


def logits(judge, images, features):
    """As the evaluation asks a judge (single process): the probe from the features, the CNN
    from the pixels."""
    from prodgan.metrics.features import extract

    if judge.reads_features:
        return judge.from_features(features)
    return extract(images, judge.extractor, "evaluator")["logits"]


if __name__ == "__main__":
    main()
