"""Audit queries: the chain behind a model version, what was trained on a dataset, who was champion
when.

Everything is read back from where the decisions recorded it: model-version tags, the training
run (params, tags, `validation.json`, `run_inputs.json`), evaluation runs, and the audit runs
in `prodgan-audit`. Results are plain dicts, so the CLI can print them or dump them as JSON.
"""

from __future__ import annotations

import re
from typing import Any

from prodgan.adapters import registry, tracking
from prodgan.adapters.production_state import ProductionState
from prodgan.console import progress_bar
from prodgan.errors import ProdganError
from prodgan.names import (
    CONFIG,
    DATA_HASH,
    DATASET,
    DEVICE,
    EVAL_BY_PROTOCOL,
    EVAL_EXPERIMENT,
    EVAL_RUN,
    GIT_DIRTY,
    GIT_REV,
    PRECISION,
    PROTOCOL,
    TRAIN_EXPERIMENT,
    TRAIN_RUN,
    VALIDATION,
    WEIGHTS,
    parse_model_ref,
    production_model,
)
from prodgan.ops import verification
from prodgan.policy import chain
from prodgan.policy.chain import Report, is_move
from prodgan.policy.decision import Decision
from prodgan.settings import Settings

DECISION_FIELDS = (
    "at",
    "action",
    "actor",
    "version",
    "champion_before",
    "champion_after",
    "previous_after",
    "gates_sha256",
    "reasons",
    "audit_run_id",
    "note",
)


def _registered(settings: Settings, text: str) -> tuple[ProductionState, Any]:
    """The production state of the model a reference names, and the trained version it names;
    runs and bundles have no lineage of their own here."""
    ref = parse_model_ref(text, settings.model_name)
    if not ref.registered:
        raise ProdganError(
            f"{ref.uri} is not a registered model version; audit models:/NAME@ALIAS or "
            f"models:/NAME/VERSION"
        )
    state, ref = ProductionState.for_ref(settings, ref)
    return state, state.version(ref)


def _decision_row(record: dict[str, Any]) -> dict[str, Any]:
    """A decision as `audit model` shows it: its own fields and the gates it failed."""
    row = {k: record.get(k) for k in DECISION_FIELDS}
    row["failed"] = [check.line for check in Decision.from_record(record).failed]
    return row


def _artifact_json(client: Any, run: Any, path: str) -> dict[str, Any] | None:
    import mlflow

    try:
        return mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/{path}")
    except Exception:  # noqa: BLE001 - an older run without this artifact: the chain shows it as missing
        return None


def _when(ms: int | None) -> str | None:
    from datetime import datetime, timezone

    return (
        datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="seconds")
        if ms
        else None
    )


def _training(client: Any, run_id: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(training section, dataset section) of the chain, from the training run."""
    if not run_id:
        return {"missing": "version has no prodgan.train_run_id tag"}, {}
    run = tracking.get_run(client, run_id, "training run")
    params, tags = run.data.params, run.data.tags
    inputs = _artifact_json(client, run, "run_inputs.json") or {}
    training = {
        "run_id": run_id,
        "status": run.info.status,
        "started": _when(run.info.start_time),
        "ended": _when(run.info.end_time),
        "config_file": tags.get(CONFIG) or params.get("config_file"),
        "config": inputs.get("config")
        or {k: v for k, v in params.items() if not k.startswith(("lineage.", "version."))},
        "overrides": inputs.get("overrides"),
        "code": {"git_rev": tags.get(GIT_REV), "git_dirty": tags.get(GIT_DIRTY)},
        "environment": inputs.get("versions")
        or {k.removeprefix("version."): v for k, v in params.items() if k.startswith("version.")},
        "device": tags.get(DEVICE),
        "precision": tags.get(PRECISION),
        "final_metrics": dict(run.data.metrics),
    }
    validation = _artifact_json(client, run, "validation.json")
    dataset = {
        "data_hash": tags.get(DATA_HASH),
        "dataset": tags.get(DATASET),
        "git_rev": tags.get(GIT_REV),
        "validation": {
            "reference": tags.get(VALIDATION),
            **(
                {
                    k: validation.get(k)
                    for k in (
                        "success",
                        "suite_name",
                        "expectations",
                        "failed",
                        "timestamp",
                        "docs_path",
                        "docs_index",
                        "gx_version",
                    )
                }
                if validation
                else {}
            ),
        },
    }
    return training, dataset


def _evaluations(settings: Settings, client: Any, mv: Any) -> list[dict[str, Any]]:
    """Every evaluation run tied to the version (by tag) or to its training run, oldest first."""
    tags = mv.tags or {}
    ids = {v for k, v in tags.items() if k == EVAL_RUN or k.startswith(EVAL_BY_PROTOCOL)}
    exp = client.get_experiment_by_name(EVAL_EXPERIMENT)
    if exp is not None and tags.get(TRAIN_RUN):
        ids |= {
            r.info.run_id
            for r in client.search_runs(
                [exp.experiment_id], f"tags.`{TRAIN_RUN}` = '{tags[TRAIN_RUN]}'"
            )
        }
    found = []
    for run_id in ids:
        run = tracking.get_run(client, run_id, "evaluation run")
        found.append(
            {
                "run_id": run_id,
                "started": _when(run.info.start_time),
                "status": run.info.status,
                "protocol": run.data.tags.get(PROTOCOL),
                "headline": run_id == tags.get(EVAL_RUN),
                "protocol_params": {
                    k: v for k, v in run.data.params.items() if k.startswith("protocol")
                },
                "metrics": dict(run.data.metrics),
            }
        )
    return sorted(found, key=lambda e: e["started"] or "")


def model_lineage(settings: Settings, ref: str) -> dict[str, Any]:
    """Dataset -> validation -> training run -> evaluation runs -> every decision on this version,
    in time order."""
    state, mv = _registered(settings, ref)
    client = state.client
    tags = mv.tags or {}
    training, dataset = _training(client, tags.get(TRAIN_RUN))
    version = str(mv.version)
    touched = [
        r
        for r in state.decisions
        if version in {str(r.get(k)) for k in ("version", "champion_before", "champion_after")}
    ]
    held = {"champion": state.aliases.champion, "previous": state.aliases.previous}
    return {
        "model": {
            "name": mv.name,
            "version": version,
            "aliases": sorted(alias for alias, held_by in held.items() if held_by == version),
            "registered": _when(mv.creation_timestamp),
            "source": mv.source,
            "weights_sha256": tags.get(WEIGHTS),
            "tags": {k: v for k, v in tags.items() if k.startswith(("prodgan.", "metric."))},
        },
        "dataset": dataset or {"data_hash": tags.get(DATA_HASH)},
        "training": training,
        "evaluations": _evaluations(settings, client, mv),
        "decisions": [_decision_row(r) for r in touched],
    }


def dataset_lineage(settings: Settings, data_hash: str) -> dict[str, Any]:
    """Training runs and model versions built from a dataset version (hash prefix allowed)."""
    if not re.fullmatch(r"[0-9a-f]{6,32}(\.dir)?", data_hash):
        raise ProdganError(
            f"{data_hash!r} is not a DVC hash; give at least 6 hex digits of the md5 in data.dvc"
        )
    client = registry.client_for(settings)
    like = f"tags.`{DATA_HASH}` LIKE '{data_hash}%'"
    found = [  # trained versions: a production copy tags its trained version's dataset too
        mv for mv in client.search_model_versions(like) if mv.name != production_model(mv.name)
    ]
    aliases: dict[
        tuple[str, str], list[str]
    ] = {}  # search results leave aliases out; read them per model
    for name in {mv.name for mv in found}:
        for alias, version in registry.production_aliases(client, name).items():
            aliases.setdefault((name, str(version)), []).append(alias)
    versions = [
        {
            "model": mv.name,
            "version": str(mv.version),
            "train_run_id": (mv.tags or {}).get(TRAIN_RUN),
            "registered": _when(mv.creation_timestamp),
            "aliases": sorted(aliases.get((mv.name, str(mv.version)), [])),
            "data_hash": (mv.tags or {}).get(DATA_HASH),
        }
        for mv in found
    ]
    exp = client.get_experiment_by_name(TRAIN_EXPERIMENT)
    runs = (
        client.search_runs([exp.experiment_id], like, order_by=["attributes.start_time ASC"])
        if exp
        else []
    )
    if not runs and not versions:
        known = (
            sorted(
                {
                    r.data.tags[DATA_HASH]
                    for r in client.search_runs([exp.experiment_id])
                    if r.data.tags.get(DATA_HASH)
                }
            )
            if exp
            else []
        )
        raise ProdganError(
            f"no training run or model version used a dataset version {data_hash}; "
            f"known: {', '.join(h[:12] for h in known) or 'none (nothing trained yet)'}"
        )
    return {
        "data_hash": data_hash,
        "datasets": sorted({r.data.tags.get(DATASET) for r in runs if r.data.tags.get(DATASET)}),
        "training_runs": [
            {
                "run_id": r.info.run_id,
                "started": _when(r.info.start_time),
                "status": r.info.status,
                "config": r.data.tags.get(CONFIG),
                "validation": r.data.tags.get(VALIDATION),
            }
            for r in runs
        ],
        "versions": sorted(versions, key=lambda v: (v["model"], int(v["version"]))),
    }


def champion_history(settings: Settings, model: str | None = None) -> list[dict[str, Any]]:
    """Which version was champion when: one period per alias move recorded in the audit log."""
    state = ProductionState.read(settings.for_model(model))
    moves = [r for r in state.decisions if is_move(r)]
    periods = []
    for i, r in enumerate(moves):
        periods.append(
            {
                "version": str(r["champion_after"]),
                "from": r.get("at"),
                "until": moves[i + 1].get("at") if i + 1 < len(moves) else None,
                "how": r.get("action"),
                "actor": r.get("actor"),
                "replaced": r.get("champion_before"),
                "audit_run_id": r.get("audit_run_id"),
            }
        )
    return periods


def history_warnings(settings: Settings, model: str | None = None) -> list[str]:
    """What a reader of the history must know: the chain and alias findings (no files hashed;
    `prodgan audit verify` does that), then every place of the chain accepted as lost."""
    state = ProductionState.read(settings.for_model(model))
    report = verification.verify(state, all_versions=False, fresh=False)
    found = [f"fails verification: {f}" for f in report.findings]
    return found + report.lost


def verify(settings: Settings, all_versions: bool = True, acknowledge: str | None = None) -> Report:
    """Replay the audit log against the registry, hashing fresh downloads; `acknowledge` records a
    signed `force` entry accepting the findings and naming every place of the chain that holds no
    record (`lost`): after it the chain verifies again, and the loss stays in every report."""
    if acknowledge:
        tracking.checked_text(acknowledge, "--acknowledge")
    with tracking.reachable(settings, "verifying the registry"):
        state = ProductionState.read(settings)
        with progress_bar("downloading and hashing model versions") as progress:
            report = verification.verify(state, all_versions=all_versions, progress=progress)
        if acknowledge:
            lost = chain.missing_places(state.records, state.signed_head)
            verification.audit_bypass(
                state, report, None, "acknowledge the findings", acknowledge, lost=lost
            )
        return report
