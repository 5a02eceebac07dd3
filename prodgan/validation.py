"""Great Expectations adapter: image manifest -> GX Checkpoint -> result, Data Docs, lineage record.

The rules live in `evaluation/expectations/<kind>.json` (GX suites as data); this module only
feeds them the manifest (`prodgan.data.manifest`), the dataset's declared facts as suite
parameters, and turns GX's answer into a `ValidationRecord` that training can be gated on:
`require_validated` accepts only a successful record for the data hash `data.dvc` pins now,
made with the suite as it is now.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from prodgan.data.layout import SPLITS, DatasetMeta, dataset_dir, read_meta
from prodgan.errors import GateFailed, ProdganError
from prodgan.fsutil import write_json_atomic
from prodgan.settings import Settings

SUITES_DIR = Path("evaluation") / "expectations"
# The suites shipped with prodgan's source, used when a project has no copy of its own.
_SHIPPED_SUITES = Path(__file__).resolve().parents[1] / SUITES_DIR
OFFENDERS_KEPT = 20  # offending files GX reports (and the record keeps) per failed expectation
_DATASOURCE = "prodgan"
_BATCH = "manifest"


@dataclass(frozen=True)
class Failure:
    """One failed expectation and what it found."""

    rule: str  # the suite's plain-words rule (expectation meta "rule")
    expectation: str  # GX expectation type
    column: str | None
    unexpected_count: int | None
    offending: list[dict[str, Any]]  # {"file": path relative to the project root, "value": what was wrong}
    observed: Any = None  # table/aggregate expectations: the observed value


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
    reused: bool = False  # True when returned from an earlier run with the same data, suite and GX

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ValidationRecord":
        return cls(**{**data, "failures": [Failure(**f) for f in data.get("failures", [])]})


def suite_path(settings: Settings, kind: str) -> Path:
    """The project's own suite for a dataset kind, else the one shipped with prodgan."""
    for base in (settings.root / SUITES_DIR, _SHIPPED_SUITES):
        candidate = base / f"{kind}.json"
        if candidate.is_file():
            return candidate
    raise ProdganError(f"no expectation suite for dataset kind {kind!r}: add {SUITES_DIR / (kind + '.json')} (see docs/validation.md)")


def load_suite(path: Path) -> tuple[dict[str, Any], str]:
    """(suite as a dict, sha256 of the file's bytes)."""
    raw = Path(path).read_bytes()
    try:
        suite = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ProdganError(f"{path} is not valid JSON ({exc}); fix the suite file") from exc
    if not isinstance(suite, dict) or not isinstance(suite.get("expectations"), list) or not suite.get("name"):
        raise ProdganError(f"{path} is not an expectation suite (needs \"name\" and an \"expectations\" list); fix the suite file")
    return suite, hashlib.sha256(raw).hexdigest()


def suite_parameters(meta: DatasetMeta) -> dict[str, Any]:
    """What `dataset.json` declares, as GX suite parameters (`{"$PARAMETER": name}` in a suite)."""
    return {
        "size": meta.size,
        "modes": [meta.mode],
        "categories": list(meta.categories),
        "split_categories": [f"{split}/{category}" for split in SPLITS for category in meta.categories],
        "declared_total": meta.total(),
    }


def _data_key(settings: Settings, root: Path) -> tuple[str | None, str, list[str]]:
    """(pinned DVC hash or None, manifest cache key, notes): unpinned data is keyed by file stats."""
    from prodgan.data import dvc
    from prodgan.data.manifest import stat_key

    try:
        data_hash = dvc.require_clean(settings)
        return data_hash, data_hash, []
    except ProdganError as exc:
        note = f"data/ is not pinned, so this result cannot gate training ({exc})"
        return None, stat_key(root), [note]


def _dataset_root(settings: Settings, dataset: str) -> Path:
    if not dataset or "/" in dataset or "\\" in dataset or dataset.startswith("."):
        raise ProdganError(f"{dataset!r} is not a dataset name; use the folder name under data/, e.g. --dataset fashion-mnist")
    return dataset_dir(settings.data_dir, dataset)


def _context(settings: Settings):
    """A file-backed GX project under `<home>/gx` (suites, results and Data Docs accumulate there)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="file", project_root_dir=str(settings.home))
    bars = ctx.variables.progress_bars  # a ProgressBarsConfig when just set, a dict once read back
    if bars is None or (bars.get("globally", True) if isinstance(bars, dict) else bars.globally):
        ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        ctx.variables.save()
    return ctx


def _batch_definition(ctx, dataset: str):
    names = {source.name for source in ctx.data_sources.all().values()}
    source = ctx.data_sources.get(_DATASOURCE) if _DATASOURCE in names else ctx.data_sources.add_pandas(_DATASOURCE)
    asset = source.get_asset(dataset) if dataset in {a.name for a in source.assets} else source.add_dataframe_asset(dataset)
    existing = [b for b in asset.batch_definitions if b.name == _BATCH]
    return existing[0] if existing else asset.add_batch_definition_whole_dataframe(_BATCH)


def _gx_suite(suite: dict[str, Any]):
    """The suite as GX objects; every entry must become an expectation (GX would log and skip bad ones)."""
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    if not suite["expectations"]:
        raise ProdganError(f"expectation suite {suite['name']!r} has no expectations; a gate must check something")
    expectations = []
    for i, entry in enumerate(suite["expectations"]):
        try:
            expectations.append(ExpectationConfiguration(**entry).to_domain_obj())
        except Exception as exc:  # unknown type, bad or missing kwargs
            raise ProdganError(f"expectation {i} ({entry.get('type', '?') if isinstance(entry, dict) else entry!r}) of suite "
                               f"{suite['name']!r} is not valid for GX: {' '.join(str(exc).split())}; fix the suite file") from exc
    return gx.ExpectationSuite(name=suite["name"], expectations=expectations, meta=suite.get("meta"))


def run_checkpoint(settings: Settings, dataset: str, suite: dict[str, Any], manifest, parameters: dict[str, Any], run_name: str):
    """Run the suite over the manifest as a GX Checkpoint that also updates Data Docs.

    Returns (the validation result, its Data Docs page, the Data Docs index).
    """
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier

    ctx = _context(settings)
    gx_suite = ctx.suites.add_or_update(_gx_suite(suite))
    definition = ctx.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=dataset, data=_batch_definition(ctx, dataset), suite=gx_suite)
    )
    checkpoint = ctx.checkpoints.add_or_update(gx.Checkpoint(
        name=f"prodgan-{dataset}",
        validation_definitions=[definition],
        actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs")],
        result_format={"result_format": "SUMMARY", "unexpected_index_column_names": ["path", "near_dup_of"],
                       "partial_unexpected_count": OFFENDERS_KEPT},
    ))
    result = checkpoint.run(batch_parameters={"dataframe": manifest}, expectation_parameters=parameters,
                            run_id=RunIdentifier(run_name=run_name))
    identifier, validation = next(iter(result.run_results.items()))
    page = ctx.get_docs_sites_urls(resource_identifier=identifier, only_if_exists=False)
    index = ctx.get_docs_sites_urls()
    return validation, _file_path(page[0]["site_url"]), _file_path(index[0]["site_url"])


def _file_path(url: str | None) -> str:
    return url[len("file://"):] if url and url.startswith("file://") else str(url)


def _plain(value: Any) -> Any:
    """GX hands back numpy scalars; records are JSON."""
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _offending_value(row: dict[str, Any], column: str | None, file_prefix: str) -> Any:
    """What was wrong with one row: the column's value; a near-duplicate also names its twin."""
    if column is None:  # compound-column rules (duplicates): the shared content hash
        return str(row.get("sha256", ""))[:16]
    value = _plain(row.get(column))
    twin = row.get("near_dup_of")
    return f"{value:.2f} from {file_prefix}/{twin}" if column == "near_dup_distance" and twin else value


def failures(validation, file_prefix: str) -> list[Failure]:
    """The failed expectations of a GX validation result, with the offending files named."""
    found = []
    for outcome in validation.results:
        if outcome.success:
            continue
        config, result = outcome.expectation_config, outcome.result or {}
        column = config.kwargs.get("column") or ", ".join(config.kwargs.get("column_list", []))
        exception = (outcome.exception_info or {}).get("exception_message")
        offending = [
            {"file": f"{file_prefix}/{row['path']}", "value": _offending_value(row, config.kwargs.get("column"), file_prefix)}
            for row in result.get("partial_unexpected_index_list") or []
        ]
        offending += [{"file": f"{file_prefix}/{missing}/", "value": "no images"} for missing in result.get("partial_missing_list") or []]
        found.append(Failure(
            rule=(config.meta or {}).get("rule", config.type),
            expectation=config.type,
            column=column or None,
            unexpected_count=_plain(result.get("unexpected_count", result.get("missing_count"))),
            offending=offending,
            observed=_plain(result.get("observed_value")) if exception is None else f"error: {exception}",
        ))
    return found


def records_dir(settings: Settings, dataset: str) -> Path:
    return settings.home / "validation" / dataset


def save_record(settings: Settings, record: ValidationRecord) -> Path:
    """The latest record per data key, plus a timestamped copy kept as history."""
    folder = records_dir(settings, record.dataset)
    stamp = record.timestamp.replace(":", "").replace("-", "")
    write_json_atomic(folder / "history" / f"{stamp}_{record.data_key}.json", record.to_dict())
    latest = folder / f"{record.data_key}.json"
    write_json_atomic(latest, record.to_dict())
    return latest


def load_record(settings: Settings, dataset: str, data_key: str) -> ValidationRecord | None:
    path = records_dir(settings, dataset) / f"{data_key}.json"
    if not path.is_file():
        return None
    try:
        return ValidationRecord.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError) as exc:
        raise ProdganError(f"validation record {path} is unreadable ({exc}); run `prodgan data validate` to rewrite it") from exc


def _gx_version() -> str:
    from importlib.metadata import version

    return version("great_expectations")


def _reusable(settings: Settings, dataset: str, key: str, suite_sha: str) -> ValidationRecord | None:
    """An earlier record that a new checkpoint run would only repeat: same data, suite, manifest schema, GX."""
    from prodgan.data.manifest import SCHEMA_VERSION

    try:
        record = load_record(settings, dataset, key)
    except ProdganError:
        return None
    if (record is None or record.suite_sha256 != suite_sha or record.manifest_schema != SCHEMA_VERSION
            or record.gx_version != _gx_version() or not Path(record.docs_path).is_file()):
        return None
    return replace(record, reused=True)


def validate_dataset(settings: Settings, dataset: str = "fashion-mnist",
                     progress: Callable[[int, int], None] | None = None, fresh: bool = False) -> ValidationRecord:
    """Validate `data/<dataset>` with its kind's suite; record the result whether it passes or not.

    Unchanged data under an unchanged suite returns the earlier record (`reused=True`) without
    running GX again; `fresh=True` always runs the checkpoint (from the cached manifest).
    """
    from prodgan.data.manifest import SCHEMA_VERSION, load_manifest

    root = _dataset_root(settings, dataset)
    meta = read_meta(root)
    path = suite_path(settings, meta.kind)
    suite, suite_sha = load_suite(path)
    data_hash, key, notes = _data_key(settings, root)
    previous = None if fresh else _reusable(settings, dataset, key, suite_sha)
    if previous is not None:
        return previous
    manifest, cached = load_manifest(settings.home / "cache" / "manifest", root, key, progress=progress)
    prefix = os.path.relpath(root, settings.root)
    validation, page, index = run_checkpoint(settings, dataset, suite, manifest, suite_parameters(meta), run_name=f"{dataset}-{key[:12]}")
    found = failures(validation, prefix)
    counts: dict[str, dict[str, int]] = {}
    for (split, category), n in manifest.groupby(["split", "category"]).size().items():
        counts.setdefault(split, {})[category] = int(n)
    record = ValidationRecord(
        success=bool(validation.success), dataset=dataset, kind=meta.kind, data_hash=data_hash, data_key=key,
        suite_name=suite["name"], suite_sha256=suite_sha, suite_path=str(path), rows=len(manifest), counts=counts,
        expectations=len(validation.results), failed=len(found), failures=found,
        timestamp=datetime.now(timezone.utc).isoformat(timespec="seconds"), docs_path=page, docs_index=index,
        gx_version=_gx_version(), manifest_schema=SCHEMA_VERSION, manifest_cached=cached, notes=notes,
    )
    save_record(settings, record)
    return record


def require_validated(settings: Settings, dataset: str = "fashion-mnist") -> ValidationRecord:
    """The successful validation of the data `data.dvc` pins now, under the current suite; else refuse."""
    from prodgan.data import dvc

    try:
        data_hash = dvc.require_clean(settings)
    except ProdganError as exc:
        raise ProdganError(f"{exc}; then run `prodgan data validate --dataset {dataset}`") from exc
    record = load_record(settings, dataset, data_hash)
    if record is None:
        raise ProdganError(f"dataset {dataset} at data {data_hash} has not been validated; run `prodgan data validate --dataset {dataset}`")
    if not record.success:
        raise GateFailed(f"dataset {dataset} at data {data_hash} failed validation ({record.failed} of {record.expectations} "
                         f"expectations, Data Docs: {record.docs_path}); fix the data, `prodgan data add`, then run `prodgan data validate --dataset {dataset}`")
    _, current_sha = load_suite(suite_path(settings, record.kind))
    if current_sha != record.suite_sha256:
        raise ProdganError(f"the expectation suite for {record.kind} changed since {dataset} was validated; run `prodgan data validate --dataset {dataset}`")
    return record
