"""Lineage and history read back from the registry, the runs and the audit log."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from prodgan.cli import app
from prodgan.errors import ProdganError
from prodgan.ops import audit as lineage
from prodgan.ops import promote as promotion
from tests.registry import helpers
from tests.registry.test_promote import GATES


def test_unknown_dataset_version_is_an_error_not_an_empty_table(store):
    with pytest.raises(
        ProdganError,
        match="no training run or model version used a dataset version 0123456789ab; known: none",
    ):
        lineage.dataset_lineage(store, "0123456789ab")


@pytest.mark.slow
def test_audit_chain_dataset_and_history(store):
    (store.root / "evaluation").mkdir()
    (store.root / "evaluation" / "gates.yaml").write_text(GATES)
    v1 = helpers.registered(store, seed=1, fid=100.0)
    promotion.promote(store, v1, actor="alice")
    v2 = helpers.registered(store, seed=2, fid=150.0)
    promotion.promote(store, v2, actor="bob")  # rejected
    v3 = helpers.registered(store, seed=3, fid=40.0)
    promotion.promote(store, v3, actor="alice")
    promotion.rollback(store, actor="carol", reason="test")

    chain = lineage.model_lineage(store, f"{store.model_name}@champion")
    assert chain["model"]["version"] == v1 and "champion" in chain["model"]["aliases"]
    assert (
        chain["dataset"]["data_hash"] == helpers.DATA_HASH
        and chain["training"]["code"]["git_rev"] == "deadbeef"
    )
    assert [e["metrics"]["fid_50"] for e in chain["evaluations"]] == [100.0]
    # every decision that involved v1: its promotion, the challenge it survived, its replacement,
    # its return
    assert [(d["action"], d["version"]) for d in chain["decisions"]] == [
        ("promote", v1),
        ("reject", v2),
        ("promote", v3),
        ("rollback", v1),
    ]
    times = [d["at"] for d in chain["decisions"]]
    assert times == sorted(times)

    rejected = lineage.model_lineage(store, v2)
    assert [d["action"] for d in rejected["decisions"]] == ["reject"]
    assert any(r.startswith("FAIL champion.fid") for r in rejected["decisions"][0]["reasons"])

    assert [
        v["version"] for v in lineage.dataset_lineage(store, helpers.DATA_HASH[:8])["versions"]
    ] == [v1, v2, v3]
    with pytest.raises(
        ProdganError,
        match=(
            "no training run or model version used a dataset version abcdef123456; "
            f"known: {helpers.DATA_HASH[:12]}"
        ),
    ):
        lineage.dataset_lineage(store, "abcdef123456")
    history = lineage.champion_history(store)
    assert [(p["version"], p["how"], p["replaced"]) for p in history] == [
        (v1, "promote", None),
        (v3, "promote", v1),
        (v1, "rollback", v3),
    ]
    assert history[0]["until"] == history[1]["from"] and history[-1]["until"] is None

    runner = CliRunner()
    result = runner.invoke(app, ["audit", "model", f"{store.model_name}/{v3}", "--json"])
    assert result.exit_code == 0, result.output
    assert [d["action"] for d in json.loads(result.stdout)["decisions"]] == ["promote", "rollback"]
    result = runner.invoke(app, ["audit", "history"])
    assert result.exit_code == 0 and "rollback" in result.output and "carol" in result.output
