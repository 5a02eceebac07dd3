"""Pure metric functions on synthetic features (no Inception):
FID formula, intervals, memorization, protocol.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

from prodgan.metrics.confidence import fid_delta_interval, fid_interval
from prodgan.metrics.fid import RealReference, fid, fid_to
from prodgan.metrics.memorization import memorization
from prodgan.metrics.protocol import Protocol
from prodgan.models.sampling import labels_like
from prodgan.names import metric_name, sample_suffix


def _torch_fidelity_fid(a: np.ndarray, b: np.ndarray) -> float:
    stats = [fid_features_to_statistics(torch.from_numpy(x)) for x in (a, b)]
    return fid_statistics_to_metric(*stats, verbose=False)["frechet_inception_distance"]


@pytest.mark.parametrize("n_gen,n_real,dim", [(40, 60, 64), (300, 200, 64), (90, 90, 32)])
def test_fid_equals_torch_fidelity_formula_in_both_spaces(n_gen, n_real, dim):
    rng = np.random.RandomState(n_gen)
    gen = rng.randn(n_gen, dim).astype(np.float32)
    real = (rng.randn(n_real, dim) * 1.2 + 0.3).astype(np.float32)
    assert fid(gen, real) == pytest.approx(_torch_fidelity_fid(gen, real), rel=1e-6)


def test_intervals_contain_the_value_and_rank_generators():
    rng = np.random.RandomState(0)
    real = rng.randn(200, 16)
    good, bad = rng.randn(150, 16), rng.randn(150, 16) * 1.5 + 0.5
    value = fid(good, real)
    ci = fid_interval(good, RealReference(real), value, resamples=30, seed=1, confidence=0.9)
    assert ci.low <= value <= ci.high and ci.high > ci.low
    delta = fid_delta_interval(good, bad, real, resamples=30, seed=1)
    assert delta.high < 0  # good beats bad with confidence
    assert delta.value == pytest.approx(fid_to(good, RealReference(real)) - fid(bad, real))


def test_memorization_flags_copies_and_not_fresh_samples():
    """Pixel space against the whole train split: copies score 1, fresh draws about the quantile."""
    rng = np.random.RandomState(0)

    def draw(
        n: int,
    ) -> (
        np.ndarray
    ):  # smooth random "products": low-res noise upsampled, 1x40x40 (downsampled to 32)
        low = rng.rand(n, 1, 5, 5)
        return (np.kron(low, np.ones((1, 1, 8, 8))) * 255).astype(np.uint8)

    train, test, fresh = draw(2000), draw(200), draw(200)
    copies = train[rng.choice(2000, 200, replace=False)]
    assert memorization(copies, train, test, quantile=0.05) == 1.0
    assert memorization(fresh, train, test, quantile=0.05) < 0.15


def test_categories_are_drawn_in_the_data_proportions():
    real_labels = np.array([0] * 60 + [1] * 30 + [2] * 10)
    labels = labels_like(real_labels, 20, 3, seed=0).numpy()
    assert np.bincount(labels, minlength=3).tolist() == [12, 6, 2]
    assert not np.array_equal(labels, np.sort(labels))  # shuffled
    assert np.array_equal(labels, labels_like(real_labels, 20, 3, seed=0).numpy())


def test_metric_names_carry_the_sample_count():
    assert [sample_suffix(n) for n in (50, 2000, 10000, 2500)] == ["50", "2k", "10k", "2500"]
    assert [
        metric_name(m, 2000)
        for m in ("fid", "fid_ci_low", "kid_std", "is_std", "cond_acc", "precision")
    ] == ["fid_2k", "fid_2k_ci_low", "kid_2k_std", "is_2k_std", "cond_acc_2k", "precision_2k"]


def test_fingerprint_covers_every_field_and_real_key_ignores_the_generated_side():
    base = Protocol(
        "fashion-mnist",
        "abc.dir",
        "test",
        2000,
        2000,
        0,
        "inception-v3-prodgan",
        "f" * 64,
        "tf1x-bilinear",
        "fp32-no-tf32",
        True,
        "",
    )
    changed = {
        "dataset": "x",
        "data_hash": "d",
        "split": "train",
        "samples": 50,
        "real_samples": 50,
        "seed": 1,
        "extractor": "inception-v3-compat",
        "weights_sha256": "0" * 64,
        "resize": "pil",
        "precision": "tf32",
        "conditional": False,
        "evaluator_sha256": "e",
    }
    assert set(changed) == {f.name for f in dataclasses.fields(Protocol)}
    for field, value in changed.items():
        assert dataclasses.replace(base, **{field: value}).fingerprint != base.fingerprint, field
    assert dataclasses.replace(base, samples=50, seed=3).real_key() == base.real_key()
    assert dataclasses.replace(base, weights_sha256="0" * 64).real_key() != base.real_key()
