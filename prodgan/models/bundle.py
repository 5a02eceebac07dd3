"""The generator bundle: the one artifact every other area consumes.

A bundle is a folder with `generator.json` (the spec, the sha256 of every model file, lineage)
and the model files it names. Its `kind` says how they load (`prodgan.models.formats`): `native`
is `generator.pt`, a plain state dict of a prodgan architecture; `pt2`, `torchscript` and `onnx`
are an imported outside generator (`generator.<ext>`, plus its contract in the record and
optionally an untrained export as `noise.<ext>`). Loading refuses any file whose hash differs
from the record, so a swapped or truncated file never generates silently.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prodgan.errors import ProdganError
from prodgan.fsutil import atomic_path, sha256_file, write_json_atomic
from prodgan.models.formats import IMPORTED, NATIVE, load_generator
from prodgan.models.nets import LEVELS, ClassicDiscriminator, Discriminator

WEIGHTS_FILE = "generator.pt"
SPEC_FILE = "generator.json"
BUNDLE_FORMAT = 1
MODEL_STEM, NOISE_STEM = "model", "noise"  # an imported bundle's files: model.<ext>, noise.<ext>
EXTENSIONS = {"pt2": ".pt2", "torchscript": ".ts", "onnx": ".onnx"}
# the file a bundle's `weights_sha256` names, by kind (what the registry and the promoter hash)
WEIGHTS_NAMES = (WEIGHTS_FILE, *(MODEL_STEM + ext for ext in EXTENSIONS.values()))
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
        if self.arch == IMPORTED:
            return self._check_sizes()
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
        return self._check_sizes()

    def _check_sizes(self) -> "GeneratorSpec":
        if self.channels not in (1, 3):
            raise ProdganError(f"images must have 1 or 3 channels, got {self.channels}")
        if self.z_dim < 1 or (self.width < 1 and self.arch != IMPORTED):
            raise ProdganError(
                f"z_dim and width must be positive (got z_dim={self.z_dim}, width={self.width})"
            )
        return self


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


def save_imported_bundle(
    directory: Path,
    kind: str,
    model_file: Path,
    spec: GeneratorSpec,
    contract: Any,
    noise_file: Path | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """An outside generator file (already sniffed and checked against `contract`) as a bundle:
    the file copied as `generator.<ext>`, an untrained export as `noise.<ext>`, then the record."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    for stem, source in ((MODEL_STEM, model_file), (NOISE_STEM, noise_file)):
        if source is None:
            continue
        name = stem + EXTENSIONS[kind]
        with atomic_path(directory / name) as tmp:
            shutil.copyfile(source, tmp)
            files[name] = sha256_file(tmp)
    model_name = MODEL_STEM + EXTENSIONS[kind]
    write_json_atomic(
        directory / SPEC_FILE,
        {
            "format": BUNDLE_FORMAT,
            "kind": kind,
            "spec": spec.to_dict(),
            "contract": contract.to_dict(),
            "model_file": model_name,
            "noise_file": NOISE_STEM + EXTENSIONS[kind] if noise_file else None,
            "files": files,
            "weights_sha256": files[model_name],
            "extra": extra or {},
        },
    )
    return directory


def weights_file(record: dict[str, Any]) -> str:
    """The file whose sha256 is the bundle's `weights_sha256`: generator.pt, or the imported
    model file."""
    return WEIGHTS_FILE if bundle_kind(record) == NATIVE else str(record.get("model_file"))


def bundle_kind(record: dict[str, Any]) -> str:
    """How a bundle's files load: `native` for prodgan's own, else the imported file's kind."""
    return record.get("kind") or NATIVE


def _checked_file(directory: Path, name: str, digest: str | None) -> Path:
    path = directory / name
    if not path.is_file():
        raise ProdganError(f"{path} is missing; re-download the model")
    if sha256_file(path) != digest:
        raise ProdganError(
            f"{path} does not match the sha256 recorded in {SPEC_FILE}: "
            "the file was changed or truncated; re-download the model"
        )
    return path


def bundle_contract(record: dict[str, Any]) -> Any:
    """The contract an imported bundle was checked against (None for a native bundle)."""
    from prodgan.models.contract import GeneratorContract

    contract = record.get("contract")
    return GeneratorContract.from_record(contract) if contract else None


def load_bundle(
    directory: Path, device: str | torch.device = "cpu", role: str = "model"
) -> tuple[nn.Module, GeneratorSpec]:
    """(generator in eval mode on `device`, spec), any kind, through `formats.load_generator`.

    Refuses any file whose sha256 is not the recorded one. `role="noise"` loads an imported
    bundle's untrained export instead of the model.
    """
    directory = Path(directory)
    record = read_bundle_record(directory)
    spec = GeneratorSpec.from_dict(record["spec"])
    kind = bundle_kind(record)
    if kind == NATIVE:
        files = {"weights": _checked_file(directory, WEIGHTS_FILE, record.get("weights_sha256"))}
    else:
        name = record.get("noise_file" if role == "noise" else "model_file")
        if not name:
            raise ProdganError(f"{directory} holds no {role} file")
        files = {"model": _checked_file(directory, name, (record.get("files") or {}).get(name))}
    generator = load_generator(kind, files, spec, bundle_contract(record), device)
    return generator, spec
