"""Promotion end to end on a real sqlite registry: gates, compare-and-set, audit trail, rollback, race."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from prodgan import promotion, registry
from prodgan.errors import ProdganError
from prodgan.gates import ProtocolMismatch
from tests.registry import helpers

GATES = """
absolute:
  fid: {max: 300}
champion: {metric: fid, margin: 1.0}
per_category: {metric: fid, max_relative_regression: 0.5}
"""


@pytest.fixture
def gates(store, monkeypatch) -> Path:
    path = store.root / "evaluation" / "gates.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(GATES)
    return path


def aliases(settings) -> dict[str, str]:
    return {k: str(v) for k, v in registry.client_for(settings).get_registered_model(settings.model_name).aliases.items()}


def test_promote_reject_rollback_with_audit_trail(store, gates):
    v1 = helpers.registered(store, seed=1, fid=100.0)
    first = promotion.promote_version(store, v1, actor="alice")
    assert first.action == "promote" and first.approved
    assert aliases(store) == {"champion": v1}
    assert promotion.promote_version(store, v1).action == "noop"  # idempotent: no second record

    v2 = helpers.registered(store, seed=2, fid=150.0)  # worse
    dry = promotion.promote_version(store, v2, dry_run=True)
    assert not dry.approved and dry.audit_run_id is None
    rejected = promotion.promote_version(store, v2, actor="bob")
    assert rejected.action == "reject" and not rejected.approved
    assert any(r.startswith("FAIL champion.fid") for r in rejected.reasons), rejected.reasons
    assert aliases(store) == {"champion": v1}

    v3 = helpers.registered(store, seed=3, fid=60.0)  # better beyond the margin, with confidence
    approved = promotion.promote_version(store, v3)
    assert approved.approved and approved.difference["high"] < -1.0
    assert aliases(store) == {"champion": v3, "previous": v1}

    back = promotion.rollback(store, actor="carol", reason="blurry sneakers")
    assert back.action == "rollback" and aliases(store) == {"champion": v1, "previous": v3}

    records = registry.audit_records(store, model=store.model_name)
    assert [(r["action"], r["version"]) for r in records] == [("promote", v1), ("reject", v2), ("promote", v3), ("rollback", v1)]
    assert [r["actor"] for r in records][:2] == ["alice", "bob"]
    assert all(r["gates_sha256"] == promotion.load_policy(gates).sha256 for r in records[:3])
    assert records[1]["champion"]["metrics"]["fid_50"] == 100.0 and records[1]["challenger"]["metrics"]["fid_50"] == 150.0
    client = registry.client_for(store)
    run = client.get_run(records[2]["audit_run_id"])
    assert run.data.tags["prodgan.audit.champion_before"] == v1 and run.data.tags["prodgan.audit.champion_after"] == v3
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {registry.AUDIT_FILE, registry.AUDIT_SHEET}


def test_bad_input_leaves_registry_unchanged(store, gates, monkeypatch):
    v1 = helpers.registered(store, seed=1, fid=100.0)
    promotion.promote_version(store, v1)
    before = (aliases(store), len(registry.audit_records(store)))

    with pytest.raises(ProdganError, match="has no version 42"):
        promotion.promote_version(store, "42")
    with pytest.raises(ProdganError, match="must be a number"):
        promotion.promote_version(store, "champion")

    unevaluated = str(registry.register_from_run(store, helpers.train_run(store, seed=5)).version)
    with pytest.raises(ProdganError, match="has no evaluation"):
        promotion.promote_version(store, unevaluated)

    v_other = helpers.registered(store, seed=6, fid=50.0, protocol="proto-b" * 4)
    bad_gates = store.root / "bad.yaml"
    bad_gates.write_text("absolute: {sharpness: {min: 1}}\n")
    with pytest.raises(ProdganError, match="unknown metric 'sharpness'"):
        promotion.promote_version(store, v_other, gates_path=bad_gates)
    refuse = store.root / "refuse.yaml"
    refuse.write_text(GATES + "protocol: {on_mismatch: refuse}\n")
    with pytest.raises(ProtocolMismatch, match="no evaluation under the challenger's protocol"):
        promotion.promote_version(store, v_other, gates_path=refuse)
    missing = store.root / "missing.yaml"
    missing.write_text("absolute: {recall: {min: 0.1}}\n")
    with pytest.raises(ProdganError, match="no recall metric"):
        promotion.promote_version(store, v_other, gates_path=missing)

    assert (aliases(store), len(registry.audit_records(store))) == before


def _promote_process(version: str, actor: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "prodgan", "promote", version, "--confirm", "--actor", actor],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ.copy())


def _read_until(proc: subprocess.Popen, marker: str, timeout: float = 120) -> str:
    seen, deadline = "", time.monotonic() + timeout
    while marker not in seen:
        char = proc.stdout.read(1)
        if not char or time.monotonic() > deadline:
            raise AssertionError(f"no {marker!r} from promote (exit {proc.poll()}):\n{seen}")
        seen += char
    return seen


def test_race_for_champion_exactly_one_wins(store, gates):
    """Two real `prodgan promote` processes decide against the same champion, then both try to move it."""
    v1 = helpers.registered(store, seed=1, fid=100.0)
    promotion.promote_version(store, v1)
    v2 = helpers.registered(store, seed=2, fid=50.0)
    v3 = helpers.registered(store, seed=3, fid=55.0)
    racers = [_promote_process(v2, "racer-a"), _promote_process(v3, "racer-b")]
    for proc in racers:
        _read_until(proc, "move champion to")  # both decisions computed against champion v1
    for proc in racers:
        proc.stdin.write("y\n")
        proc.stdin.flush()
    results = [(proc.wait(timeout=120), proc.stdout.read()) for proc in racers]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 1], results
    loser_output = next(text for code, text in results if code == 1)
    assert "champion moved" in loser_output and "Traceback" not in loser_output
    winner = v2 if results[0][0] == 0 else v3
    assert aliases(store) == {"champion": winner, "previous": v1}
    records = registry.audit_records(store)
    assert sorted((r["action"], r["actor"]) for r in records[1:]) == sorted(
        [("promote", "racer-a" if winner == v2 else "racer-b"), ("reject", "racer-b" if winner == v2 else "racer-a")])


def test_champion_loads_as_pyfunc_in_a_fresh_process(store, gates):
    v1 = helpers.registered(store, seed=1, fid=100.0)
    promotion.promote_version(store, v1)
    code = ("import mlflow, pandas as pd, base64\n"
            f"m = mlflow.pyfunc.load_model('models:/{store.model_name}@champion')\n"
            "out = m.predict(pd.DataFrame([{'seed': 7, 'category': 'trouser', 'n': 2}]))\n"
            "assert list(out['category']) == ['trouser', 'trouser'], out\n"
            "print(len(out), base64.b64decode(out['png_base64'][0])[:4])\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 b'\\x89PNG'" in proc.stdout
