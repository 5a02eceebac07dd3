"""Use case: validate a dataset with its Great Expectations suite, and the gate training passes.

A `ValidationRecord` is saved per data key under `<home>/validation/<dataset>/`.
`require_validated` accepts only a successful record for the data hash `data.dvc` pins now,
made with the suite as it is now.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from prodgan.adapters import dvc, gx
from prodgan.adapters.gx import Failure
from prodgan.data.layout import DatasetMeta, dataset_dir, read_meta
from prodgan.errors import GateFailed, ProdganError
from prodgan.fsutil import write_json_atomic
from prodgan.settings import Settings


@dataclass(frozen=True)
class ValidationRecord:
    """The lineage record of one validation run (saved as JSON under `<home>/validation/`)."""

    success: bool
    dataset: str
    kind: str
    data_hash: str | None  # DVC hash of data/ as pinned by data.dvc; None when data/ was not pinned
    data_key: str  # the manifest cache key: data_hash, or a stat key for unpinned data
    suite_name: str
    suite_sha256: str
    suite_path: str
    rows: int
    counts: dict[str, dict[str, int]]  # split -> category -> images found
    expectations: int
    failed: int
    failures: list[Failure]
    timestamp: str  # UTC, ISO 8601
    docs_path: str  # Data Docs HTML page of this validation result
    docs_index: str  # Data Docs site index
    gx_version: str
    manifest_schema: int
    manifest_cached: bool
    notes: list[str] = field(default_factory=list)
    # failed expectations of severity warning: reported, not failing
    warnings: list[Failure] = field(default_factory=list)
    reused: bool = False  # True when returned from an earlier run with the same data, suite and GX

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ValidationRecord":
        return cls(
            **{
                **data,
                "failures": [Failure(**f) for f in data.get("failures", [])],
                "warnings": [Failure(**f) for f in data.get("warnings", [])],
            }
        )

    @property
    def reference(self) -> str:
        """`<suite>:<data key>@<timestamp>`: names this record (the training run's lineage tag)."""
        return f"{self.suite_name}:{self.data_key}@{self.timestamp}"


def _data_key(settings: Settings, dataset: str, root: Path) -> tuple[str | None, str, list[str]]:
    """(the dataset's pinned DVC hash or None, manifest cache key, notes):
    unpinned data is keyed by file stats."""
    from prodgan.data.manifest import stat_key

    try:
        data_hash = dvc.require_clean(settings, dataset)
        return data_hash, data_hash, []
    except ProdganError as exc:
        note = f"data/{dataset} is not pinned, so this result cannot gate training ({exc})"
        return None, stat_key(root), [note]


def _dataset_root(settings: Settings, dataset: str) -> Path:
    if not dataset or "/" in dataset or "\\" in dataset or dataset.startswith("."):
        raise ProdganError(
            f"{dataset!r} is not a dataset name; "
            "use the folder name under data/, e.g. --dataset fashion-mnist"
        )
    return dataset_dir(settings.data_dir, dataset)


def save_record(settings: Settings, record: ValidationRecord) -> Path:
    """The latest record per data key, plus a timestamped copy kept as history."""
    folder = settings.validation_dir(record.dataset)
    stamp = record.timestamp.replace(":", "").replace("-", "")
    write_json_atomic(folder / "history" / f"{stamp}_{record.data_key}.json", record.to_dict())
    latest = folder / f"{record.data_key}.json"
    write_json_atomic(latest, record.to_dict())
    return latest


def load_record(settings: Settings, dataset: str, data_key: str) -> ValidationRecord | None:
    path = settings.validation_dir(dataset) / f"{data_key}.json"
    if not path.is_file():
        return None
    try:
        return ValidationRecord.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError) as exc:
        raise ProdganError(
            f"validation record {path} is unreadable ({exc}); "
            "run `prodgan data validate` to rewrite it"
        ) from exc


def _reusable(
    settings: Settings, dataset: str, key: str, suite_sha: str
) -> ValidationRecord | None:
    """An earlier record that a new checkpoint run would only repeat: same data, suite,
    manifest schema, GX."""
    from prodgan.data.manifest import SCHEMA_VERSION

    try:
        record = load_record(settings, dataset, key)
    except ProdganError:
        return None
    if (
        record is None
        or record.suite_sha256 != suite_sha
        or record.manifest_schema != SCHEMA_VERSION
        or record.gx_version != gx.gx_version()
        or not Path(record.docs_path).is_file()
    ):
        return None
    return replace(record, reused=True)


def validate(
    settings: Settings,
    dataset: str = "fashion-mnist",
    progress: Callable[[int, int], None] | None = None,
    fresh: bool = False,
) -> ValidationRecord:
    """Validate `data/<dataset>` with its kind's suite; record the result whether it passes or not.

    Unchanged data under an unchanged suite returns the earlier record (`reused=True`) without
    running GX again; `fresh=True` always runs the checkpoint (from the cached manifest).
    """
    from prodgan.data.manifest import SCHEMA_VERSION, load_manifest

    root = _dataset_root(settings, dataset)
    meta = read_meta(root)
    path = settings.suite_path(meta.kind)
    suite, suite_sha = gx.load_suite(path)
    data_hash, key, notes = _data_key(settings, dataset, root)
    previous = None if fresh else _reusable(settings, dataset, key, suite_sha)
    if previous is not None:
        return previous
    manifest, cached = load_manifest(settings.manifest_cache_dir, root, key, progress=progress)
    prefix = os.path.relpath(root, settings.root)
    validation, page, index = gx.run_checkpoint(
        settings,
        dataset,
        suite,
        manifest,
        gx.suite_parameters(meta),
        run_name=f"{dataset}-{key[:12]}",
    )
    counts: dict[str, dict[str, int]] = {}
    for (split, category), n in manifest.groupby(["split", "category"]).size().items():
        counts.setdefault(split, {})[category] = int(n)
    failed = [
        _with_fix(settings, meta, dataset, counts, failure)
        for failure in gx.failures(validation, prefix, gx.suite_parameters(meta), meta.sources)
    ]
    found = [f for f in failed if f.severity != "warning"]
    record = ValidationRecord(
        success=not found,
        dataset=dataset,
        kind=meta.kind,
        data_hash=data_hash,
        data_key=key,
        suite_name=suite["name"],
        suite_sha256=suite_sha,
        suite_path=str(path),
        rows=len(manifest),
        counts=counts,
        expectations=len(validation.results),
        failed=len(found),
        failures=found,
        timestamp=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        docs_path=page,
        docs_index=index,
        gx_version=gx.gx_version(),
        manifest_schema=SCHEMA_VERSION,
        manifest_cached=cached,
        notes=notes,
        warnings=[f for f in failed if f.severity == "warning"],
    )
    save_record(settings, record)
    return record


# the columns whose failures a category's size explains (and its size fixes)
_CATEGORY_SIZE_COLUMNS = ("category_train_count", "category_test_count", "split_category")


def _with_fix(
    settings: Settings,
    meta: DatasetMeta,
    dataset: str,
    counts: dict[str, dict[str, int]],
    failure: Failure,
) -> Failure:
    """The suite's fix for this kind of failure, for this dataset; a category-level failure gets
    each small category's own fix (the importer's advice: `prodgan.data.category_sizes`)."""
    from prodgan.ops.data import too_small

    fix = (failure.fix or "").replace("{dataset}", dataset) or None
    if failure.column in _CATEGORY_SIZE_COLUMNS:
        small = too_small(settings, meta, counts)
        if small:
            fix = "; ".join(f"{s.category!r}: {s.fix}" for s in small)
            if meta.kind == "folder":
                fix += f" (`prodgan data import folder SRC --name {dataset} --force ...`)"
    return replace(failure, fix=fix)


def require_passed(record: ValidationRecord) -> None:
    """Stop here when validation failed: nothing downstream may run on data that failed its
    checks."""
    if not record.success:
        raise GateFailed(
            f"dataset validation failed: {record.dataset} failed {record.failed} "
            f"of {record.expectations} expectations (data {record.data_hash or record.data_key}): "
            f"see the Data Docs at {record.docs_path}; "
            "apply the fix printed under each failure, `prodgan data add`, then validate again"
        )


def require_validated(settings: Settings, dataset: str = "fashion-mnist") -> ValidationRecord:
    """The successful validation of the data `data.dvc` pins now, under the current suite;
    else refuse."""
    try:
        data_hash = dvc.require_clean(settings, dataset)
    except ProdganError as exc:
        raise ProdganError(f"{exc}; then run `prodgan data validate --dataset {dataset}`") from exc
    record = load_record(settings, dataset, data_hash)
    if record is None:
        raise ProdganError(
            f"dataset {dataset} at data {data_hash} has not been validated; "
            f"run `prodgan data validate --dataset {dataset}`"
        )
    if not record.success:
        raise GateFailed(
            f"dataset {dataset} at data {data_hash} failed validation "
            f"({record.failed} of {record.expectations} expectations, "
            f"Data Docs: {record.docs_path}); fix the data, `prodgan data add`, "
            f"then run `prodgan data validate --dataset {dataset}`"
        )
    _, current_sha = gx.load_suite(settings.suite_path(record.kind))
    if current_sha != record.suite_sha256:
        raise ProdganError(
            f"the expectation suite for {record.kind} changed since {dataset} was validated; "
            f"run `prodgan data validate --dataset {dataset}`"
        )
    return record


def log_training_data(
    settings: Settings, logger: Any, dataset: str, record: ValidationRecord
) -> None:
    """Put on a run that produced a generator (trained or imported) the validation it relied on
    and the train split's dataset version, so both kinds of version show the same lineage."""
    from prodgan.adapters import tracking

    logger.log_dict(record.to_dict(), "validation.json")
    logger.log_dataset(
        tracking.dataset_version(
            f"{dataset}:train", record.data_hash, dvc.remote_location(settings, record.data_hash)
        ),
        "training",
    )
