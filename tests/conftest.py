"""Shared fixtures: real git + DVC projects in temp folders, a tiny real Fashion-MNIST,
sqlite MLflow.

Every test that touches the stack gets its own project root (PRODGAN_ROOT) with its own
`.prodgan/` (sqlite MLflow, Prefect home, caches) and its own DVC remote, so tests never
see each other's state or the developer's.

A project's sqlite MLflow store starts as a copy of one migrated once per session: creating a
store runs every schema migration (10-20 s on a loaded 2-core machine, paid by each test's first
MLflow call), copying one takes milliseconds and is the same empty store of the same schema.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import pytest

from prodgan.data.fashion_mnist import DEBIAN_SOURCE
from prodgan.settings import Settings, configure_environment

if TYPE_CHECKING:
    from tests.servers import TrackingDatabases

MECHANICS_GATES = Path(__file__).with_name("gates-mechanics.yaml")
SMALL_PER_SPLIT = 300  # images per split in the tiny Fashion-MNIST used by tests


def run(
    args: list[str], cwd: Path, check: bool = True, env: dict | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, env=env or os.environ.copy()
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def prodgan(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the real `prodgan` CLI in a subprocess (as a user would)."""
    return run([sys.executable, "-m", "prodgan", *args], cwd=cwd, check=check)


def two_loopback_hosts(prodgan_args: list[str], cwd: Path) -> list[str]:
    """Run `prodgan ARGS --nproc 1 --nnodes 2` as two "hosts" meeting at one c10d rendezvous on
    loopback; both must succeed. Their stdouts."""
    from prodgan.adapters.processes import free_port

    endpoint = f"127.0.0.1:{free_port()}"
    host = [
        *(sys.executable, "-m", "prodgan", *prodgan_args),
        *("--nproc", "1", "--nnodes", "2", "--rdzv-endpoint", endpoint),
    ]
    hosts = [
        subprocess.Popen(host, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    ended = [h.communicate(timeout=600) for h in hosts]
    for h, (_, stderr) in zip(hosts, ended, strict=True):
        assert h.returncode == 0, stderr[-3000:]
    return [stdout for stdout, _ in ended]


def _use_project(root: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("PRODGAN_ROOT", str(root))
    monkeypatch.setenv("PRODGAN_HOME", str(root / ".prodgan"))
    monkeypatch.setenv("PRODGAN_DVC_REMOTE", str(root.parent / f"{root.name}-remote"))
    monkeypatch.setenv("PRODGAN_GATES", str(MECHANICS_GATES))  # smoke runs are noise: see the file
    monkeypatch.setenv(
        "PRODGAN_EVAL_SAMPLES", "50"
    )  # tens of images through InceptionV3, not the CPU protocol's 500
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    for key in ("PREFECT_HOME", "DVC_SITE_CACHE_DIR", "TMPDIR"):
        monkeypatch.delenv(key, raising=False)
    settings = Settings.load()
    configure_environment(settings)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", settings.tracking_uri)
    monkeypatch.chdir(root)
    return settings


def _with_store(settings: Settings, template: Path) -> Settings:
    """`settings` with its sqlite MLflow store copied from the session's migrated `template`."""
    db = Path(settings.tracking_uri.removeprefix("sqlite:///"))
    db.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, db)
    return settings


def _init_repo(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    run(["git", "init", "-q", "-b", "main"], root)
    run(["git", "config", "user.email", "tests@prodgan.local"], root)
    run(["git", "config", "user.name", "prodgan tests"], root)
    (root / ".gitignore").write_text("/.prodgan/\n")


@pytest.fixture(scope="session", autouse=True)
def _quiet_stack(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ.setdefault("PRODGAN_CACHE_DIR", str(Path.home() / ".cache" / "prodgan"))
    for key, value in {
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DVC_NO_ANALYTICS": "1",
        "DO_NOT_TRACK": "1",
    }.items():
        os.environ.setdefault(key, value)


@pytest.fixture(scope="session")
def migrated_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty sqlite MLflow store with every schema migration applied, made once per session."""
    from mlflow import MlflowClient

    db = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()
    return db


@pytest.fixture(scope="session")
def tracking_databases(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator["TrackingDatabases"]:
    """One PostgreSQL cluster for the session's server-mode tests: `.new()` is a fresh, empty,
    already migrated MLflow database on it (tests/servers.py `TrackingDatabases`)."""
    from tests.servers import TrackingDatabases, postgres_cluster

    with postgres_cluster(tmp_path_factory.mktemp("postgres")) as port:
        yield TrackingDatabases(port)


@pytest.fixture(scope="session")
def _empty_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built once per session (`dvc init` costs seconds): a git repo with DVC initialised, no
    data."""
    root = tmp_path_factory.mktemp("empty") / "proj"
    _init_repo(root)
    env = {**os.environ, "PRODGAN_ROOT": str(root), "PRODGAN_HOME": str(root / ".prodgan")}
    run(
        [
            sys.executable,
            "-c",
            "from prodgan.adapters import dvc; from prodgan.settings import Settings; "
            "dvc.ensure_repo(Settings.load())",
        ],
        root,
        env=env,
    )
    shutil.rmtree(root / ".prodgan", ignore_errors=True)
    return root


@pytest.fixture
def project(
    _empty_template: Path,
    migrated_store: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Settings:
    """An empty prodgan project: a git repo with DVC initialised, no data, an empty MLflow store."""
    root = tmp_path / "proj"
    shutil.copytree(_empty_template, root, symlinks=True)
    return _with_store(_use_project(root, monkeypatch), migrated_store)


@pytest.fixture(scope="session")
def _small_fmnist_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built once per session: a committed project holding the first 300 images of each split."""
    if not DEBIAN_SOURCE.is_dir():
        pytest.fail(
            f"{DEBIAN_SOURCE} missing: run `apt-get install dataset-fashion-mnist` "
            "(make test does it)"
        )
    root = tmp_path_factory.mktemp("template") / "proj"
    _init_repo(root)
    env = {
        **os.environ,
        "PRODGAN_ROOT": str(root),
        "PRODGAN_HOME": str(root / ".prodgan"),
        "PRODGAN_DVC_REMOTE": str(root.parent / "remote"),
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    for args in (
        ["data", "import", "fashion-mnist", "--limit", str(SMALL_PER_SPLIT)],
        ["data", "add"],
    ):
        run([sys.executable, "-m", "prodgan", *args], cwd=root, env=env)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-q", "-m", "tiny fashion-mnist"], root)
    shutil.rmtree(root / ".prodgan", ignore_errors=True)
    return root


@pytest.fixture
def small_project(
    _small_fmnist_template: Path,
    migrated_store: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Settings:
    """A private copy of the tiny Fashion-MNIST project (300 train + 300 test images,
    DVC-pinned), with an empty MLflow store."""
    root = tmp_path / "proj"
    shutil.copytree(_small_fmnist_template, root, symlinks=True)
    return _with_store(_use_project(root, monkeypatch), migrated_store)
