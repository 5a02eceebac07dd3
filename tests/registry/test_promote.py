"""Promotion end to end on a real sqlite registry: gates, compare-and-set, audit trail, rollback,
race."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from prodgan import names
from prodgan.adapters import audit, registry
from prodgan.errors import ChampionMoved, ProdganError
from prodgan.ops import promote as promotion
from prodgan.ops.promote import register as promotion_register
from prodgan.policy.gate_file import load_policy
from prodgan.policy.gates import ProtocolMismatch
from tests.conftest import prodgan
from tests.registry import helpers

GATES = """
absolute:
  fid: {max: 300}
champion: {metric: fid, margin: 1.0}
per_category: {metric: fid, max_relative_regression: 0.5}
"""


@pytest.fixture
def gates(store, monkeypatch) -> Path:
    monkeypatch.delenv("PRODGAN_GATES")  # the project's own gate file, below
    path = store.root / "evaluation" / "gates.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(GATES)
    return path


def aliases(settings) -> dict[str, str]:
    """The trained versions `champion` and `previous` (aliases of the production model) serve."""
    return registry.production_aliases(registry.client_for(settings), settings.model_name)


@pytest.mark.slow
def test_promote_reject_rollback_with_audit_trail(store, gates):
    v1 = helpers.registered(store, seed=1, fid=100.0)
    first = promotion.promote(store, v1, actor="alice")
    assert first.action == "promote" and first.approved
    assert aliases(store) == {"champion": v1}
    assert promotion.promote(store, v1).action == "noop"  # idempotent: no second record

    v2 = helpers.registered(store, seed=2, fid=150.0)  # worse
    dry = promotion.promote(store, v2, dry_run=True)
    assert not dry.approved and dry.audit_run_id is None
    rejected = promotion.promote(store, v2, actor="bob")
    assert rejected.action == "reject" and not rejected.approved
    assert any(r.startswith("FAIL champion.fid") for r in rejected.reasons), rejected.reasons
    assert aliases(store) == {"champion": v1}

    v3 = helpers.registered(store, seed=3, fid=60.0)  # better beyond the margin, with confidence
    approved = promotion.promote(store, v3)
    assert approved.approved and approved.difference["high"] < -1.0
    from PIL import Image

    with Image.open(
        approved.sheet
    ) as sheet:  # 8 samples per category and model, 28x28 upscaled to 112x112
        assert sheet.width >= 8 * 112 and sheet.height >= 2 * 112
    assert aliases(store) == {"champion": v3, "previous": v1}

    back = promotion.rollback(store, actor="carol", reason="blurry sneakers")
    assert back.action == "rollback" and aliases(store) == {"champion": v1, "previous": v3}

    forced = promotion.promote(
        store, v2, actor="dave", force_reason="INC-42 hotfix"
    )  # fails the gates
    assert forced.action == "force" and any(r.startswith("FAIL") for r in forced.reasons)
    assert aliases(store) == {"champion": v2, "previous": v1}

    records = audit.audit_records(store, model=store.model_name)
    assert [(r["action"], r["version"]) for r in records] == [
        ("promote", v1),
        ("reject", v2),
        ("promote", v3),
        ("rollback", v1),
        ("force", v2),
    ]
    assert records[-1]["note"] == "INC-42 hotfix"
    assert [r["actor"] for r in records][:2] == ["alice", "bob"]
    assert all(r["gates_sha256"] == load_policy(gates).sha256 for r in records[:3])
    assert (
        records[1]["champion"]["metrics"]["fid_50"] == 100.0
        and records[1]["challenger"]["metrics"]["fid_50"] == 150.0
    )
    client = registry.client_for(store)
    run = client.get_run(records[2]["audit_run_id"])
    assert (
        run.data.tags["prodgan.audit.champion_before"] == v1
        and run.data.tags["prodgan.audit.champion_after"] == v3
    )
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {
        names.AUDIT_FILE,
        names.AUDIT_SHEET,
    }


def test_bad_input_leaves_registry_unchanged(store, gates, monkeypatch):
    v1 = helpers.registered(store, seed=1, fid=100.0)
    with pytest.raises(ProdganError, match="no champion alias: nothing to roll back"):
        promotion.rollback(store)
    promotion.promote(store, v1)
    with pytest.raises(ProdganError, match="no previous alias: nothing to roll back"):
        promotion.rollback(store)
    before = (aliases(store), len(audit.audit_records(store)))

    with pytest.raises(ProdganError, match="has no version 42"):
        promotion.promote(store, "42")
    with pytest.raises(ProdganError, match="cannot read model reference 'champion'"):
        promotion.promote(store, "champion")

    unevaluated = str(promotion_register(store, helpers.train_run(store, seed=5)).version)
    with pytest.raises(ProdganError, match="has no evaluation"):
        promotion.promote(store, unevaluated)

    v_other = helpers.registered(store, seed=6, fid=50.0, protocol="proto-b" * 4)
    bad_gates = store.root / "bad.yaml"
    bad_gates.write_text("absolute: {sharpness: {min: 1}}\n")
    with pytest.raises(ProdganError, match="absolute.sharpness='sharpness': input should be 'fid'"):
        promotion.promote(store, v_other, gates_path=bad_gates)
    refuse = store.root / "refuse.yaml"
    refuse.write_text(GATES + "protocol: {on_mismatch: refuse}\n")
    with pytest.raises(ProtocolMismatch, match="no evaluation under the challenger's protocol"):
        promotion.promote(store, v_other, gates_path=refuse)
    missing = store.root / "missing.yaml"
    missing.write_text("absolute: {recall: {min: 0.1}}\n")
    with pytest.raises(ProdganError, match="no recall metric"):
        promotion.promote(store, v_other, gates_path=missing)

    assert (aliases(store), len(audit.audit_records(store))) == before


def test_race_for_champion_exactly_one_wins(store, gates):
    """Two promotions decide against the same champion, then both try to move it: one wins, both
    audited."""
    v1 = helpers.registered(store, seed=1, fid=100.0)
    promotion.promote(store, v1)
    v2 = helpers.registered(store, seed=2, fid=50.0)
    v3 = helpers.registered(store, seed=3, fid=55.0)
    both_decided = threading.Barrier(2, timeout=120)
    outcomes: dict[str, object] = {}

    def race(version: str, actor: str) -> None:
        try:
            outcomes[version] = promotion.promote(
                store, version, actor=actor, confirm=lambda decision: both_decided.wait() >= 0
            )
        except ProdganError as exc:
            outcomes[version] = exc

    threads = [threading.Thread(target=race, args=(v, f"racer-{v}")) for v in (v2, v3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    winners = [v for v, o in outcomes.items() if isinstance(o, promotion.Decision) and o.approved]
    losers = [o for o in outcomes.values() if isinstance(o, ChampionMoved)]
    assert len(winners) == 1 and len(losers) == 1, outcomes
    assert "champion moved" in str(losers[0]) and losers[0].exit_code == 1
    assert aliases(store) == {"champion": winners[0], "previous": v1}
    records = audit.audit_records(store)[1:]
    assert sorted((r["action"], r["actor"]) for r in records) == sorted(
        [("promote", f"racer-{winners[0]}"), ("reject", f"racer-{({v2, v3} - set(winners)).pop()}")]
    )
    assert any(
        "champion moved" in reason
        for reason in next(r for r in records if r["action"] == "reject")["reasons"]
    )


def test_a_promoter_that_crashes_mid_move_leaves_a_pending_record(store, gates, monkeypatch):
    """A crash between recording the move and moving the alias is never silent: verify says pending
    until acknowledged."""
    from prodgan.ops.audit import verify as acknowledge
    from prodgan.ops.verification import verify

    v1 = helpers.registered(store, seed=1, fid=100.0)
    promotion.promote(store, v1)
    v2 = helpers.registered(store, seed=2, fid=50.0)

    def crash(*_args):
        raise KeyboardInterrupt("the promoter died here")

    with monkeypatch.context() as patched:
        patched.setattr(registry, "set_production_aliases", crash)
        with pytest.raises(KeyboardInterrupt):
            promotion.promote(store, v2)
    assert aliases(store) == {"champion": v1}
    report = verify(store)
    assert not report.ok and any(
        "is pending: its alias move never completed" in f.problem for f in report.findings
    )
    with pytest.raises(ProdganError, match="pending"):
        promotion.promote(store, v2)
    acknowledge(store, acknowledge="the promoter crashed; nothing moved")
    assert promotion.promote(store, v2).approved  # the next transition is fenced above the dead one
    assert aliases(store) == {"champion": v2, "previous": v1}
    assert verify(store).ok


@pytest.mark.slow
def test_cli_rejects_with_reasons_and_exit_1(store, gates):
    v1 = helpers.registered(store, seed=1, fid=100.0)
    promotion.promote(store, v1)
    v2 = helpers.registered(store, seed=2, fid=99.0)  # better point value, but not with confidence
    reference = f"models:/{store.model_name}/{v2}"  # named by reference: the message says which
    proc = prodgan("promote", reference, cwd=store.root, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL" in proc.stdout and "champion.fid" in proc.stdout
    assert f"{store.model_name} v{v2} rejected" in proc.stderr and " vmodels" not in proc.stderr
    assert "Traceback" not in proc.stderr
    assert aliases(store) == {"champion": v1}


def test_a_missing_bare_version_names_the_other_datasets_models(store):
    with pytest.raises(ProdganError, match="has no version 42.*no other dataset has a model yet"):
        promotion.promote(store, "42")
    registry.client_for(store).create_registered_model(store.model_for("shop"))
    with pytest.raises(ProdganError) as refused:
        promotion.promote(store, "42")
    assert f"a bare number names a version of {store.model_name}" in str(refused.value)
    assert f"`prodgan promote models:/{store.model_for('shop')}/42`" in str(refused.value)


@pytest.mark.slow
def test_champion_loads_as_pyfunc_in_a_fresh_process(store, gates):
    v1 = helpers.registered(store, seed=1, fid=100.0)
    promotion.promote(store, v1)
    production = names.production_model(store.model_name)
    code = (
        "import mlflow, pandas as pd, base64\n"
        f"m = mlflow.pyfunc.load_model('models:/{production}@champion')\n"
        "out = m.predict(pd.DataFrame([{'seed': 7, 'category': 'trouser', 'n': 2}]))\n"
        "assert list(out['category']) == ['trouser', 'trouser'], out\n"
        "print(len(out), base64.b64decode(out['png_base64'][0])[:4])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 b'\\x89PNG'" in proc.stdout
