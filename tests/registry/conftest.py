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


@pytest.fixture
def store(project: Settings, migrated_store: Path) -> Settings:
    """The empty `project`, with its MLflow store already migrated."""
    db = Path(project.tracking_uri.removeprefix("sqlite:///"))
    db.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(migrated_store, db)
    return project


@pytest.fixture
def small_store(small_project: Settings, migrated_store: Path) -> Settings:
    """The tiny DVC-pinned Fashion-MNIST project, with its MLflow store already migrated."""
    db = Path(small_project.tracking_uri.removeprefix("sqlite:///"))
    db.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(migrated_store, db)
    return small_project
