"""Moving `champion`: the promoter's copy, the fenced transition, and its pending/done audit
records.

Shared by promotion and rollback (`prodgan.ops.promote`); the faces never call this directly.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Callable

from prodgan.adapters import audit, descriptions, lineage, model_store, registry, serving, tracking
from prodgan.adapters.production_state import ProductionState
from prodgan.errors import ChampionMoved, ProdganError
from prodgan.names import EVAL_EXPERIMENT, MODEL_FILES_SHA, WEIGHTS
from prodgan.policy.decision import REJECT, Decision
from prodgan.policy.files import canonical_file_map, file_map_sha256
from prodgan.policy.gates import Check
from prodgan.settings import Settings

Publish = Callable[
    [], tuple[str, str, dict[str, str]]
]  # -> (model URI, weights sha256, every stored file's sha256)


def trusted(
    settings: Settings, evaluation: registry.EvalRun, weights: str | None, what: str
) -> None:
    """Refuse an evaluation the gates must not read: not of these exact weights, or not in the
    evaluation experiment (which, on a server with roles, only promoters may write: a trainer
    cannot log metrics into it)."""
    evaluation.require_model(what)
    exp = registry.client_for(settings).get_experiment_by_name(EVAL_EXPERIMENT)
    if exp is None or evaluation.experiment_id != exp.experiment_id:
        raise ProdganError(
            f"{what}: evaluation run {evaluation.run_id} "
            f"is not in the {EVAL_EXPERIMENT} experiment; "
            f"the gates read only evaluations made there (`prodgan evaluate` as a promoter)"
        )
    if not weights or evaluation.weights_sha256 != weights:
        raise ProdganError(
            f"{what}: evaluation run {evaluation.run_id} "
            f"evaluated weights {str(evaluation.weights_sha256)[:12]}, "
            f"but the stored generator hashes to {str(weights)[:12]}; "
            f"re-evaluate it (`prodgan evaluate`)"
        )


def copy_to_production(
    settings: Settings, staged: model_store.ResolvedModel, evaluated: str | None
) -> tuple[str, str, dict[str, str]]:
    """Log the evaluated bundle with prodgan's own model code under the promoter-only experiment:
    (model URI, weights sha256, every stored file's sha256), all hashed here from the promoter's
    copy."""
    from prodgan.fsutil import sha256_file
    from prodgan.models.bundle import read_bundle_record, weights_file

    name = weights_file(read_bundle_record(staged.bundle_dir))
    weights = sha256_file(staged.bundle_dir / name)
    if weights != evaluated:
        raise ProdganError(
            f"v{staged.version}: the downloaded {name} hashes to {weights[:12]}, "
            f"not the evaluated {str(evaluated)[:12]}; it changed during the promotion: re-run it"
        )
    uri = serving.log_production(settings, staged.bundle_dir)
    settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.tmp_dir) as tmp:
        files = json.loads(serving.stored_file_hashes(uri, Path(tmp)))
    return uri, weights, files


def commit(
    state: ProductionState, decision: Decision, sheet: Any, publish: Publish | None
) -> Decision:
    """Move `champion` to `decision.champion_after` if approved, audited before (pending) and after
    (done).

    The promoter's copy is made first, then the transition is fenced (one production version per
    move), then recorded as pending, then the aliases move, then the record is closed. A lost race
    is audited as a rejection, then raised.
    """
    settings, aliases = state.settings, state.aliases
    if not decision.approved:
        decision.audit_run_id = audit.write_audit(settings, decision.to_dict(), sheet)
        _describe(state.client, decision)
        return decision
    try:
        uri, decision.weights_sha256, decision.model_files = publish()
        decision.production_version = registry.fence(
            settings,
            decision.model,
            (aliases.champion, aliases.seq),
            decision.champion_after,
            uri,
            {
                WEIGHTS: decision.weights_sha256,
                MODEL_FILES_SHA: file_map_sha256(canonical_file_map(decision.model_files)),
            },
        )
    except ChampionMoved as lost:
        _record_lost_race(state, decision, sheet, lost)
        raise
    decision.seq = int(decision.production_version)
    decision.production_previous = aliases.champion_version
    decision.phase = "pending"
    try:
        pending = audit.append(settings, decision.to_dict(), sheet)
    except BaseException:  # no record names it: the fenced version is withdrawn, never orphaned
        registry.withdraw_production_version(
            state.client, decision.model, decision.production_version
        )
        raise
    decision.audit_run_id = pending["audit_run_id"]
    registry.set_production_aliases(
        state.client, decision.model, decision.production_version, aliases.champion_version
    )
    audit.mark_done(settings, pending)
    _describe(state.client, decision)
    lineage.describe_production(settings, state.client, decision)
    lineage.mark_champion(state.client, decision)
    return decision


def _record_lost_race(
    state: ProductionState, decision: Decision, sheet: Any, lost: ChampionMoved
) -> None:
    """Audit a decision that lost the compare-and-set as the rejection it became."""
    now = registry.production_state(state.client, decision.model)  # after a race: read again
    decision.action, decision.approved = REJECT, False
    decision.champion_after, decision.previous_after, decision.seq = (
        now.champion,
        now.previous,
        now.seq,
    )
    decision.production_version = decision.weights_sha256 = decision.model_files = None
    decision.checks.append(Check("compare-and-set", False, str(lost)))
    decision.audit_run_id = audit.write_audit(state.settings, decision.to_dict(), sheet)


def _describe(client: Any, decision: Decision) -> None:
    """The trained version's description names the decision; its logged model lives in the
    trainer's experiment, where a promoter may not write (403): the description is a UI
    convenience, the audit record is the evidence."""
    with tracking.unless_forbidden():
        descriptions.describe_version(client, decision.model, decision.version, decision)


def reuse_production(state: ProductionState, production_version: str) -> Publish:
    """A rollback publishes nothing new: the restored copy's files, as its signed record states."""

    def publish() -> tuple[str, str, dict[str, str]]:
        record = state.record_for(production_version)
        source = state.client.get_model_version(state.production, production_version).source
        return source, record["weights_sha256"], record["model_files"]

    return publish
