"""The gate file (`evaluation/gates.yaml`) read and checked: unknown keys, metrics or bounds are errors.

A bound is a number, a map `{min_samples: number}` (the entry with the largest key <= the
protocol's sample count applies), or, for `absolute` gates, `max_fraction_of_noise_gap`: the
share of the distance from the floor to the noise reference a value may still lie from the
floor (see `prodgan.metrics.calibration`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prodgan.errors import ProdganError

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
BOUNDS = ("max", "min", "max_fraction_of_noise_gap")
_POLICY_KEYS = {"version", "confidence", "protocol", "absolute", "champion", "per_category"}


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
        if not isinstance(bounds, dict) or not bounds or set(bounds) - set(BOUNDS):
            raise ProdganError(f"{path}: absolute.{metric} needs one or more of {', '.join(BOUNDS)}, got {bounds!r}")
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
        _check_threshold(per_cat.get("min_samples_per_category", 0), "per_category.min_samples_per_category", path)
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
