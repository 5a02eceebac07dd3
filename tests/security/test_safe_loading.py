"""Safe loading: replaced weights are refused by hash;
pickled code never runs (weights_only=True).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from prodgan.errors import ProdganError
from prodgan.fsutil import sha256_file
from prodgan.models import build_generator
from prodgan.models.bundle import SPEC_FILE, WEIGHTS_FILE, load_bundle, save_bundle
from prodgan.training.checkpoints import load_latest_checkpoint, save_checkpoint
from tests.registry.helpers import SPEC as TINY


class Payload:
    """Unpickling this runs `touch MARKER`: what a hostile checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _bundle(tmp_path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    return save_bundle(tmp_path / f"bundle{seed}", build_generator(TINY), TINY)


def test_replaced_weights_are_refused(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, 1)
    load_bundle(bundle)  # intact: loads
    (bundle / WEIGHTS_FILE).write_bytes(
        (_bundle(tmp_path, 2) / WEIGHTS_FILE).read_bytes()
    )  # a valid but different state dict
    with pytest.raises(ProdganError, match="does not match the sha256"):
        load_bundle(bundle)


def test_pickled_code_in_weights_is_refused_even_with_matching_hash(tmp_path: Path) -> None:
    bundle, marker = _bundle(tmp_path, 1), tmp_path / "PWNED"
    state = torch.load(bundle / WEIGHTS_FILE, weights_only=True)
    state["extra"] = Payload(marker)
    torch.save(state, bundle / WEIGHTS_FILE)
    record = json.loads((bundle / SPEC_FILE).read_text())
    record["weights_sha256"] = sha256_file(
        bundle / WEIGHTS_FILE
    )  # the attacker also rewrote the record
    (bundle / SPEC_FILE).write_text(json.dumps(record))
    with pytest.raises(ProdganError, match="objects other than tensors"):
        load_bundle(bundle)
    assert not marker.exists()


def test_pickled_code_in_a_checkpoint_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    save_checkpoint(tmp_path / "run", {"step": 1, "format": "x", "evil": Payload(marker)}, keep=2)
    warnings: list[str] = []
    with pytest.raises(ProdganError, match="no readable checkpoint"):
        load_latest_checkpoint(tmp_path / "run", warnings.append)
    assert not marker.exists() and "unreadable" in warnings[0]
