"""Promotion and rollback: gather evaluations, apply the gates, move `champion` by compare-and-set, audit.

The CLI (`prodgan promote`, `prodgan rollback`) and the Prefect flows call these functions.
Every decision that acts (approve, reject, force, rollback, or a lost race) writes one audit
record; a dry run and a no-op (the version already is champion) write none, because nothing
was decided: the registry and the audit log stay exactly as they were.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from prodgan import registry, verify
from prodgan.access import require_model_permission
from prodgan.errors import ProdganError
from prodgan.gates import Evaluation, Policy, ProtocolMismatch, check_inputs, judge, load_policy
from prodgan.settings import Settings

SHEET_SEED = 0
SHEET_IMAGES = 10


@dataclass
class Decision:
    action: str  # promote | reject | force | rollback | noop
    model: str
    version: str
    approved: bool
    reasons: list[str]
    champion_before: str | None
    champion_after: str | None
    previous_after: str | None
    actor: str
    at: str
    gates_path: str = ""
    gates_sha256: str = ""
    data_hash: str | None = None
    challenger: dict[str, Any] | None = None
    champion: dict[str, Any] | None = None
    difference: dict[str, Any] | None = None
    checks: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""
    seq: int | None = None
    dry_run: bool = False
    audit_run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_gates_path(settings: Settings) -> Path:
    """`PRODGAN_GATES`, else the project's evaluation/gates.yaml, else the one shipped beside prodgan."""
    if os.environ.get("PRODGAN_GATES"):
        return Path(os.environ["PRODGAN_GATES"])
    project = settings.root / "evaluation" / "gates.yaml"
    return project if project.is_file() else Path(__file__).resolve().parents[1] / "evaluation" / "gates.yaml"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _eval_summary(ev: registry.EvalRun, reevaluated: bool = False) -> dict[str, Any]:
    return {"eval_run_id": ev.run_id, "protocol": ev.protocol, "metrics": ev.metrics, "reevaluated": reevaluated}


def _reevaluate(settings: Settings, mv: Any, like: registry.EvalRun) -> registry.EvalRun:
    """Evaluate `mv` under the protocol of evaluation run `like` (the challenger's), and tag it on `mv`."""
    from prodgan import evaluation_log

    client = registry.client_for(settings)
    resolved = registry.resolve_model(f"models:/{mv.name}/{mv.version}", settings=settings)
    with_evaluator = bool(registry.get_run(client, like.run_id, "evaluation run").data.params.get("evaluator_sha256"))
    result = evaluation_log.evaluate_bundle(settings, resolved.bundle_dir, train_run_id=(mv.tags or {}).get(registry.TRAIN_RUN),
                                            like_run_id=like.run_id, use_evaluator=with_evaluator)
    evaluation = registry.read_eval_run(client, result.run_id)
    if evaluation.protocol != like.protocol:
        raise ProtocolMismatch(f"re-evaluating v{mv.version} gave protocol {evaluation.protocol[:12]}, not the challenger's "
                               f"{like.protocol[:12]}; the evaluation setup changed (weights, data) - re-evaluate both versions")
    registry.attach_evaluation(settings, mv.name, str(mv.version), evaluation, primary=False)
    return evaluation


def _champion_evaluation(settings: Settings, policy: Policy, champion_mv: Any, challenger: registry.EvalRun) -> tuple[registry.EvalRun, bool]:
    """The champion's evaluation under the challenger's protocol; re-evaluated if it has none (policy permitting)."""
    found = registry.version_evaluation(settings, champion_mv, protocol=challenger.protocol)
    if found is not None:
        return found, False
    if policy.on_mismatch == "refuse":
        raise ProtocolMismatch(f"champion v{champion_mv.version} has no evaluation under the challenger's protocol "
                               f"{challenger.protocol[:12]} and {policy.path} says on_mismatch: refuse; evaluate the champion "
                               f"with the same settings (`prodgan evaluate models:/{champion_mv.name}/{champion_mv.version}`) first")
    return _reevaluate(settings, champion_mv, challenger), True


def _paired(settings: Settings, policy: Policy, protocol: str, challenger_mv: Any, champion_mv: Any) -> dict[str, tuple[float, float]]:
    """The paired bootstrap interval of the FID difference, when both generators' features are cached here."""
    rule = policy.rules.get("champion") or {}
    if not champion_mv or rule.get("metric") != "fid":
        return {}
    from prodgan.metrics import fid_delta_from_cache

    keys = [(mv.tags or {}).get(registry.WEIGHTS) for mv in (challenger_mv, champion_mv)]
    interval = fid_delta_from_cache(settings.cache_dir, protocol, *keys, confidence=policy.confidence) if all(keys) else None
    return {"fid": (interval.low, interval.high)} if interval else {}


def _sheet(settings: Settings, name: str, rows: list[tuple[str, str]]) -> Any:
    """Champion vs challenger: the same seed and categories through each generator, one titled row each."""
    import torch

    from prodgan.imaging import labelled_sheet
    from prodgan.models import generate_uint8, load_bundle

    titled = []
    for title, version in rows:
        generator, spec = load_bundle(registry.resolve_model(f"models:/{name}/{version}", settings=settings).bundle_dir)
        labels = torch.arange(SHEET_IMAGES) % spec.num_classes if spec.num_classes else None
        titled.append((title, generate_uint8(generator, spec, SHEET_IMAGES, SHEET_SEED, labels=labels).numpy()))
    return labelled_sheet(titled)


def promote_version(settings: Settings, version: str | int, dry_run: bool = False, actor: str | None = None,
                    gates_path: Path | None = None, force_reason: str | None = None,
                    confirm: Callable[[Decision], bool] | None = None) -> Decision:
    """Decide on `version` against the current champion; on approval move `champion` (compare-and-set).

    Returns the decision (approved or rejected). Raises ProdganError for bad input (unknown
    version, missing metrics, bad gate file, refused protocol mismatch) before anything is written,
    and `registry.ChampionMoved` (after auditing it) when another promotion won the race.
    `force_reason` promotes despite failing gates; the record says so (action `force`).
    `confirm(decision)` is asked before an approved decision moves the alias (False: nothing
    changes, nothing is recorded); the alias may move meanwhile, which compare-and-set catches.
    """
    if not dry_run:
        require_model_permission(settings, "MANAGE", "promote")
    policy = load_policy(gates_path or default_gates_path(settings))
    client = registry.client_for(settings)
    name, version = settings.model_name, str(version)
    mv = registry.get_version(client, name, version)
    verify.require_verified(settings, force=bool(force_reason) and not dry_run, actor=actor, purpose=f"promote v{version}",
                            reason=force_reason or "", version=version)
    state = registry.champion_state(client, name)
    champion_before = state[0]
    who = registry.actor_name(actor)
    base = dict(model=name, version=version, champion_before=champion_before, actor=who, at=_now(),
                gates_path=str(policy.path), gates_sha256=policy.sha256, data_hash=(mv.tags or {}).get(registry.DATA_HASH),
                seq=state[1], dry_run=dry_run)
    if champion_before == version:
        return Decision(action="noop", approved=True, reasons=[f"v{version} already is {registry.CHAMPION}: nothing to do"],
                        champion_after=version, previous_after=_previous(client, name), **base)

    challenger = registry.version_evaluation(settings, mv)
    if challenger is None:
        raise ProdganError(f"v{version} of {name} has no evaluation; run `prodgan evaluate models:/{name}/{version}` first")
    challenger_ev = Evaluation.from_metrics(challenger.protocol, challenger.metrics, f"eval run {challenger.run_id} of v{version}")
    check_inputs(policy, challenger_ev)
    champion_eval, champion_ev, reevaluated = None, None, False
    if champion_before is not None:
        champion_eval, reevaluated = _champion_evaluation(settings, policy, registry.get_version(client, name, champion_before), challenger)
        champion_ev = Evaluation.from_metrics(champion_eval.protocol, champion_eval.metrics,
                                              f"eval run {champion_eval.run_id} of v{champion_before}")
    paired = _paired(settings, policy, challenger.protocol, mv, champion_before and registry.get_version(client, name, champion_before))
    verdict = judge(policy, challenger_ev, champion_ev, paired)
    action = "promote" if verdict.approved else ("force" if force_reason else "reject")
    reasons = verdict.reasons + ([f"FORCED by {who}: {force_reason}"] if action == "force" else [])
    moves = action in ("promote", "force")
    decision = Decision(action=action, approved=moves, reasons=reasons,
                        champion_after=version if moves else champion_before,
                        previous_after=champion_before if moves else _previous(client, name),
                        challenger=_eval_summary(challenger), difference=verdict.difference,
                        champion=_eval_summary(champion_eval, reevaluated) if champion_eval else None,
                        checks=verdict.to_dict()["checks"], note=force_reason or "", **base)
    if dry_run or (moves and confirm is not None and not confirm(decision)):
        decision.dry_run = True
        return decision
    if registry.EVAL_RUN not in (mv.tags or {}):  # evaluated after registration: pin the evaluation this decision used
        registry.attach_evaluation(settings, name, version, challenger)
    sheet_rows = ([(f"champion v{champion_before}", champion_before)] if champion_before else []) + [(f"challenger v{version}", version)]
    sheet = _sheet(settings, name, sheet_rows)
    return _commit(settings, client, decision, state, sheet)


def _commit(settings: Settings, client: Any, decision: Decision, state: tuple[str | None, int], sheet: Any) -> Decision:
    """Move `champion` to `decision.champion_after` if approved, then audit; a lost race is audited, then raised."""
    if decision.approved:
        try:
            decision.seq = registry.move_champion(settings, decision.model, state, decision.champion_after, decision.actor)[1]
        except registry.ChampionMoved as lost:
            decision.action, decision.approved = "reject", False
            decision.champion_after, decision.seq = registry.champion_state(client, decision.model)
            decision.previous_after = _previous(client, decision.model)
            decision.reasons.append(f"FAIL compare-and-set: {lost}")
            decision.audit_run_id = registry.write_audit(settings, decision.to_dict(), sheet)
            raise
    decision.audit_run_id = registry.write_audit(settings, decision.to_dict(), sheet)
    return decision


def _previous(client: Any, name: str) -> str | None:
    mv = registry.alias_version(client, name, registry.PREVIOUS)
    return str(mv.version) if mv is not None else None


def rollback(settings: Settings, actor: str | None = None, reason: str = "") -> Decision:
    """Move `champion` back to `previous` (the old champion becomes `previous`), audited like a promotion."""
    require_model_permission(settings, "MANAGE", "roll back")
    client = registry.client_for(settings)
    name = settings.model_name
    state = registry.champion_state(client, name)
    target = _previous(client, name)
    if state[0] is None or target is None:
        raise ProdganError(f"model {name} has no {'champion' if state[0] is None else 'previous'} alias: nothing to roll back to; "
                           f"see `prodgan audit history`")
    verify.require_verified(settings, actor=actor, purpose="roll back")
    who = registry.actor_name(actor)
    target_mv = registry.get_version(client, name, target)
    sheet = _sheet(settings, name, [(f"champion v{state[0]} (rolled back)", state[0]), (f"restored v{target}", target)])
    decision = Decision(action="rollback", model=name, version=target, approved=True,
                        reasons=[f"rollback by {who}: champion v{state[0]} -> v{target}" + (f" ({reason})" if reason else "")],
                        champion_before=state[0], champion_after=target, previous_after=state[0], actor=who, at=_now(),
                        data_hash=(target_mv.tags or {}).get(registry.DATA_HASH), note=reason, seq=state[1])
    return _commit(settings, client, decision, state, sheet)
