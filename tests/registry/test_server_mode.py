"""Server mode: a throwaway PostgreSQL + a real `mlflow server` with proxied artifacts on
127.0.0.1."""

from __future__ import annotations

import dataclasses

import pytest

from prodgan.adapters import signing
from prodgan.adapters.production_state import resolve_model
from prodgan.models import load_bundle
from prodgan.ops import audit as lineage
from prodgan.ops import promote as promotion
from prodgan.ops.promote import register as promotion_register
from tests.registry import helpers
from tests.registry.test_promote import GATES
from tests.servers import mlflow_server


@pytest.mark.server
@pytest.mark.slow
def test_register_evaluate_promote_audit_against_server(
    project, tracking_databases, tmp_path, monkeypatch
):
    gates = tmp_path / "gates.yaml"
    gates.write_text(GATES)
    with mlflow_server(tracking_databases.new(), tmp_path / "artifacts") as url:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        settings = dataclasses.replace(project, tracking_uri=url)
        signing.keygen(settings)  # a server store needs the promoter's key (`prodgan admin keygen`)
        run_v1, run_v2 = helpers.train_run(settings, seed=1), helpers.train_run(settings, seed=2)
        v1 = str(promotion_register(settings, run_v1).version)
        assert str(promotion_register(settings, run_v1).version) == v1  # idempotent over HTTP too
        v2 = str(promotion_register(settings, run_v2).version)
        # evaluated after registration: promotion finds the evaluation through the training run
        helpers.eval_run(settings, run_v1, fid=100.0)
        helpers.eval_run(settings, run_v2, fid=160.0)

        assert promotion.promote(settings, v1, gates_path=gates, actor="ops").approved
        rejected = promotion.promote(settings, v2, gates_path=gates, actor="ops")
        assert rejected.action == "reject"

        resolved = resolve_model(settings, f"models:/{settings.model_name}@champion")
        assert load_bundle(resolved.bundle_dir)[1] == helpers.SPEC
        chain = lineage.model_lineage(settings, "@champion")
        assert chain["model"]["version"] == v1 and chain["training"]["run_id"] == run_v1
        assert [d["action"] for d in chain["decisions"]] == ["promote", "reject"]
        assert [p["version"] for p in lineage.champion_history(settings)] == [v1]
        assert list((tmp_path / "artifacts").rglob("decision.json")), (
            "audit artifacts go through the server's proxy"
        )
