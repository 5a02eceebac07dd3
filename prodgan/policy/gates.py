"""Promotion policy as pure functions: evaluations + the gate file in, verdict + reasons out.

Nothing here touches MLflow or the disk except `load_policy` (which reads the YAML once and
records its sha256). `judge` never compares across protocols: evaluations with different
protocol fingerprints raise `ProtocolMismatch`; the caller re-evaluates the champion first.

Metric names carry the sample count (`fid_2k`, `fid_50_ci_low`, `fid_2k/sneaker`); the gate
file names the base metric (`fid`) and may key a threshold by sample count, because FID and
KID are biased upward at small sample counts (a 50-sample FID of a good model exceeds 100).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from statistics import NormalDist
from typing import Any, Mapping

from prodgan.errors import ProdganError
from prodgan.names import METRIC_NAME, parse_samples
from prodgan.policy.gate_file import DIRECTIONS, Policy, threshold

PROPORTIONS = (
    "cond_acc",
    "memorization",
    "precision",
    "recall",
)  # shares of the samples: a binomial interval applies


class ProtocolMismatch(ProdganError):
    """Two evaluations under different protocols: re-evaluate, never compare."""


@dataclass(frozen=True)
class Evaluation:
    """One model's metrics under one protocol, split by kind (value, std, interval, per
    category)."""

    protocol: str
    samples: int
    values: dict[str, float]
    stds: dict[str, float] = field(default_factory=dict)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    per_category: dict[str, dict[str, float]] = field(default_factory=dict)
    references: dict[str, dict[str, float]] = field(
        default_factory=dict
    )  # base -> {"floor": .., "noise": ..}
    source: str = ""  # where the metrics came from, for error messages (e.g. "eval run 1a2b")

    @classmethod
    def from_metrics(
        cls, protocol: str, metrics: Mapping[str, float], source: str = ""
    ) -> "Evaluation":
        """Parse `{fid_50: .., fid_50_ci_low: .., kid_50_std: .., fid_50/bag: ..}`; one sample count
        only."""
        values, stds, lows, highs, cats, refs, counts = {}, {}, {}, {}, {}, {}, set()
        for name, value in metrics.items():
            m = METRIC_NAME.match(name)
            if not m or m["base"] not in DIRECTIONS:
                continue
            counts.add(parse_samples(m["n"]))
            base, rest = m["base"], m["rest"] or ""
            if rest == "":
                values[base] = float(value)
            elif rest == "_std":
                stds[base] = float(value)
            elif rest == "_ci_low":
                lows[base] = float(value)
            elif rest == "_ci_high":
                highs[base] = float(value)
            elif rest in ("_floor", "_noise", "_chance", "_floor_count"):
                refs.setdefault(base, {})[rest[1:]] = float(value)
            else:
                cats.setdefault(base, {})[rest[1:]] = float(value)
        if len(counts) > 1:
            raise ProdganError(
                f"{source or 'the evaluation'} mixes sample counts {sorted(counts)}; "
                "gate one protocol at a time"
            )
        if not counts:
            raise ProdganError(
                f"{source or 'the evaluation'} has no metrics named like fid_<samples>; "
                "run `prodgan evaluate` on the model first"
            )
        intervals = {b: (lows[b], highs[b]) for b in lows.keys() & highs.keys()}
        return cls(protocol, counts.pop(), values, stds, intervals, cats, refs, source)

    def value(self, base: str, gate: str) -> float:
        if base not in self.values:
            raise ProdganError(
                f"{self.source or 'the evaluation'} has no {base} metric, "
                f"which gate {gate!r} needs; "
                f"re-run `prodgan evaluate` with that metric enabled or drop the gate"
            )
        return self.values[base]

    def interval(self, base: str, z: float, gate: str) -> tuple[float, float]:
        """The metric's confidence interval: the evaluation's own (bootstrap) or value ± z·std."""
        if base in self.intervals:
            return self.intervals[base]
        value = self.value(base, gate)
        if base in self.stds:
            return value - z * self.stds[base], value + z * self.stds[base]
        if base in PROPORTIONS:
            return proportion_interval(value, self.samples, z)
        raise ProdganError(
            f"{self.source or 'the evaluation'} has no interval for {base} "
            f"({base}_N_ci_low/_ci_high or {base}_N_std), "
            f"which gate {gate!r} needs; re-run `prodgan evaluate` (it records them)"
        )

    def cautious(self, base: str, z: float, gate: str) -> float:
        """The end of the value's interval least favourable to the model (upper for
        lower-is-better)."""
        low, high = self.interval(base, z, gate)
        return high if DIRECTIONS[base] == "lower" else low

    def reference(self, base: str, gate: str) -> tuple[float, float]:
        """(floor, noise) of `base` under this evaluation's protocol."""
        found = self.references.get(base, {})
        if "floor" not in found or "noise" not in found:
            raise ProdganError(
                f"{self.source or 'the evaluation'} has no floor/noise references for {base} "
                f"({base}_N_floor, {base}_N_noise), which gate {gate!r} needs; "
                "re-run `prodgan evaluate` (it records them)"
            )
        return found["floor"], found["noise"]


@dataclass(frozen=True)
class Check:
    """One gate's outcome; `detail` holds what the reason says as numbers (value, bound, floor,
    noise).

    A `skipped` check neither passed nor failed: its gate could not judge (the reason says why),
    so it does not block the decision and is never shown as a pass.
    """

    gate: str
    passed: bool
    reason: str
    detail: dict[str, float] = field(default_factory=dict)
    skipped: bool = False

    @property
    def verdict(self) -> str:
        return "SKIP" if self.skipped else "PASS" if self.passed else "FAIL"

    @property
    def blocks(self) -> bool:
        """Whether this check stops an approval: it failed (a skipped one did not)."""
        return not self.passed and not self.skipped

    @property
    def line(self) -> str:
        """`PASS absolute.fid: ...`: how the check reads in a log, a description or an event."""
        return f"{self.verdict} {self.gate}: {self.reason}"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Check":
        """A check as an audit record stored it."""
        detail = data.get("detail") or {}
        return cls(
            str(data["gate"]),
            bool(data["passed"]),
            str(data["reason"]),
            dict(detail),
            bool(data.get("skipped", False)),
        )


@dataclass(frozen=True)
class Verdict:
    approved: bool
    checks: tuple[Check, ...]
    difference: dict[str, Any] | None = None  # interval of (challenger - champion)

    @property
    def reasons(self) -> list[str]:
        return [c.line for c in self.checks]

    def to_dict(self) -> dict[str, Any]:
        return {
            "approved": self.approved,
            "checks": [asdict(c) for c in self.checks],
            "difference": self.difference,
        }


def _absolute(policy: Policy, ev: Evaluation) -> list[Check]:
    """Each bound on the cautious end of the value's interval, so noise cannot pass by luck."""
    z = NormalDist().inv_cdf(0.5 + policy.confidence / 2)
    checks = []
    for metric, bounds in (policy.rules.get("absolute") or {}).items():
        gate, name = f"absolute.{metric}", f"{metric}_{ev.samples}"
        value, cautious = ev.value(metric, gate), ev.cautious(metric, z, gate)
        weak = weak_judge(ev, metric, policy.confidence)
        if weak is not None:
            checks.append(weak)
            continue
        side = "upper" if DIRECTIONS[metric] == "lower" else "lower"
        shown = f"{name} = {value:.4g} ({side} {policy.confidence:.0%} bound {cautious:.4g})"
        for key, spec in bounds.items():
            limit = threshold(spec, ev.samples)
            if key == "max_fraction_of_noise_gap":
                floor, noise = ev.reference(metric, gate)
                if abs(noise - floor) < 1e-12:
                    raise ProdganError(
                        f"{ev.source}: {metric} floor and noise are equal ({floor:.4g}): "
                        "the calibration cannot separate anything; evaluate with more samples"
                    )
                fraction = (cautious - floor) / (noise - floor)
                bound = floor + limit * (noise - floor)
                ok = fraction <= limit
                reason = (
                    f"{shown}, floor {floor:.4g}, noise {noise:.4g}: "
                    f"{fraction:.2f} of the gap from floor to noise "
                    f"{'<=' if ok else 'is over'} {limit:g} (bound {bound:.4g})"
                )
                detail = {
                    "value": value,
                    "cautious": cautious,
                    "bound": bound,
                    "floor": floor,
                    "noise": noise,
                    "fraction": fraction,
                }
            else:
                ok = cautious <= limit if key == "max" else cautious >= limit
                reason = f"{shown} {'' if ok else 'not '}{'<=' if key == 'max' else '>='} {limit:g}"
                detail = {
                    "value": value,
                    "cautious": cautious,
                    "bound": limit,
                    **ev.references.get(metric, {}),
                }
            checks.append(Check(gate, ok, reason, detail))
    return checks


def proportion_interval(value: float, n: int | float, z: float) -> tuple[float, float]:
    """The normal approximation to a binomial share's interval, clipped to [0, 1]."""
    half = z * (max(value * (1 - value), 0.0) / max(n, 1)) ** 0.5
    return max(0.0, value - half), min(1.0, value + half)


def weak_judge(ev: Evaluation, metric: str, confidence: float) -> Check | None:
    """A skipped check when the classifier behind `metric` (cond_acc) cannot separate models.

    The judge's accuracy on the split's real photos (the floor) is what a perfect generator
    scores. Unless the low end of its interval (over the photos it was measured on) lies above
    both chance and the high end of the untrained generator's interval (over the samples), a
    perfect and a useless generator are indistinguishable: any verdict would be noise.
    Evaluations that do not record chance (other metrics, older judges) are judged as before.
    """
    refs = ev.references.get(metric, {})
    if not {"chance", "floor", "noise"} <= refs.keys():
        return None
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    photos = refs.get("floor_count", ev.samples)
    floor_low, floor_high = proportion_interval(refs["floor"], photos, z)
    _, noise_high = proportion_interval(refs["noise"], ev.samples, z)
    above = max(refs["chance"], noise_high)
    if floor_low > above:
        return None
    reason = (
        f"not judged: the category judge scores {refs['floor']:.3f} on {photos:.0f} real photos "
        f"({confidence:.0%} interval {floor_low:.3f}..{floor_high:.3f}), not clearly above "
        f"chance {refs['chance']:.3f} and an untrained generator's {refs['noise']:.3f} "
        f"(up to {noise_high:.3f}), so {metric}_{ev.samples} = {ev.values[metric]:.3f} cannot "
        "separate models; more photos per category (train and test) make the judge usable"
    )
    detail = {
        "value": ev.values[metric],
        "floor": refs["floor"],
        "floor_low": floor_low,
        "floor_high": floor_high,
        "floor_count": photos,
        "noise": refs["noise"],
        "noise_high": noise_high,
        "chance": refs["chance"],
    }
    return Check(f"absolute.{metric}", False, reason, detail, skipped=True)


def _champion(
    policy: Policy, challenger: Evaluation, champion: Evaluation, paired: tuple[float, float] | None
) -> tuple[Check, dict[str, Any]]:
    """Challenger better by the margin with confidence: the whole interval of the difference is
    past it.

    The interval of (challenger - champion) is the paired bootstrap one when the caller has it
    (both generators' features under this protocol); else each side's own interval combined
    conservatively as [c_lo - ch_hi, c_hi - ch_lo], which covers the true difference whenever
    both intervals cover their values: at least (2 * confidence - 1) by Bonferroni.
    """
    rule = policy.rules["champion"]
    metric = rule["metric"]
    gate = f"champion.{metric}"
    margin = threshold(rule.get("margin", 0.0), challenger.samples)
    if paired is not None:
        (low, high), method = paired, "paired bootstrap on cached features"
    else:
        z = NormalDist().inv_cdf(0.5 + policy.confidence / 2)
        c_lo, c_hi = challenger.interval(metric, z, gate)
        h_lo, h_hi = champion.interval(metric, z, gate)
        (low, high), method = (
            (c_lo - h_hi, c_hi - h_lo),
            "conservative combination of both intervals",
        )
    lower_better = DIRECTIONS[metric] == "lower"
    ok = high < -margin if lower_better else low > margin
    point = challenger.value(metric, gate) - champion.value(metric, gate)
    need = f"< {0.0 - margin:g}" if lower_better else f"> {margin:g}"
    reason = (
        f"{metric}_{challenger.samples} challenger - champion = {point:+.4g}, "
        f"interval [{low:+.4g}, {high:+.4g}] "
        f"({method}, {policy.confidence:.0%}); needs the whole interval {need}"
    )
    diff = {
        "metric": f"{metric}_{challenger.samples}",
        "point": point,
        "low": low,
        "high": high,
        "margin": margin,
        "method": method,
        "confidence": policy.confidence,
    }
    return Check(gate, ok, reason), diff


def _per_category(policy: Policy, challenger: Evaluation, champion: Evaluation) -> list[Check]:
    rule = policy.rules["per_category"]
    metric = rule["metric"]
    gate = f"per_category.{metric}"
    limit = threshold(rule["max_relative_regression"], challenger.samples)
    mine, theirs = challenger.per_category.get(metric, {}), champion.per_category.get(metric, {})
    shared = sorted(mine.keys() & theirs.keys())
    if not shared:
        return [
            Check(
                gate,
                True,
                f"per-category gate skipped: no per-category {metric} in both evaluations",
            )
        ]
    per = challenger.samples // len(mine)
    need = int(threshold(rule.get("min_samples_per_category", 0), challenger.samples))
    if per < need:
        return [
            Check(gate, True, f"per-category gate skipped: {per} samples per category < {need}")
        ]
    sign = 1.0 if DIRECTIONS[metric] == "lower" else -1.0
    checks = []
    for cat in shared:
        base = abs(theirs[cat]) or 1e-12
        regression = sign * (mine[cat] - theirs[cat]) / base
        ok = regression <= limit
        checks.append(
            Check(
                f"{gate}/{cat}",
                ok,
                f"{metric} {theirs[cat]:.4g} -> {mine[cat]:.4g} "
                f"({regression:+.1%} regression, limit {limit:.0%})",
            )
        )
    return checks


def check_inputs(policy: Policy, ev: Evaluation) -> None:
    """Raise (before any expensive work) if `ev` lacks a metric or interval a gate needs."""
    z = NormalDist().inv_cdf(0.5 + policy.confidence / 2)
    for metric, bounds in (policy.rules.get("absolute") or {}).items():
        ev.cautious(metric, z, f"absolute.{metric}")
        if "max_fraction_of_noise_gap" in bounds:
            ev.reference(metric, f"absolute.{metric}")
    if policy.rules.get("champion"):
        metric = policy.rules["champion"]["metric"]
        ev.interval(metric, z, f"champion.{metric}")


def judge(
    policy: Policy,
    challenger: Evaluation,
    champion: Evaluation | None,
    paired: Mapping[str, tuple[float, float]] | None = None,
) -> Verdict:
    """Apply every gate. `champion=None` means there is none yet: only the absolute gates apply.

    `paired` maps a metric to an interval of (challenger - champion) computed from both sides'
    samples (tighter than combining the two intervals); the champion gate uses it when given.
    """
    checks = _absolute(policy, challenger)
    difference = None
    if champion is None:
        checks.append(Check("champion", True, "no champion yet: absolute gates only"))
    else:
        if champion.protocol != challenger.protocol:
            raise ProtocolMismatch(
                f"champion evaluated under protocol {champion.protocol[:12]}, "
                f"challenger under {challenger.protocol[:12]}: "
                f"metrics are only compared under one protocol; "
                f"re-evaluate the champion under the challenger's protocol"
            )
        checks.append(
            Check(
                "protocol",
                True,
                f"same protocol {challenger.protocol[:12]} ({challenger.samples} samples)",
            )
        )
        if policy.rules.get("champion"):
            check, difference = _champion(
                policy, challenger, champion, (paired or {}).get(policy.rules["champion"]["metric"])
            )
            checks.append(check)
        if policy.rules.get("per_category"):
            checks += _per_category(policy, challenger, champion)
    return Verdict(not any(c.blocks for c in checks), tuple(checks), difference)
