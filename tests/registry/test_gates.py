"""The promotion policy as pure functions: table-driven, no MLflow."""

from __future__ import annotations

from pathlib import Path

import pytest

from prodgan.errors import ProdganError
from prodgan.gates import Evaluation, ProtocolMismatch, judge, load_policy, parse_policy, threshold

REPO_GATES = Path(__file__).resolve().parents[2] / "evaluation" / "gates.yaml"

POLICY = """
confidence: 0.95
absolute:
  fid: {max: {0: 300, 1000: 50}}
  cond_acc: {min: 0.2}
champion: {metric: fid, margin: 1.0}
per_category: {metric: fid, max_relative_regression: 0.25}
"""


def ev(fid: float, low: float, high: float, cond_acc: float = 0.5, protocol: str = "p1", n: str = "50", **cats: float) -> Evaluation:
    metrics = {f"fid_{n}": fid, f"fid_{n}_ci_low": low, f"fid_{n}_ci_high": high, f"cond_acc_{n}": cond_acc,
               f"kid_{n}": 0.1, f"kid_{n}_std": 0.01}
    metrics.update({f"fid_{n}/{cat}": value for cat, value in cats.items()})
    return Evaluation.from_metrics(protocol, metrics, source="test")


@pytest.mark.parametrize("challenger, champion, approved, failing", [
    (ev(100, 90, 110), None, True, []),                                     # first champion: absolute gates only
    (ev(350, 340, 360), None, False, ["absolute.fid"]),                     # too bad even as first champion
    (ev(100, 90, 110, cond_acc=0.1), None, False, ["absolute.cond_acc"]),
    (ev(80, 75, 85), ev(100, 95, 105), True, []),                           # better beyond margin with confidence
    (ev(98, 90, 106), ev(100, 95, 105), False, ["champion.fid"]),           # better point value, overlapping intervals
    (ev(120, 115, 125), ev(100, 95, 105), False, ["champion.fid"]),         # worse
    (ev(94, 93, 94.5), ev(100, 95, 95.6), False, ["champion.fid"]),         # beats by less than the margin (1.0)
    (ev(80, 75, 85, bag=60, shoe=50), ev(100, 95, 105, bag=40, shoe=60), False, ["per_category.fid/bag"]),
    (ev(80, 75, 85, bag=45, shoe=50), ev(100, 95, 105, bag=40, shoe=60), True, []),
    (ev(60, 55, 65, n="2k"), None, False, ["absolute.fid"]),                # 2k samples: the 1000+ bound (50) applies
])
def test_judge(challenger, champion, approved, failing):
    verdict = judge(parse_policy(POLICY), challenger, champion)
    assert verdict.approved is approved, verdict.reasons
    assert sorted(c.gate for c in verdict.checks if not c.passed) == failing
    assert all(r.startswith(("PASS ", "FAIL ")) for r in verdict.reasons)


def test_difference_interval_is_conservative():
    verdict = judge(parse_policy(POLICY), ev(80, 75, 85), ev(100, 95, 105))
    assert verdict.difference["low"] == pytest.approx(75 - 105)
    assert verdict.difference["high"] == pytest.approx(85 - 95)
    assert verdict.difference["point"] == pytest.approx(-20)


def test_higher_is_better_metric_and_std_interval():
    policy = parse_policy("champion: {metric: cond_acc, margin: 0.0}\nconfidence: 0.95\n")
    def acc(v: float, std: float) -> Evaluation:
        return Evaluation.from_metrics("p", {"cond_acc_50": v, "cond_acc_50_std": std, "fid_50": 1.0})
    assert judge(policy, acc(0.9, 0.01), acc(0.5, 0.01)).approved
    assert not judge(policy, acc(0.52, 0.02), acc(0.5, 0.02)).approved


def test_protocol_mismatch_is_never_compared():
    with pytest.raises(ProtocolMismatch, match="re-evaluate the champion"):
        judge(parse_policy(POLICY), ev(80, 75, 85, protocol="a"), ev(100, 95, 105, protocol="b"))


@pytest.mark.parametrize("text, message", [
    ("absolute: {fid_score: {max: 3}}", "unknown metric 'fid_score'"),
    ("champion: {metric: sharpness}", "unknown metric 'sharpness'"),
    ("absolute: {fid: {below: 3}}", "needs `max:`"),
    ("absolute: {fid: {max: lots}}", "must be a number"),
    ("gatez: {}", "unknown section"),
    ("confidence: 1.5", "confidence must be"),
    ("protocol: {on_mismatch: compare}", "on_mismatch"),
    ("[1, 2", "not valid YAML"),
])
def test_bad_gate_file(text, message):
    with pytest.raises(ProdganError, match=message):
        parse_policy(text)


def test_missing_metric_is_an_error_not_a_rejection():
    policy = parse_policy("absolute: {memorization: {max: 0.5}}")
    with pytest.raises(ProdganError, match="no memorization metric"):
        judge(policy, ev(100, 90, 110), None)


def test_missing_interval_is_an_error():
    policy = parse_policy("champion: {metric: fid}")
    bare = Evaluation.from_metrics("p", {"fid_50": 10.0})
    with pytest.raises(ProdganError, match="no interval for fid"):
        judge(policy, bare, bare)


def test_threshold_table():
    assert threshold(5, 10) == 5
    assert threshold({0: 600, 2000: 120, 10000: 40}, 50) == 600
    assert threshold({0: 600, 2000: 120, 10000: 40}, 2000) == 120
    assert threshold({0: 600, 2000: 120, 10000: 40}, 50000) == 40


def test_repo_gate_file_loads_and_hash_is_content_hash(tmp_path):
    policy = load_policy(REPO_GATES)
    assert policy.on_mismatch == "reevaluate"
    copy = tmp_path / "g.yaml"
    copy.write_text(REPO_GATES.read_text() + "\n# comment\n")
    assert load_policy(copy).sha256 != policy.sha256


def test_paired_interval_replaces_the_conservative_one():
    policy = parse_policy(POLICY)
    challenger, champion = ev(98, 90, 106), ev(100, 95, 105)  # overlapping: conservative interval rejects
    assert not judge(policy, challenger, champion).approved
    verdict = judge(policy, challenger, champion, paired={"fid": (-3.5, -1.5)})  # paired bootstrap is tighter
    assert verdict.approved and verdict.difference["method"].startswith("paired")
