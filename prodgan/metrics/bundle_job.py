"""One evaluation of a generator bundle, as data: what `prodgan evaluate` runs in its own process,
and the JSON job file each torchrun rank reads (`python -m prodgan.metrics JOB.json`).

Both paths call `BundleJob.evaluate`, so how a bundle's evaluation becomes `evaluate_generator`'s
arguments (its cache, the bundle's weights hash as the generated side's cache key, the protocol
options) is written once and a sharded evaluation cannot drift from a one-process one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from prodgan.metrics.calibration import NoiseReference
from prodgan.metrics.evaluate import EvalResult, evaluate_generator
from prodgan.models.bundle import read_bundle_record

_PATHS = ("bundle", "dataset_root", "tensor_cache", "cache_dir", "evaluator", "out")


@dataclass(frozen=True)
class BundleJob:
    """Where the bundle, the data and the caches are, and the protocol options
    (samples, seed, real_samples, kid_subset_size, batch_size)."""

    bundle: Path
    dataset_root: Path
    data_hash: str
    split: str
    tensor_cache: Path
    cache_dir: Path
    options: dict[str, Any]
    evaluator: Path | None = None  # the category judge's folder, when the evaluation uses one
    out: Path | None = None  # where rank 0 writes the result folder (a sharded run only)

    def to_json(self) -> dict[str, Any]:
        return {k: str(v) if k in _PATHS and v is not None else v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BundleJob:
        return cls(**{k: Path(v) if k in _PATHS and v is not None else v for k, v in data.items()})

    def writing_to(self, out: Path) -> BundleJob:
        return replace(self, out=out)

    def evaluate(
        self,
        generator: Any,
        spec: Any,
        real: Any,
        *,
        train: Any,
        evaluator: Any,
        noise: NoiseReference,
        progress: Any,
        device: str | None = None,
    ) -> EvalResult | None:
        """`evaluate_generator` on the loaded bundle, data and judge; rank 0's result (None on
        the other ranks of a sharded run)."""
        return evaluate_generator(
            generator,
            spec,
            real,
            train=train,
            evaluator=evaluator,
            device=device,
            cache_dir=self.cache_dir,
            generator_key=read_bundle_record(self.bundle)["weights_sha256"],
            noise=noise,
            progress=progress,
            **self.options,
        )
