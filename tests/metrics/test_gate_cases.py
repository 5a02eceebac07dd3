"""The shipped gates on real Inception features: noise, a constant colour and a copier are each
stopped by a named gate (and dim blobs are not mistaken for copies); a generator that samples the
data distribution (fresh real images) passes.

Each generator is a module with the generator interface (z, labels -> images in [-1, 1]); the
evaluation is the real one (`evaluate_generator` with calibration, evaluator classifier, pixel
memorization against the whole train split) and the verdict comes from `evaluation/gates.yaml`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from prodgan.metrics import evaluate_generator
from prodgan.models import GeneratorSpec, build_generator
from prodgan.policy.gate_file import load_policy
from prodgan.policy.gates import Evaluation, judge
from tests.metrics.helpers import CATEGORIES, real_split

GATES = Path(__file__).resolve().parents[2] / "evaluation" / "gates.yaml"
SAMPLES = 100
SPEC = GeneratorSpec("cdcgan", 8, len(CATEGORIES), 1, 28, 8, CATEGORIES)


class Picker(nn.Module):
    """Returns stored images of the requested category, chosen by the latent: a copier or a fresh
    sampler."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        super().__init__()
        self.pools = [
            torch.from_numpy(images[labels == c]).float().div(127.5).sub(1)
            for c in range(len(CATEGORIES))
        ]

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        picks = (z[:, 0].abs() * 1e6).long()
        return torch.stack(
            [
                self.pools[int(c)][int(p) % len(self.pools[int(c)])]
                for c, p in zip(labels, picks, strict=True)
            ]
        )


class Constant(nn.Module):
    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return torch.full((len(z), 1, 28, 28), 0.2)


class NearBlack(nn.Module):
    """Dim blobs, like a generator a few hundred steps in: close in pixels to every dark training
    image, a copy of none."""

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        blob = torch.nn.functional.interpolate(
            z[:, :4].reshape(-1, 1, 2, 2), size=28, mode="bilinear"
        )
        return (-0.9 + 0.08 * blob).clamp(-1, 1)


@pytest.fixture(scope="module")
def splits():
    return real_split("test", 300), real_split("train", 3000)


@pytest.fixture(scope="module")
def evaluator(evaluator_classifier, splits):
    model, accuracy, judged_on = evaluator_classifier  # trained on the same 3,000 train images
    assert judged_on.data_hash == splits[0].data_hash and accuracy > 0.7, accuracy
    return model


def _untrained() -> nn.Module:
    torch.manual_seed(7)  # not the calibration's own initialisation
    return build_generator(SPEC)


def _copier(train) -> nn.Module:
    return Picker(train.images, train.labels)


def _fresh() -> nn.Module:
    pool = real_split(
        "test", 3000, offset=5000
    )  # real images outside the train split and the evaluated test images
    return Picker(pool.images, pool.labels)


@pytest.mark.slow
@pytest.mark.parametrize(
    "case, expected_failures",
    [
        ("untrained", {"absolute.fid", "absolute.kid", "absolute.cond_acc"}),
        ("constant colour", {"absolute.fid", "absolute.kid", "absolute.cond_acc"}),
        ("near-black blobs", {"absolute.fid", "absolute.kid", "absolute.cond_acc"}),
        ("copier", {"absolute.memorization"}),
        ("fresh real images", set()),
    ],
)
def test_shipped_gates(
    case, expected_failures, splits, evaluator, inception_weights, tmp_path_factory
):
    test, train = splits
    generator = {
        "untrained": _untrained,
        "constant colour": Constant,
        "near-black blobs": NearBlack,
        "copier": lambda: _copier(train),
        "fresh real images": _fresh,
    }[case]()
    result = evaluate_generator(
        generator,
        SPEC,
        test,
        samples=SAMPLES,
        train=train,
        evaluator=evaluator,
        cache_dir=tmp_path_factory.getbasetemp() / "gate-cases-cache",
        weights=inception_weights,
    )
    verdict = judge(
        load_policy(GATES),
        Evaluation.from_metrics(result.protocol.fingerprint, result.metrics, case),
        None,
    )
    failed = {c.gate for c in verdict.checks if not c.passed}
    assert expected_failures <= failed and failed <= expected_failures | {
        "absolute.kid",
        "absolute.cond_acc",
    }, verdict.reasons
    assert verdict.approved is (not expected_failures), verdict.reasons
