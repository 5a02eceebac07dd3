"""Training configuration: one pydantic dataclass, read from YAML, overridden by `key=value`.

Torch-free so the CLI and flows can check a config (unknown keys, wrong types, numbers out of
range) in milliseconds before anything heavy is imported. pydantic does the checking; every
number carries its allowed range, and `dataclasses.replace` re-validates.
"""

from __future__ import annotations

import dataclasses
from dataclasses import fields
from pathlib import Path
from typing import Annotated, Any, Iterable

import yaml
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass

from prodgan.errors import ProdganError, invalid_fields
from prodgan.names import DEFAULT_DATASET
from prodgan.training.outside import OutsideTrainer, check_recipe_keys

Count = Annotated[int, Field(ge=1)]  # a size, a step count, an interval in steps
Zero = Annotated[int, Field(ge=0)]  # 0 switches the feature off
Rate = Annotated[float, Field(gt=0, le=1)]
Fraction = Annotated[float, Field(ge=0, lt=1)]


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class TrainConfig:
    dataset: str = DEFAULT_DATASET
    # dcgan (unconditional) | cdcgan (conditional BN + projection D)
    # | cdcgan-classic (DCGAN's batch-norm D: CPU)
    arch: str = "cdcgan"
    z_dim: Annotated[int, Field(ge=1, le=4096)] = 128
    width: Annotated[int, Field(ge=1, le=4096)] = 64  # generator channels at full resolution
    d_width: Annotated[int, Field(ge=1, le=4096)] = 64  # discriminator channels at full resolution
    loss: str = "hinge"  # ns | hinge | wgan-gp
    spectral_norm: bool = True  # on every discriminator layer
    batch_size: Count = 256  # global: split evenly across DDP ranks
    steps: Count = 5000  # generator updates
    # Stop earlier once the loop has run this long (0: no limit); single process only.
    max_seconds: Annotated[float, Field(ge=0)] = 0.0
    # Discriminator updates per generator update (same real batch, new noise).
    d_steps: Annotated[int, Field(ge=1, le=100)] = 1
    lr_g: Rate = 2e-4
    lr_d: Rate = 2e-4
    beta1: Fraction = 0.0
    beta2: Fraction = 0.9
    ema_decay: Fraction = 0.999  # 0 disables the generator EMA
    ema_start: Zero = 0  # step from which the EMA averages (before: copies)
    r1_gamma: Annotated[float, Field(ge=0)] = 0.0  # 0 disables R1
    r1_every: Count = 16  # lazy R1: every N steps, scaled by N
    gp_weight: Annotated[float, Field(ge=0)] = 10.0  # WGAN-GP only
    hflip: bool = False  # random horizontal flips of real images
    # DiffAugment policies for everything D sees, e.g. "color,translation,cutout" ("" = off);
    # models/augment.py
    diffaugment: str = ""
    # Draw every category equally often (imbalanced catalogues), instead of each image once
    # per epoch.
    class_balanced: bool = False
    seed: Annotated[int, Field(ge=0, lt=2**32)] = 0
    device: str = "auto"  # auto (cuda > mps > cpu) | cuda | cuda:N | mps | cpu
    precision: str = "auto"  # auto (bf16 on CUDA, else fp32) | bf16 | fp32
    compile: bool = False  # torch.compile the networks (CUDA)
    # CPU intra-op threads; 0 = torch's default (one per core).
    threads: Annotated[int, Field(ge=0, le=1024)] = 0
    checkpoint_every: Count = 500
    keep_checkpoints: Count = 2
    log_every: Count = 10
    grid_every: Zero = 0  # 0: one sample grid per epoch
    # 0: no evaluation during training; N: quick FID every N steps picks the best checkpoint.
    eval_every: Zero = 0
    # Quick FID: this many generated vs as many test images (real side cached).
    eval_samples: Annotated[int, Field(ge=2)] = 500
    # The metric from on_eval that picks the best checkpoint (lower is better; "" = the quick FID).
    eval_metric: str = ""
    # An outside command trains instead of this loop (training/outside.py); the keys above,
    # but dataset and seed, are then refused.
    trainer: OutsideTrainer | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def valid_keys() -> list[str]:
    return [f.name for f in fields(TrainConfig)]


_ADAPTER = TypeAdapter(TrainConfig)


def make_config(values: dict[str, Any], source: str = "config") -> TrainConfig:
    """A TrainConfig from a dict.

    Unknown keys, wrong types and out-of-range numbers are one-line user errors.
    """
    check_recipe_keys(values, source)
    try:
        return _ADAPTER.validate_python(values)
    except ValidationError as exc:
        raise ProdganError(invalid_fields(source, exc.errors(), valid_keys())) from None


def parse_overrides(overrides: Iterable[str]) -> dict[str, Any]:
    """`key=value` strings -> dict; values are YAML scalars (`lr_g=1e-4`, `compile=true`)."""
    parsed = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ProdganError(
                f"--set expects key=value, got {item!r}; valid keys: {', '.join(valid_keys())}"
            )
        try:
            parsed[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ProdganError(f"--set {item!r}: the value is not a YAML scalar ({exc})") from exc
    return parsed


def read_config_file(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ProdganError(
            f"config file {path} does not exist; "
            "see configs/ for examples (smoke.yaml, fmnist.yaml)"
        )
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ProdganError(f"{path} is not valid YAML: {' '.join(str(exc).split())}") from exc
    if not isinstance(values, dict):
        raise ProdganError(
            f"{path} must hold a mapping of config keys; valid keys: {', '.join(valid_keys())}"
        )
    return values


def load_config(path: Path, overrides: Iterable[str] = ()) -> TrainConfig:
    """File values, then `--set` overrides; everything checked against TrainConfig's fields."""
    values = read_config_file(path)
    make_config(values, source=str(path))
    return make_config({**values, **parse_overrides(overrides)}, source=f"{path} + --set")
