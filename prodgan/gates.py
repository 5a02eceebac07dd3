"""Promotion policy as pure functions: evaluations + the gate file in, verdict + reasons out.

Nothing here touches MLflow or the disk except `load_policy` (which reads the YAML once and
records its sha256). `judge` never compares across protocols: evaluations with different
protocol fingerprints raise `ProtocolMismatch`; the caller re-evaluates the champion first.

Metric names carry the sample count (`fid_2k`, `fid_50_ci_low`, `fid_2k/sneaker`); the gate
file names the base metric (`fid`) and may key a threshold by sample count, because FID and
KID are biased upward at small sample counts (a 50-sample FID of a good model exceeds 100).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any, Mapping

from prodgan.errors import ProdganError
from prodgan.names import METRIC_NAME, parse_samples

# base metric -> which way is better (the metrics module's names without the sample count)
DIRECTIONS = {
    "fid": "lower",
    "kid": "lower",
    "memorization": "lower",
    "is": "higher",
    "precision": "higher",
    "recall": "higher",
    "cond_acc": "higher",
}
_POLICY_KEYS = {"version", "confidence", "protocol", "absolute", "champion", "per_category"}


class ProtocolMismatch(ProdganError):
    """Two evaluations under different protocols: re-evaluate, never compare."""


@dataclass(frozen=True)
class Evaluation:
    """One model's metrics under one protocol, split by kind (value, std, interval, per category)."""

    protocol: str
    samples: int
    values: dict[str, float]
    stds: dict[str, float] = field(default_factory=dict)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    per_category: dict[str, dict[str, float]] = field(default_factory=dict)
    source: str = ""  # where the metrics came from, for error messages (e.g. "eval run 1a2b")

    @classmethod
    def from_metrics(cls, protocol: str, metrics: Mapping[str, float], source: str = "") -> "Evaluation":
        """Parse `{fid_50: .., fid_50_ci_low: .., kid_50_std: .., fid_50/bag: ..}`; one sample count only."""
        values, stds, lows, highs, cats, counts = {}, {}, {}, {}, {}, set()
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
            else:
                cats.setdefault(base, {})[rest[1:]] = float(value)
        if len(counts) > 1:
            raise ProdganError(f"{source or 'the evaluation'} mixes sample counts {sorted(counts)}; gate one protocol at a time")
        if not counts:
            raise ProdganError(f"{source or 'the evaluation'} has no metrics named like fid_<samples>; run `prodgan evaluate` on the model first")
        intervals = {b: (lows[b], highs[b]) for b in lows.keys() & highs.keys()}
        return cls(protocol, counts.pop(), values, stds, intervals, cats, source)

    def value(self, base: str, gate: str) -> float:
        if base not in self.values:
            raise ProdganError(f"{self.source or 'the evaluation'} has no {base} metric, which gate {gate!r} needs; "
                               f"re-run `prodgan evaluate` with that metric enabled or drop the gate")
        return self.values[base]

    def interval(self, base: str, z: float, gate: str) -> tuple[float, float]:
        """The metric's confidence interval: the evaluation's own (bootstrap) or value ± z·std."""
        if base in self.intervals:
            return self.intervals[base]
        value = self.value(base, gate)
        if base in self.stds:
            return value - z * self.stds[base], value + z * self.stds[base]
        raise ProdganError(f"{self.source or 'the evaluation'} has no interval for {base} ({base}_N_ci_low/_ci_high or {base}_N_std), "
                           f"which gate {gate!r} needs; re-run `prodgan evaluate` (it records them)")


@dataclass(frozen=True)
class Check:
    gate: str
    passed: bool
    reason: str


@dataclass(frozen=True)
class Verdict:
    approved: bool
    checks: tuple[Check, ...]
    difference: dict[str, Any] | None = None  # the champion comparison: interval of (challenger - champion)

    @property
    def reasons(self) -> list[str]:
        return [f"{'PASS' if c.passed else 'FAIL'} {c.gate}: {c.reason}" for c in self.checks]

    def to_dict(self) -> dict[str, Any]:
        return {"approved": self.approved, "checks": [asdict(c) for c in self.checks], "difference": self.difference}


@dataclass(frozen=True)
class Policy:
    rules: dict[str, Any]
    sha256: str
    path: str = ""

    @property
    def confidence(self) -> float:
        return float(self.rules.get("confidence", 0.95))

    @property
    def on_mismatch(self) -> str:
        return (self.rules.get("protocol") or {}).get("on_mismatch", "reevaluate")


def _check_metric(name: Any, where: str, path: str) -> str:
    if name not in DIRECTIONS:
        raise ProdganError(f"{path}: unknown metric {name!r} in {where}; known metrics: {', '.join(sorted(DIRECTIONS))}")
    return name


def _check_threshold(spec: Any, where: str, path: str) -> None:
    table = spec if isinstance(spec, dict) else {0: spec}
    for samples, bound in table.items():
        if not isinstance(samples, int) or isinstance(bound, bool) or not isinstance(bound, (int, float)):
            raise ProdganError(f"{path}: {where} must be a number or a map {{min_samples: number}}, got {spec!r}")


def parse_policy(text: str, path: str = "gates.yaml") -> Policy:
    """Validate the gate file (unknown keys or metrics are errors, not silently ignored)."""
    import yaml

    try:
        rules = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ProdganError(f"{path} is not valid YAML ({exc}); fix the gate file") from exc
    if not isinstance(rules, dict):
        raise ProdganError(f"{path} must be a mapping of gate sections; see docs/registry.md")
    unknown = set(rules) - _POLICY_KEYS
    if unknown:
        raise ProdganError(f"{path}: unknown section(s) {', '.join(sorted(unknown))}; valid: {', '.join(sorted(_POLICY_KEYS))}")
    conf = rules.get("confidence", 0.95)
    if not isinstance(conf, (int, float)) or not 0.5 <= conf < 1:
        raise ProdganError(f"{path}: confidence must be in [0.5, 1), got {conf!r}")
    mode = (rules.get("protocol") or {}).get("on_mismatch", "reevaluate")
    if mode not in ("reevaluate", "refuse"):
        raise ProdganError(f"{path}: protocol.on_mismatch must be reevaluate or refuse, got {mode!r}")
    for metric, bounds in (rules.get("absolute") or {}).items():
        _check_metric(metric, "absolute", path)
        if not isinstance(bounds, dict) or not bounds or set(bounds) - {"max", "min"}:
            raise ProdganError(f"{path}: absolute.{metric} needs `max:` and/or `min:`, got {bounds!r}")
        for key, spec in bounds.items():
            _check_threshold(spec, f"absolute.{metric}.{key}", path)
    champion = rules.get("champion")
    if champion is not None:
        _check_metric(champion.get("metric"), "champion.metric", path)
        _check_threshold(champion.get("margin", 0.0), "champion.margin", path)
    per_cat = rules.get("per_category")
    if per_cat is not None:
        _check_metric(per_cat.get("metric"), "per_category.metric", path)
        _check_threshold(per_cat.get("max_relative_regression"), "per_category.max_relative_regression", path)
    return Policy(rules, hashlib.sha256(text.encode()).hexdigest(), path)


def load_policy(path: Path) -> Policy:
    path = Path(path)
    if not path.is_file():
        raise ProdganError(f"gate file {path} not found; create it (see evaluation/gates.yaml in the repo) or pass --gates")
    return parse_policy(path.read_text(), str(path))


def threshold(spec: Any, samples: int) -> float:
    """A bound that may depend on the sample count: the entry with the largest key <= samples."""
    if not isinstance(spec, dict):
        return float(spec)
    keys = [k for k in spec if k <= samples]
    if not keys:
        raise ProdganError(f"no threshold for {samples} samples in {spec}; add an entry keyed 0 to the gate file")
    return float(spec[max(keys)])


def _absolute(policy: Policy, ev: Evaluation) -> list[Check]:
    checks = []
    for metric, bounds in (policy.rules.get("absolute") or {}).items():
        gate = f"absolute.{metric}"
        value = ev.value(metric, gate)
        for key, spec in bounds.items():
            bound = threshold(spec, ev.samples)
            ok = value <= bound if key == "max" else value >= bound
            sign = "<=" if key == "max" else ">="
            checks.append(Check(gate, ok, f"{metric}_{ev.samples} = {value:.4g} {'' if ok else 'not '}{sign} {bound:g}"))
    return checks


def _champion(policy: Policy, challenger: Evaluation, champion: Evaluation,
              paired: tuple[float, float] | None) -> tuple[Check, dict[str, Any]]:
    """Challenger better by the margin with confidence: the whole interval of the difference is past it.

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
        (low, high), method = (c_lo - h_hi, c_hi - h_lo), "conservative combination of both intervals"
    lower_better = DIRECTIONS[metric] == "lower"
    ok = high < -margin if lower_better else low > margin
    point = challenger.value(metric, gate) - champion.value(metric, gate)
    need = f"< {0.0 - margin:g}" if lower_better else f"> {margin:g}"
    reason = (f"{metric}_{challenger.samples} challenger - champion = {point:+.4g}, interval [{low:+.4g}, {high:+.4g}] "
              f"({method}, {policy.confidence:.0%}); needs the whole interval {need}")
    diff = {"metric": f"{metric}_{challenger.samples}", "point": point, "low": low, "high": high, "margin": margin,
            "method": method, "confidence": policy.confidence}
    return Check(gate, ok, reason), diff


def _per_category(policy: Policy, challenger: Evaluation, champion: Evaluation) -> list[Check]:
    rule = policy.rules["per_category"]
    metric = rule["metric"]
    gate = f"per_category.{metric}"
    limit = threshold(rule["max_relative_regression"], challenger.samples)
    mine, theirs = challenger.per_category.get(metric, {}), champion.per_category.get(metric, {})
    shared = sorted(mine.keys() & theirs.keys())
    if not shared:
        return [Check(gate, True, f"skipped: no per-category {metric} in both evaluations")]
    sign = 1.0 if DIRECTIONS[metric] == "lower" else -1.0
    checks = []
    for cat in shared:
        base = abs(theirs[cat]) or 1e-12
        regression = sign * (mine[cat] - theirs[cat]) / base
        ok = regression <= limit
        checks.append(Check(f"{gate}/{cat}", ok, f"{metric} {theirs[cat]:.4g} -> {mine[cat]:.4g} "
                                                    f"({regression:+.1%} regression, limit {limit:.0%})"))
    return checks


def check_inputs(policy: Policy, ev: Evaluation) -> None:
    """Raise (before any expensive work) if `ev` lacks a metric or interval a gate needs."""
    z = NormalDist().inv_cdf(0.5 + policy.confidence / 2)
    for metric in policy.rules.get("absolute") or {}:
        ev.value(metric, f"absolute.{metric}")
    if policy.rules.get("champion"):
        metric = policy.rules["champion"]["metric"]
        ev.interval(metric, z, f"champion.{metric}")


def judge(policy: Policy, challenger: Evaluation, champion: Evaluation | None,
          paired: Mapping[str, tuple[float, float]] | None = None) -> Verdict:
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
                f"champion evaluated under protocol {champion.protocol[:12]}, challenger under {challenger.protocol[:12]}: "
                f"metrics are only compared under one protocol; re-evaluate the champion under the challenger's protocol")
        checks.append(Check("protocol", True, f"same protocol {challenger.protocol[:12]} ({challenger.samples} samples)"))
        if policy.rules.get("champion"):
            check, difference = _champion(policy, challenger, champion, (paired or {}).get(policy.rules["champion"]["metric"]))
            checks.append(check)
        if policy.rules.get("per_category"):
            checks += _per_category(policy, challenger, champion)
    return Verdict(all(c.passed for c in checks), tuple(checks), difference)
