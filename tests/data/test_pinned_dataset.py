"""A fresh clone's `make demo` rebuilds Fashion-MNIST from the Debian files: the bytes must hash to
what the repository's data.dvc pins, or `prodgan data setup` refuses and the demo stops. Any change
to the importer's output (a new field in dataset.json, PNG settings) shows here, not on a user's
clone.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from prodgan.ops import data as data_ops
from prodgan.settings import Settings

PINNED = Path(__file__).resolve().parents[2] / "data.dvc"


@pytest.mark.slow
def test_a_fresh_clone_rebuilds_the_dataset_data_dvc_pins(project: Settings) -> None:
    shutil.copy(PINNED, project.root / "data.dvc")
    message = data_ops.setup(project)
    assert "matches data.dvc" in message, message
