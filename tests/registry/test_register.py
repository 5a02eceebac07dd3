"""Registration: idempotent by training run id, lineage tags, URIs resolve to the bundle."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from prodgan import names
from prodgan.adapters import registry
from prodgan.adapters.production_state import resolve_model
from prodgan.adapters.tracking import RunLogger
from prodgan.cli import app
from prodgan.errors import ProdganError
from prodgan.fsutil import atomic_dir, sha256_file
from prodgan.models import load_bundle
from prodgan.names import TRAIN_EXPERIMENT
from prodgan.ops.promote import register as promotion_register
from tests.registry import helpers


def test_register_is_idempotent_and_tags_lineage(store):
    run_id = helpers.train_run(store, seed=1)
    eval_id = helpers.eval_run(store, run_id, fid=100.0)
    first = promotion_register(store, run_id, eval_run_id=eval_id)
    again = promotion_register(store, run_id, eval_run_id=eval_id)  # a retried flow step
    assert again.version == first.version
    client = registry.client_for(store)
    assert len(client.search_model_versions(f"name = '{store.model_name}'")) == 1
    tags = again.tags
    assert tags[names.TRAIN_RUN] == run_id and tags[names.EVAL_RUN] == eval_id
    assert tags[names.DATA_HASH] == helpers.DATA_HASH and tags[names.GIT_REV] == "deadbeef"
    assert tags[names.PROTOCOL] == "proto-a" * 4 and float(tags["metric.fid_50"]) == 100.0
    assert again.run_id == run_id

    resolved = resolve_model(store, f"models:/{store.model_name}/{first.version}")
    assert sha256_file(resolved.bundle_dir / "generator.pt") == tags[names.WEIGHTS]
    generator, spec = load_bundle(resolved.bundle_dir)
    assert spec == helpers.SPEC
    by_run = resolve_model(store, f"runs:/{run_id}")
    assert sha256_file(by_run.bundle_dir / "generator.pt") == tags[names.WEIGHTS]

    cli = CliRunner().invoke(
        app, ["register", "--run", run_id]
    )  # the CLI retry lands on the same version
    assert cli.exit_code == 0 and f"v{first.version} " in cli.stdout, cli.output


def test_concurrent_resolves_of_one_model_all_get_the_bundle(store):
    """A flow and a server resolving the champion at once both download it; neither sees a
    half-published cache."""
    version = helpers.registered(store, seed=4, fid=90.0)
    uri = f"models:/{store.model_name}/{version}"
    start = threading.Barrier(4, timeout=60)
    results: list[object] = []

    def resolve() -> None:
        start.wait()
        try:
            results.append(resolve_model(store, uri).bundle_dir)
        except Exception as exc:  # noqa: BLE001 - the assertion shows what a loser saw
            results.append(exc)

    threads = [threading.Thread(target=resolve) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(results) == 4 and all(isinstance(r, Path) for r in results), results
    assert len(set(results)) == 1 and load_bundle(results[0])[1] == helpers.SPEC
    assert not [
        p.name for p in results[0].parent.parent.iterdir() if p.name.startswith(".")
    ]  # no temp folders left


def test_a_cache_folder_published_meanwhile_is_kept(tmp_path):
    target = tmp_path / "cache" / "key"
    with atomic_dir(target, keep_existing=True) as ours:
        (ours / "who").write_text("second")
        with atomic_dir(target, keep_existing=True) as theirs:
            (theirs / "who").write_text("first")
    assert (target / "who").read_text() == "first" and sorted(
        p.name for p in target.parent.iterdir()
    ) == ["key"]
    with atomic_dir(target) as replacement:  # the default still replaces, in one rename
        (replacement / "who").write_text("new")
    assert (target / "who").read_text() == "new" and sorted(
        p.name for p in target.parent.iterdir()
    ) == ["key"]


def test_bad_uris_and_runs_are_clear_errors(store):
    for uri, message in [
        ("models:/prodgan-generator@champion", "no alias @champion"),
        ("models:/prodgan-generator/99", "has no version 99"),
        ("models:/prodgan-generator/latest", "cannot read model reference"),
        ("runs:/" + "0" * 32, "not found"),
        ("s3://bucket/model", "cannot read model reference"),
    ]:
        with pytest.raises(ProdganError, match=message):
            resolve_model(store, uri)
    with pytest.raises(ProdganError, match="training run '0+' not found"):
        promotion_register(store, "0" * 32)
    unfinished = RunLogger.start(store, TRAIN_EXPERIMENT, "crashed")  # still RUNNING, no bundle
    with pytest.raises(ProdganError, match="is RUNNING, not FINISHED"):
        promotion_register(store, unfinished.run_id)
    finished = helpers.train_run(store, seed=9)
    other = RunLogger.start(
        store,
        "prodgan-eval",
        "eval-of-something-else",
        tags={names.PROTOCOL: "p" * 64, names.WEIGHTS: "f" * 64, names.TRAIN_RUN: finished},
    )
    other.finish()
    with pytest.raises(ProdganError, match="evaluated other weights"):
        promotion_register(store, finished, eval_run_id=other.run_id)
    assert not registry.client_for(store).search_model_versions(f"name = '{store.model_name}'")


def test_evaluator_registers_as_its_own_model(store, tmp_path):
    import mlflow
    import pandas as pd

    from prodgan.adapters.evaluator_model import EVALUATOR_MODEL, _blank_png, register_evaluator
    from prodgan.models.evaluator import EvaluatorCNN, EvaluatorSpec, save_evaluator

    spec = EvaluatorSpec(channels=1, size=28, categories=helpers.CATEGORIES, width=4)
    save_evaluator(tmp_path / "evaluator", EvaluatorCNN(spec))
    first = register_evaluator(store, tmp_path / "evaluator")
    assert register_evaluator(store, tmp_path / "evaluator").version == first.version
    model = mlflow.pyfunc.load_model(f"models:/{EVALUATOR_MODEL}/{first.version}")
    out = model.predict(pd.DataFrame({"png_base64": [_blank_png({"channels": 1, "size": 28})] * 2}))
    assert set(out["category"]) <= set(helpers.CATEGORIES) and out["confidence"].between(0, 1).all()
