"""`train`: one training run (resumed from its checkpoint after a crash), linked to this flow run."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows import steps
from prodgan import pipeline


@flow(name="train", log_prints=True)
def train(config: str = "configs/smoke.yaml", overrides: list[str] | None = None) -> dict[str, Any]:
    """Train on the validated, DVC-pinned dataset; refuses data that changed since validation."""
    settings = steps.settings()
    config_path = pipeline.resolve_config(settings, config)
    result = pipeline.plain(steps.as_task("train", pipeline.train, settings, config_path, overrides or [], steps.link_tags()))
    steps.publish("train", pipeline.record_markdown("training run", result), "MLflow training run")
    return result
