"""The champion-vs-challenger sheet a decision is taken (and confirmed, and audited) with.

The same seed and labels go through each generator, category by category, so a person sees the
difference the metrics claim. Shared by promotion and rollback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prodgan.adapters import descriptions
from prodgan.adapters.production_state import ProductionState
from prodgan.names import ModelRef
from prodgan.policy.decision import Decision

SHEET_SEED = 0
SHEET_PER_CATEGORY = 8
SHEET_SCALE = 4  # 28x28 products become 112x112: visible

Row = tuple[str, str, dict[str, Any] | None]  # (label, trained version, its evaluation summary)


def _title(label: str, version: str, evaluation: dict[str, Any] | None) -> str:
    shown = descriptions.headline((evaluation or {}).get("metrics") or {})
    return f"{label} v{version}  {shown}".rstrip()


def comparison(state: ProductionState, decision: Decision, rows: list[Row]) -> tuple[Any, Path]:
    """The sheet (an image) and where it was written under `<home>/sheets/`, before anyone is
    asked to confirm; the audit run logs the image."""
    import torch

    from prodgan.imaging import comparison_sheet, save_png
    from prodgan.models import generate_uint8, load_bundle

    models, categories = [], ()
    for label, version, evaluation in rows:
        resolved = state.resolve(ModelRef(name=decision.model, version=version))
        generator, spec = load_bundle(resolved.bundle_dir)
        n = SHEET_PER_CATEGORY * max(spec.num_classes, 1)
        labels = None
        if spec.num_classes:
            labels = torch.arange(spec.num_classes).repeat_interleave(SHEET_PER_CATEGORY)
        images = generate_uint8(generator, spec, n, SHEET_SEED, labels=labels).numpy()
        models.append(
            (_title(label, version, evaluation), images, None if labels is None else labels.numpy())
        )
        categories = spec.categories
    sheet = comparison_sheet(models, categories, per_category=SHEET_PER_CATEGORY, scale=SHEET_SCALE)
    versions = "-vs-".join(f"v{version}" for _, version, _ in rows)
    name = f"{decision.model}-{decision.action}-{versions}.png"
    return sheet, save_png(state.settings.home / "sheets" / name, sheet)
