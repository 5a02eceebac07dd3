"""The evaluation protocol: everything a metric value depends on, hashed into one fingerprint.

Metrics are only compared under the same fingerprint (architecture rule 4). The real-side key is
the part the real statistics depend on, so changing the generated side (sample count, seed)
still reuses cached real features.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

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
        fields = {
            k: getattr(self, k)
            for k in ("dataset", "data_hash", "extractor", "weights_sha256", "resize", "precision")
        }
        return _digest(
            {
                **fields,
                "split": split or self.split,
                "count": self.real_samples if count is None else count,
                "subset_seed": 0,
            }
        )


def _digest(obj: dict) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()
