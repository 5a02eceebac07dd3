"""evaluate_generator end to end on tens of real images:
metric names, the real-side cache, bad input.
"""

from __future__ import annotations

import numpy as np
import pytest

from prodgan.errors import ProdganError
from prodgan.metrics import evaluate_generator, fid_delta_from_cache
from prodgan.metrics.defaults import DEFAULTS
from prodgan.metrics.evaluate import INCEPTION
from prodgan.metrics.features import EXTRACTIONS, extract, make_extractor
from prodgan.models.evaluator import train_evaluator
from tests.metrics.helpers import real_split, tiny_generator

N = 10


@pytest.mark.slow  # ~30 s of CPU: three real sides, two generated sides, a tiny evaluator
def test_second_evaluation_skips_the_real_side_and_reports_every_metric(
    inception_weights, feature_cache
):
    G, spec = tiny_generator()
    real, train = real_split("test", N), real_split("train", N)
    evaluator, _ = train_evaluator(
        real_split("train", 400, offset=N), real_split("test", 50, offset=N), epochs=1
    )
    before, heard = EXTRACTIONS.copy(), []
    first = evaluate_generator(
        G,
        spec,
        real,
        samples=N,
        seed=0,
        train=train,
        evaluator=evaluator,
        bootstrap=5,
        cache_dir=feature_cache,
        weights=inception_weights,
        progress=lambda side, done, total: heard.append((side, done, total)),
    )
    after_first = EXTRACTIONS.copy()
    second = evaluate_generator(
        G,
        spec,
        real,
        samples=N,
        seed=0,
        train=train,
        evaluator=evaluator,
        bootstrap=5,
        cache_dir=feature_cache,
        weights=inception_weights,
    )
    assert (
        after_first["real:test"] - before["real:test"] == 1
        and after_first["real:train"] - before["real:train"] == 1
    )
    assert (
        EXTRACTIONS["real:test"] == after_first["real:test"]
        and EXTRACTIONS["real:train"] == after_first["real:train"]
    )
    assert EXTRACTIONS["generated"] - after_first["generated"] == 1
    assert not first.real_cached and second.real_cached
    assert (
        second.metrics == first.metrics
    )  # deterministic for a seed; reporting progress batch by batch changes nothing
    assert {side for side, _, _ in heard} == {
        "generated",
        "real:test",
        "real:train",
        "untrained",
        "evaluator",
    }
    assert [done for side, done, _ in heard if side == "real:test"] == [0, N]
    inception = make_extractor(
        DEFAULTS["extractor"], [INCEPTION], str(inception_weights.path), "cpu"
    )  # built above: reused
    heard.clear()
    batched = extract(
        real.images, inception, "real:test", 4, progress=lambda *report: heard.append(report)
    )[INCEPTION]
    assert heard == [
        ("real:test", 0, N),
        ("real:test", 4, N),
        ("real:test", 8, N),
        ("real:test", N, N),
    ]
    assert np.array_equal(
        batched, extract(real.images, inception, "real:test", 4)[INCEPTION]
    )  # batch by batch: same features
    for name in (
        "fid_10",
        "fid_10_ci_low",
        "fid_10_ci_high",
        "kid_10",
        "kid_10_std",
        "precision_10",
        "recall_10",
        "is_10",
        "cond_acc_10",
        "memorization_10",
    ):
        assert name in first.metrics and np.isfinite(first.metrics[name]), name
    assert (
        first.metrics["fid_10_ci_low"] <= first.metrics["fid_10"] <= first.metrics["fid_10_ci_high"]
    )
    assert 0 <= first.metrics["cond_acc_10"] <= 1 and first.metrics["is_10"] >= 1
    assert (
        first.protocol.evaluator_sha256
        and first.protocol.weights_sha256 == inception_weights.sha256
    )
    assert first.images.shape == (N, 1, 28, 28) and first.features.shape == (N, 2048)
    # with a generator key the generated side is cached too;
    # the gates' paired comparison reads it back
    other, _ = tiny_generator(seed=1)
    for key, generator in (("champion", G), ("challenger", other), ("champion", G)):
        done = EXTRACTIONS["generated"]
        keyed = evaluate_generator(
            generator,
            spec,
            real,
            samples=N,
            seed=0,
            metrics=("fid",),
            bootstrap=0,
            evaluator=evaluator,
            cache_dir=feature_cache,
            weights=inception_weights,
            generator_key=key,
        )
        assert (
            keyed.protocol.fingerprint == first.protocol.fingerprint
        )  # the metric subset is not part of the protocol
    assert (
        EXTRACTIONS["generated"] == done
    )  # the second champion evaluation ran no InceptionV3 at all
    assert keyed.metrics["fid_10"] == pytest.approx(first.metrics["fid_10"])
    delta = fid_delta_from_cache(
        feature_cache, first.protocol.fingerprint, "challenger", "champion", resamples=5
    )
    assert delta is not None and delta.low <= delta.value <= delta.high and delta.value != 0
    assert (
        fid_delta_from_cache(feature_cache, first.protocol.fingerprint, "challenger", "unknown")
        is None
    )


def test_a_different_seed_reuses_the_real_side(inception_weights, feature_cache):
    G, spec = tiny_generator(conditional=False)
    real = real_split("test", N, offset=100)
    evaluate_generator(
        G,
        spec,
        real,
        samples=N,
        seed=0,
        metrics=("fid",),
        bootstrap=0,
        cache_dir=feature_cache,
        weights=inception_weights,
    )
    other = evaluate_generator(
        G,
        spec,
        real,
        samples=N,
        seed=1,
        metrics=("fid",),
        bootstrap=0,
        cache_dir=feature_cache,
        weights=inception_weights,
    )
    assert other.real_cached and set(other.metrics) == {"fid_10"}


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"samples": 1}, "out of range"),
        ({"samples": 10_000_000}, "out of range"),
        ({"samples": 5, "kid_subset_size": 6}, "kid-subset-size"),
        ({"samples": 5, "real_samples": 50}, "real sample count"),
        ({"metrics": ("fid", "sharpness")}, "unknown metric"),
    ],
)
def test_bad_arguments_are_one_line_errors(kwargs, match, feature_cache):
    G, spec = tiny_generator()
    with pytest.raises(ProdganError, match=match) as err:
        evaluate_generator(
            G, spec, real_split("test", N), **{"samples": N, **kwargs}, cache_dir=feature_cache
        )
    assert "\n" not in str(err.value)


def test_grayscale_rgb_mismatch_is_refused(feature_cache):
    G, spec = tiny_generator(channels=3)
    with pytest.raises(ProdganError, match="RGB images but fashion-mnist is grayscale"):
        evaluate_generator(G, spec, real_split("test", N), samples=N, cache_dir=feature_cache)


def test_evaluator_for_other_categories_is_refused(feature_cache):
    G, spec = tiny_generator()
    evaluator, _ = train_evaluator(real_split("train", 20), real_split("test", 20), epochs=1)
    evaluator.categories = ("a", "b")
    with pytest.raises(ProdganError, match="evaluator was trained on categories"):
        evaluate_generator(
            G, spec, real_split("test", N), samples=N, evaluator=evaluator, cache_dir=feature_cache
        )


def test_inception_score_comes_from_inception_logits_when_the_weights_have_them(
    inception_weights, feature_cache, tmp_path
):
    """The official file (not downloadable here) adds a 1008-way `fc`; a trunk with a seeded fc
    takes the same path."""
    import torch

    from prodgan.fsutil import sha256_file
    from prodgan.metrics.defaults import DEFAULTS
    from prodgan.metrics.inception_weights import InceptionWeights
    from prodgan.metrics.isc import inception_score

    state = torch.load(inception_weights.path, weights_only=True)
    state["fc.weight"] = (
        torch.randn(state["fc.weight"].shape, generator=torch.Generator().manual_seed(0)) * 0.05
    )
    path = tmp_path / "inception-with-logits.pth"
    torch.save(state, path)
    with_logits = InceptionWeights(path, sha256_file(path), has_logits=True, origin="env")

    G, spec = tiny_generator(conditional=False)
    real = real_split("test", N, offset=200)
    result = evaluate_generator(
        G,
        spec,
        real,
        samples=N,
        seed=0,
        metrics=("fid", "is"),
        bootstrap=0,
        cache_dir=feature_cache,
        weights=with_logits,
    )
    expected, _ = inception_score(
        result.features.astype("float32") @ state["fc.weight"].numpy().T,
        splits=DEFAULTS["isc_splits"],
        seed=0,
    )
    assert (
        result.metrics["is_10"] == pytest.approx(expected, rel=1e-4) and result.metrics["is_10"] > 1
    )
    assert (
        result.protocol.weights_sha256 != inception_weights.sha256
    )  # other weights, another protocol
    trunk_only = evaluate_generator(
        G,
        spec,
        real,
        samples=N,
        seed=0,
        metrics=("fid", "is"),
        bootstrap=0,
        cache_dir=feature_cache,
        weights=inception_weights,
    )
    assert (
        "is_10" not in trunk_only.metrics
    )  # no logits and no evaluator: no IS, never a made-up one
    assert trunk_only.metrics["fid_10"] == pytest.approx(
        result.metrics["fid_10"], rel=1e-5
    )  # same trunk, same FID
