"""Inception weights once per session (downloaded and converted into the shared cache on first
use).
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def inception_weights():
    from prodgan.metrics.inception_weights import resolve_inception_weights
    from prodgan.settings import Settings

    return resolve_inception_weights(Settings.load().cache_dir)


@pytest.fixture
def feature_cache(tmp_path: Path) -> Path:
    return tmp_path / "feature-cache"
