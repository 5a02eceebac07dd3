"""Promotion on real evaluations (torch-fidelity, real Inception weights, 10-16 samples) of two
generators, including the protocol rule: a challenger evaluated under another protocol makes the
champion be re-evaluated under it before anything is compared."""

from __future__ import annotations

import dataclasses

import pytest

from prodgan import names
from prodgan.adapters import dvc, registry
from prodgan.adapters.production_state import resolve_model
from prodgan.data.layout import read_meta
from prodgan.ops import evaluate as evaluation_log
from prodgan.ops import promote as promotion
from prodgan.ops.promote import register as promotion_register
from tests.conftest import prodgan
from tests.registry import helpers

GATES = """
absolute:
  fid: {max: 100000}
champion: {metric: fid, margin: 0.0}
"""


@pytest.mark.slow
def test_champion_reevaluated_under_the_challengers_protocol(small_store, tmp_path):
    settings = small_store
    gates = tmp_path / "gates.yaml"
    gates.write_text(GATES)
    data_hash = dvc.require_clean(settings)
    categories = tuple(read_meta(settings.data_dir / "fashion-mnist").categories)
    spec = dataclasses.replace(helpers.SPEC, num_classes=len(categories), categories=categories)

    def evaluated(seed: int, samples: int) -> tuple[str, str]:
        run_id = helpers.train_run(settings, seed, spec=spec, data_hash=data_hash)
        version = str(promotion_register(settings, run_id).version)
        bundle = resolve_model(settings, f"models:/{settings.model_name}/{version}").bundle_dir
        evaluation = evaluation_log.evaluate_bundle(
            settings, bundle, train_run_id=run_id, samples=samples, use_evaluator=False
        )
        return version, evaluation.protocol

    v1, protocol_1 = evaluated(seed=1, samples=12)
    first = promotion.promote(settings, v1, gates_path=gates)
    assert first.approved and first.challenger["metrics"]["fid_12"] > 0

    v2, protocol_2 = evaluated(seed=2, samples=16)  # another sample count: another protocol
    assert protocol_2 != protocol_1
    decision = promotion.promote(settings, v2, gates_path=gates)
    assert decision.action in ("promote", "reject")
    assert (
        decision.champion["reevaluated"]
        and decision.champion["protocol"] == protocol_2 == decision.challenger["protocol"]
    )
    assert "fid_16" in decision.champion["metrics"] and "fid_12" not in decision.champion["metrics"]
    assert decision.difference["method"].startswith(
        "paired"
    )  # both sides' features were cached by the evaluations
    champion_tags = registry.client_for(settings).get_model_version(settings.model_name, v1).tags
    assert (
        champion_tags[f"{names.EVAL_BY_PROTOCOL}{protocol_2[:16]}"]
        == decision.champion["eval_run_id"]
    )
    assert (
        champion_tags[names.PROTOCOL] == protocol_1
    )  # the headline evaluation stays the original one

    # `prodgan evaluate` on a registered version attaches the run to it under the new protocol
    proc = prodgan(
        "evaluate",
        f"models:/{settings.model_name}/{v2}",
        "--samples",
        "10",
        "--no-evaluator",
        cwd=settings.root,
    )
    assert "fid_10" in proc.stdout
    tags = registry.client_for(settings).get_model_version(settings.model_name, v2).tags
    attached = [tags[k] for k in tags if k.startswith(names.EVAL_BY_PROTOCOL)]
    assert len(attached) == 2 and all(
        registry.read_eval_run(registry.client_for(settings), run).metrics for run in attached
    )
    assert tags[names.PROTOCOL] == protocol_2  # a later evaluation never replaces the headline one
