"""What a user of the MLflow UI expects to find, read back through MlflowClient from the real
sqlite store: the logged model with the evaluation's metrics, a typed signature MLflow enforces,
the model as the training run's output and the evaluation run's input, and one-line descriptions
of versions and decisions."""

from __future__ import annotations

import mlflow
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from prodgan.adapters import registry, tracking
from prodgan.ops import promote as promotion
from tests.registry import helpers
from tests.registry.test_promote import GATES


def test_logged_model_metrics_signature_lineage_and_descriptions(store, monkeypatch) -> None:
    monkeypatch.delenv("PRODGAN_GATES")
    (store.root / "evaluation").mkdir()
    (store.root / "evaluation" / "gates.yaml").write_text(GATES)
    client = registry.client_for(store)
    v1 = helpers.registered(store, seed=1, fid=100.0)
    mv = client.get_model_version(store.model_name, v1)
    train_run, eval_run = mv.tags["prodgan.train_run_id"], mv.tags["prodgan.eval_run_id"]
    model_id = tracking.logged_model_id(mv)

    model = client.get_logged_model(
        model_id
    )  # the model page: metrics of the evaluation, linked to its run
    assert {m.key: m.value for m in model.metrics}["fid_50"] == 100.0 and {
        m.run_id for m in model.metrics
    } == {eval_run}
    assert [o.model_id for o in client.get_run(train_run).outputs.model_outputs] == [model_id]
    assert [i.model_id for i in client.get_run(eval_run).inputs.model_inputs] == [model_id]
    assert mv.description.startswith(f"v{v1}: trained on dataset {helpers.DATA_HASH[:8]}")
    assert model.tags["mlflow.note.content"] == mv.description  # the model page's "Description"

    info = mlflow.models.get_model_info(f"models:/{model_id}")
    assert {c.name: (c.type.name, c.required) for c in info.signature.inputs.inputs} == {
        "seed": ("long", True),
        "category": ("string", False),
        "n": ("long", False),
    }
    assert info.saved_input_example_info is not None
    pyfunc = mlflow.pyfunc.load_model(f"models:/{model_id}")
    rows = pyfunc.predict(pd.DataFrame([{"seed": 3, "category": "trouser", "n": 2}]))
    assert list(rows["category"]) == ["trouser", "trouser"]
    with pytest.raises(
        MlflowException, match="column n"
    ):  # MLflow's own check, before prodgan's code runs
        pyfunc.predict(pd.DataFrame([{"seed": 3, "n": 2.5}]))

    promotion.promote(store, v1, actor="alice")
    assert "by alice: every gate passed; champion as prodgan-generator-production v1 since " in (
        client.get_model_version(store.model_name, v1).description
    )
    v2 = helpers.registered(store, seed=2, fid=150.0)
    promotion.promote(store, v2, actor="bob")
    rejected = client.get_model_version(store.model_name, v2).description
    assert (
        " reject " in rejected and "by bob: FAIL champion.fid" in rejected and "\n" not in rejected
    )
