"""Great Expectations adapter: image manifest -> GX Checkpoint -> failures and Data Docs.

The rules live in `evaluation/expectations/<kind>.json` (GX suites as data); this module only
feeds them the manifest (`prodgan.data.manifest`) and the dataset's declared facts as suite
parameters, and turns GX's answer into `Failure`s. Records and the training gate are
`prodgan.ops.validate`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from prodgan.adapters import datadocs_assets
from prodgan.data.layout import SPLITS, DatasetMeta
from prodgan.errors import ProdganError
from prodgan.settings import Settings

OFFENDERS_KEPT = 20  # offending files GX reports (and the record keeps) per failed expectation
TWINS = {
    "near_dup_distance": "near_dup_of",
    "perceptual_dup_distance": "perceptual_dup_of",
}  # column -> the file it is close to
_DATASOURCE = "prodgan"
_BATCH = "manifest"


@dataclass(frozen=True)
class Failure:
    """One failed expectation and what it found."""

    rule: str  # the suite's plain-words rule (expectation meta "rule")
    expectation: str  # GX expectation type
    column: str | None
    unexpected_count: int | None
    offending: list[
        dict[str, Any]
    ]  # {"file": path relative to the project root, "value": what was wrong}
    observed: Any = None  # table/aggregate expectations: the observed value
    severity: str = (
        "critical"  # GX's failure severity: critical fails the dataset, warning is reported only
    )
    expected: str | None = None  # what the expectation asked for, in words ("between 10 and 10")
    # what failed: a category, a file, the split (leakage, an empty split) or the whole dataset
    scope: str | None = None
    fix: str | None = None  # the suite's fix for this kind of failure (meta "fix")


def gx_version() -> str:
    return version("great_expectations")


def load_suite(path: Path) -> tuple[dict[str, Any], str]:
    """(suite as a dict, sha256 of the file's bytes)."""
    if not Path(path).is_file():
        raise ProdganError(
            f"no expectation suite at {path}: "
            f"add evaluation/expectations/{Path(path).name} (see docs/validation.md)"
        )
    raw = Path(path).read_bytes()
    try:
        suite = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ProdganError(f"{path} is not valid JSON ({exc}); fix the suite file") from exc
    if (
        not isinstance(suite, dict)
        or not isinstance(suite.get("expectations"), list)
        or not suite.get("name")
    ):
        raise ProdganError(
            f'{path} is not an expectation suite (needs "name" and an "expectations" list); '
            "fix the suite file"
        )
    return suite, hashlib.sha256(raw).hexdigest()


def suite_parameters(meta: DatasetMeta) -> dict[str, Any]:
    """What `dataset.json` declares, as GX suite parameters (`{"$PARAMETER": name}` in a suite)."""
    return {
        "size": meta.size,
        "modes": [meta.mode],
        "categories": list(meta.categories),
        "split_categories": [
            f"{split}/{category}" for split in SPLITS for category in meta.categories
        ],
        "declared_total": meta.total(),
    }


def _context(settings: Settings):
    """A file-backed GX project under `<home>/gx`
    (suites, results and Data Docs accumulate there)."""
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
    source = (
        ctx.data_sources.get(_DATASOURCE)
        if _DATASOURCE in names
        else ctx.data_sources.add_pandas(_DATASOURCE)
    )
    asset = (
        source.get_asset(dataset)
        if dataset in {a.name for a in source.assets}
        else source.add_dataframe_asset(dataset)
    )
    existing = [b for b in asset.batch_definitions if b.name == _BATCH]
    return existing[0] if existing else asset.add_batch_definition_whole_dataframe(_BATCH)


def _gx_suite(suite: dict[str, Any]):
    """The suite as GX objects; every entry must become an expectation
    (GX would log and skip bad ones)."""
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    if not suite["expectations"]:
        raise ProdganError(
            f"expectation suite {suite['name']!r} has no expectations; a gate must check something"
        )
    expectations = []
    for i, entry in enumerate(suite["expectations"]):
        try:
            expectations.append(ExpectationConfiguration(**entry).to_domain_obj())
        except Exception as exc:  # unknown type, bad or missing kwargs
            kind = entry.get("type", "?") if isinstance(entry, dict) else repr(entry)
            reason = " ".join(str(exc).split())
            raise ProdganError(
                f"expectation {i} ({kind}) of suite {suite['name']!r} is not valid for GX: "
                f"{reason}; fix the suite file"
            ) from exc
    return gx.ExpectationSuite(
        name=suite["name"], expectations=expectations, meta=suite.get("meta")
    )


def run_checkpoint(
    settings: Settings,
    dataset: str,
    suite: dict[str, Any],
    manifest,
    parameters: dict[str, Any],
    run_name: str,
):
    """Run the suite over the manifest as a GX Checkpoint that also updates Data Docs.

    Returns (the validation result, its Data Docs page, the Data Docs index).
    """
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier

    # before the run: a missing set-up step changes nothing
    assets = datadocs_assets.local_assets(settings.cache_dir)
    ctx = _context(settings)
    gx_suite = ctx.suites.add_or_update(_gx_suite(suite))
    definition = ctx.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=dataset, data=_batch_definition(ctx, dataset), suite=gx_suite)
    )
    checkpoint = ctx.checkpoints.add_or_update(
        gx.Checkpoint(
            name=f"prodgan-{dataset}",
            validation_definitions=[definition],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs")],
            result_format={
                "result_format": "SUMMARY",
                "unexpected_index_column_names": ["path", *TWINS.values()],
                "partial_unexpected_count": OFFENDERS_KEPT,
            },
        )
    )
    result = checkpoint.run(
        batch_parameters={"dataframe": manifest},
        expectation_parameters=parameters,
        run_id=RunIdentifier(run_name=run_name),
    )
    identifier, validation = next(iter(result.run_results.items()))
    page = ctx.get_docs_sites_urls(resource_identifier=identifier, only_if_exists=False)
    index = _file_path(ctx.get_docs_sites_urls()[0]["site_url"])
    datadocs_assets.localize(Path(index).parent, assets)  # styled offline: no CDN links left
    return validation, _file_path(page[0]["site_url"]), index


def _file_path(url: str | None) -> str:
    return url[len("file://") :] if url and url.startswith("file://") else str(url)


def _plain(value: Any) -> Any:
    """GX hands back numpy scalars; records are JSON."""
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _offending_value(
    row: dict[str, Any], column: str | None, file_prefix: str, sources: dict[str, str]
) -> Any:
    """What was wrong with one row: the column's value; a near-duplicate also names its twin
    (and the photo the twin came from)."""
    if column is None:  # compound-column rules (duplicates): the shared content hash
        return str(row.get("sha256", ""))[:16]
    value = _plain(row.get(column))
    twin = row.get(TWINS.get(column, ""))
    if not twin:
        return value
    origin = f" (source {sources[twin]})" if twin in sources else ""
    return f"{value:.2f} from {file_prefix}/{twin}{origin}"


def _resolved(value: Any, parameters: dict[str, Any]) -> Any:
    if isinstance(value, dict) and "$PARAMETER" in value:
        return parameters.get(value["$PARAMETER"], value["$PARAMETER"])
    return value


def _listed(values: list[Any], most: int = 6) -> str:
    shown = ", ".join(str(v) for v in values[:most])
    return f"{{{shown}{', ...' if len(values) > most else ''}}}"


def expected_words(kwargs: dict[str, Any], parameters: dict[str, Any]) -> str | None:
    """What an expectation asks for, in words, with suite parameters filled in."""
    low, high = (
        _resolved(kwargs.get("min_value"), parameters),
        _resolved(kwargs.get("max_value"), parameters),
    )
    if low is not None and high is not None:
        return f"exactly {low}" if low == high else f"between {low} and {high}"
    if low is not None or high is not None:
        return f">= {low}" if low is not None else f"<= {high}"
    if "value_set" in kwargs:
        return f"in {_listed(list(_resolved(kwargs['value_set'], parameters)))}"
    if "regex" in kwargs:
        return f"matching {kwargs['regex']}"
    if "column_list" in kwargs:
        return f"no two rows alike in ({', '.join(kwargs['column_list'])})"
    return None


def failures(
    validation,
    file_prefix: str,
    parameters: dict[str, Any] | None = None,
    sources: dict[str, str] | None = None,
) -> list[Failure]:
    """The failed expectations of a GX validation result, with the offending files named, each
    with the source photo it was imported from (`sources`: dataset path -> source photo)."""
    parameters, sources = parameters or {}, sources or {}
    found = []
    for outcome in validation.results:
        if outcome.success:
            continue
        config, result = outcome.expectation_config, outcome.result or {}
        column = config.kwargs.get("column") or ", ".join(config.kwargs.get("column_list", []))
        exception = (outcome.exception_info or {}).get("exception_message")
        offending = [
            {
                "file": f"{file_prefix}/{row['path']}",
                "value": _offending_value(row, config.kwargs.get("column"), file_prefix, sources),
                **({"source": sources[row["path"]]} if row["path"] in sources else {}),
            }
            for row in result.get("partial_unexpected_index_list") or []
        ]
        offending += [
            {"file": f"{file_prefix}/{missing}/", "value": "no images"}
            for missing in result.get("partial_missing_list") or []
        ]
        found.append(
            Failure(
                rule=(config.meta or {}).get("rule", config.type),
                expectation=config.type,
                column=column or None,
                unexpected_count=_plain(
                    result.get("unexpected_count", result.get("missing_count"))
                ),
                offending=offending,
                observed=_plain(result.get("observed_value"))
                if exception is None
                else f"error: {exception}",
                severity=str(getattr(config.severity, "value", config.severity or "critical")),
                expected=expected_words(dict(config.kwargs), parameters),
                scope=(config.meta or {}).get("scope"),
                fix=(config.meta or {}).get("fix"),
            )
        )
    return found
