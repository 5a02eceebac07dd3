"""Audit log adapter: one finished MLflow run in `prodgan-audit` per decision, and reading them back.

Each run carries searchable tags and the whole record as `decision.json` (plus the
champion-vs-challenger sheet when there is one).
"""

from __future__ import annotations

import getpass
from typing import Any

from prodgan.adapters.tracking import ensure_experiment, setup_mlflow
from prodgan.names import AUDIT_EXPERIMENT, AUDIT_FILE, AUDIT_SHEET, AUDIT_TAG, DATA_HASH
from prodgan.settings import Settings

_TAGGED = ("action", "model", "version", "actor", "champion_before", "champion_after", "previous_after", "gates_sha256", "seq")


def actor_name(settings: Settings, explicit: str | None = None) -> str:
    """Who acts: the authenticated MLflow user (a different explicit name is kept beside it, never instead
    of it, so nobody can sign as someone else), else the explicit name, else the OS user; never a password."""
    user = settings.tracking_user
    if user and explicit and explicit != user:
        return f"{user} (as {explicit})"
    return user or explicit or getpass.getuser()


def write_audit(settings: Settings, record: dict[str, Any], sheet: Any = None) -> str:
    """One finished run in `prodgan-audit` per decision: searchable tags + the whole record as JSON."""
    client = setup_mlflow(settings)
    exp_id = ensure_experiment(AUDIT_EXPERIMENT, settings)
    tags = {f"{AUDIT_TAG}{k}": str(record.get(k) if record.get(k) is not None else "") for k in _TAGGED}
    tags[DATA_HASH] = str(record.get("data_hash") or "")
    run = client.create_run(exp_id, run_name=f"{record['action']} {record['model']} v{record['version']}", tags=tags)
    run_id = run.info.run_id
    client.log_dict(run_id, record, AUDIT_FILE)
    if sheet is not None:
        client.log_image(run_id, sheet, artifact_file=AUDIT_SHEET)
    client.set_terminated(run_id, "FINISHED")
    return run_id


def audit_records(settings: Settings, model: str | None = None, version: str | None = None) -> list[dict[str, Any]]:
    """Every audit record (optionally for one model / version), oldest first, each with its run id."""
    import mlflow

    client = setup_mlflow(settings)
    exp = client.get_experiment_by_name(AUDIT_EXPERIMENT)
    if exp is None:
        return []
    clauses = []
    if model:
        clauses.append(f"tags.`{AUDIT_TAG}model` = '{model}'")
    if version:
        clauses.append(f"tags.`{AUDIT_TAG}version` = '{version}'")
    runs = []
    page = None
    while True:
        batch = client.search_runs([exp.experiment_id], " and ".join(clauses), order_by=["attributes.start_time ASC"],
                                   max_results=1000, page_token=page)
        runs += batch
        page = batch.token
        if not page:
            break
    records = []
    for run in runs:
        try:
            record = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/{AUDIT_FILE}")
        except Exception:  # noqa: BLE001 - a record whose JSON failed to upload still shows its tags
            record = {k.removeprefix(AUDIT_TAG): v for k, v in run.data.tags.items() if k.startswith(AUDIT_TAG)}
            record["incomplete"] = True
        record["audit_run_id"] = run.info.run_id
        records.append(record)
    return records
