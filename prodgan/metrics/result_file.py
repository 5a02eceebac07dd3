"""An evaluation result as files: how rank 0 of a sharded evaluation hands it to its launcher.

`python -m prodgan.metrics` runs under torchrun with no tracking; rank 0 writes the result into one
folder (arrays as `.npz`, the rest as JSON, swapped in with one rename) and the launching process
(`prodgan evaluate --nproc N`) reads it back and logs it, as training does with its run folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from prodgan.fsutil import atomic_dir
from prodgan.metrics.evaluate import EvalResult
from prodgan.metrics.protocol import Protocol

ARRAYS, FIELDS = "arrays.npz", "result.json"


def save_result(directory: Path, result: EvalResult) -> None:
    with atomic_dir(directory) as tmp:
        with open(tmp / ARRAYS, "wb") as f:
            np.savez(f, images=result.images, features=result.features)
        fields = {
            "metrics": result.metrics,
            "protocol": result.protocol.to_dict(),
            "per_category": result.per_category,
            "real_cached": result.real_cached,
            "timings": result.timings,
        }
        (tmp / FIELDS).write_text(json.dumps(fields, indent=2, sort_keys=True) + "\n")


def load_result(directory: Path) -> EvalResult | None:
    """The result rank 0 left in `directory`; None when there is none (rank 0 ran elsewhere)."""
    directory = Path(directory)
    if not (directory / FIELDS).is_file():
        return None
    fields = json.loads((directory / FIELDS).read_text())
    with np.load(directory / ARRAYS, allow_pickle=False) as arrays:
        images, features = arrays["images"], arrays["features"]
    return EvalResult(
        fields["metrics"],
        Protocol(**fields["protocol"]),
        fields["per_category"],
        images,
        features,
        fields["real_cached"],
        fields["timings"],
    )
