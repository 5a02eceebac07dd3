"""`promote`: the promotion gates for one model version; the champion alias moves only if they
pass."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows import steps
from prodgan.ops import promote as ops
from prodgan.ops import report


@flow(name="promote", log_prints=True)
def promote(version: str) -> dict[str, Any]:
    """Promote model version `version` if the gates in evaluation/gates.yaml approve it (no-op if
    it already is champion)."""
    settings = steps.settings()
    decision = report.plain(steps.as_task("promote", ops.promote, settings, version))
    steps.publish(
        "promotion",
        report.record_markdown(f"promotion of v{version}: {decision['action']}", decision),
        "promotion decision",
    )
    return decision
