"""`prodgan train` end to end on the tiny DVC-pinned Fashion-MNIST.

A real sqlite MLflow run holds everything.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prodgan.errors import ProdganError
from prodgan.models import generate_uint8, load_bundle
from tests.conftest import prodgan
from tests.train.helpers import SMOKE

FAST = [
    "--set",
    "steps=6",
    "--set",
    "checkpoint_every=3",
    "--set",
    "grid_every=3",
    "--set",
    "log_every=2",
    "--set",
    "batch_size=16",
]


@pytest.mark.slow
def test_train_cli_logs_params_metrics_grids_and_model(small_project, tmp_path):
    from prodgan.adapters.tracking import setup_mlflow
    from prodgan.names import TRAIN_EXPERIMENT
    from prodgan.ops.train import train as run_training
    from prodgan.ops.validate import validate as validate_dataset

    assert validate_dataset(small_project, "fashion-mnist").success
    # (an eval_samples larger than the catalogue allows is sized down: tests/train/test_recipe_fits)
    with pytest.raises(ProdganError, match="eval_samples=1: input should be greater than or equal"):
        run_training(small_project, SMOKE, ["eval_every=3", "eval_samples=1"], progress=False)
    result = run_training(
        small_project, SMOKE, [*FAST[1::2], "eval_every=3", "eval_samples=12"], progress=False
    )

    client = setup_mlflow(small_project)
    run = client.get_run(result.run_id)
    assert client.get_experiment(run.info.experiment_id).name == TRAIN_EXPERIMENT
    assert run.info.status == "FINISHED"
    assert run.data.params["steps"] == "6" and run.data.params["arch"] == "cdcgan"
    assert (
        run.data.params["lineage.data_hash"]
        == run.data.tags["prodgan.data_hash"]
        == result.data_hash
    )
    validation = json.loads(
        Path(client.download_artifacts(result.run_id, "validation.json", str(tmp_path))).read_text()
    )
    assert run.data.tags["prodgan.git_rev"] and run.data.tags["prodgan.validation"].endswith(
        "@" + validation["timestamp"]
    )
    assert run.data.params["version.torch"] and run.data.tags["prodgan.device"] == "cpu"
    # The MLflow UI's "Datasets": digest = DVC hash, source = the DVC remote.
    [dataset] = run.inputs.dataset_inputs
    assert (dataset.dataset.name, dataset.dataset.digest) == (
        "fashion-mnist:train",
        result.data_hash,
    )
    assert f"files/md5/{result.data_hash[:2]}/{result.data_hash[2:]}" in dataset.dataset.source
    assert {t.key: t.value for t in dataset.tags}["mlflow.data.context"] == "training"
    overrides = (
        "steps=6 checkpoint_every=3 grid_every=3 log_every=2 batch_size=16 "
        "eval_every=3 eval_samples=12"
    )
    assert run.data.tags["mlflow.note.content"] == (
        f"Training: cdcgan generator on fashion-mnist {result.data_hash[:8]}, "
        f"recipe smoke.yaml + {overrides}, 6 steps"
    )
    assert (
        run.data.tags["mlflow.user"]
        and run.data.tags["mlflow.source.name"] == "prodgan (prodgan-train)"
    )
    history = client.get_metric_history(result.run_id, "loss_d")
    assert [m.step for m in history] == [2, 3, 4, 6]
    artifacts = {
        a.path
        for top in ("", "samples", "generator", "checkpoint")
        for a in client.list_artifacts(result.run_id, top or None)
    }
    assert {
        "samples/step_0000003.png",
        "samples/step_0000006.png",
        "generator/generator.pt",
        "generator/generator.json",
        "checkpoint/ckpt_00000006.pt",
        "validation.json",
        "run_inputs.json",
    } <= artifacts
    local = client.download_artifacts(result.run_id, "generator", str(tmp_path))
    G, spec = load_bundle(local)
    assert spec.num_classes == 10 and len(spec.categories) == 10
    assert generate_uint8(G, spec, 4, seed=0).shape == (4, 1, 28, 28)
    assert run.data.tags["prodgan.weights_sha256"]
    quick_fid = {m.step: m.value for m in client.get_metric_history(result.run_id, "fid_12")}
    assert sorted(quick_fid) == [3, 6] and all(
        v > 0 for v in quick_fid.values()
    )  # the quick FID ran on real Inception
    best_step = min(quick_fid, key=quick_fid.get)
    assert (
        run.data.metrics["best_step"] == best_step
        and run.data.metrics["best_fid_12"] == quick_fid[best_step]
    )
    assert (
        json.loads((Path(local) / "generator.json").read_text())["extra"]["step"] == best_step
    )  # the best is what got logged


def test_train_cli_bad_input_is_one_line(small_project):
    for args, fragment in [
        (["--set", "learning_rate=1"], "valid keys"),
        (["--dataset", "nope"], "prodgan data pull"),
        (["--resume"], "nothing to resume"),
        ([], "prodgan data validate"),  # the tiny dataset was never validated
    ]:
        proc = prodgan("train", "--config", str(SMOKE), *args, cwd=small_project.root, check=False)
        assert proc.returncode in (1, 2), proc.stderr
        assert fragment in proc.stderr and "Traceback" not in proc.stderr
