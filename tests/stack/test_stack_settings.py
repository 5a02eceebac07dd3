"""The stack's env file as a settings layer,
and `prodgan stack` refusing what it cannot do (no servers started).
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from prodgan.settings import Settings
from tests.conftest import run

STACK_ENV = """# written by prodgan stack up
MLFLOW_TRACKING_URI=http://127.0.0.1:5999
PREFECT_API_URL=http://127.0.0.1:4999/api
PRODGAN_DVC_REMOTE=s3://prodgan/dvc
AWS_ENDPOINT_URL=http://127.0.0.1:8999
"""


def test_the_env_file_is_read_below_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / "stack.env"
    env_file.write_text(STACK_ENV)
    for key in (
        "MLFLOW_TRACKING_URI",
        "PREFECT_API_URL",
        "PRODGAN_DVC_REMOTE",
        "AWS_ENDPOINT_URL",
        "PRODGAN_STACK_DIR",
    ):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("PRODGAN_STACK_ENV", str(env_file))
    settings = Settings.load(root=tmp_path)
    assert (
        settings.tracking_uri == "http://127.0.0.1:5999"
        and settings.prefect_api_url == "http://127.0.0.1:4999/api"
    )
    assert (
        settings.dvc_remote == "s3://prodgan/dvc" and settings.dvc_remote_overridden
    )  # a URL, not a folder
    assert settings.s3_endpoint_url == "http://127.0.0.1:8999"

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://elsewhere:5000")  # what the user sets wins
    assert Settings.load(root=tmp_path).tracking_uri == "http://elsewhere:5000"
    monkeypatch.setenv(
        "PRODGAN_STACK_ENV", str(tmp_path / "missing.env")
    )  # no file: the embedded default
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert Settings.load(root=tmp_path).tracking_uri.startswith("sqlite:///")


def test_stack_refuses_a_taken_port_and_starts_nothing(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run(
            [
                sys.executable,
                "-m",
                "prodgan",
                "stack",
                "up",
                "--dir",
                str(tmp_path / "stack"),
                "--s3-port",
                str(port),
            ],
            tmp_path,
            check=False,
        )
    assert proc.returncode == 2 and f"port {port} (seaweedfs) is in use" in proc.stderr, proc.stderr
    assert (
        not (tmp_path / "stack" / "stack.json").exists()
        and not (tmp_path / "stack" / "stack.env").exists()
    )

    status = run(
        [sys.executable, "-m", "prodgan", "stack", "status", "--dir", str(tmp_path / "stack")],
        tmp_path,
        check=False,
    )
    assert (
        status.returncode == 2
        and "no stack recorded" in status.stderr
        and "prodgan stack up" in status.stderr
    )
