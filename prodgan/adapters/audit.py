"""Audit log adapter: a signed hash chain of decisions, one finished MLflow run in `prodgan-audit`
each.

Every record of a model carries its place `n` (1, 2, ...), the hash of record n-1 (`prev`) and an
Ed25519 signature made with the promoter's key (`signing`). Place n is claimed by creating the
experiment `prodgan-audit-claim/MODEL/n/TOKEN`, where TOKEN is derived from the promoter's
(deterministic) signature of (model, n, prev): experiment names are unique in every backend
store, so two writers never take the same place, a claim does not depend on anyone's clock, and
nobody without the key can compute a claim's name, so nobody can squat places ahead. The newest
place and hash are also kept, signed, as the production model's `prodgan.audit_head` tag
(`n:hash:signature`), so a deleted, hidden or rewound tail shows at once. A missing record is
never papered over: the next append refuses until a promoter accepts the loss with a signed
record naming the lost places (`lost`). A decision that moves an alias is written `pending`
first and followed by a `done` record once the alias moved: a crash in between leaves a pending
record, never a silent move.
"""

from __future__ import annotations

import getpass
import hashlib
import time
from typing import Any

from mlflow.utils.mlflow_tags import MLFLOW_RUN_NOTE, MLFLOW_SOURCE_NAME, MLFLOW_USER

from prodgan.adapters import descriptions, lineage, signing
from prodgan.adapters.auth import AuthApi, is_server
from prodgan.adapters.tracking import (
    checked_text,
    ensure_experiment,
    is_local_store,
    setup_mlflow,
    unless_forbidden,
)
from prodgan.errors import ProdganError
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
CLAIM_TRIES = 50  # only key holders can claim: each lost try is another promoter's record
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


def _claim(settings: Settings, client: Any, model: str, n: int, prev: str | None) -> bool:
    """Take place `n` of `model`'s chain after the record hashing to `prev` (True) unless another
    writer already has it. The name holds a digest of the promoter's deterministic signature of
    (model, n, prev): two promoters racing for the same place compute the same name, and nobody
    without the key can compute it ahead of them."""
    from mlflow.exceptions import MlflowException

    signature = signing.sign(settings, {"claim_of": model, "n": n, "prev": prev})
    token = hashlib.sha256(signature.encode()).hexdigest()[:32]
    location = (
        (settings.artifact_dir / AUDIT_CLAIM_PREFIX).as_uri()
        if is_local_store(settings.tracking_uri)
        else None
    )
    try:
        exp_id = client.create_experiment(
            f"{AUDIT_CLAIM_PREFIX}/{model}/{n}/{token}", artifact_location=location
        )
    except MlflowException:
        return False
    client.delete_experiment(exp_id)  # hidden from lists; the name stays taken, which is the point
    return True


def _records_at(client: Any, exp_id: str, model: str, query: str = "") -> list[Any]:
    return _runs(client, exp_id, f"tags.`{AUDIT_TAG}model` = '{model}'{query}")


def _complete_at(client: Any, exp_id: str, model: str, n: int) -> dict[str, Any] | None:
    """Record `n`, once its JSON is stored (a writer logs tags first, then the record)."""
    found = _records_at(client, exp_id, model, f" and tags.`{AUDIT_TAG}n` = '{n}'")
    record = _load(found[0]) if found else None
    return None if record is None or record.get("incomplete") else record


def _head_reached(settings: Settings, client: Any, model: str, place: int) -> bool:
    """Whether the signed head counts `place` (an unsigned head counts everything: no trust)."""
    from prodgan.adapters.registry import production_state

    head = production_state(client, model).head
    return not head_signed(settings, model, head) or int(str(head).split(":")[0]) >= place


def _link(
    settings: Settings, client: Any, exp_id: str, model: str, n: int, accept_loss: bool
) -> tuple[str | None, list[int]]:
    """(hash of the record before place `n`, places skipped as lost). Waits for record n-1 while
    its writer may still be uploading. A place that stays empty is skipped, and named `lost` in
    the record being written, only when the signed head never reached it (its writer crashed
    between claim and record) or the record accepts the loss (`prodgan audit verify
    --acknowledge`); otherwise a record the head had counted was deleted or hidden: refused."""
    if n == 1:
        return None, []
    deadline = time.monotonic() + PREV_WAIT_S
    while True:
        before = _complete_at(client, exp_id, model, n - 1)
        if before is not None:
            return record_hash(before), []
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if not accept_loss and _head_reached(settings, client, model, n - 1):
        raise ProdganError(
            f"audit record #{n - 1} of {model} was claimed but is not in the log (deleted, hidden, "
            f"or its writer crashed): nothing was written. Inspect with `prodgan audit verify`; a "
            f"promoter who accepts the loss records it with `prodgan audit verify --acknowledge "
            f"REASON`"
        )
    held = [_place(r) for r in _records_at(client, exp_id, model) if 0 < _place(r) < n - 1]
    newest = max(held, default=0)
    before = _complete_at(client, exp_id, model, newest) if newest else None
    return (record_hash(before) if before else None), list(range(newest + 1, n))


def head_value(settings: Settings, model: str, n: int, digest: str) -> str:
    """The `prodgan.audit_head` tag: `n:hash:signature`, signed so only the key can move it."""
    return f"{n}:{digest}:{signing.sign(settings, {'head_of': model, 'n': n, 'hash': digest})}"


def head_signed(settings: Settings, model: str, head: str | None) -> bool:
    """Whether the head tag carries the promoter's signature of its own place and hash."""
    parts = str(head or "").split(":")
    if len(parts) != 3 or not parts[0].isdigit():
        return False
    body = {"head_of": model, "n": int(parts[0]), "hash": parts[1], "signature": parts[2]}
    return signing.verify(settings, body)


def _set_head(settings: Settings, client: Any, model: str, n: int, digest: str) -> None:
    from mlflow.exceptions import MlflowException

    from prodgan.adapters.registry import ensure_registered_model

    production = production_model(model)
    ensure_registered_model(client, production)
    head = (client.get_registered_model(production).tags or {}).get(AUDIT_HEAD)
    if head_signed(settings, model, head) and int(str(head).split(":")[0]) >= n:
        return  # a later record's writer already moved it on
    try:
        client.set_registered_model_tag(
            production, AUDIT_HEAD, head_value(settings, model, n, digest)
        )
    except MlflowException:  # the record is written; verify reports the stale head
        pass


def append(settings: Settings, record: dict[str, Any], sheet: Any = None) -> dict[str, Any]:
    """Sign `record` as the next link of its model's chain and store it; returns it with n, prev,
    signature, run id. A record with `lost` (places a promoter accepts as lost) may skip over a
    place that never got its record; it names every place it skipped."""
    signing.ensure_embedded_key(settings)
    client = setup_mlflow(settings)
    exp_id = ensure_experiment(AUDIT_EXPERIMENT, settings)
    model = str(record["model"])
    for field in ("note", "actor", "purpose"):
        checked_text(str(record.get(field) or ""), f"the audit record's {field}")
    accept_loss = record.get("lost") is not None
    n = 1 + max((_place(r) for r in _records_at(client, exp_id, model)), default=0)
    for _ in range(CLAIM_TRIES):
        prev, skipped = _link(settings, client, exp_id, model, n, accept_loss)
        if _claim(settings, client, model, n, prev):
            break
        n += 1
    else:
        raise ProdganError(
            f"could not claim a place in {model}'s audit chain after {CLAIM_TRIES} tries: "
            f"{CLAIM_TRIES} other promotions wrote first; re-run"
        )
    body = {k: v for k, v in record.items() if k not in UNSIGNED}
    if accept_loss or skipped:
        body["lost"] = sorted({int(p) for p in record.get("lost") or []} | set(skipped))
    body.update(n=n, prev=prev, key_id=signing.key_id(settings))
    body["signature"] = signing.sign(settings, body)
    tags = {f"{AUDIT_TAG}{k}": str(body.get(k) if body.get(k) is not None else "") for k in _TAGGED}
    tags[DATA_HASH] = str(body.get("data_hash") or "")
    for key, value in tags.items():
        checked_text(value, f"audit tag {key}")
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
