"""Evaluation throughput: the usual torch-fidelity way vs prodgan's in-memory path
(same N, same device, one process).

(a) stock:   generate -> write PNGs -> torch_fidelity.calculate_metrics(folder, folder) with
             `inception-v3-compat` (real PNGs are already on disk, as they would be).
(b) prodgan: evaluate_generator in memory, fast exact-fp32 extractor, features cached on disk.
             b1 = first evaluation (cold cache), b2 = another generator with the real side cached,
             b3 = the same generator again (generated side cached by weights sha256 too).
FID and KID must agree between (a) and (b1) within 0.1% (same images, same weights).

    .venv/bin/python bench/eval_throughput.py [--n 200] [--bundle DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

warnings.filterwarnings("ignore")


def _write_pngs(images: np.ndarray, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        Image.fromarray(image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)).save(
            folder / f"{i:06d}.png"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="generated and real images per side")
    parser.add_argument(
        "--bundle",
        type=Path,
        help="generator bundle (default: a tiny untrained conditional generator)",
    )
    args = parser.parse_args()

    import torch_fidelity

    from prodgan.adapters import dvc
    from prodgan.data.tensors import load_split
    from prodgan.metrics import evaluate_generator
    from prodgan.metrics.evaluate import real_subset
    from prodgan.metrics.inception_weights import resolve_inception_weights
    from prodgan.models import GeneratorSpec, build_generator, generate_uint8, load_bundle
    from prodgan.models.sampling import labels_like
    from prodgan.settings import Settings, configure_environment

    settings = configure_environment(Settings.load())
    real = load_split(
        settings.tensor_cache_dir,
        settings.data_dir / "fashion-mnist",
        "test",
        dvc.require_clean(settings),
    )
    if args.bundle:
        G, spec = load_bundle(args.bundle)
    else:
        torch.manual_seed(0)
        spec = GeneratorSpec("cdcgan", 32, len(real.categories), 1, 28, 8, tuple(real.categories))
        G = build_generator(spec).eval()
    other = build_generator(spec).eval()  # "the next candidate": same architecture, other weights
    weights = resolve_inception_weights(settings.cache_dir)
    cuda = torch.cuda.is_available()
    n, seed = args.n, 0
    print(
        f"N={n} generated vs {n} real, device={'cuda' if cuda else 'cpu'} "
        f"({torch.get_num_threads()} threads), weights={weights.origin}"
    )

    with tempfile.TemporaryDirectory(dir=settings.tmp_dir) as tmp:
        tmp = Path(tmp)
        _write_pngs(real.images[real_subset(n, len(real))], tmp / "real")

        start, cpu_start = time.perf_counter(), time.process_time()
        labels = labels_like(real.labels, n, spec.num_classes, seed) if spec.num_classes else None
        _write_pngs(generate_uint8(G, spec, n, seed, labels=labels).numpy(), tmp / "generated")
        stock = torch_fidelity.calculate_metrics(
            input1=str(tmp / "generated"),
            input2=str(tmp / "real"),
            fid=True,
            kid=True,
            cuda=cuda,
            save_cpu_ram=True,
            cache=False,
            verbose=False,
            feature_extractor="inception-v3-compat",
            kid_subset_size=min(1000, n),
            feature_extractor_weights_path=str(weights.path),
        )
        t_stock, c_stock = time.perf_counter() - start, time.process_time() - cpu_start

        def ours(generator, key):
            begin, cpu_begin = time.perf_counter(), time.process_time()
            result = evaluate_generator(
                generator,
                spec,
                real,
                samples=n,
                seed=seed,
                metrics=("fid", "kid"),
                bootstrap=0,
                cache_dir=tmp / "cache",
                weights=weights,
                generator_key=key,
            )
            return time.perf_counter() - begin, time.process_time() - cpu_begin, result

        t_first, c_first, first = ours(G, "champion")
        t_cached, c_cached, cached = ours(other, "challenger")
        t_same, c_same, _ = ours(G, "champion")

    suffix = first.protocol.suffix
    fid_a, fid_b = stock["frechet_inception_distance"], first.metrics[f"fid_{suffix}"]
    kid_a, kid_b = stock["kernel_inception_distance_mean"], first.metrics[f"kid_{suffix}"]
    # CPU seconds too: on a shared machine wall time mostly measures the neighbours
    print(
        "(a)  stock torch-fidelity, PNG folders        "
        f"{t_stock:8.1f} s wall {c_stock:8.1f} s cpu   "
        f"FID {fid_a:.4f}  KID {kid_a:.6f}"
    )
    print(
        "(b1) prodgan, first evaluation (cold cache)   "
        f"{t_first:8.1f} s wall {c_first:8.1f} s cpu   "
        f"FID {fid_b:.4f}  KID {kid_b:.6f}"
    )
    print(
        "(b2) prodgan, new generator, real cached      "
        f"{t_cached:8.1f} s wall {c_cached:8.1f} s cpu   "
        f"(real side cached: {cached.real_cached})"
    )
    print(f"(b3) prodgan, same generator again            {t_same:8.1f} s wall {c_same:8.1f} s cpu")
    print(
        f"FID delta (b1 vs a): {abs(fid_b - fid_a) / fid_a:.2e} relative; "
        f"KID delta: {abs(kid_b - kid_a) / abs(kid_a):.2e} relative"
    )
    for label, a, b, target in (
        (
            "a/b1  (same work: fast extractor, no PNGs)",
            (t_stock, c_stock),
            (t_first, c_first),
            ">= 2x on CPU",
        ),
        (
            "a/b2  (stock vs prodgan, real side cached)",
            (t_stock, c_stock),
            (t_cached, c_cached),
            ">= 3x",
        ),
        (
            "b1/b2 (second evaluation, real side cached)",
            (t_first, c_first),
            (t_cached, c_cached),
            "",
        ),
        (
            "b1/b3 (re-evaluation, everything cached)",
            (t_first, c_first),
            (t_same, c_same),
            ">= 10x",
        ),
    ):
        goal = f"target {target}" if target else ""
        print(f"ratio {label:44s} {a[0] / b[0]:6.2f}x wall {a[1] / b[1]:6.2f}x cpu   {goal}")


if __name__ == "__main__":
    main()
