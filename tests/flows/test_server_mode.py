"""Server mode: `prefect server` + a process work pool + `prefect worker`,
MLflow on `mlflow server` + PostgreSQL.

Everything is real and started here on 127.0.0.1: the deployments come from prefect.yaml
through `prodgan deploy`, the retrain deployment is triggered through the Prefect API and
executed by the worker in its own process, against the tracking server.
"""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest

from flows import steps
from flows.retrain import retrain
from prodgan import names
from prodgan.adapters import audit, registry
from prodgan.errors import ProdganError
from prodgan.ops import retrain as pipeline
from prodgan.settings import Settings
from tests.conftest import run
from tests.flows.helpers import FAST, NIGHTLY, parent_flow_run_id, prefect_api, train_runs, versions
from tests.prefect_server import prefect_server, process_worker, worker_log
from tests.servers import mlflow_server

pytestmark = [pytest.mark.server, pytest.mark.slow]
SLOW_START = 300  # seconds a server may take to answer on a loaded 2-core machine


def _use_tracking(monkeypatch: pytest.MonkeyPatch, url: str) -> Settings:
    """Settings for the server at `url`, with the promoter's audit key made as `prodgan admin
    keygen` does."""
    from prodgan.adapters import signing

    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    settings = Settings.load()
    if not settings.audit_key_path.exists():
        signing.keygen(settings)
    return settings


def test_scheduled_deployment_runs_on_a_worker(
    small_project: Settings, tracking_databases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    home = tmp_path / "prefect-server"
    db = tracking_databases.new()
    with (
        mlflow_server(db, tmp_path / "mlartifacts", timeout=SLOW_START) as mlflow_url,
        prefect_server(home, timeout=SLOW_START) as api,
    ):
        settings = _use_tracking(monkeypatch, mlflow_url)
        prefect = str(Path(sys.executable).with_name("prefect"))
        env = {**os.environ, "PREFECT_API_URL": api}
        run([prefect, "work-pool", "create", "prodgan", "--type", "process"], cwd=tmp_path, env=env)
        run(
            [prefect, "work-pool", "set-concurrency-limit", "prodgan", "3"], cwd=tmp_path, env=env
        )  # a pool someone tuned
        for _ in range(2):  # applying twice is harmless
            run(
                [sys.executable, "-m", "prodgan", "deploy", "--api-url", api],
                cwd=small_project.root,
            )
        with prefect_api(api), get_client(sync_client=True) as client:
            deployment = client.read_deployment_by_name(NIGHTLY)
            assert client.read_work_pool("prodgan").concurrency_limit == 3, (
                "deploy kept the tuned pool"
            )
        assert [s.schedule.cron for s in deployment.schedules] == ["0 3 * * *"]
        assert deployment.global_concurrency_limit.limit == 1, (
            "two retrains of one model never overlap"
        )

        with (
            process_worker(
                api,
                "prodgan",
                home,
                cwd=small_project.root,
                env={"MLFLOW_TRACKING_URI": mlflow_url},
            ),
            prefect_api(api),
        ):
            done = run_deployment(
                NIGHTLY,
                parameters={"recipes": {"fashion-mnist": "configs/smoke.yaml"}, "overrides": FAST},
                timeout=420,
                poll_interval=2,
            )
            assert done.state.is_completed(), f"{done.state}\n{worker_log(home, 'prodgan')}"

        [mv] = versions(settings)
        assert registry.champion_version(settings).version == mv.version
        [train_run] = train_runs(settings)
        with prefect_api(api):  # trained by the nightly run's retrain of fashion-mnist (a subflow)
            assert parent_flow_run_id(train_run.data.tags[names.FLOW_RUN]) == str(done.id)
        assert train_run.data.tags["prefect.api_url"] == api


def test_mlflow_down_during_registration_then_retry_completes_once(
    flow_project: Settings, tracking_databases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tracking server dies right before registration: a clear failure; after a restart the
    rerun finishes once."""
    from prefect import flow

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    config = "configs/smoke.yaml"
    db = tracking_databases.new()
    artifacts = tmp_path / "mlartifacts"
    with ExitStack() as outage:  # closed at registration, or when the test fails before it
        url = outage.enter_context(mlflow_server(db, artifacts, timeout=SLOW_START))
        settings = _use_tracking(monkeypatch, url)

        def stop_mlflow_before_register(name, fn, *args, **kwargs):
            if name == "register":
                outage.close()
            return steps.as_task(name, fn, *args, **kwargs)

        @flow(name="retrain-with-mlflow-outage")
        def retrain_with_outage() -> None:
            pipeline.retrain(
                settings,
                config,
                FAST,
                step=stop_mlflow_before_register,
                tags=steps.link_tags(settings),
            )

        with pytest.raises(ProdganError, match="unreachable while registering") as failure:
            retrain_with_outage()
    assert url in str(failure.value)

    with mlflow_server(db, artifacts, timeout=SLOW_START) as restarted:
        settings = _use_tracking(monkeypatch, restarted)
        rerun = retrain(config="configs/smoke.yaml", overrides=FAST)
        assert rerun["decision"] == "promote", rerun["reason"]
        assert len(train_runs(settings)) == 1, "the rerun reused the finished training run"
        assert [str(mv.version) for mv in versions(settings)] == [rerun["version"]]
        assert [r["action"] for r in audit.audit_records(settings)] == ["promote"]
