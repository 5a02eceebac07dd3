"""Model formats behind one interface: a file of a known kind -> a generator module prodgan drives.

Every generator prodgan evaluates, serves or edits is called as `generator(z, labels)` with
N(0, 1) latents (N, z_dim) and dataset category indices, and returns float images in [-1, 1].
prodgan's own bundle already is that; an outside file (`.pt2`, TorchScript, ONNX) is wrapped in
`ImportedGenerator`, which maps latents, labels and output range through the file's contract.
`load_generator` is the one door: every loader behind it opens only a file `file_kinds.sniff`
has passed, so no loader ever unpickles anything the allowlist did not admit.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import nn

from prodgan.errors import ProdganError
from prodgan.models.contract import GeneratorContract, Raw, label_map
from prodgan.models.file_kinds import ONNX, PT2, TORCHSCRIPT, sniff
from prodgan.models.nets import Generator

NATIVE = "native"  # prodgan's own bundle: a state dict rebuilt into a prodgan architecture
IMPORTED = "imported"  # the arch of a generator prodgan did not build: it loads from its file


def build_generator(spec: Any) -> nn.Module:
    """A fresh network of a native spec's architecture (prodgan's own Generator)."""
    spec.check()
    if spec.arch == IMPORTED:
        raise ProdganError("an imported generator is loaded from its file, not built from a spec")
    return Generator(spec.z_dim, spec.num_classes, spec.channels, spec.size, spec.width)


def load_state(weights: Path) -> dict[str, torch.Tensor]:
    """A state dict, tensors only (`weights_only=True`): a file holding anything else is
    refused."""
    try:
        return torch.load(weights, map_location="cpu", weights_only=True)
    except (
        pickle.UnpicklingError
    ):  # objects other than tensors: possibly code; never retry with weights_only=False
        raise ProdganError(
            f"{weights} holds objects other than tensors and was refused unloaded; "
            f"re-download the model or retrain it"
        ) from None


def _checked(path: Path, kind: str) -> Path:
    found = sniff(path)
    if found != kind:
        raise ProdganError(f"{path.name} is a {found} file, but was recorded as {kind}")
    return path


def _load_pt2(path: Path, device: str | torch.device) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.export.load(str(_checked(path, PT2))).module()
    return module.to(device)


def _load_torchscript(path: Path, device: str | torch.device) -> nn.Module:
    with warnings.catch_warnings():  # "TorchScript is deprecated": still the most common export
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(_checked(path, TORCHSCRIPT)), map_location=device).eval()


class OnnxModule(nn.Module):
    """An ONNX Runtime session as a module (no parameters, no gradients)."""

    differentiable = False

    def __init__(self, path: Path, device: str | torch.device) -> None:
        super().__init__()
        import onnxruntime

        providers = ["CPUExecutionProvider"]
        if str(device).startswith("cuda"):
            providers.insert(0, "CUDAExecutionProvider")
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        try:
            self.session = onnxruntime.InferenceSession(
                str(_checked(path, ONNX)), options, providers=providers
            )
        except (onnxruntime.capi.onnxruntime_pybind11_state.Fail, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0][:200]
            raise ProdganError(
                f"ONNX Runtime cannot load {path.name} ({first}); export it into one file "
                "(torch.onnx.export(..., external_data=False)), see docs/generators.md"
            ) from None
        self.inputs = [i.name for i in self.session.get_inputs()]

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        feed = {self.inputs[0]: z.detach().cpu().numpy().astype(np.float32)}
        if labels is not None and len(self.inputs) > 1:
            feed[self.inputs[1]] = labels.detach().cpu().numpy().astype(np.int64)
        out = self.session.run(None, feed)[0]
        return torch.from_numpy(np.ascontiguousarray(out)).to(z.device)


LOADERS: dict[str, Callable[[Path, str | torch.device], nn.Module]] = {
    PT2: _load_pt2,
    TORCHSCRIPT: _load_torchscript,
    ONNX: OnnxModule,
}


def raw_call(module: nn.Module, conditional: bool) -> Raw:
    """The file's own call: latents in its layout, plus its labels when it takes them."""
    if conditional:
        return lambda z, labels: module(z, labels)
    return lambda z, _labels: module(z)


class ImportedGenerator(nn.Module):
    """An outside generator speaking prodgan's interface through its contract."""

    def __init__(
        self, inner: nn.Module, contract: GeneratorContract, dataset_categories: tuple[str, ...]
    ) -> None:
        super().__init__()
        self.inner, self.contract = inner, contract
        self.differentiable = getattr(inner, "differentiable", True)
        self.raw = raw_call(inner, contract.conditional)
        labels = label_map(contract, dataset_categories) if contract.conditional else None
        self.register_buffer("label_map", labels, persistent=False)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.label_map is not None:
            labels = self.label_map.to(labels.device)[labels]
        images = self.raw(self.contract.latent(z), labels)
        return self.contract.to_unit_range(images)

    def train(self, mode: bool = True) -> "ImportedGenerator":
        """Always evaluation mode, never passed down: an exported program runs as exported (and
        torch.export's modules refuse `.train()`)."""
        self.training = False
        return self


def load_raw(kind: str, path: Path, device: str | torch.device = "cpu") -> nn.Module:
    """The module of an outside file of `kind`, after `sniff` passed it."""
    if kind not in LOADERS:
        raise ProdganError(f"unknown model kind {kind!r}; valid: {', '.join(LOADERS)}")
    return LOADERS[kind](Path(path), device)


def load_generator(
    kind: str,
    files: Mapping[str, Path],
    spec: Any,
    contract: GeneratorContract | None = None,
    device: str | torch.device = "cpu",
) -> nn.Module:
    """The one loader: (kind, its checked files, the spec) -> generator in eval mode on `device`.

    `files` maps a role to a local file whose hash the caller has already checked: `weights` for
    a native bundle (a state dict, loaded `weights_only=True`), `model` for an outside file.
    """
    if kind == NATIVE:
        generator = build_generator(spec)
        generator.load_state_dict(load_state(files["weights"]))
        return generator.to(device).eval()
    if contract is None:
        raise ProdganError(f"a {kind} generator needs its contract (spec file) to be loaded")
    inner = load_raw(kind, files["model"], device)
    return ImportedGenerator(inner, contract, tuple(spec.categories)).to(device).eval()
