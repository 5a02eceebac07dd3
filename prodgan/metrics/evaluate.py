"""`evaluate_generator`: one generator against one real split under one protocol, all metrics.

The generator's images go to torch-fidelity in memory (uint8 Dataset, no PNG round trip); the
real side's features are cached under the protocol's real key, so a second evaluation against the
same data only runs the generated side. Under torch.distributed each rank generates and featurises
its share of every side (shards.py) and rank 0 computes the metrics, the same as one process.
Metrics are registered by name (`METRICS`), each a small function of the prepared features; names
carry the sample count (`fid_2k`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from prodgan.fsutil import write_json_atomic
from prodgan.metrics import calibration as calib
from prodgan.metrics import stats_cache
from prodgan.metrics.checks import check_inputs
from prodgan.metrics.conditional import (
    accuracy_per_category,
    conditional_accuracy,
    judge_references,
)
from prodgan.metrics.confidence import fid_interval
from prodgan.metrics.defaults import DEFAULTS
from prodgan.metrics.features import Progress, extract, make_extractor
from prodgan.metrics.fid import RealReference, fid_per_category, fid_to
from prodgan.metrics.inception_weights import InceptionWeights, resolve_inception_weights
from prodgan.metrics.isc import inception_score
from prodgan.metrics.judge import Judge
from prodgan.metrics.kid import kid
from prodgan.metrics.memorization import memorization
from prodgan.metrics.prc import precision_recall
from prodgan.metrics.protocol import Protocol, real_subset
from prodgan.metrics.shards import Features, Shards
from prodgan.models.evaluator import evaluator_fingerprint
from prodgan.models.sampling import exact_fp32, labels_like
from prodgan.names import metric_name

INCEPTION = "2048"


@dataclass
class EvalResult:
    metrics: dict[str, float]
    protocol: Protocol
    per_category: dict[str, dict[str, float]]  # category -> {"fid_2k": .., "cond_acc_2k": ..}
    images: np.ndarray  # the generated uint8 samples [N, C, H, W] (grids, audits)
    features: (
        np.ndarray
    )  # their Inception features [N, 2048] (paired comparisons, see confidence.py)
    real_cached: bool  # True when the real side came from the cache
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class _Context:
    """What every metric function reads: features of both sides, labels, options."""

    protocol: Protocol
    options: dict[str, Any]
    generated: dict[str, np.ndarray]
    generated_labels: np.ndarray | None
    real: dict[str, np.ndarray]
    real_labels: np.ndarray
    categories: tuple[str, ...]
    images: dict[
        str, np.ndarray
    ]  # uint8 pixels: "generated", "real" (the protocol's subset), "train" (the whole split)
    evaluator_logits: np.ndarray | None


def kid_subset(samples: int, real_samples: int) -> int:
    """Half the smaller side, capped at the default.

    So the subsets differ and KID's std means something.
    """
    return max(2, min(DEFAULTS["kid_subset_size"], samples // 2, real_samples // 2))


# ---------------------------------------------------------------- metrics, registered by name


def _fid(ctx: _Context) -> tuple[dict, dict]:
    gen, real = ctx.generated[INCEPTION], ctx.real[INCEPTION]
    ref = RealReference(real)
    value = fid_to(gen, ref)
    out = {"fid": value}
    if ctx.options["bootstrap"] > 0:
        ci = fid_interval(
            gen,
            ref,
            value,
            resamples=ctx.options["bootstrap"],
            seed=ctx.protocol.seed,
            confidence=ctx.options["confidence"],
        )
        out.update({"fid_ci_low": ci.low, "fid_ci_high": ci.high})
    per_cat = {}
    if ctx.generated_labels is not None:
        per_cat = {
            "fid": fid_per_category(
                gen, ctx.generated_labels, real, ctx.real_labels, ctx.categories
            )
        }
    return out, per_cat


def _kid(ctx: _Context) -> tuple[dict, dict]:
    mean, std = kid(
        ctx.generated[INCEPTION],
        ctx.real[INCEPTION],
        subset_size=ctx.options["kid_subset_size"],
        subsets=ctx.options["kid_subsets"],
        seed=ctx.protocol.seed,
    )
    return {"kid": mean, "kid_std": std}, {}


def _prc(ctx: _Context) -> tuple[dict, dict]:
    precision, recall = precision_recall(
        ctx.generated[INCEPTION], ctx.real[INCEPTION], neighborhood=ctx.options["prc_neighborhood"]
    )
    return {"precision": precision, "recall": recall}, {}


def _isc(ctx: _Context) -> tuple[dict, dict]:
    logits = ctx.generated.get("logits_unbiased", ctx.evaluator_logits)
    if logits is None:
        return {}, {}
    mean, std = inception_score(logits, splits=ctx.options["isc_splits"], seed=ctx.protocol.seed)
    return {"is": mean, "is_std": std}, {}


def _cond_acc(ctx: _Context) -> tuple[dict, dict]:
    if ctx.evaluator_logits is None or ctx.generated_labels is None:
        return {}, {}
    return (
        {"cond_acc": conditional_accuracy(ctx.evaluator_logits, ctx.generated_labels)},
        {
            "cond_acc": accuracy_per_category(
                ctx.evaluator_logits, ctx.generated_labels, ctx.categories
            )
        },
    )


def _memorization(ctx: _Context) -> tuple[dict, dict]:
    if "train" not in ctx.images:
        return {}, {}
    return {
        "memorization": memorization(
            ctx.images["generated"],
            ctx.images["train"],
            ctx.images["real"],
            quantile=ctx.options["memorization_quantile"],
        )
    }, {}


METRICS: dict[str, Callable[[_Context], tuple[dict, dict]]] = {
    "fid": _fid,
    "kid": _kid,
    "prc": _prc,
    "is": _isc,
    "cond_acc": _cond_acc,
    "memorization": _memorization,
}


# ---------------------------------------------------------------- the entry point


def evaluate_generator(
    G: torch.nn.Module,
    spec: Any,
    real: Any,
    *,
    samples: int = DEFAULTS["samples"],
    seed: int = DEFAULTS["seed"],
    device: str | None = None,
    batch_size: int = DEFAULTS["batch_size"],
    generator_key: str | None = None,
    noise: calib.NoiseReference | None = None,
    shards: Shards | None = None,
    **options: Any,
) -> EvalResult | None:
    """Evaluate generator `G` (spec: GeneratorSpec) against `real` (ImageSplit, usually test).

    Generates `samples` images from `seed` (categories in the real split's proportions for a
    conditional `spec`), this rank's share of them when `shards` (default: the process group this
    process joined, if any) spreads the work, and scores them with `evaluate_samples`, whose
    keyword `options` it takes (train, evaluator, real_samples, kid_subset_size, metrics,
    bootstrap, cache_dir, weights, extractor, calibrate, progress). The noise reference is an
    untrained generator of `spec`, or `noise` (an imported generator's, see
    `calibration.bundle_noise_reference`). `generator_key` (the weights' sha256) caches the
    generated side's features: the same weights under the same protocol skip InceptionV3 entirely,
    and the promotion gates can compare two generators from the cache (`fid_delta_from_cache`).
    Bad requests fail before generating; rank 0 returns the result, every other rank None.
    """
    from prodgan.models.sampling import generate_uint8

    check_inputs(
        spec,
        real,
        samples=samples,
        real_samples=options.get("real_samples"),
        kid_subset_size=options.get("kid_subset_size"),
        evaluator=options.get("evaluator"),
        metrics=options.get("metrics", tuple(METRICS)),
        train=options.get("train"),
        known=tuple(METRICS),
    )
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    shards = shards or Shards.joined()
    with exact_fp32():
        tick = time.perf_counter()
        labels = (
            labels_like(real.labels, samples, spec.num_classes, seed) if spec.num_classes else None
        )
        share = generate_uint8(
            G,
            spec,
            samples,
            seed,
            labels=labels,
            device=device,
            batch=batch_size,
            span=shards.span(samples, batch_size),
        ).numpy()
        generate_seconds = time.perf_counter() - tick
    result = evaluate_samples(
        share,
        real,
        samples=samples,
        noise=noise or calib.untrained_reference(spec),
        labels=labels,
        seed=seed,
        device=device,
        batch_size=batch_size,
        samples_key=generator_key,
        shards=shards,
        **options,
    )
    if result is not None:
        result.timings = {"generate": generate_seconds, **result.timings}
    return result


def evaluate_samples(
    share: np.ndarray,
    real: Any,
    *,
    noise: calib.NoiseReference,
    samples: int | None = None,
    labels: torch.Tensor | None = None,
    seed: int = DEFAULTS["seed"],
    train: Any = None,
    evaluator: torch.nn.Module | None = None,
    real_samples: int | None = None,
    kid_subset_size: int | None = None,
    metrics: tuple[str, ...] = tuple(METRICS),
    bootstrap: int = DEFAULTS["bootstrap"],
    device: str | None = None,
    cache_dir: Path | None = None,
    weights: InceptionWeights | None = None,
    extractor: str = DEFAULTS["extractor"],
    batch_size: int = DEFAULTS["batch_size"],
    samples_key: str | None = None,
    calibrate: bool = True,
    progress: Progress | None = None,
    shards: Shards | None = None,
) -> EvalResult | None:
    """Evaluate uint8 samples `[N, C, H, W]` against `real` under the same protocol as a generator.

    A generator's evaluation comes here with its images (`share`: this rank's share of `samples`
    when `shards` spreads the work); samples handed in from outside (a generator prodgan cannot
    run) come here directly, all of them in one process, with `labels=None` (no conditional
    accuracy) and `noise` the fixed reference of `calibration.samples_reference`.
    `train` (ImageSplit) enables memorization and, with `calibrate`, the floor (training images
    vs the split); `calibrate` adds the noise reference too (`noise`: an untrained generator and
    what it is, see calibration.py). `evaluator` (the category judge, prodgan.models.probe, or a
    pixel classifier, prodgan.models.evaluator) enables conditional accuracy (with `labels`), and
    IS when the Inception weights have no logits layer.
    `samples_key` (a weights or pixels sha256) caches the generated side's features.
    `progress(side, done, total)` hears about every feature extraction as it goes (images per side).
    Rank 0 returns the result, every other rank None.
    """
    from prodgan.settings import Settings

    samples = len(share) if samples is None else samples
    real_samples = check_inputs(
        noise.spec,
        real,
        samples=samples,
        real_samples=real_samples,
        kid_subset_size=kid_subset_size,
        evaluator=evaluator,
        metrics=metrics,
        train=train,
        known=tuple(METRICS),
    )
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    cache_dir = Path(cache_dir) if cache_dir else Settings.load().cache_dir
    weights = weights or resolve_inception_weights(cache_dir)
    evaluator_sha = evaluator_fingerprint(evaluator) if evaluator is not None else ""
    protocol = Protocol(
        real.dataset,
        real.data_hash,
        real.split,
        samples,
        real_samples,
        seed,
        extractor,
        weights.sha256,
        DEFAULTS["resize"],
        DEFAULTS["precision"],
        labels is not None,
        evaluator_sha,
    )
    options = {
        **{
            k: DEFAULTS[k]
            for k in (
                "kid_subsets",
                "prc_neighborhood",
                "isc_splits",
                "confidence",
                "memorization_quantile",
            )
        },
        "bootstrap": bootstrap,
        "kid_subset_size": kid_subset_size or kid_subset(samples, real_samples),
    }
    timings: dict[str, float] = {}

    shards = shards or Shards.joined()
    report = progress if shards.lead else None
    with exact_fp32():
        layers = [INCEPTION] + (["logits_unbiased"] if weights.has_logits else [])
        inception = make_extractor(extractor, layers, str(weights.path), device)
        tick = time.perf_counter()

        def generated_side() -> Features | None:
            return shards.gather(_extract_share(share, inception, "generated", batch_size, report))

        if samples_key:
            if shards.lead:
                write_json_atomic(
                    stats_cache.protocol_file(cache_dir, protocol.fingerprint), protocol.to_dict()
                )
            generated, _ = shards.cached(
                cache_dir,
                stats_cache.generated_key(protocol.fingerprint, samples_key),
                generated_side,
            )
        else:
            generated = generated_side()
        timings["generated_features"] = time.perf_counter() - tick

        tick = time.perf_counter()
        real_idx = real_subset(real_samples, len(real))
        real_features, real_cached = shards.cached(
            cache_dir,
            protocol.real_key(),
            lambda: _features(
                shards, real.images[real_idx], inception, f"real:{real.split}", batch_size, report
            ),
        )
        timings["real_features"] = time.perf_counter() - tick

        evaluator_logits, calibration, judge = None, {}, None
        if evaluator is not None:
            judge = Judge(evaluator, weights, device)
            evaluator_logits = _judged(
                judge,
                generated,
                lambda pixels: shards.gather(
                    _extract_share(share, pixels, "evaluator", batch_size, report)
                ),
            )
        if calibrate and train is not None:
            tick = time.perf_counter()
            calibration = _calibrate(
                noise=noise,
                protocol=protocol,
                options=options,
                cache_dir=cache_dir,
                inception=inception,
                real=real,
                real_idx=real_idx,
                real_features=real_features,
                train=train,
                labels=labels,
                judge=judge,
                device=device,
                batch_size=batch_size,
                progress=report,
                shards=shards,
            )
            timings["calibration"] = time.perf_counter() - tick
        gathered = shards.gather({"images": share})
    if gathered is None:  # not the lead: its share is in the lead's result
        return None
    images = gathered["images"]

    tick = time.perf_counter()
    pixels = {
        "generated": images,
        "real": real.images[real_idx],
        **({"train": train.images} if train is not None else {}),
    }
    ctx = _Context(
        protocol,
        options,
        generated,
        None if labels is None else labels.numpy(),
        real_features,
        real.labels[real_idx],
        tuple(real.categories),
        pixels,
        evaluator_logits,
    )
    values: dict[str, float] = dict(calibration)
    per_category: dict[str, dict[str, float]] = {}
    for name in metrics:
        out, per_cat = METRICS[name](ctx)
        values.update(out)
        for metric, by_cat in per_cat.items():
            for category, value in by_cat.items():
                per_category.setdefault(category, {})[metric_name(metric, protocol.samples)] = value
    timings["metrics"] = time.perf_counter() - tick
    named = {metric_name(k, protocol.samples): float(v) for k, v in values.items()}
    named.update(
        {
            f"{metric}/{category}": v
            for category, by_metric in per_category.items()
            for metric, v in by_metric.items()
            if metric.startswith("fid_")
        }
    )
    return EvalResult(
        named, protocol, per_category, images, generated[INCEPTION], real_cached, timings
    )


def _extract_share(
    images: np.ndarray, extractor: torch.nn.Module, side: str, batch_size: int, progress: Any
) -> Features:
    """`extract` of one rank's share; nothing for a rank whose share is empty."""
    return extract(images, extractor, side, batch_size, progress) if len(images) else {}


def _features(
    shards: Shards,
    images: np.ndarray,
    extractor: torch.nn.Module,
    side: str,
    batch_size: int,
    progress: Progress | None,
) -> Features | None:
    """Features of images every rank holds (a real split): each extracts its share, the lead all."""
    share = images[shards.span(len(images), batch_size)]
    return shards.gather(_extract_share(share, extractor, side, batch_size, progress))


def _judged(
    judge: Judge,
    features: Features | None,
    by_pixels: Callable[[torch.nn.Module], Features | None],
) -> np.ndarray | None:
    """The judge's logits on the lead, None on other ranks: the probe reads the Inception
    `features` the lead already has; a pixel classifier runs `by_pixels` (every rank takes part)."""
    if judge.reads_features:
        return judge.from_features(features)
    judged = by_pixels(judge.extractor)
    return judged["logits"] if judged else None


def _calibrate(
    *,
    noise: calib.NoiseReference,
    protocol: Protocol,
    options: dict[str, Any],
    cache_dir: Path,
    inception: torch.nn.Module,
    real: Any,
    real_idx: np.ndarray,
    real_features: Features | None,
    train: Any,
    labels: torch.Tensor | None,
    judge: Judge | None,
    device: str,
    batch_size: int,
    progress: Progress | None,
    shards: Shards,
) -> dict[str, float]:
    """Floor and noise references under this protocol (calibration.py); {} on all but the lead.

    Their features are cached like the real side, and sharded like it.
    """
    from prodgan.models.sampling import generate_uint8

    n = len(real_idx)
    train_idx = real_subset(n, len(train))
    floor, _ = shards.cached(
        cache_dir,
        protocol.real_key(train.split, n),
        lambda: _features(
            shards, train.images[train_idx], inception, f"real:{train.split}", batch_size, progress
        ),
    )
    noise_share = generate_uint8(
        noise.generator,
        noise.spec,
        protocol.samples,
        protocol.seed,
        labels=labels,
        device=device,
        batch=batch_size,
        span=shards.span(protocol.samples, batch_size),
    ).numpy()
    noise_features, _ = shards.cached(
        cache_dir,
        stats_cache.generated_key(protocol.fingerprint, noise.key),
        lambda: shards.gather(
            _extract_share(noise_share, inception, "untrained", batch_size, progress)
        ),
    )
    judged = {}
    if judge is not None and labels is not None:
        judged = {
            "floor": _judged(
                judge,
                real_features,
                lambda pixels: _features(
                    shards, real.images[real_idx], pixels, "evaluator", batch_size, progress
                ),
            ),
            "noise": _judged(
                judge,
                noise_features,
                lambda pixels: shards.gather(
                    _extract_share(noise_share, pixels, "evaluator", batch_size, progress)
                ),
            ),
        }
    if not shards.lead:
        return {}
    out = calib.references(
        real_features[INCEPTION],
        floor[INCEPTION],
        noise_features[INCEPTION],
        kid_subset_size=options["kid_subset_size"],
        kid_subsets=options["kid_subsets"],
        seed=protocol.seed,
    )
    if judged:
        out.update(
            judge_references(
                judged["floor"],
                real.labels[real_idx],
                judged["noise"],
                labels.numpy(),
                len(real.categories),
            )
        )
    return out


def quick_fid(
    G: torch.nn.Module,
    spec: Any,
    real: Any,
    n: int,
    *,
    seed: int = DEFAULTS["seed"],
    device: str | None = None,
    cache_dir: Path | None = None,
    batch_size: int = DEFAULTS["batch_size"],
) -> float | None:
    """FID only, n generated vs n real (real features cached).

    The training loop's progress signal. Under torch.distributed every rank calls it and
    generates its share (shards.py); rank 0 gets the FID, every other rank None.
    """
    result = evaluate_generator(
        G,
        spec,
        real,
        samples=n,
        seed=seed,
        metrics=("fid",),
        bootstrap=0,
        device=device,
        cache_dir=cache_dir,
        batch_size=batch_size,
        calibrate=False,
    )
    return None if result is None else result.metrics[f"fid_{result.protocol.suffix}"]
