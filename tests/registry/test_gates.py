"""The promotion policy as pure functions: table-driven, no MLflow."""

from __future__ import annotations

from pathlib import Path

import pytest

from prodgan.errors import ProdganError
from prodgan.policy.gate_file import load_policy, parse_policy, threshold
from prodgan.policy.gates import Evaluation, ProtocolMismatch, judge

REPO_GATES = Path(__file__).resolve().parents[2] / "evaluation" / "gates.yaml"

POLICY = """
confidence: 0.95
absolute:
  fid: {max: {0: 300, 1000: 50}}
  cond_acc: {min: 0.2}
champion: {metric: fid, margin: 1.0}
per_category: {metric: fid, max_relative_regression: 0.25}
"""


def ev(
    fid: float,
    low: float,
    high: float,
    cond_acc: float = 0.5,
    protocol: str = "p1",
    n: str = "50",
    **cats: float,
) -> Evaluation:
    metrics = {
        f"fid_{n}": fid,
        f"fid_{n}_ci_low": low,
        f"fid_{n}_ci_high": high,
        f"cond_acc_{n}": cond_acc,
        f"kid_{n}": 0.1,
        f"kid_{n}_std": 0.01,
    }
    metrics.update({f"fid_{n}/{cat}": value for cat, value in cats.items()})
    return Evaluation.from_metrics(protocol, metrics, source="test")


@pytest.mark.parametrize(
    "challenger, champion, approved, failing",
    [
        (ev(100, 90, 110), None, True, []),  # first champion: absolute gates only
        (ev(350, 340, 360), None, False, ["absolute.fid"]),  # too bad even as first champion
        (ev(100, 90, 110, cond_acc=0.1), None, False, ["absolute.cond_acc"]),
        (ev(80, 75, 85), ev(100, 95, 105), True, []),  # better beyond margin with confidence
        (
            ev(98, 90, 106),
            ev(100, 95, 105),
            False,
            ["champion.fid"],
        ),  # better point value, overlapping intervals
        (ev(120, 115, 125), ev(100, 95, 105), False, ["champion.fid"]),  # worse
        (
            ev(94, 93, 94.5),
            ev(100, 95, 95.6),
            False,
            ["champion.fid"],
        ),  # beats by less than the margin (1.0)
        (
            ev(80, 75, 85, bag=60, shoe=50),
            ev(100, 95, 105, bag=40, shoe=60),
            False,
            ["per_category.fid/bag"],
        ),
        (ev(80, 75, 85, bag=45, shoe=50), ev(100, 95, 105, bag=40, shoe=60), True, []),
        (
            ev(60, 55, 65, n="2k"),
            None,
            False,
            ["absolute.fid"],
        ),  # 2k samples: the 1000+ bound (50) applies
    ],
)
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
        return Evaluation.from_metrics(
            "p", {"cond_acc_50": v, "cond_acc_50_std": std, "fid_50": 1.0}
        )

    assert judge(policy, acc(0.9, 0.01), acc(0.5, 0.01)).approved
    assert not judge(policy, acc(0.52, 0.02), acc(0.5, 0.02)).approved


def test_protocol_mismatch_is_never_compared():
    with pytest.raises(ProtocolMismatch, match="re-evaluate the champion"):
        judge(parse_policy(POLICY), ev(80, 75, 85, protocol="a"), ev(100, 95, 105, protocol="b"))


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "absolute: {fid_score: {max: 3}}",
            "absolute.fid_score='fid_score': input should be 'fid', 'kid'",
        ),
        ("champion: {metric: sharpness}", "champion.metric='sharpness': input should be 'fid'"),
        (
            "absolute: {fid: {below: 3}}",
            r"unknown key 'absolute.fid.below' \(valid keys: max, min, max_fraction_of_noise_gap\)",
        ),
        (
            "absolute: {fid: {}}",
            "absolute.fid={}: needs one or more of max, min, max_fraction_of_noise_gap",
        ),
        ("absolute: {fid: {max: lots}}", "absolute.fid.max='lots': must be a number"),
        ("absolute: {fid: {max: true}}", "absolute.fid.max=True: must be a number"),
        (
            "champion: {metric: fid, margin: {0: 0.0, 10000: -0.5}}",
            "champion.margin=.*must be >= 0",
        ),
        (
            (
                "per_category: {metric: fid, max_relative_regression: 0.2, "
                "min_samples_per_category: -3}"
            ),
            "min_samples_per_category=-3: input should be greater than or equal to 0",
        ),
        ("per_category: {metric: fid}", "per_category.max_relative_regression: missing"),
        ("gatez: {}", r"unknown key 'gatez' \(valid keys: version, confidence"),
        ("confidence: 1.5", "confidence=1.5: input should be less than 1"),
        (
            "protocol: {on_mismatch: compare}",
            "protocol.on_mismatch='compare': input should be 'reevaluate' or 'refuse'",
        ),
        ("[1, 2", "not valid YAML"),
    ],
)
def test_bad_gate_file(text, message):
    with pytest.raises(ProdganError, match=message) as exc:
        parse_policy(text, "gates.yaml")
    assert "\n" not in str(exc.value) and str(exc.value).startswith(
        ("invalid gate file gates.yaml: ", "gates.yaml")
    )


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
    challenger, champion = (
        ev(98, 90, 106),
        ev(100, 95, 105),
    )  # overlapping: conservative interval rejects
    assert not judge(policy, challenger, champion).approved
    verdict = judge(
        policy, challenger, champion, paired={"fid": (-3.5, -1.5)}
    )  # paired bootstrap is tighter
    assert verdict.approved and verdict.difference["method"].startswith("paired")


CALIBRATED = """
confidence: 0.95
absolute:
  fid: {max_fraction_of_noise_gap: 0.3}
  cond_acc: {max_fraction_of_noise_gap: 0.5}
per_category: {metric: fid, max_relative_regression: 0.25, min_samples_per_category: 100}
champion: {metric: fid, margin: 0.0}
"""


def calibrated(
    fid: float, half: float, cond_acc: float = 0.8, n: str = "1k", **cats: float
) -> Evaluation:
    metrics = {
        f"fid_{n}": fid,
        f"fid_{n}_ci_low": fid - half,
        f"fid_{n}_ci_high": fid + half,
        f"fid_{n}_floor": 10.0,
        f"fid_{n}_noise": 410.0,
        f"cond_acc_{n}": cond_acc,
        f"cond_acc_{n}_floor": 0.9,
        f"cond_acc_{n}_noise": 0.1,
    }
    metrics.update({f"fid_{n}/{cat}": value for cat, value in cats.items()})
    return Evaluation.from_metrics("p", metrics, source="test")


@pytest.mark.parametrize(
    "model, approved, failing",
    [
        (calibrated(90, 5), True, []),  # (95 - 10) / 400 = 0.21 of the gap
        (calibrated(400, 5), False, ["absolute.fid"]),  # noise: the whole gap
        (
            calibrated(125, 10),
            False,
            ["absolute.fid"],
        ),  # point 0.29 passes, the upper bound 0.31 does not
        (
            calibrated(90, 5, cond_acc=0.45),
            False,
            ["absolute.cond_acc"],
        ),  # cautious end well under halfway to the floor
    ],
)
def test_calibrated_bounds_read_floor_noise_and_the_cautious_end(model, approved, failing):
    verdict = judge(parse_policy(CALIBRATED), model, None)
    assert verdict.approved is approved, verdict.reasons
    assert sorted(c.gate for c in verdict.checks if not c.passed) == failing
    fid_check = next(c for c in verdict.checks if c.gate == "absolute.fid")
    assert {"value", "cautious", "bound", "floor", "noise"} <= set(fid_check.detail)
    assert "floor 10" in fid_check.reason and "noise 410" in fid_check.reason
    assert fid_check.detail["bound"] == pytest.approx(10 + 0.3 * 400)


def test_calibrated_bound_without_references_is_refused():
    bare = Evaluation.from_metrics(
        "p", {"fid_1k": 50.0, "fid_1k_ci_low": 45.0, "fid_1k_ci_high": 55.0, "cond_acc_1k": 0.8}
    )
    with pytest.raises(ProdganError, match="no floor/noise references for fid"):
        judge(parse_policy(CALIBRATED), bare, None)


def test_per_category_gate_says_when_it_is_skipped():
    cats = {f"c{i}": 50.0 for i in range(10)}  # 1000 samples / 10 categories = 100 each: enough
    verdict = judge(
        parse_policy(CALIBRATED),
        calibrated(60, 5, **cats),
        calibrated(90, 5, **{k: 30.0 for k in cats}),
    )
    assert [c.gate for c in verdict.checks if not c.passed][:1] == ["per_category.fid/c0"]
    few = judge(
        parse_policy(CALIBRATED),
        calibrated(60, 5, n="500", **cats),
        calibrated(90, 5, n="500", **cats),
    )
    assert any(
        c.reason == "per-category gate skipped: 50 samples per category < 100" for c in few.checks
    )


def test_shipped_gates_are_calibrated():
    rules = load_policy(REPO_GATES).rules["absolute"]
    assert all("max_fraction_of_noise_gap" in rules[m] for m in ("fid", "kid", "cond_acc"))
