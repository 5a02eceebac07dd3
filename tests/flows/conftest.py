"""Flow-test fixtures: one Prefect home (and so one ephemeral API database) per test session.

The embedded Prefect API starts once per process (8-10 s idle, far more on a loaded machine),
so every in-process flow run of the session shares it; each test still has its own project,
MLflow store and DVC remote through `small_project`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from prodgan.settings import Settings


@pytest.fixture(scope="session")
def prefect_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("prefect-home")
    # Stop the embedded API while pytest still captures output (Prefect's own atexit hook logs to a
    # closed stream).
    from prefect.server.api.server import SubprocessASGIServer

    SubprocessASGIServer().stop()  # the process-wide singleton; a no-op if it never started


@pytest.fixture
def flow_project(
    small_project: Settings, prefect_home: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    """`small_project` with the session's Prefect home and the embedded (ephemeral) API.

    Prefect reads the environment once, at import: in-process runs get their settings through
    `temporary_settings`; the environment is set too, for subprocesses (`prodgan retrain`).
    """
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_HOME,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        temporary_settings,
    )

    monkeypatch.setenv("PREFECT_HOME", str(prefect_home))
    monkeypatch.setenv("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    updates = {
        PREFECT_HOME: str(prefect_home),
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: 180,
    }
    with temporary_settings(updates=updates, restore_defaults={PREFECT_API_URL}):
        yield small_project
