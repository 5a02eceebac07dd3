"""The category judge behind cond_acc, on a small real catalogue read in place from clothing-small
(4 categories x 12 train + 6 test photos): the linear probe on Inception features beats the CNN
trained from scratch on the same split; it round-trips and refuses tampered weights; a judge too
close to chance makes the cond_acc gate SKIP with its reason (never pass or fail), and a strong one
still rejects a generator that ignores the requested category.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from prodgan.errors import ProdganError
from prodgan.metrics import evaluate_generator
from prodgan.metrics.judge import fit_judge
from prodgan.models import GeneratorSpec
from prodgan.models.evaluator import train_evaluator
from prodgan.models.probe import WEIGHTS_FILE, load_probe, save_probe
from prodgan.ops.announce import decision_markdown
from prodgan.policy.decision import Decision
from prodgan.policy.gate_file import parse_policy
from prodgan.policy.gates import Evaluation, judge
from tests.metrics.test_gate_cases import GATES
from tests.products.helpers import clothing_split

CATEGORIES = ["hat", "pants", "shoes", "t-shirt"]
SAMPLES = 24


@pytest.fixture(scope="module")
def catalogue():
    return clothing_split("train", CATEGORIES, 12), clothing_split("test", CATEGORIES, 6)


@pytest.fixture(scope="module")
def fitted(catalogue, inception_weights, tmp_path_factory):
    cache = tmp_path_factory.mktemp("judge-features")
    train, test = catalogue
    return fit_judge(train, test, inception_weights, cache), cache


def _cond_acc_policy():
    """The shipped cond_acc gate alone (the other gates need hundreds of samples to mean
    anything)."""
    shipped = yaml.safe_load(GATES.read_text())
    return parse_policy(
        yaml.safe_dump(
            {
                "version": shipped["version"],
                "confidence": shipped["confidence"],
                "protocol": shipped["protocol"],
                "absolute": {"cond_acc": shipped["absolute"]["cond_acc"]},
            }
        )
    )


def test_the_probe_beats_the_cnn_on_a_small_real_catalogue(catalogue, fitted):
    train, test = catalogue
    _, cnn_accuracy = train_evaluator(train, test, epochs=3, seed=0)
    probe = fitted[0]
    chance = 1 / len(CATEGORIES)
    assert probe.test_accuracy >= 0.6 and probe.test_accuracy > cnn_accuracy + 0.15, (
        probe.test_accuracy,
        cnn_accuracy,
        chance,
    )


def test_the_probe_round_trips_and_refuses_tampered_weights(fitted, catalogue, tmp_path):
    probe = fitted[0].probe
    save_probe(tmp_path, probe, {"test_accuracy": fitted[0].test_accuracy})
    loaded, record = load_probe(tmp_path)
    features = np.random.RandomState(0).randn(5, 2048).astype(np.float32)
    assert np.array_equal(loaded.logits(features), probe.logits(features))
    assert loaded.sha256 == record["weights_sha256"] and loaded.categories == tuple(CATEGORIES)
    (tmp_path / WEIGHTS_FILE).write_bytes((tmp_path / WEIGHTS_FILE).read_bytes()[:-10])
    with pytest.raises(ProdganError, match="does not match the sha256"):
        load_probe(tmp_path)


def _metrics(value: float, floor: float, photos: int, noise: float, chance: float, n: int = 500):
    return {
        f"cond_acc_{n}": value,
        f"cond_acc_{n}_floor": floor,
        f"cond_acc_{n}_floor_count": photos,
        f"cond_acc_{n}_noise": noise,
        f"cond_acc_{n}_chance": chance,
    }


@pytest.mark.parametrize("value", [0.05, 0.3])  # below noise and above the real photos' 0.23
def test_a_judge_near_chance_skips_the_gate_with_its_reason(value):
    """The issue's catalogue: 0.23 on 78 photos of 6 categories, untrained generator 0.18."""
    ev = Evaluation.from_metrics("p", _metrics(value, 0.23, 78, 0.18, 1 / 6), "weak judge")
    verdict = judge(_cond_acc_policy(), ev, None)
    (check,) = [c for c in verdict.checks if c.gate == "absolute.cond_acc"]
    assert check.skipped and not check.passed and check.verdict == "SKIP"
    assert "not judged" in check.reason and "78 real photos" in check.reason
    assert verdict.approved  # a skipped gate neither passes nor blocks
    decision = Decision("promote", "m", "1", checks=list(verdict.checks))
    assert not decision.failed and "SKIP absolute.cond_acc" in decision.summary
    stored = Decision.from_record(decision.to_dict())
    assert stored.checks[0].skipped and stored.reasons[0].startswith("SKIP absolute.cond_acc")
    assert "- ⏭️ SKIP absolute.cond_acc: not judged" in decision_markdown(stored)  # Prefect face


def test_a_strong_judge_is_judged_both_ways():
    strong = _metrics(0.8, 0.9, 300, 0.1, 1 / 6)
    passed = judge(_cond_acc_policy(), Evaluation.from_metrics("p", strong), None)
    failed = judge(
        _cond_acc_policy(), Evaluation.from_metrics("p", {**strong, "cond_acc_500": 0.2}), None
    )
    assert passed.approved and not passed.checks[0].skipped
    assert not failed.approved and failed.checks[0].verdict == "FAIL"


class Photos(nn.Module):
    """Real photos of one category per sample, picked by the latent: of the requested category,
    or (`ignore_label`) of a category drawn from the latent whatever was requested."""

    def __init__(self, split, ignore_label: bool) -> None:
        super().__init__()
        self.ignore_label = ignore_label
        self.pools = [
            torch.from_numpy(split.images[split.labels == c]).float().div(127.5).sub(1)
            for c in range(len(split.categories))
        ]

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        picks = (z[:, 0].abs() * 1e6).long()
        shown = (z[:, 1].abs() * 1e6).long() % len(self.pools) if self.ignore_label else labels
        return torch.stack(
            [
                self.pools[int(c)][int(p) % len(self.pools[int(c)])]
                for c, p in zip(shown, picks, strict=True)
            ]
        )


def test_a_strong_judge_rejects_a_generator_that_ignores_the_label(
    catalogue, fitted, inception_weights
):
    train, test = catalogue
    fitted_judge, cache = fitted
    spec = GeneratorSpec("cdcgan", 8, len(CATEGORIES), 3, 64, 4, tuple(CATEGORIES))
    verdicts = {}
    for ignore_label in (True, False):
        result = evaluate_generator(
            Photos(train, ignore_label),
            spec,
            test,
            samples=SAMPLES,
            train=train,
            evaluator=fitted_judge.probe,
            metrics=("cond_acc",),
            cache_dir=cache,
            weights=inception_weights,
        )
        verdicts[ignore_label] = judge(
            _cond_acc_policy(),
            Evaluation.from_metrics(result.protocol.fingerprint, result.metrics),
            None,
        )
    ignores, honours = verdicts[True].checks[0], verdicts[False].checks[0]
    assert not ignores.skipped and not honours.skipped, (ignores.line, honours.line)
    assert ignores.verdict == "FAIL" and honours.verdict == "PASS", (ignores.line, honours.line)
