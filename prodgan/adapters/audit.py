"""Audit log adapter: a signed hash chain of decisions, one finished MLflow run in `prodgan-audit`
each.

Every record of a model carries its place `n` (1, 2, ...), the hash of record n-1 (`prev`) and an
Ed25519 signature made with the promoter's key (`signing`). Place n is claimed by creating the
experiment `prodgan-audit-claim/MODEL/n`: experiment names are unique in every backend store, so
two writers never take the same place, and a claim does not depend on anyone's clock. The newest
place and hash are also kept as the production model's `prodgan.audit_head` tag, so a deleted
tail shows. A decision that moves an alias is written `pending` first and followed by a `done`
record once the alias moved: a crash in between leaves a pending record, never a silent move.
"""

from __future__ import annotations

import getpass
import time
from typing import Any

from mlflow.utils.mlflow_tags import MLFLOW_RUN_NOTE, MLFLOW_SOURCE_NAME, MLFLOW_USER

from prodgan.adapters import descriptions, lineage, signing
from prodgan.adapters.auth import AuthApi, is_server
from prodgan.adapters.tracking import (
    ensure_experiment,
    is_local_store,
    setup_mlflow,
    unless_forbidden,
)
from prodgan.names import (
    AUDIT_CLAIM_PREFIX,
    AUDIT_EXPERIMENT,
    AUDIT_FILE,
    AUDIT_HEAD,
    AUDIT_SHEET,
    AUDIT_TAG,
    DATA_HASH,
    production_model,
)
from prodgan.policy.chain import UNSIGNED, decisions, record_hash
from prodgan.policy.decision import DONE
from prodgan.settings import Settings

_TAGGED = (
    "action",
    "model",
    "version",
    "actor",
    "champion_before",
    "champion_after",
    "previous_after",
    "gates_sha256",
    "seq",
    "n",
)
CLAIM_TRIES = 50
# how long a writer waits for the record before its place to appear (its writer is mid-upload)
PREV_WAIT_S = 10.0


def actor_name(settings: Settings, explicit: str | None = None) -> str:
    """Who acts: the user the MLflow server authenticated (asked, not taken from the client), a
    different explicit name kept beside it, never instead of it; on an embedded store the explicit
    name, else the OS user."""
    user = None
    if is_server(settings):
        me = AuthApi(settings).current_user()
        user = me.get("username") if me else settings.tracking_user
    if user and explicit and explicit != user:
        return f"{user} (as {explicit})"
    return user or explicit or getpass.getuser()


def _runs(client: Any, exp_id: str, query: str) -> list[Any]:
    runs, page = [], None
    while True:
        batch = client.search_runs([exp_id], query, max_results=1000, page_token=page)
        runs += batch
        page = batch.token
        if not page:
            return runs


def _place(run: Any) -> int:
    value = run.data.tags.get(f"{AUDIT_TAG}n", "")
    return int(value) if value.isdigit() else 0


def _load(run: Any) -> dict[str, Any]:
    import mlflow

    try:
        record = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/{AUDIT_FILE}")
    except Exception:  # noqa: BLE001 - a record whose JSON failed to upload still shows its tags (and fails verify)
        record = {
            k.removeprefix(AUDIT_TAG): v
            for k, v in run.data.tags.items()
            if k.startswith(AUDIT_TAG)
        }
        record["incomplete"] = True
    record["audit_run_id"] = run.info.run_id
    return record


def _claim(settings: Settings, client: Any, model: str, n: int) -> bool:
    """Take place `n` of `model`'s chain (True) unless another writer already has it."""
    from mlflow.exceptions import MlflowException

    location = (
        (settings.artifact_dir / AUDIT_CLAIM_PREFIX).as_uri()
        if is_local_store(settings.tracking_uri)
        else None
    )
    try:
        exp_id = client.create_experiment(
            f"{AUDIT_CLAIM_PREFIX}/{model}/{n}", artifact_location=location
        )
    except MlflowException:
        return False
    client.delete_experiment(exp_id)  # hidden from lists; the name stays taken, which is the point
    return True


def _record_at(client: Any, exp_id: str, model: str, n: int) -> dict[str, Any] | None:
    found = _runs(
        client, exp_id, f"tags.`{AUDIT_TAG}model` = '{model}' and tags.`{AUDIT_TAG}n` = '{n}'"
    )
    return _load(found[0]) if found else None


def _set_head(settings: Settings, client: Any, model: str, n: int, digest: str) -> None:
    from mlflow.exceptions import MlflowException

    from prodgan.adapters.registry import ensure_registered_model

    production = production_model(model)
    ensure_registered_model(client, production)
    head = (client.get_registered_model(production).tags or {}).get(AUDIT_HEAD, "0:")
    current = head.split(":", 1)[0]
    if not current.isdigit() or int(current) < n:
        try:
            client.set_registered_model_tag(production, AUDIT_HEAD, f"{n}:{digest}")
        except MlflowException:  # the record is written; verify reports the stale head
            pass


def append(settings: Settings, record: dict[str, Any], sheet: Any = None) -> dict[str, Any]:
    """Sign `record` as the next link of its model's chain and store it; returns it with n, prev,
    signature, run id."""
    signing.ensure_embedded_key(settings)
    client = setup_mlflow(settings)
    exp_id = ensure_experiment(AUDIT_EXPERIMENT, settings)
    model = str(record["model"])
    n = 1 + max(
        (_place(r) for r in _runs(client, exp_id, f"tags.`{AUDIT_TAG}model` = '{model}'")),
        default=0,
    )
    for _ in range(CLAIM_TRIES):
        if _claim(settings, client, model, n):
            break
        n += 1
    else:
        raise RuntimeError(
            f"could not claim a place in {model}'s audit chain after {CLAIM_TRIES} tries"
        )
    prev = None
    deadline = time.monotonic() + PREV_WAIT_S
    while n > 1:
        before = _record_at(client, exp_id, model, n - 1)
        if before is not None or time.monotonic() > deadline:
            prev = record_hash(before) if before is not None else None
            break
        time.sleep(0.2)
    body = {k: v for k, v in record.items() if k not in UNSIGNED}
    body.update(n=n, prev=prev, key_id=signing.key_id(settings))
    body["signature"] = signing.sign(settings, body)
    tags = {f"{AUDIT_TAG}{k}": str(body.get(k) if body.get(k) is not None else "") for k in _TAGGED}
    tags[DATA_HASH] = str(body.get("data_hash") or "")
    tags.update(
        {
            MLFLOW_RUN_NOTE: descriptions.audit_run(body),
            MLFLOW_USER: str(body.get("actor")),
            MLFLOW_SOURCE_NAME: f"prodgan ({AUDIT_EXPERIMENT})",
        }
    )
    run = client.create_run(exp_id, run_name=descriptions.audit_run_name(body), tags=tags)
    client.log_dict(run.info.run_id, body, AUDIT_FILE)
    if sheet is not None:
        client.log_image(run.info.run_id, sheet, artifact_file=AUDIT_SHEET)
    client.set_terminated(run.info.run_id, "FINISHED")
    _set_head(settings, client, model, n, record_hash(body))
    with unless_forbidden():  # after the record is whole: its page, for people
        lineage.audit_page(client, run.info.run_id, body)
    return {**body, "audit_run_id": run.info.run_id}


def write_audit(settings: Settings, record: dict[str, Any], sheet: Any = None) -> str:
    """Append one decision to the signed chain; its run id."""
    return append(settings, record, sheet)["audit_run_id"]


def mark_done(settings: Settings, pending: dict[str, Any]) -> str:
    """The `done` record closing a pending decision once its alias move happened."""
    from datetime import datetime, timezone

    return append(
        settings,
        {
            "action": DONE,
            "model": pending["model"],
            "version": pending.get("version"),
            "done_of": pending["n"],
            "actor": pending.get("actor"),
            "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
    )["audit_run_id"]


def chain(settings: Settings, model: str) -> list[dict[str, Any]]:
    """Every stored record of `model`'s chain (decisions and `done` marks), by place n."""
    client = setup_mlflow(settings)
    exp = client.get_experiment_by_name(AUDIT_EXPERIMENT)
    if exp is None:
        return []
    runs = sorted(
        _runs(client, exp.experiment_id, f"tags.`{AUDIT_TAG}model` = '{model}'"),
        key=lambda r: (_place(r), r.info.start_time or 0),
    )
    return [_load(r) for r in runs]


def audit_records(
    settings: Settings, model: str | None = None, version: str | None = None
) -> list[dict[str, Any]]:
    """Every decision (optionally for one model / version), in chain order, each with its run id
    and state."""
    client = setup_mlflow(settings)
    exp = client.get_experiment_by_name(AUDIT_EXPERIMENT)
    if exp is None:
        return []
    if model:
        models = [model]
    else:
        every_run = _runs(client, exp.experiment_id, "")
        models = sorted({r.data.tags.get(f"{AUDIT_TAG}model", "") for r in every_run})
    found = [r for m in models for r in decisions(chain(settings, m))]
    return [r for r in found if version is None or str(r.get("version")) == str(version)]
