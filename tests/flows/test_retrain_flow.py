"""The retrain flow end to end on the embedded Prefect API:
real Prefect, MLflow (sqlite), DVC, GX, torch.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from flows.retrain import retrain
from flows.train import train
from flows.validate_data import validate_data
from prodgan import names
from prodgan.adapters import audit, dvc, registry, tracking
from prodgan.errors import GateFailed, ProdganError
from prodgan.ops import retrain as pipeline
from prodgan.settings import Settings
from tests.conftest import MECHANICS_GATES
from tests.flows.helpers import (
    FAST,
    artifact_markdown,
    artifacts,
    events,
    flow_run,
    train_runs,
    versions,
)

SHIPPED_GATES = Path(__file__).resolve().parents[2] / "evaluation" / "gates.yaml"


def _retrain(**kwargs):
    return retrain(config="configs/smoke.yaml", overrides=FAST, **kwargs)


def _replace_one_image(settings: Settings) -> None:
    """Overwrite one training image with another (still a valid image: only the data hash
    changes)."""
    first, second = sorted((settings.data_dir / "fashion-mnist" / "train").rglob("*.png"))[:2]
    first.write_bytes(second.read_bytes())


# One project for both stories (a promotion, then a rejected challenger against it): each costs a
# whole retrain, and the second needs a champion anyway.
@pytest.mark.slow
def test_retrain_promotes_links_runs_skips_unchanged_and_holds_a_rejected_challenger(
    flow_project: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _retrain()
    assert first["decision"] == "promote", first["reason"]
    assert first["champion"]["version"] == first["version"] == "1"
    assert first["champion"]["metrics"], (
        "the champion's headline metrics come from its version tags"
    )

    # MLflow -> Prefect: the training and evaluation runs carry the flow run id ...
    client = registry.client_for(flow_project)
    train_run = client.get_run(first["mlflow"]["train_run_id"])
    flow_run_id = train_run.data.tags[names.FLOW_RUN]
    assert client.get_run(first["mlflow"]["eval_run_id"]).data.tags[names.FLOW_RUN] == flow_run_id
    assert train_run.data.tags[names.CONFIG_SHA] == first["config_sha256"]
    # ... and Prefect -> MLflow: the flow run's artifact names those runs, the decision, the sheet.
    assert flow_run(flow_run_id).state.is_completed()
    markdown = artifact_markdown(flow_run_id, "retrain-decision")
    for needle in (
        first["mlflow"]["train_run_id"],
        first["mlflow"]["eval_run_id"],
        first["sheet"],
        "promote",
    ):
        assert needle in markdown
    assert first["data_docs"] and f"path={names.AUDIT_SHEET}&" in first["sheet"]
    published = artifacts(flow_run_id)
    assert (
        published["champion-vs-challenger"].type == "table"
        and published["promotion-gates"].type == "markdown"
    )
    [fid_row] = [
        row
        for row in json.loads(published["champion-vs-challenger"].data)
        if row["metric"].startswith("fid_")
    ]
    assert fid_row["challenger v1"] and fid_row["challenger interval"].startswith("[")
    assert all(reason in published["promotion-gates"].data for reason in first["reasons"])
    assert (
        f"/runs/{first['mlflow']['train_run_id']})" in published["mlflow-train-run"].data
    )  # Prefect stores a link as markdown
    assert first["mlflow"]["audit_run_id"] in published["mlflow-audit-run"].data
    assert f"({tracking.ui_url(flow_project)}/get-artifact?" in (
        published["champion-vs-challenger-sheet"].data
    )  # over HTTP, as the MLflow UI serves it: a browser opens no file:// link from Prefect's page
    assert fid_row["no champion yet"] == ""
    [moved] = events(flow_run_id, "prodgan.champion.moved")
    assert (
        moved.payload["model"] == flow_project.model_name and moved.payload["champion_after"] == "1"
    )
    assert (
        moved.payload["data_hash"] == first["data_hash"]
        and moved.resource.id == f"prodgan.model.{flow_project.model_name}"
    )

    # Nothing changed: the scheduled retrain is a logged no-op, no new training run or version.
    second = _retrain()
    assert second["decision"] == "skipped"
    assert "nothing changed" in second["reason"] and "v1" in second["reason"]
    assert len(train_runs(flow_project)) == 1 and len(versions(flow_project)) == 1

    # A challenger the gates reject (the shipped gates, through MLflow and Prefect: a smoke run is
    # noise) is kept as v2 and not retrained until something changes.
    monkeypatch.setenv("PRODGAN_GATES", str(SHIPPED_GATES))
    challenger = [*FAST, "seed=1"]
    rejected = retrain(config="configs/smoke.yaml", overrides=challenger)
    assert rejected["decision"] == "reject" and rejected["version"] == "2", rejected["reason"]
    flow_run_id = rejected["orchestrator"][names.FLOW_RUN]
    [event] = events(flow_run_id, "prodgan.challenger.rejected")
    assert (
        event.payload["version"],
        event.payload["champion_before"],
        event.payload["data_hash"],
    ) == ("2", "1", rejected["data_hash"])
    assert any(reason.startswith("FAIL absolute.fid") for reason in event.payload["failed"])
    rows = json.loads(artifacts(flow_run_id)["champion-vs-challenger"].data)
    assert all(
        row["champion v1"] and row["challenger v2"]
        for row in rows
        if row["metric"].startswith("fid_")
    )
    again = retrain(
        config="configs/smoke.yaml", overrides=challenger
    )  # the nightly run, nothing new
    assert (
        again["decision"] == "skipped"
        and "already rejected as v2, nothing changed" in again["reason"]
    )
    assert len(train_runs(flow_project)) == 2 and len(versions(flow_project)) == 2

    # What does count as a change: a config not tried yet, --force, the data.
    config = "configs/smoke.yaml"
    changed = pipeline.freshness(flow_project, config, [*FAST, "seed=2"])
    assert changed.retrain and "config changed" in changed.reason, "a new config is tried"
    assert pipeline.freshness(flow_project, config, FAST, force=True).retrain
    _replace_one_image(flow_project)
    dvc.add(flow_project)
    assert "dataset changed" in pipeline.freshness(flow_project, config, FAST).reason


@pytest.mark.slow
def test_rerun_after_a_failed_promotion_makes_no_second_version(
    flow_project: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = flow_project.root / "broken-gates.yaml"
    broken.write_text("version: [this is not a gate file\n")
    monkeypatch.setenv("PRODGAN_GATES", str(broken))
    with pytest.raises(ProdganError):
        _retrain()
    assert len(versions(flow_project)) == 1 and registry.champion_version(flow_project) is None

    monkeypatch.setenv("PRODGAN_GATES", str(MECHANICS_GATES))
    rerun = _retrain()
    assert rerun["decision"] == "promote" and rerun["version"] == "1"
    assert len(train_runs(flow_project)) == 1, "the rerun reuses the finished training run"
    assert len(versions(flow_project)) == 1
    promotions = [r for r in audit.audit_records(flow_project) if r["action"] == "promote"]
    assert len(promotions) == 1

    # Promoting the champion again (a retried promote task) changes nothing and audits nothing.
    from flows.promote import promote

    assert promote(version="1")["action"] == "noop"
    assert len(audit.audit_records(flow_project)) == len(promotions)


def test_training_refuses_data_changed_after_validation(flow_project: Settings) -> None:
    assert validate_data()["success"]
    _replace_one_image(flow_project)
    with pytest.raises(ProdganError, match="differs from data.dvc"):
        train(config="configs/smoke.yaml", overrides=FAST)
    dvc.add(flow_project)  # pinned now, but this version was never validated
    with pytest.raises(ProdganError, match="validat"):
        train(config="configs/smoke.yaml", overrides=FAST)
    assert train_runs(flow_project) == []


def test_failed_validation_stops_the_flow_before_training(flow_project: Settings) -> None:
    _replace_one_image(
        flow_project
    )  # two identical training images: the suite's duplicates rule fails
    dvc.add(flow_project)
    state = retrain(config="configs/smoke.yaml", overrides=FAST, return_state=True)
    assert state.is_failed()
    with pytest.raises(GateFailed, match="validation failed") as failure:
        state.result()
    docs = re.search(r"Data Docs at (\S+);", str(failure.value)).group(1)
    assert Path(docs).is_file()
    assert docs in artifact_markdown(str(state.state_details.flow_run_id), "retrain-decision")
    assert train_runs(flow_project) == [], "nothing was trained on data that failed validation"
    [event] = events(str(state.state_details.flow_run_id), "prodgan.validation.failed")
    assert (
        event.payload["data_hash"] == dvc.dataset_hash(flow_project, "fashion-mnist")
        and event.payload["model"] == flow_project.model_name
    )
    assert event.payload["failed"] and event.payload["champion_version"] is None
