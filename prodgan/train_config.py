"""Training configuration: one dataclass, read from YAML, overridden by `key=value` strings.

Torch-free so the CLI and flows can check a config (unknown keys, wrong types) in
milliseconds before anything heavy is imported.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Iterable

import yaml

from prodgan.errors import ProdganError


@dataclass(frozen=True)
class TrainConfig:
    dataset: str = "fashion-mnist"
    arch: str = "cdcgan"  # dcgan (unconditional) | cdcgan (conditional BN + projection D) | cdcgan-classic (DCGAN's batch-norm D: CPU)
    z_dim: int = 128
    width: int = 64  # generator channels at full resolution
    d_width: int = 64  # discriminator channels at full resolution
    loss: str = "hinge"  # ns | hinge | wgan-gp
    spectral_norm: bool = True  # on every discriminator layer
    batch_size: int = 256  # global: split evenly across DDP ranks
    steps: int = 5000  # generator updates
    max_seconds: float = 0.0  # stop earlier once the loop has run this long (0: no limit); single process only
    d_steps: int = 1  # discriminator updates per generator update (same real batch, new noise)
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.0
    beta2: float = 0.9
    ema_decay: float = 0.999  # 0 disables the generator EMA
    ema_start: int = 0  # step from which the EMA averages (before: copies)
    r1_gamma: float = 0.0  # 0 disables R1
    r1_every: int = 16  # lazy R1: every N steps, scaled by N
    gp_weight: float = 10.0  # WGAN-GP only
    hflip: bool = False  # random horizontal flips of real images
    diffaugment: str = ""  # DiffAugment policies for everything D sees, e.g. "color,translation,cutout" ("" = off); models/augment.py
    class_balanced: bool = False  # draw every category equally often (imbalanced catalogues), instead of each image once per epoch
    seed: int = 0
    device: str = "auto"  # auto (cuda > mps > cpu) | cuda | cuda:N | mps | cpu
    precision: str = "auto"  # auto (bf16 on CUDA, else fp32) | bf16 | fp32
    compile: bool = False  # torch.compile the networks (CUDA)
    threads: int = 0  # CPU intra-op threads; 0 = torch's default (one per core)
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 10
    grid_every: int = 0  # 0: one sample grid per epoch
    eval_every: int = 0  # 0: no evaluation during training; N: quick FID every N steps picks the best checkpoint
    eval_samples: int = 500  # quick FID: this many generated vs as many test images (real side cached)
    eval_metric: str = ""  # metric from on_eval that picks the best checkpoint (lower is better; "" = the quick FID)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def valid_keys() -> list[str]:
    return [f.name for f in fields(TrainConfig)]


def _coerce(key: str, value: Any, kind: type) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads `1e-3` (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif kind is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    raise ProdganError(f"config key {key!r} must be {kind.__name__}, got {value!r}")


def make_config(values: dict[str, Any], source: str = "config") -> TrainConfig:
    """A TrainConfig from a dict; unknown keys and wrong types are user errors naming the valid keys."""
    types = {f.name: f.type for f in fields(TrainConfig)}
    unknown = sorted(set(values) - set(types))
    if unknown:
        raise ProdganError(f"unknown key(s) in {source}: {', '.join(unknown)}; valid keys: {', '.join(types)}")
    kinds = {"bool": bool, "int": int, "float": float, "str": str}
    return TrainConfig(**{k: _coerce(k, v, kinds[types[k]]) for k, v in values.items()})


def parse_overrides(overrides: Iterable[str]) -> dict[str, Any]:
    """`key=value` strings -> dict; values are YAML scalars (`lr_g=1e-4`, `compile=true`)."""
    parsed = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ProdganError(f"--set expects key=value, got {item!r}; valid keys: {', '.join(valid_keys())}")
        try:
            parsed[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ProdganError(f"--set {item!r}: the value is not a YAML scalar ({exc})") from exc
    return parsed


def read_config_file(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ProdganError(f"config file {path} does not exist; see configs/ for examples (smoke.yaml, fmnist.yaml)")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ProdganError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(values, dict):
        raise ProdganError(f"{path} must hold a mapping of config keys; valid keys: {', '.join(valid_keys())}")
    return values


def load_config(path: Path, overrides: Iterable[str] = ()) -> TrainConfig:
    """File values, then `--set` overrides; everything checked against TrainConfig's fields."""
    values = read_config_file(path)
    make_config(values, source=str(path))
    return make_config({**values, **parse_overrides(overrides)}, source=f"{path} + --set")
