"""The CLI and the flows are two faces of the same `prodgan.ops` code:
they must leave the same records.

One tracking store, two registered models: `cli-gen` is made by a person typing `prodgan`
commands, `flow-gen` by the retrain flow. Both must leave the same training-run, evaluation-run,
model-version and audit-record shapes, so freshness, lineage and the gates read either alike.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from flows.retrain import retrain
from prodgan import names
from prodgan.adapters import audit, registry
from prodgan.ops.retrain import freshness
from prodgan.settings import Settings
from tests.conftest import prodgan
from tests.flows.helpers import FAST

CONFIG = "configs/smoke.yaml"
# The flow's own links, absent by hand; and the evaluator's training run, named only by the
# evaluation that trained it.
NOT_COMPARED = (names.FLOW_RUN, names.FLOW_RUN_NAME, names.FLOW_API, names.EVALUATOR_RUN)


def _keys(tags: dict[str, str]) -> set[str]:
    return {k for k in tags if k.startswith(("prodgan.", "metric.")) and k not in NOT_COMPARED}


def _run_tags(settings: Settings, run_id: str) -> dict[str, str]:
    return dict(registry.client_for(settings).get_run(run_id).data.tags)


def _as(settings: Settings, model: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("PRODGAN_MODEL_NAME", model)
    return Settings.load()


def _facts(settings: Settings) -> dict[str, Any]:
    """What one face left for its model: version tags, its runs' tags, its audit records."""
    mv = registry.champion_version(settings)
    assert mv is not None, f"{settings.model_name} has no champion"
    tags = dict(mv.tags or {})
    records = audit.audit_records(settings, model=settings.model_name)
    return {
        "version": tags,
        "train": _run_tags(settings, tags[names.TRAIN_RUN]),
        "eval": _run_tags(settings, tags[names.EVAL_RUN]),
        "records": records,
    }


@pytest.mark.slow
def test_cli_and_flow_leave_the_same_tags_runs_versions_and_audit_records(
    flow_project: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = flow_project.root
    overrides = [a for o in FAST for a in ("--set", o)]

    cli = _as(flow_project, "cli-gen", monkeypatch)
    prodgan("data", "validate", cwd=root)
    trained = prodgan("train", "--config", CONFIG, *overrides, "--quiet", cwd=root).stdout
    run_id = re.search(r"mlflow run\W+([0-9a-f]{32})", trained)[1]
    prodgan("evaluate", f"runs:/{run_id}", cwd=root)
    prodgan("register", "--run", run_id, cwd=root)
    prodgan("promote", "1", cwd=root)

    flow = _as(flow_project, "flow-gen", monkeypatch)
    summary = retrain(
        config=CONFIG, overrides=FAST, force=True
    )  # force: a new run, not the CLI's reused
    assert summary["decision"] == "promote", summary["reason"]

    by_cli, by_flow = _facts(cli), _facts(flow)
    for what in ("version", "train", "eval"):
        assert _keys(by_cli[what]) == _keys(by_flow[what]), what
    assert by_cli["train"][names.CONFIG_SHA] == by_flow["train"][names.CONFIG_SHA]
    assert by_cli["version"][names.DATA_HASH] == by_flow["version"][names.DATA_HASH]
    assert (
        [r["action"] for r in by_cli["records"]]
        == [r["action"] for r in by_flow["records"]]
        == ["promote"]
    )
    assert set(by_cli["records"][0]) == set(by_flow["records"][0])

    # The nightly flow reads a champion made by hand like its own: nothing changed, nothing to do.
    for settings in (cli, flow):
        fresh = freshness(settings, CONFIG, FAST)
        assert not fresh.retrain and "nothing changed" in fresh.reason, fresh.reason
