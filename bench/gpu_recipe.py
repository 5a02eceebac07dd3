"""configs/fmnist.yaml on one GPU, then FID_10k of its samples on the CPU (two sub-commands).

`train` runs on a bare GPU box (python3 + torch/numpy/yaml/rich/pillow only; no MLflow, Prefect,
DVC, Great Expectations or torch-fidelity): it reads Fashion-MNIST's train split straight from the
four idx .gz files, runs `prodgan.training.loop.train` on the recipe (with `--set` overrides), and
writes into --out:

    samples.npy      uint8 [10000, 1, 28, 28] from the EMA generator bundle: the generated side of
                     `prodgan evaluate --samples 10000` (seed 0, categories in the test split's
                     proportions via `labels_like`, exact fp32: TF32 off)
    labels.npy       int64 [10000], their categories
    samples_2k.npz   images + labels of the default protocol's generated side (2,000, seed 0)
    grid.png         the trainer's last sample grid (EMA generator; 8 rows, one column per category)
    result.json      timings, images/s, steps, device, torch version, final losses, the loss log
    bundle/          generator.pt + generator.json (the EMA generator bundle)

A wall-clock cap (--max-train-s, and --deadline-s for the whole script) ends training early but
cleanly: a hook lowers the run's step count to the current step, so the loop writes its last
checkpoint and the bundle as if that had been the schedule. `--fallback-set` retries once with
extra overrides (e.g. precision=fp32) if the first attempt raises.

`fid` runs here (CPU, the project's metrics code and Inception weights, exact fp32): FID_10k is
the 10k samples vs the 10,000 test images; fid_2k_first is the first 2,000 samples vs the
protocol's 2,000 test images (`real_subset`, in the dataset layout's order); fid_2k_protocol is
samples_2k.npz vs those same images, i.e. what `prodgan evaluate` computes by default.
Real-side features are cached under --cache-dir.

    # GPU box (repository root; the idx files copied into .gpu_carry/):
    PYTHONPATH=. python3 bench/gpu_recipe.py train --data .gpu_carry --out $OUT --set eval_every=0
    # here:
    nice -n 19 .venv/bin/python bench/gpu_recipe.py fid --samples /tmp/gpu_samples
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import platform
import shutil
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any

T0 = time.perf_counter()
ROOT = Path(__file__).resolve().parents[1]
if (
    importlib.util.find_spec("prodgan") is None
):  # PYTHONPATH may point at another copy of the package
    sys.path.insert(0, str(ROOT))

DEFAULT_DATA = Path("/usr/share/datasets/fashion-mnist")
SAMPLE_SEED = 0  # prodgan.metrics.defaults DEFAULTS["seed"]
SAMPLE_BATCH = 64  # DEFAULTS["batch_size"]
N_SAMPLES = 10_000
N_PROTOCOL = 2_000  # DEFAULTS["samples"]


def elapsed() -> float:
    return time.perf_counter() - T0


def layout_order(labels, categories) -> "Any":
    """Indices that put idx-ordered images in the dataset layout's order (category folders sorted by
    name, then `{i:05d}.png`), which is the order `real_subset` indexes in the CPU protocol."""
    import numpy as np

    rank = {name: r for r, name in enumerate(sorted(categories))}
    folder = np.array([rank[categories[c]] for c in labels])
    return np.lexsort((np.arange(len(labels)), folder))


# ================================================================ train (GPU box)


class RecipeHooks:
    """Keeps the loss log and the last grid; stops the loop cleanly once `cap_s` has passed."""

    def __init__(self, cfg: Any, cap_s: float, print_every: int) -> None:
        self.cfg, self.cap_s, self.print_every = cfg, cap_s, print_every
        self.t_call = time.perf_counter()
        self.t_start: float | None = None
        self.t_last: float | None = None
        self.start_info: dict[str, Any] = {}
        self.log: list[dict[str, float]] = []
        self.grid = None
        self.grid_step = -1
        self.capped_at: int | None = None
        self.messages: list[str] = []

    # TrainHooks interface
    def on_start(self, info: dict[str, Any]) -> None:
        self.t_start = time.perf_counter()
        self.start_info = info
        print(f"[{elapsed():6.1f}s] loop starts: {json.dumps(info)}", flush=True)

    def on_metrics(self, step: int, metrics: dict[str, float]) -> None:
        now = time.perf_counter()
        self.t_last = now
        self.log.append(
            {
                "step": step,
                "t": round(now - (self.t_start or now), 3),
                **{k: float(v) for k, v in metrics.items()},
            }
        )
        if step % self.print_every == 0:
            print(
                f"[{elapsed():6.1f}s] step {step:6d}  {metrics['images_per_s']:9,.0f} img/s  "
                f"D {metrics['loss_d']:.3f}  G {metrics['loss_g']:.3f}",
                flush=True,
            )
        if self.capped_at is None and now - self.t_call >= self.cap_s and step < self.cfg.steps:
            # The loop reads cfg.steps every iteration:
            # lowering it to `step` ends this one as the last
            # (final grid, checkpoint and bundle written as usual). TrainConfig is frozen,
            # hence __setattr__.
            self.capped_at = step
            object.__setattr__(self.cfg, "steps", step)
            print(
                f"[{elapsed():6.1f}s] wall-clock cap {self.cap_s:.0f}s reached: "
                f"stopping at step {step}",
                flush=True,
            )

    def on_grid(self, step: int, epoch: int, image: Any) -> None:
        self.grid, self.grid_step = image, step

    def on_checkpoint(self, step: int, path: Path) -> None: ...

    def on_message(self, message: str) -> None:
        self.messages.append(message)
        print(f"[{elapsed():6.1f}s] {message}", flush=True)


def _sync(device: Any) -> None:
    import torch

    if getattr(device, "type", str(device)).startswith("cuda"):
        torch.cuda.synchronize(device)


def cmd_train(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from prodgan.data import fashion_mnist
    from prodgan.data.tensors import ImageSplit
    from prodgan.imaging import grid as make_grid
    from prodgan.imaging import save_png
    from prodgan.models import generate_uint8, load_bundle
    from prodgan.models.sampling import exact_fp32, labels_like
    from prodgan.training.config import load_config, valid_keys
    from prodgan.training.distributed import pick_device
    from prodgan.training.loop import train

    out, work = Path(args.out), Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    cuda = torch.cuda.is_available()
    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "device_name": torch.cuda.get_device_name(0) if cuda else platform.processor() or "cpu",
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    print(f"[{elapsed():6.1f}s] {json.dumps(env)}", flush=True)

    tick = time.perf_counter()
    images, labels, hashes = fashion_mnist.read_split(Path(args.data), "train")
    _, test_labels, _ = fashion_mnist.read_split(Path(args.data), "test")
    data = ImageSplit(
        np.array(images[:, None]),
        labels.astype(np.int64),
        tuple(fashion_mnist.CATEGORIES),
        "fashion-mnist",
        "train",
        "idx:" + hashes[fashion_mnist.FILES["train"][0]][:12],
    )
    data_s = time.perf_counter() - tick
    print(
        f"[{elapsed():6.1f}s] train split {data.images.shape} {data.images.dtype}, "
        f"{len(data.categories)} categories ({data_s:.1f}s)",
        flush=True,
    )

    attempts_spec = [list(args.overrides)]
    if args.fallback_set:
        attempts_spec.append(list(args.overrides) + list(args.fallback_set))
    attempts: list[dict[str, Any]] = []
    result = hooks = cfg = None
    requested_steps = None
    for i, overrides in enumerate(attempts_spec):
        cap = min(args.max_train_s, args.deadline_s - elapsed() - args.reserve_s)
        record: dict[str, Any] = {"overrides": overrides, "cap_s": round(cap, 1)}
        attempts.append(record)
        if cap < args.min_train_s:
            record["error"] = f"skipped: only {cap:.0f}s left before the deadline"
            print(f"[{elapsed():6.1f}s] attempt {i}: {record['error']}", flush=True)
            break
        try:
            hook_cap = cap
            if "max_seconds" in valid_keys() and not any(
                o.startswith("max_seconds=") for o in overrides
            ):
                # The loop's own clock (newer prodgan): it starts at the first step;
                # the hook stays as a backstop.
                overrides = overrides + [f"max_seconds={cap:.0f}"]
                record["overrides"], hook_cap = overrides, cap + 30
            cfg = load_config(Path(args.config), overrides)
            requested_steps = cfg.steps
            run_dir = work / f"attempt{i}"
            shutil.rmtree(run_dir, ignore_errors=True)
            hooks = RecipeHooks(cfg, hook_cap, args.print_every)
            print(
                f"[{elapsed():6.1f}s] attempt {i}: {args.config} + {overrides} (cap {cap:.0f}s)",
                flush=True,
            )
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            tick = time.perf_counter()
            result = train(cfg, data, run_dir, hooks=hooks, progress=not args.no_progress)
            record["train_wall_s"] = round(time.perf_counter() - tick, 3)
            break
        except Exception as exc:  # noqa: BLE001 - reported in result.json, then the fallback
            record["error"] = f"{type(exc).__name__}: {exc}"
            record["traceback"] = traceback.format_exc()
            print(f"[{elapsed():6.1f}s] attempt {i} failed:\n{record['traceback']}", flush=True)
            result = None
            if cuda:
                torch.cuda.empty_cache()

    import prodgan
    import prodgan.training.loop as train_module

    source = {
        "prodgan": str(Path(prodgan.__file__).parent),
        "commit": args.commit,
        "train_py_sha256": hashlib.sha256(Path(train_module.__file__).read_bytes()).hexdigest(),
        "config_sha256": hashlib.sha256(Path(args.config).read_bytes()).hexdigest(),
    }
    summary: dict[str, Any] = {
        "env": env,
        "source": source,
        "config_file": str(args.config),
        "attempts": attempts,
        "data_load_s": round(data_s, 3),
    }
    if result is None:
        summary["ok"] = False
        summary["script_s"] = round(elapsed(), 3)
        (out / "result.json").write_text(json.dumps(summary, indent=2))
        print(f"[{elapsed():6.1f}s] FAILED: every attempt raised; see result.json", flush=True)
        return 1

    device = pick_device(cfg.device)
    train_wall = attempts[-1]["train_wall_s"]
    loop_s = (hooks.t_last - hooks.t_start) if hooks.t_start and hooks.t_last else train_wall
    windows = [r["images_per_s"] for r in hooks.log if r["step"] > max(1000, result.step // 10)]
    peak_gb = torch.cuda.max_memory_allocated() / 2**30 if cuda else None

    # Samples from the EMA generator bundle, exactly as the evaluation protocol draws them.
    tick = time.perf_counter()
    G, spec = load_bundle(result.bundle_dir, device)
    with exact_fp32():
        y10k = labels_like(test_labels, N_SAMPLES, spec.num_classes, SAMPLE_SEED)
        x10k = generate_uint8(
            G, spec, N_SAMPLES, SAMPLE_SEED, labels=y10k, device=device, batch=SAMPLE_BATCH
        ).numpy()
        y2k = labels_like(test_labels, N_PROTOCOL, spec.num_classes, SAMPLE_SEED)
        x2k = generate_uint8(
            G, spec, N_PROTOCOL, SAMPLE_SEED, labels=y2k, device=device, batch=SAMPLE_BATCH
        ).numpy()
    _sync(device)
    sample_s = time.perf_counter() - tick
    np.save(out / "samples.npy", x10k)
    np.save(out / "labels.npy", y10k.numpy().astype(np.int64))
    np.savez(out / "samples_2k.npz", images=x2k, labels=y2k.numpy().astype(np.int64))
    bundle_out = out / "bundle"
    shutil.rmtree(bundle_out, ignore_errors=True)
    shutil.copytree(result.bundle_dir, bundle_out)
    picture = hooks.grid
    if picture is None:  # no grid from the loop: one column per category from the samples
        order = np.argsort(y10k.numpy(), kind="stable")
        picture = make_grid(
            x10k[order]
            .reshape(spec.num_classes, -1, *x10k.shape[1:])[:, :8]
            .transpose(1, 0, 2, 3, 4)
            .reshape(-1, *x10k.shape[1:]),
            nrow=spec.num_classes,
        )
    save_png(out / "grid.png", picture)

    last = hooks.log[-1] if hooks.log else {}
    steps = result.step
    summary.update(
        {
            "ok": True,
            "config": {**cfg.to_dict(), "steps": requested_steps},
            "requested_steps": requested_steps,
            "steps_reached": steps,
            "capped": steps < requested_steps,
            "capped_by": "hook"
            if hooks.capped_at is not None
            else ("max_seconds" if steps < requested_steps else None),
            "cap_s": attempts[-1]["cap_s"],
            "batch_size": cfg.batch_size,
            "images_seen": steps * cfg.batch_size,
            "epochs": steps * cfg.batch_size / len(data),
            "train_wall_s": train_wall,  # the whole train() call: setup, loop, checkpoints, bundle
            "loop_s": round(loop_s, 3),  # first step to last logged step
            "setup_s": round(hooks.t_start - hooks.t_call, 3) if hooks.t_start else None,
            "images_per_s": steps * cfg.batch_size / train_wall,
            "images_per_s_loop": steps * cfg.batch_size / loop_s if loop_s else None,
            "images_per_s_steady_median": statistics.median(windows) if windows else None,
            "steps_per_s_loop": steps / loop_s if loop_s else None,
            "final_loss_d": last.get("loss_d"),
            "final_loss_g": last.get("loss_g"),
            "result_metrics": result.metrics,
            "peak_cuda_mem_gb": round(peak_gb, 3) if peak_gb is not None else None,
            "precision": hooks.start_info.get("precision"),
            "sampling_s": round(sample_s, 3),
            "samples": {
                "n": N_SAMPLES,
                "seed": SAMPLE_SEED,
                "batch": SAMPLE_BATCH,
                "tf32": False,
                "protocol_2k": N_PROTOCOL,
                "per_category": np.bincount(y10k.numpy(), minlength=spec.num_classes).tolist(),
            },
            "grid_step": hooks.grid_step,
            "weights_sha256": result.weights_sha256,
            "spec": spec.to_dict(),
            "train_hashes": hashes,
            "loss_log": hooks.log,
            "messages": hooks.messages,
            "script_s": round(elapsed(), 3),
        }
    )
    (out / "result.json").write_text(json.dumps(summary, indent=2))
    capped = f" (capped by {summary['capped_by']})" if summary["capped"] else ""
    steady = summary["images_per_s_steady_median"] or float("nan")
    print(
        f"[{elapsed():6.1f}s] done: {steps}/{requested_steps} steps{capped}, "
        f"train() {train_wall:.1f}s, loop {loop_s:.1f}s, "
        f"{summary['images_per_s']:,.0f} img/s overall, "
        f"{summary['images_per_s_loop']:,.0f} img/s in the loop, steady median {steady:,.0f}; "
        f"final D {summary['final_loss_d']} G {summary['final_loss_g']}; "
        f"sampling {N_SAMPLES + N_PROTOCOL} images {sample_s:.1f}s; "
        f"peak mem {summary['peak_cuda_mem_gb']} GiB",
        flush=True,
    )
    return 0


# ================================================================ fid (CPU here)


def cmd_fid(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from prodgan.data import fashion_mnist
    from prodgan.metrics.defaults import DEFAULTS
    from prodgan.metrics.evaluate import INCEPTION, real_subset
    from prodgan.metrics.features import extract, make_extractor
    from prodgan.metrics.fid import RealReference, fid_per_category, fid_to
    from prodgan.metrics.inception_weights import resolve_inception_weights
    from prodgan.models.sampling import exact_fp32
    from prodgan.settings import Settings

    console = Console()
    if args.threads:
        torch.set_num_threads(args.threads)
    folder = Path(args.samples)
    generated = np.load(folder / "samples.npy")
    gen_labels = np.load(folder / "labels.npy") if (folder / "labels.npy").is_file() else None
    protocol_2k = None
    if (folder / "samples_2k.npz").is_file() and not args.skip_2k:
        with np.load(folder / "samples_2k.npz") as z:
            protocol_2k = z["images"]
    test_images, test_labels, hashes = fashion_mnist.read_split(Path(args.data), "test")
    order = layout_order(test_labels, fashion_mnist.CATEGORIES)
    real = np.ascontiguousarray(test_images[order][:, None])
    real_labels = test_labels[order].astype(np.int64)
    if args.limit:
        generated, real, real_labels = (
            generated[: args.limit],
            real[: args.limit],
            real_labels[: args.limit],
        )
        gen_labels = gen_labels[: args.limit] if gen_labels is not None else None
        protocol_2k = (
            protocol_2k[: min(args.limit, N_PROTOCOL)] if protocol_2k is not None else None
        )
    n2k = min(N_PROTOCOL, len(generated), len(real))
    real_idx = real_subset(n2k, len(real))
    if generated.dtype != np.uint8 or generated.shape[1:] != real.shape[1:]:
        raise SystemExit(
            f"error: samples.npy is {generated.dtype} {generated.shape}, "
            f"expected uint8 [N, {', '.join(map(str, real.shape[1:]))}]"
        )

    weights = resolve_inception_weights(Settings.load().cache_dir)
    console.print(
        f"Inception weights: {weights.path} ({weights.origin}, sha256 {weights.sha256[:12]}); "
        f"{torch.get_num_threads()} threads; generated {generated.shape}, real {real.shape}"
        + (f", protocol 2k {protocol_2k.shape}" if protocol_2k is not None else "")
    )
    digest = hashlib.sha256(real.tobytes()).hexdigest()[:12]
    cache = Path(args.cache_dir) / f"real_test_{weights.sha256[:12]}_{digest}_{len(real)}.npy"

    timings: dict[str, float] = {}
    with exact_fp32():
        extractor = make_extractor(DEFAULTS["extractor"], [INCEPTION], str(weights.path), "cpu")
        columns = (
            TextColumn("{task.description:<16}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[rate]}"),
        )
        with Progress(*columns, console=console) as progress:

            def features(images: np.ndarray, side: str) -> np.ndarray:
                task = progress.add_task(side, total=len(images), rate="")
                parts, tick = [], time.perf_counter()
                for i in range(
                    0, len(images), args.chunk
                ):  # chunks of whole batches: same batches as one call
                    parts.append(
                        extract(images[i : i + args.chunk], extractor, side, args.batch)[INCEPTION]
                    )
                    done = min(i + args.chunk, len(images))
                    rate = f"{done / (time.perf_counter() - tick):.1f} img/s"
                    progress.update(task, completed=done, rate=rate)
                    # a log file sees no live bar: one line per chunk instead
                    if not console.is_terminal:
                        spent = time.perf_counter() - tick
                        console.print(f"{side}: {done}/{len(images)} ({rate}, {spent:.0f}s)")
                timings[side] = round(time.perf_counter() - tick, 1)
                return np.concatenate(parts)

            if cache.is_file():
                real_features = np.load(cache)
                console.print(f"real features from cache {cache}")
            else:
                real_features = features(real, "real:test")
                cache.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache.with_suffix(".tmp.npy")
                np.save(tmp, real_features)
                tmp.replace(cache)
            gen_features = features(generated, "generated")
            gen2k_features = (
                features(protocol_2k, "generated 2k") if protocol_2k is not None else None
            )

    tick = time.perf_counter()
    ref = RealReference(real_features)
    ref2k = RealReference(real_features[real_idx])
    n = len(generated)
    results: dict[str, Any] = {
        f"fid_{n // 1000}k" if n % 1000 == 0 else f"fid_{n}": fid_to(gen_features, ref),
        "fid_2k_first": fid_to(gen_features[:n2k], ref2k),
    }
    if gen2k_features is not None:
        results["fid_2k_protocol"] = fid_to(gen2k_features, ref2k)
    if gen_labels is not None:
        results["fid_per_category"] = fid_per_category(
            gen_features, gen_labels, real_features, real_labels, tuple(fashion_mnist.CATEGORIES)
        )
    timings["fid"] = round(time.perf_counter() - tick, 1)
    results.update(
        {
            "n_generated": n,
            "n_real": len(real),
            "n_2k": n2k,
            "weights": str(weights.path),
            "weights_sha256": weights.sha256,
            "extractor": DEFAULTS["extractor"],
            "precision": "fp32-no-tf32",
            "timings_s": timings,
            "test_hashes": hashes,
            "threads": torch.get_num_threads(),
        }
    )
    out = Path(args.out) if args.out else folder / "fid.json"
    try:
        out.write_text(json.dumps(results, indent=2))
    except OSError as exc:
        console.print(f"could not write {out} ({exc}); use --out")
    for key, value in results.items():
        if key.startswith("fid_") and isinstance(value, float):
            console.print(f"{key:>16} = {value:.3f}")
    if "fid_per_category" in results:
        console.print(
            "per category: "
            + ", ".join(f"{k} {v:.1f}" for k, v in results["fid_per_category"].items())
        )
    console.print(f"timings: {timings}; written {out}")
    return 0


# ================================================================ entry point


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench/gpu_recipe.py", description=__doc__.split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser(
        "train", help="train the recipe (GPU box) and write samples, grid, result.json"
    )
    t.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help="folder with the four Fashion-MNIST idx .gz files",
    )
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--config", type=Path, default=ROOT / "configs" / "fmnist.yaml")
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    t.add_argument(
        "--fallback-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="if the first attempt raises, retry once with these extra overrides",
    )
    t.add_argument(
        "--work",
        type=Path,
        default=Path("/tmp/gpu_recipe_run"),
        help="run folders (checkpoints, bundle)",
    )
    t.add_argument(
        "--max-train-s", type=float, default=420.0, help="wall-clock cap on one train() call"
    )
    t.add_argument(
        "--deadline-s",
        type=float,
        default=510.0,
        help="seconds from script start by which everything is written",
    )
    t.add_argument(
        "--reserve-s",
        type=float,
        default=45.0,
        help="kept back from the deadline for sampling and saving",
    )
    t.add_argument(
        "--min-train-s", type=float, default=30.0, help="skip an attempt with less time than this"
    )
    t.add_argument("--print-every", type=int, default=1000)
    t.add_argument(
        "--commit", default="", help="git commit of the prodgan copy used (recorded in result.json)"
    )
    t.add_argument("--no-progress", action="store_true")

    f = sub.add_parser("fid", help="FID_10k and fid_2k of samples.npy on this machine (CPU)")
    f.add_argument(
        "--samples",
        type=Path,
        required=True,
        help="folder holding samples.npy (labels.npy, samples_2k.npz)",
    )
    f.add_argument("--data", type=Path, default=DEFAULT_DATA)
    f.add_argument("--out", type=Path, help="JSON result [default: <samples>/fid.json]")
    f.add_argument(
        "--cache-dir",
        type=Path,
        default=Path("/tmp/prodgan-gpu-recipe-cache"),
        help="real-side feature cache",
    )
    f.add_argument(
        "--limit", type=int, default=0, help="use only the first N images of each side (dry runs)"
    )
    f.add_argument("--skip-2k", action="store_true", help="ignore samples_2k.npz")
    f.add_argument("--batch", type=int, default=64)
    f.add_argument(
        "--chunk", type=int, default=640, help="images per extract() call (a multiple of --batch)"
    )
    f.add_argument("--threads", type=int, default=0)

    args = parser.parse_args(argv)
    return cmd_train(args) if args.command == "train" else cmd_fid(args)


if __name__ == "__main__":
    raise SystemExit(main())
