"""`evaluate`: evaluate a registered model version under the fingerprinted protocol."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows import steps
from prodgan import pipeline


@flow(name="evaluate", log_prints=True)
def evaluate(version: str = "champion") -> dict[str, Any]:
    """Evaluate `version` (a number or an alias such as `champion`); the MLflow run carries this flow run's id."""
    settings = steps.settings()
    result = steps.as_task("evaluate", pipeline.evaluate_model, settings, version, steps.link_tags())
    steps.publish("evaluation", pipeline.record_markdown(f"evaluation of {result['model']}", result), "MLflow evaluation run")
    return result
