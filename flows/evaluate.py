"""`evaluate`: evaluate a model (any reference, default `@champion`) under the fingerprinted
protocol."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows import steps
from prodgan.ops import evaluate as ops
from prodgan.ops import report


@flow(name="evaluate", log_prints=True)
def evaluate(model: str = "@champion") -> dict[str, Any]:
    """Evaluate `model` (models:/NAME@ALIAS, NAME/VERSION, @ALIAS, VERSION, runs:/ID); the MLflow
    run carries this flow run's id."""
    settings = steps.settings()
    run = steps.as_task("evaluate", ops.evaluate, settings, model, tags=steps.link_tags(settings))
    result = ops.summary(run)
    steps.publish(
        "evaluation",
        report.record_markdown(f"evaluation of {model}", result),
        "MLflow evaluation run",
    )
    return result
