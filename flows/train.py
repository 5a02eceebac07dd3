"""`train`: one training run (reused or resumed when possible), linked to this flow run."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows import steps
from prodgan.ops import report
from prodgan.ops import train as ops


@flow(name="train", log_prints=True)
def train(
    config: str = "configs/smoke.yaml", overrides: list[str] | None = None, force: bool = False
) -> dict[str, Any]:
    """Train on the validated, DVC-pinned dataset; refuses data that changed since validation."""
    settings = steps.settings()
    result = report.plain(
        steps.as_task(
            "train",
            ops.train,
            settings,
            config,
            overrides or [],
            reuse=not force,
            tags=steps.link_tags(settings),
        )
    )
    steps.publish("train", report.record_markdown("training run", result), "MLflow training run")
    return result
