"""Which kind of model file this is, told from its bytes before anything in it is loaded.

`torch.export.load` unpickles parts of a `.pt2` archive with `weights_only=False`, and a pickled
network (`torch.save(model)`, an NVlabs network pickle) runs code as it loads. So every pickle
stream in a file handed to prodgan is read here as opcodes (`pickletools.genops`, which executes
nothing) and refused when it names any global outside a short allowlist of tensor rebuilders.
Only then may a loader open the file.
"""

from __future__ import annotations

import io
import pickletools
import re
import zipfile
from pathlib import Path

from prodgan.errors import ProdganError

PT2, TORCHSCRIPT, ONNX = "pt2", "torchscript", "onnx"
KINDS = (PT2, TORCHSCRIPT, ONNX)
RECIPE = "export it as docs/generators.md shows (torch.export .pt2, TorchScript or ONNX)"
PICKLE_PROTO = 0x80  # first byte of a pickle stream, protocol 2 and later
ZIP_MAGIC = b"PK\x03\x04"
ONNX_MAGIC = b"\x08"  # an ONNX ModelProto opens with field 1 (ir_version), a varint

# Globals a tensor archive needs: tensor and storage rebuilders, OrderedDict, TorchScript's own
# list builders. Anything else (a class of the user's code, os.system, builtins.eval) is refused.
_TENSOR_GLOBALS = re.compile(
    r"^(torch\._utils\._rebuild_(tensor_v2|tensor_v3|parameter)"
    r"|torch\._tensor\._rebuild_from_type_v2"
    r"|torch\.[A-Za-z0-9]*Storage"
    r"|collections\.OrderedDict)$"
)
# TorchScript's pickles name its compiled classes (`__torch__.*`) and its list and type-tag helpers
# (`torch.jit._pickle.*`); torch reads them with its
# C++ unpickler, which builds TorchScript objects only and never imports Python.
_TORCHSCRIPT_GLOBALS = re.compile(r"^(__torch__\.[\w.]+|torch\.jit\._pickle\.\w+)$")


def _globals(data: bytes, where: str) -> set[str]:
    """The globals a pickle stream would import, read from its opcodes without running them."""
    found, strings = set(), []
    try:
        for op, arg, _ in pickletools.genops(data):
            if op.name == "GLOBAL":
                found.add(str(arg).replace(" ", "."))
            elif op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
                strings.append(str(arg))
            elif op.name == "STACK_GLOBAL":
                found.add(".".join(strings[-2:]))
            elif op.name == "INST":
                found.add(str(arg).replace(" ", "."))
    except (ValueError, IndexError, EOFError) as exc:
        raise ProdganError(f"{where} holds a malformed pickle stream ({exc}); {RECIPE}") from None
    return found


def _check_pickles(archive: zipfile.ZipFile, name: str, torchscript: bool) -> None:
    """Every pickle stream in `archive` (nested torch.save archives included) names only allowed
    globals."""
    for member in archive.namelist():
        data = archive.read(member)
        where = f"{name}:{member}"
        if data[:4] == ZIP_MAGIC:
            with zipfile.ZipFile(io.BytesIO(data)) as nested:
                _check_pickles(nested, where, torchscript=False)
            continue
        if not data or data[0] != PICKLE_PROTO:
            continue
        for found in sorted(_globals(data, where)):
            if _TENSOR_GLOBALS.match(found) or (torchscript and _TORCHSCRIPT_GLOBALS.match(found)):
                continue
            raise ProdganError(
                f"{name} was refused unloaded: its pickle {member} would import {found!r}, which "
                f"can run code (a pickled network such as torch.save(model)); {RECIPE}"
            )


def _zip_kind(archive: zipfile.ZipFile) -> str | None:
    names = archive.namelist()
    if any(n.endswith("/archive_format") or n == "archive_format" for n in names):
        return PT2
    if any("/code/" in n or n.startswith("code/") for n in names) and any(
        n.endswith("constants.pkl") for n in names
    ):
        return TORCHSCRIPT
    return None


def sniff(path: Path) -> str:
    """The kind of model file at `path` (`pt2`, `torchscript` or `onnx`), or a one-line refusal.

    Refuses, before any loader sees it: a raw pickle, a zip archive that is neither a torch.export
    program nor TorchScript (a `torch.save` file), and any archive with a pickle that names a
    global outside the allowlist.
    """
    path = Path(path)
    if not path.is_file():
        raise ProdganError(f"model file {path} not found")
    with path.open("rb") as f:
        head = f.read(4)
    if head[:1] == bytes([PICKLE_PROTO]) or path.suffix.lower() in (".pkl", ".pickle"):
        raise ProdganError(
            f"{path.name} is a Python pickle (e.g. an NVlabs network pickle): loading it would "
            f"run code from it, so it was refused unloaded; {RECIPE}"
        )
    if head == ZIP_MAGIC:
        try:
            with zipfile.ZipFile(path) as archive:
                kind = _zip_kind(archive)
                if kind is None:
                    raise ProdganError(
                        f"{path.name} is a torch.save archive, not an exported program: loading "
                        f"it would unpickle Python objects, so it was refused unloaded; {RECIPE}"
                    )
                _check_pickles(archive, path.name, torchscript=kind == TORCHSCRIPT)
                return kind
        except zipfile.BadZipFile as exc:
            raise ProdganError(f"{path.name} is a damaged zip archive ({exc}); {RECIPE}") from None
    if path.suffix.lower() == ".onnx" and head[:1] == ONNX_MAGIC:
        return ONNX
    raise ProdganError(f"{path.name} is not a model file prodgan can read; {RECIPE}")
