"""Registry test fixtures under their registry names: `store` and `small_store` are the shared
`project` and `small_project`, whose sqlite MLflow store starts migrated (tests/conftest.py).
"""

from __future__ import annotations

import pytest

from prodgan.settings import Settings


@pytest.fixture
def store(project: Settings) -> Settings:
    """The empty `project`, with its MLflow store already migrated."""
    return project


@pytest.fixture
def small_store(small_project: Settings) -> Settings:
    """The tiny DVC-pinned Fashion-MNIST project, with its MLflow store already migrated."""
    return small_project
