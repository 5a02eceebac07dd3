"""The champion's lineage as MLflow's pages show it, read through the REST API the MLflow UI itself
calls, from a real `mlflow server` (sqlite store, proxied artifacts) on 127.0.0.1.

The production version (where `@champion` lives) and its logged model must lead to the training
run, the evaluation, the dataset and the decision; the trained versions say when they held
`champion`; audit runs are named for what happened and carry who, why and the metrics; and every
link prodgan wrote points at the tracking server it was configured with.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import shutil
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlparse

import pytest

from prodgan import names
from prodgan.adapters import signing, tracking
from prodgan.ops import announce, report
from prodgan.ops import promote as promotion
from tests.registry import helpers
from tests.registry.test_promote import GATES
from tests.servers import mlflow_server

URL = re.compile(r"https?://[^\s)\]`'\"]+")


def _get(server: str, endpoint: str, **query: str) -> dict[str, Any]:
    """One GET of MLflow's REST API, as the UI makes it."""
    address = f"{server}/api/2.0/mlflow/{endpoint}?{urlencode(query)}"
    with urllib.request.urlopen(address, timeout=30) as answer:
        return json.load(answer)


def _search_runs(server: str, experiment_id: str) -> list[dict[str, Any]]:
    request = urllib.request.Request(
        f"{server}/api/2.0/mlflow/runs/search",
        data=json.dumps({"experiment_ids": [experiment_id], "max_results": 1000}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)["runs"]


def _tags(entity: dict[str, Any]) -> dict[str, str]:
    return {t["key"]: t.get("value", "") for t in entity.get("tags") or []}


def _run(server: str, run_id: str) -> dict[str, Any]:
    return _get(server, "runs/get", run_id=run_id)["run"]


@pytest.mark.server
@pytest.mark.slow
def test_champion_lineage_on_mlflow_pages(project, migrated_store, tmp_path, monkeypatch) -> None:
    db = tmp_path / "mlflow.db"
    shutil.copyfile(migrated_store, db)  # an already-migrated sqlite store: the server starts fast
    gates = tmp_path / "gates.yaml"
    gates.write_text(GATES)
    with mlflow_server(f"sqlite:///{db}", tmp_path / "artifacts") as server:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
        settings = dataclasses.replace(project, tracking_uri=server)
        signing.keygen(settings)
        v1 = helpers.registered(settings, seed=1, fid=100.0)
        first_promotion = promotion.promote(settings, v1, gates_path=gates, actor="alice")
        v2 = helpers.registered(settings, seed=2, fid=60.0)
        moved = promotion.promote(settings, v2, gates_path=gates, actor="bob")
        v3 = helpers.registered(settings, seed=3, fid=150.0)
        rejected = promotion.promote(settings, v3, gates_path=gates, actor="carol")
        assert moved.action == "promote" and rejected.action == "reject"

        production = names.production_model(settings.model_name)
        champion = _get(server, "registered-models/alias", name=production, alias="champion")
        champion = champion["model_version"]
        tags = _tags(champion)
        trained = _get(server, "model-versions/get", name=settings.model_name, version=v2)
        trained_tags = _tags(trained["model_version"])
        train_run, eval_run = trained_tags[names.TRAIN_RUN], trained_tags[names.EVAL_RUN]
        audit_run = moved.audit_run_id

        # the production version: what it is, what it copies, the decision, the gates' values
        text = champion["description"]
        assert text.startswith(f"{production} v{champion['version']}: the promoter's copy of ")
        assert f"{settings.model_name} v{v2}" in text and f"promote v{v2} over v{v1} by bob" in text
        assert "every gate passed" in text and "fid_50 60" in text
        for label, run_id in (
            ("training run", train_run),
            ("evaluation run", eval_run),
            ("audit record", audit_run),
        ):
            experiment = _run(server, run_id)["info"]["experiment_id"]
            assert f"[{label}]({server}/#/experiments/{experiment}/runs/{run_id})" in text
        assert (tags[names.TRAIN_RUN], tags[names.EVAL_RUN], tags[names.AUDIT_RUN]) == (
            train_run,
            eval_run,
            audit_run,
        )
        assert tags[names.DATA_HASH] == helpers.DATA_HASH
        assert not [k for k, v in tags.items() if v.lstrip().startswith(("{", "["))], tags
        assert names.MODEL_FILES not in tags and len(tags[names.MODEL_FILES_SHA]) == 64

        # its logged model: the same description, the evaluation's metrics and dataset linked
        model_id = champion["source"].removeprefix("models:/")
        model = _get(server, f"logged-models/{model_id}")["model"]
        assert _tags(model["info"])["mlflow.note.content"] == text
        metrics = {m["key"]: m for m in model["data"]["metrics"]}
        assert metrics["fid_50"]["value"] == 60.0 and metrics["fid_50"]["run_id"] == eval_run
        assert metrics["fid_50"]["dataset_name"] == "fashion-mnist:test"
        assert metrics["fid_50"]["dataset_digest"] == helpers.DATA_HASH

        # the trained versions say when they held champion, and as which production version
        assert trained_tags[names.CHAMPION_SINCE] == moved.at
        assert trained_tags[names.PRODUCTION_VERSION] == f"{production} v{champion['version']}"
        assert names.CHAMPION_UNTIL not in trained_tags
        first = _tags(
            _get(server, "model-versions/get", name=settings.model_name, version=v1)[
                "model_version"
            ]
        )
        assert first[names.CHAMPION_UNTIL] == moved.at and names.CHAMPION_SINCE in first

        # audit runs: named for what happened, described, by whom, with the decision's metrics
        promoted = _run(server, audit_run)
        assert promoted["info"]["run_name"] == f"promote v{v2} over v{v1}"
        promoted_tags = _tags(promoted["data"])
        assert promoted_tags["mlflow.user"] == "bob"
        assert promoted_tags["mlflow.note.content"].startswith(f"promote v{v2} over v{v1} of ")
        audit_metrics = {m["key"]: m["value"] for m in promoted["data"]["metrics"]}
        assert audit_metrics["challenger/fid_50"] == 60.0
        assert audit_metrics["champion/fid_50"] == 100.0
        [dataset] = promoted["inputs"]["dataset_inputs"]
        assert dataset["dataset"]["digest"] == helpers.DATA_HASH
        no_champion = _run(server, str(first_promotion.audit_run_id))
        assert no_champion["info"]["run_name"] == f"promote v{v1} (no champion yet)"
        refused = _run(server, rejected.audit_run_id)
        assert refused["info"]["run_name"] == f"reject v{v3} (v{v2} stays champion)"
        assert "FAIL champion.fid" in _tags(refused["data"])["mlflow.note.content"]
        audit_runs = _search_runs(server, promoted["info"]["experiment_id"])
        done = [r for r in audit_runs if r["info"]["run_name"].startswith("done: ")]
        assert len(done) == 2 and all(
            _tags(r["data"])["mlflow.note.content"].startswith("Closes audit record ") for r in done
        )

        # every link prodgan wrote (pages, Prefect artifacts, CLI lines) names this server
        result = {
            "mlflow": {
                "train_run_id": train_run,
                "eval_run_id": eval_run,
                "audit_run_id": audit_run,
            },
            "links": {"audit_run_id": tracking.run_url(settings, audit_run)},
            "sheet": tracking.artifact_url(settings, audit_run, names.AUDIT_SHEET),
        }
        written = [text, *tags.values(), *_tags(model["info"]).values()]
        written += [_tags(r["data"]).get("mlflow.note.content", "") for r in audit_runs]
        written += [link.url for link in announce.links(result)]
        written += [place for _, place in report.where_to_look(settings, result)]
        found = [url for piece in written for url in URL.findall(piece)]
        assert len(found) >= 5 and {urlparse(u).netloc for u in found} == {urlparse(server).netloc}
        with urllib.request.urlopen(result["sheet"], timeout=30) as sheet:  # served over HTTP
            assert sheet.read(8) == b"\x89PNG\r\n\x1a\n"


def test_where_to_look_prints_commands_that_run_as_printed(store) -> None:
    """A local store and the embedded Prefect API: each UI comes with the command that serves it,
    this environment's own program, on the port its links name (Prefect's UI told where its API
    is, which it cannot guess on any port but 4200)."""
    result = {"orchestrator": {names.FLOW_RUN: "f1"}, "sheet": None, "data_docs": None}
    where = report.where_to_look(store, result)
    [mlflow_ui, mlflow_command, prefect_ui, prefect_command] = [place for _, place in where]
    assert mlflow_ui == "http://127.0.0.1:5000" and prefect_ui.endswith("/runs/flow-run/f1")
    program, *args = shlex.split(mlflow_command)
    assert Path(program).is_file() and Path(program).name == "mlflow"
    assert args == ["ui", "--backend-store-uri", store.tracking_uri, "--host", "127.0.0.1"] + [
        "--port",
        str(urlparse(mlflow_ui).port),
    ]
    *assignments, program, server, start = shlex.split(prefect_command)[:-4]
    env = dict(a.split("=", 1) for a in assignments)
    assert env["PREFECT_HOME"] == str(store.prefect_home) and Path(program).name == "prefect"
    port = shlex.split(prefect_command)[-1]
    assert (server, start) == ("server", "start") and Path(program).is_file()
    assert env["PREFECT_UI_API_URL"] == f"http://127.0.0.1:{port}/api"
    assert prefect_ui.startswith(f"http://127.0.0.1:{port}/")
