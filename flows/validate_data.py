"""`validate_data`: Great Expectations over the pinned dataset; a failure fails the flow run."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows import steps
from prodgan.ops import report
from prodgan.ops import validate as ops


@flow(name="validate-data", log_prints=True)
def validate_data(dataset: str = "fashion-mnist") -> dict[str, Any]:
    """Validate the DVC-pinned dataset and publish where its Data Docs are."""
    settings = steps.settings()
    record = steps.as_task("validate", ops.validate, settings, dataset)
    result = report.plain(record)
    steps.publish(
        "validation",
        report.record_markdown(f"validation of {dataset}", result),
        "dataset validation and Data Docs",
    )
    ops.require_passed(record)
    return result
