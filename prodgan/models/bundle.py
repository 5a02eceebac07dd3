"""The generator bundle: the one artifact every other area consumes.

A bundle is a folder with `generator.pt` (a plain state dict) and `generator.json` (the spec
that rebuilds the network, the sha256 of the weights, lineage). Loading refuses weights whose
hash differs from the record, so a swapped or truncated file never generates silently.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prodgan.errors import ProdganError
from prodgan.fsutil import atomic_path, sha256_file, write_json_atomic
from prodgan.models.nets import LEVELS, ClassicDiscriminator, Discriminator, Generator

WEIGHTS_FILE = "generator.pt"
SPEC_FILE = "generator.json"
BUNDLE_FORMAT = 1
# arch name -> class-conditional? Every arch shares the Generator; they differ in the discriminator.
ARCHS = {"dcgan": False, "cdcgan": True, "cdcgan-classic": True}
DISCRIMINATORS = {"cdcgan-classic": ClassicDiscriminator}  # the others use Discriminator


@dataclass(frozen=True)
class GeneratorSpec:
    arch: str
    z_dim: int
    num_classes: int  # 0 = unconditional
    channels: int
    size: int
    width: int
    categories: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["categories"] = list(self.categories)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "GeneratorSpec":
        known = {f.name for f in fields(cls)}
        spec = cls(**{k: v for k, v in d.items() if k in known})
        return cls(**{**asdict(spec), "categories": tuple(spec.categories)})

    def check(self) -> "GeneratorSpec":
        """Raise a user-facing error for a spec no network can be built from."""
        if self.arch not in ARCHS:
            raise ProdganError(f"unknown architecture {self.arch!r}; valid: {', '.join(ARCHS)}")
        if ARCHS[self.arch] and self.num_classes < 1:
            raise ProdganError(
                f"architecture {self.arch!r} is class-conditional "
                "but the dataset has no categories; use arch=dcgan"
            )
        if not ARCHS[self.arch] and self.num_classes:
            raise ProdganError(
                f"architecture {self.arch!r} is unconditional: "
                f"num_classes must be 0, got {self.num_classes}"
            )
        if self.size not in LEVELS:
            raise ProdganError(
                f"image size {self.size} is not supported; "
                f"valid: {', '.join(map(str, LEVELS))} (re-import with `--size`)"
            )
        if self.channels not in (1, 3):
            raise ProdganError(f"images must have 1 or 3 channels, got {self.channels}")
        if self.z_dim < 1 or self.width < 1:
            raise ProdganError(
                f"z_dim and width must be positive (got z_dim={self.z_dim}, width={self.width})"
            )
        return self


def build_generator(spec: GeneratorSpec) -> nn.Module:
    spec.check()
    return Generator(spec.z_dim, spec.num_classes, spec.channels, spec.size, spec.width)


def build_discriminator(
    spec: GeneratorSpec, width: int | None = None, spectral_norm: bool = False
) -> nn.Module:
    """The discriminator matching a generator spec (same size, channels, classes)."""
    spec.check()
    network = DISCRIMINATORS.get(spec.arch, Discriminator)
    return network(spec.num_classes, spec.channels, spec.size, width or spec.width, spectral_norm)


def unwrap(module: nn.Module) -> nn.Module:
    """The plain module under torch.compile / DistributedDataParallel wrappers."""
    while True:
        inner = getattr(module, "_orig_mod", None) or getattr(module, "module", None)
        if not isinstance(inner, nn.Module):
            return module
        module = inner


def cpu_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    return {
        k: v.detach().to("cpu", copy=True).contiguous()
        for k, v in unwrap(module).state_dict().items()
    }


def save_bundle(
    directory: Path, generator: nn.Module, spec: GeneratorSpec, extra: dict[str, Any] | None = None
) -> Path:
    """Write generator.pt then generator.json (which names the weights' sha256), each atomically."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(directory / WEIGHTS_FILE) as tmp:
        torch.save(cpu_state_dict(generator), tmp)
        digest = sha256_file(tmp)
    write_json_atomic(
        directory / SPEC_FILE,
        {
            "format": BUNDLE_FORMAT,
            "spec": spec.to_dict(),
            "weights_sha256": digest,
            "extra": extra or {},
        },
    )
    return directory


def read_bundle_record(directory: Path) -> dict[str, Any]:
    """generator.json as a dict, with a clear error when it is missing or unreadable."""
    path = Path(directory) / SPEC_FILE
    if not path.is_file():
        raise ProdganError(
            f"{directory} is not a generator bundle ({SPEC_FILE} missing); "
            "point to a folder written by `prodgan train`"
        )
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ProdganError(f"{path} is corrupt ({exc}); re-download the model") from exc


def load_bundle(
    directory: Path, device: str | torch.device = "cpu"
) -> tuple[nn.Module, GeneratorSpec]:
    """(generator in eval mode on `device`, spec).

    Refuses weights whose sha256 is not the recorded one.
    """
    directory = Path(directory)
    record = read_bundle_record(directory)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise ProdganError(f"{weights} is missing; re-download the model")
    if sha256_file(weights) != record.get("weights_sha256"):
        raise ProdganError(
            f"{weights} does not match the sha256 recorded in {SPEC_FILE}: "
            "the weights were changed or truncated; re-download the model"
        )
    spec = GeneratorSpec.from_dict(record["spec"])
    generator = build_generator(spec)
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except (
        pickle.UnpicklingError
    ):  # objects other than tensors: possibly code; never retry with weights_only=False
        raise ProdganError(
            f"{weights} holds objects other than tensors and was refused unloaded; "
            f"re-download the model or retrain it"
        ) from None
    generator.load_state_dict(state)
    return generator.to(device).eval(), spec
