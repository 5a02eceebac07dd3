"""The gate file (`evaluation/gates.yaml`) read and checked: unknown keys, metrics or bounds are
errors.

A bound is a number, a map `{min_samples: number}` (the entry with the largest key <= the
protocol's sample count applies), or, for `absolute` gates, `max_fraction_of_noise_gap`: the
share of the distance from the floor to the noise reference a value may still lie from the
floor (see `prodgan.metrics.calibration`).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError, model_validator

from prodgan.errors import ProdganError, invalid_fields

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
_FORBID = ConfigDict(extra="forbid")
Metric = Literal["fid", "kid", "memorization", "is", "precision", "recall", "cond_acc"]


def _bound(minimum: float | None) -> Callable[[Any], Any]:
    """A bound: a number, or a map {min_samples: number}; `true` or "lots" is not a bound."""

    def check(spec: Any) -> Any:
        table = spec if isinstance(spec, dict) else {0: spec}
        for samples, value in table.items():
            numeric = (
                isinstance(value, (int, float))
                and not isinstance(value, bool)
                and math.isfinite(value)
            )
            if (
                not isinstance(samples, int)
                or isinstance(samples, bool)
                or samples < 0
                or not numeric
            ):
                raise ValueError("must be a number or a map {min_samples: number}")
            if minimum is not None and value < minimum:
                raise ValueError(f"must be >= {minimum:g}")
        return spec

    return check


Bound = Annotated[Any, PlainValidator(_bound(None))]
NonNegativeBound = Annotated[Any, PlainValidator(_bound(0.0))]


class _Bounds(BaseModel):
    model_config = _FORBID
    max: Bound | None = None
    min: Bound | None = None
    max_fraction_of_noise_gap: NonNegativeBound | None = None

    @model_validator(mode="after")
    def _one_bound(self) -> "_Bounds":
        if not self.model_fields_set:
            raise ValueError(f"needs one or more of {', '.join(BOUNDS)}")
        return self


class _Protocol(BaseModel):
    model_config = _FORBID
    on_mismatch: Literal["reevaluate", "refuse"] = "reevaluate"


class _Champion(BaseModel):
    model_config = _FORBID
    metric: Metric
    margin: NonNegativeBound = 0.0


class _PerCategory(BaseModel):
    model_config = _FORBID
    metric: Metric
    max_relative_regression: NonNegativeBound
    min_samples_per_category: Annotated[int, Field(ge=0)] = 0


class GateFile(BaseModel):
    """The gate file's schema: unknown sections, keys or metrics and out-of-range numbers are
    errors."""

    model_config = _FORBID
    version: Annotated[int, Field(ge=1, le=2)] = 2
    confidence: Annotated[float, Field(ge=0.5, lt=1)] = 0.95
    protocol: _Protocol | None = None
    absolute: dict[Metric, _Bounds] | None = None
    champion: _Champion | None = None
    per_category: _PerCategory | None = None


assert set(get_args(Metric)) == set(DIRECTIONS)
_SECTIONS: dict[str, type[BaseModel]] = {
    "protocol": _Protocol,
    "absolute": _Bounds,
    "champion": _Champion,
    "per_category": _PerCategory,
}


def _valid_keys(loc: tuple) -> list[str]:
    """The keys valid where an unknown one was found: the top level, or inside a section."""
    section = _SECTIONS.get(str(loc[0])) if len(loc) > 1 else None
    return list((section or GateFile).model_fields)


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


def parse_policy(text: str, path: str = "gates.yaml") -> Policy:
    """Validate the gate file against `GateFile`; the rules stay the file's own mapping (what was
    hashed)."""
    import yaml

    try:
        rules = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ProdganError(
            f"{path} is not valid YAML ({' '.join(str(exc).split())}); fix the gate file"
        ) from exc
    if not isinstance(rules, dict):
        raise ProdganError(f"{path} must be a mapping of gate sections; see docs/registry.md")
    try:
        GateFile.model_validate(rules)
    except ValidationError as exc:
        raise ProdganError(invalid_fields(f"gate file {path}", exc.errors(), _valid_keys)) from None
    return Policy(rules, hashlib.sha256(text.encode()).hexdigest(), path)


def load_policy(path: Path) -> Policy:
    path = Path(path)
    if not path.is_file():
        raise ProdganError(
            f"gate file {path} not found; "
            "create it (see evaluation/gates.yaml in the repo) or pass --gates"
        )
    return parse_policy(path.read_text(), str(path))


def threshold(spec: Any, samples: int) -> float:
    """A bound that may depend on the sample count: the entry with the largest key <= samples."""
    if not isinstance(spec, dict):
        return float(spec)
    keys = [k for k in spec if k <= samples]
    if not keys:
        raise ProdganError(
            f"no threshold for {samples} samples in {spec}; add an entry keyed 0 to the gate file"
        )
    return float(spec[max(keys)])
