"""One-line descriptions MLflow's UI shows for runs and model versions: what it is, on which data,
from which recipe, and (for a version) the last decision about it. Built from what the tags already
record.
"""

from __future__ import annotations

from typing import Any

from mlflow.utils.mlflow_tags import MLFLOW_RUN_NOTE

from prodgan.adapters.tracking import is_run_id, logged_model_id
from prodgan.names import CONFIG, DATA_HASH, DATASET, TRAIN_RUN, is_headline
from prodgan.policy.decision import Decision


def headline(metrics: dict[str, float]) -> str:
    """`fid_500 83.2, cond_acc_500 0.77`: the metrics a person compares first."""
    shown = [
        f"{k} {v:.3g}"
        for k, v in sorted(metrics.items())
        if is_headline(k) and k.startswith(("fid_", "cond_acc_"))
    ]
    return ", ".join(shown)


def training(
    arch: str, dataset: str, data_hash: str, config_file: str, overrides: list[str], steps: int
) -> str:
    recipe = config_file + (f" + {' '.join(overrides)}" if overrides else "")
    return (
        f"Training: {arch} generator on {dataset} {data_hash[:8]}, recipe {recipe}, {steps} steps"
    )


def evaluation(
    model: str, dataset: str, split: str, data_hash: str, protocol: str, metrics: dict[str, float]
) -> str:
    return (
        f"Evaluation of {model} on {dataset} {split} {data_hash[:8]} "
        f"(protocol {protocol[:12]}): {headline(metrics)}"
    )


def describe_version(client: Any, name: str, version: str, decision: Decision | None = None) -> str:
    """Set a version's description: its data and recipe, plus the decision when one was just
    taken."""
    mv = client.get_model_version(name, version)
    tags = mv.tags or {}
    run_tags = client.get_run(tags[TRAIN_RUN]).data.tags if is_run_id(tags.get(TRAIN_RUN)) else {}
    dataset = run_tags.get(DATASET, "dataset")
    recipe = run_tags.get(CONFIG, "an unknown recipe")
    text = (
        f"v{version}: trained on {dataset} {str(tags.get(DATA_HASH, '?'))[:8]} with {recipe} "
        f"(training run {str(tags.get(TRAIN_RUN, '?'))[:8]})"
    )
    if decision is not None:
        text += f"; {decision.action} {decision.at} by {decision.actor}: {decision.summary}"
    client.update_model_version(name, version, description=text)
    if logged_model_id(mv):  # the logged model's page shows the same line
        client.set_logged_model_tags(logged_model_id(mv), {MLFLOW_RUN_NOTE: text})
    return text
