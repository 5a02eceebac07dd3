"""Registry test fixtures: a project whose sqlite MLflow store starts from a migrated template.

Creating a fresh MLflow sqlite store runs every schema migration (10-20 s on a loaded 2-core
machine); copying a store migrated once per session takes milliseconds and is the same schema.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from prodgan.settings import Settings


@pytest.fixture(scope="session")
def migrated_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mlflow import MlflowClient

    db = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()
    return db


def _migrated(settings: Settings, template: Path) -> Settings:
    db = Path(settings.tracking_uri.removeprefix("sqlite:///"))
    db.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, db)
    return settings


@pytest.fixture
def store(project: Settings, migrated_store: Path) -> Settings:
    """The empty `project`, with its MLflow store already migrated."""
    return _migrated(project, migrated_store)


@pytest.fixture
def small_store(small_project: Settings, migrated_store: Path) -> Settings:
    """The tiny DVC-pinned Fashion-MNIST project, with its MLflow store already migrated."""
    return _migrated(small_project, migrated_store)
