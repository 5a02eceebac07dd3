"""The evaluation protocol: everything a metric value depends on, hashed into one fingerprint.

Metrics are only compared under the same fingerprint (architecture rule 4). The real-side key is
the part the real statistics depend on, so changing the generated side (sample count, seed)
still reuses cached real features.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np

from prodgan.names import sample_suffix


@dataclass(frozen=True)
class Protocol:
    dataset: str
    data_hash: str  # DVC hash of data/ (or any content hash of the split)
    split: str
    samples: int
    real_samples: int
    seed: int
    extractor: str
    weights_sha256: str
    resize: str
    precision: str
    conditional: bool
    evaluator_sha256: str = ""  # IS / conditional accuracy come from this classifier when set

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def fingerprint(self) -> str:
        return _digest(self.to_dict())

    @property
    def suffix(self) -> str:
        return sample_suffix(self.samples)

    def real_key(self, split: str | None = None, count: int | None = None) -> str:
        """Cache key of one real side: data, split, count, extractor, weights, resize, precision."""
        return real_features_key(
            self.dataset,
            self.data_hash,
            split or self.split,
            self.real_samples if count is None else count,
            self.extractor,
            self.weights_sha256,
            self.resize,
            self.precision,
        )


def real_subset(count: int, total: int) -> np.ndarray:
    """Which real images the protocol uses: a fixed random subset (seed 0), in split order."""
    return np.sort(np.random.RandomState(0).permutation(total)[:count])


def real_features_key(
    dataset: str,
    data_hash: str,
    split: str,
    count: int,
    extractor: str,
    weights_sha256: str,
    resize: str,
    precision: str,
) -> str:
    """Cache key of `count` real images of one split (the seed-0 subset, see `real_subset`).

    Also used before any protocol exists (fitting the category judge on a whole split), so a
    split whose features the judge already paid for is not extracted again by the evaluation.
    """
    return _digest(
        {
            "dataset": dataset,
            "data_hash": data_hash,
            "extractor": extractor,
            "weights_sha256": weights_sha256,
            "resize": resize,
            "precision": precision,
            "split": split,
            "count": count,
            "subset_seed": 0,
        }
    )


def _digest(obj: dict) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()
