"""Use case: the one-time set-up of a machine, the only step allowed to reach the package index.

Everything evaluation and validation need from outside (the Inception weights, the Data Docs
styling assets) is fetched and pinned here, so that no later command touches the network.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prodgan.settings import Settings


@dataclass(frozen=True)
class SetupReport:
    inception_weights: Path
    inception_sha256: str
    inception_origin: str
    datadocs_assets: Path


def setup(settings: Settings) -> SetupReport:
    """Build (or verify) what later commands use offline; safe to rerun."""
    from prodgan.adapters import datadocs_assets
    from prodgan.metrics.inception_weights import ensure_inception_weights

    weights = ensure_inception_weights(settings.cache_dir)
    return SetupReport(
        weights.path, weights.sha256, weights.origin, datadocs_assets.fetch(settings.cache_dir)
    )
