"""`prodgan evaluate` through the real CLI:
an MLflow evaluation run on the tiny project, one-line errors.
"""

from __future__ import annotations

import pytest

from prodgan.settings import Settings
from tests.conftest import prodgan
from tests.metrics.helpers import tiny_generator


def _bundle(settings: Settings):
    from prodgan.models import save_bundle

    G, spec = tiny_generator()
    return save_bundle(settings.root / "bundle", G, spec, {"dataset": "fashion-mnist"})


# ~40 s of CPU: trains the evaluator on 300 images, 30 images through InceptionV3, MLflow
@pytest.mark.slow
def test_evaluate_bundle_logs_an_mlflow_run(
    small_project: Settings, monkeypatch: pytest.MonkeyPatch
):
    from mlflow import MlflowClient

    monkeypatch.setenv(
        "PIP_INDEX_URL", "http://127.0.0.1:9/simple"
    )  # set-up is done: evaluation must not need the index
    proc = prodgan(
        "evaluate",
        "--bundle",
        str(_bundle(small_project)),
        "--samples",
        "10",
        cwd=small_project.root,
    )
    assert (
        "fid_10" in proc.stdout
        and "cond_acc_10" in proc.stdout
        and "memorization_10" in proc.stdout
    )
    client = MlflowClient(small_project.tracking_uri)
    experiment = client.get_experiment_by_name("prodgan-eval")
    runs = client.search_runs([experiment.experiment_id], "tags.`prodgan.kind` = 'generator'")
    assert len(runs) == 1
    run = runs[0]
    assert run.data.tags["prodgan.protocol"] == run.data.params["protocol_fingerprint"]
    assert run.data.params["samples"] == "10" and run.data.params["split"] == "test"
    [dataset] = run.inputs.dataset_inputs
    assert (
        dataset.dataset.name == "fashion-mnist:test"
        and dataset.dataset.digest == run.data.tags["prodgan.data_hash"]
    )
    assert run.data.tags["mlflow.note.content"].startswith(
        "Evaluation of bundle bundle on fashion-mnist test "
    )
    assert "fid_10 " in run.data.tags["mlflow.note.content"]
    for name in (
        "fid_10",
        "fid_10_ci_low",
        "kid_10",
        "is_10",
        "precision_10",
        "recall_10",
        "cond_acc_10",
        "memorization_10",
    ):
        assert name in run.data.metrics, name
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"samples.png", "evaluation.json"} <= artifacts
    evaluator_runs = client.search_runs(
        [experiment.experiment_id], "tags.`prodgan.kind` = 'evaluator'"
    )
    assert len(evaluator_runs) == 1 and "test_accuracy" in evaluator_runs[0].data.metrics
    assert (
        small_project.home / "evaluator" / "fashion-mnist" / "probe.json"
    ).is_file()  # one per dataset


@pytest.mark.parametrize(
    "args,match",
    [
        (["models:/no-such-model"], "cannot read model reference 'models:/no-such-model'"),
        ([], "name a model"),
        (["--bundle", "."], "is not a generator bundle"),
    ],
)
def test_bad_input_is_one_red_line(project: Settings, args, match):
    """(Sample counts and grayscale/RGB mismatch are refused by the same checks, tested
    in-process.)"""
    proc = prodgan("evaluate", *args, cwd=project.root, check=False)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and match in errors[0] and "Traceback" not in proc.stderr, proc.stderr
