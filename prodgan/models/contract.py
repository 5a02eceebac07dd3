"""The generator contract: what a spec file beside an outside generator declares, read and checked.

A generator prodgan did not train is a black box that maps latents (and, when conditional, category
indices) to images. The spec file states the box's interface; `check_contract` runs the model on a
few batches and holds it to every claim, so a lying spec is refused at import with one line naming
the claim, instead of producing wrong metrics or broken images later. docs/generators.md is the
user's page for the same contract.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import yaml

from prodgan.errors import ProdganError

# value range name -> (low, high) of the raw output the model returns
VALUE_RANGES = {"[-1, 1]": (-1.0, 1.0), "[0, 1]": (0.0, 1.0), "uint8": (0.0, 255.0)}
# latent distribution name -> what the model expects; prodgan always draws N(0, 1) and maps it
LATENT_DISTRIBUTIONS = ("normal", "uniform", "uniform_0_1")  # uniform: U(-1, 1)
LATENT_SHAPES = ("(N, z)", "(N, z, 1, 1)")
SPEC_KEYS = ("z_dim", "latent", "output", "categories", "noise_reference")
CHECK_BATCH = 4
CHECK_SEED = 20
RANGE_TOLERANCE = 1e-3  # float outputs may overshoot their range by rounding, no more
SAME_TOLERANCE = 1e-4  # two runs on the same latent (or batch split) must agree this closely

Raw = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]


@dataclass(frozen=True)
class GeneratorContract:
    """The claims of one spec file, in prodgan's canonical spelling."""

    z_dim: int
    channels: int
    resolution: int
    value_range: str = "[-1, 1]"
    latent_distribution: str = "normal"
    latent_shape: str = "(N, z)"
    categories: tuple[str, ...] = ()  # in the model's own label order; () = unconditional
    noise_reference: str | None = None  # an untrained export of the same network, beside the spec

    @property
    def conditional(self) -> bool:
        return bool(self.categories)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "categories": list(self.categories)}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "GeneratorContract":
        """Back from `to_dict` (a bundle's generator.json)."""
        return cls(**{**record, "categories": tuple(record.get("categories") or ())})

    def latent(self, z: torch.Tensor) -> torch.Tensor:
        """prodgan's N(0, 1) latents (N, z_dim) as this model expects them (distribution, shape).

        The uniform cases go through the normal CDF, so one seed still names one latent.
        """
        if self.latent_distribution == "uniform_0_1":
            z = 0.5 * (1 + torch.erf(z / math.sqrt(2)))
        elif self.latent_distribution == "uniform":
            z = torch.erf(z / math.sqrt(2))
        return z.reshape(len(z), self.z_dim, 1, 1) if self.latent_shape == "(N, z, 1, 1)" else z

    def to_unit_range(self, images: torch.Tensor) -> torch.Tensor:
        """Raw model output -> float [-1, 1], prodgan's images everywhere downstream."""
        if self.value_range == "uint8":
            return images.float() / 127.5 - 1
        if self.value_range == "[0, 1]":
            return images.float() * 2 - 1
        return images.float()


def _bad(source: str, key: str, value: Any, allowed: str) -> ProdganError:
    return ProdganError(f"{source}: {key} is {value!r}; {allowed}")


def _range_name(value: Any) -> str | None:
    if isinstance(value, list) and len(value) == 2:
        return f"[{value[0]:g}, {value[1]:g}]"
    return str(value) if value is not None else None


def _shape_name(value: Any) -> str | None:
    if isinstance(value, list):
        return "(" + ", ".join(str(v) for v in value) + ")"
    return str(value) if value is not None else None


def _positive(source: str, key: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _bad(source, key, value, "it must be a positive whole number")
    return value


def parse_contract(data: Any, source: str) -> GeneratorContract:
    """A spec file's YAML content -> contract; one line per kind of mistake."""
    if not isinstance(data, dict):
        raise ProdganError(
            f"{source} is not a generator spec (a YAML mapping); see docs/generators.md"
        )
    unknown = sorted(set(data) - set(SPEC_KEYS))
    if unknown:
        raise ProdganError(
            f"{source}: unknown key {unknown[0]!r}; valid keys: {', '.join(SPEC_KEYS)}"
        )
    latent, output = data.get("latent") or {}, data.get("output")
    if not isinstance(output, dict):
        raise ProdganError(
            f"{source}: `output` is missing; declare output: {{channels, resolution, range}}"
        )
    value_range = _range_name(output.get("range"))
    if value_range not in VALUE_RANGES:
        raise _bad(source, "output.range", output.get("range"), f"valid: {', '.join(VALUE_RANGES)}")
    distribution = latent.get("distribution", "normal")
    if distribution not in LATENT_DISTRIBUTIONS:
        raise _bad(
            source, "latent.distribution", distribution, f"valid: {', '.join(LATENT_DISTRIBUTIONS)}"
        )
    shape = _shape_name(latent.get("shape", ["N", "z"]))
    if shape not in LATENT_SHAPES:
        raise _bad(source, "latent.shape", latent.get("shape"), "valid: [N, z], [N, z, 1, 1]")
    channels = _positive(source, "output.channels", output.get("channels"))
    if channels not in (1, 3):
        raise _bad(source, "output.channels", channels, "valid: 1 (grey), 3 (RGB)")
    categories = data.get("categories") or []
    if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
        raise _bad(source, "categories", categories, "it must be a list of category names")
    if len(set(categories)) != len(categories):
        raise _bad(source, "categories", categories, "each name may appear once")
    noise = data.get("noise_reference")
    if noise is not None and not isinstance(noise, str):
        raise _bad(source, "noise_reference", noise, "it must be a file name beside the spec")
    return GeneratorContract(
        z_dim=_positive(source, "z_dim", data.get("z_dim")),
        channels=channels,
        resolution=_positive(source, "output.resolution", output.get("resolution")),
        value_range=value_range,
        latent_distribution=distribution,
        latent_shape=shape,
        categories=tuple(categories),
        noise_reference=noise,
    )


def read_contract(path: Path) -> GeneratorContract:
    """The spec file at `path` (YAML) as a contract."""
    path = Path(path)
    if not path.is_file():
        raise ProdganError(f"spec file {path} not found; write one as docs/generators.md shows")
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ProdganError(f"{path} is not valid YAML ({str(exc).splitlines()[0]})") from None
    return parse_contract(data, str(path.name))


def label_map(contract: GeneratorContract, dataset_categories: tuple[str, ...]) -> torch.Tensor:
    """For each dataset category index, the model's own label for it.

    The model must know exactly the dataset's categories (any order): prodgan asks for images by
    the dataset's category names, in evaluation and serving alike.
    """
    missing = sorted(set(dataset_categories) - set(contract.categories))
    extra = sorted(set(contract.categories) - set(dataset_categories))
    if missing or extra:
        problem = (
            f"declares {extra[0]!r}, which the dataset does not have"
            if extra
            else f"does not declare the dataset's {missing[0]!r}"
        )
        raise ProdganError(
            f"claim `categories` failed: the spec {problem}; list exactly the dataset's "
            f"categories ({', '.join(dataset_categories)}) in the model's label order"
        )
    return torch.tensor([contract.categories.index(c) for c in dataset_categories])


def _claim(claim: str, problem: str) -> ProdganError:
    return ProdganError(f"claim `{claim}` failed: {problem}; fix the spec or re-export the model")


def _run(raw: Raw, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    try:
        with torch.no_grad():
            out = raw(z, labels)
    except Exception as exc:  # noqa: BLE001 - any failure of a foreign model is the same refusal
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ProdganError(
            f"the model raised {type(exc).__name__} on a batch of {len(z)} latents shaped "
            f"{tuple(z.shape)}: {first}; check latent.shape and z_dim in the spec, and export "
            f"with a dynamic batch dimension (docs/generators.md)"
        ) from None
    if not isinstance(out, torch.Tensor):
        raise _claim("output", f"the model returned {type(out).__name__}, not one image tensor")
    return out.detach().cpu()


def _check_output(contract: GeneratorContract, out: torch.Tensor, n: int) -> None:
    c, r = contract.channels, contract.resolution
    if out.dim() != 4 or out.shape[0] != n:
        raise _claim("output", f"expected a batch of {n} NCHW images, got shape {tuple(out.shape)}")
    if out.shape[2:] != (r, r):
        raise _claim(
            f"output.resolution: {r}", f"the model outputs {out.shape[2]}x{out.shape[3]} images"
        )
    if out.shape[1] != c:
        raise _claim(f"output.channels: {c}", f"the model outputs {out.shape[1]} channels")
    if contract.value_range == "uint8":
        if out.dtype != torch.uint8:
            raise _claim("output.range: uint8", f"the model outputs {out.dtype}, not torch.uint8")
        return
    if not out.dtype.is_floating_point:
        raise _claim(
            f"output.range: {contract.value_range}", f"the model outputs {out.dtype}, not floats"
        )
    if not torch.isfinite(out).all():
        raise _claim("finite values", "the model output holds NaN or infinite values")
    low, high = VALUE_RANGES[contract.value_range]
    seen_low, seen_high = out.min().item(), out.max().item()
    if seen_low < low - RANGE_TOLERANCE or seen_high > high + RANGE_TOLERANCE:
        raise _claim(
            f"output.range: {contract.value_range}",
            f"the model outputs values in [{seen_low:.3g}, {seen_high:.3g}]",
        )


def _differ(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().max().item()


def check_contract(raw: Raw, contract: GeneratorContract) -> None:
    """Run `raw` (latents in the model's own layout, labels in its own order) on a few batches
    and refuse with one line naming the first claim it breaks.

    Checked: it runs at batch sizes 1 and CHECK_BATCH; output shape, channels, resolution, dtype,
    finite values inside the declared range; the same latent gives the same image twice
    (determinism) and alone or in a batch (batch independence); for a conditional model, another
    category changes the images.
    """
    z = contract.latent(torch.randn(CHECK_BATCH, contract.z_dim, generator=_seeded()))
    k = len(contract.categories)
    labels = torch.arange(CHECK_BATCH, dtype=torch.long) % k if k else None
    out = _run(raw, z, labels)
    _check_output(contract, out, CHECK_BATCH)
    again = _run(raw, z, labels)
    if _differ(out, again) > SAME_TOLERANCE:
        raise _claim("determinism", "the same latent gave different images on a second run")
    alone = _run(raw, z[:1], labels[:1] if labels is not None else None)
    _check_output(contract, alone, 1)
    if _differ(alone, out[:1]) > SAME_TOLERANCE:
        raise _claim("batch independence", "an image depends on the other latents in its batch")
    if k > 1 and _differ(_run(raw, z, (labels + 1) % k), out) <= SAME_TOLERANCE:
        raise _claim(
            f"categories: {k} names",
            "the output does not change with the category label (the model ignores it)",
        )


def _seeded() -> torch.Generator:
    return torch.Generator().manual_seed(CHECK_SEED)
