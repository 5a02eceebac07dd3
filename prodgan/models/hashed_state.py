"""A module's weights on disk as a plain state dict beside a JSON record naming its sha256.

The record is written after the weights (each atomically), and loading refuses weights whose
sha256 is not the recorded one, so a truncated or swapped file is an error, never a silent model.
Used by the category judges (prodgan.models.probe, prodgan.models.evaluator).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prodgan.errors import ProdganError
from prodgan.fsutil import atomic_path, sha256_file, write_json_atomic


def save_hashed(
    directory: Path, weights_file: str, record_file: str, module: nn.Module, record: dict[str, Any]
) -> str:
    """Write `module`'s state dict, then `record` plus `weights_sha256`; the sha256."""
    directory = Path(directory)
    with atomic_path(directory / weights_file) as tmp:
        torch.save({k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}, tmp)
        digest = sha256_file(tmp)
    write_json_atomic(directory / record_file, {**record, "weights_sha256": digest})
    return digest


def read_record(directory: Path, record_file: str, fix: str) -> dict[str, Any]:
    """The JSON record, or a one-line error ending in `fix` (how to write a new one)."""
    path = Path(directory) / record_file
    try:
        record = json.loads(path.read_text())
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
        return record
    except (OSError, ValueError) as exc:
        raise ProdganError(f"{path} is missing or corrupt ({exc}); {fix}") from exc


def load_hashed(
    directory: Path, weights_file: str, record: dict[str, Any], module: nn.Module, fix: str
) -> nn.Module:
    """`module` (eval mode) with the weights in `directory`, after checking their sha256 against
    `record`; `module.sha256` names them."""
    weights = Path(directory) / weights_file
    if not weights.is_file() or sha256_file(weights) != record.get("weights_sha256"):
        raise ProdganError(
            f"{weights} is missing or does not match the sha256 in its record; {fix}"
        )
    module.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    module.sha256 = record["weights_sha256"]
    return module.eval()
