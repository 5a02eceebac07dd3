"""Use cases: register a training run's generator, promote a version through the gates, roll back.

Every decision that acts (approve, reject, force, rollback, or a lost race) writes one audit
record; a dry run and a no-op (the version already is champion) write none, because nothing
was decided: the registry and the audit log stay exactly as they were.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from prodgan.adapters import (
    audit,
    audit_verify,
    descriptions,
    model_store,
    registry,
    serving,
    tracking,
)
from prodgan.adapters.auth import require_model_permission
from prodgan.errors import ProdganError
from prodgan.gate_file import Policy, load_policy
from prodgan.gates import Evaluation, ProtocolMismatch, check_inputs, judge
from prodgan.names import (
    CHAMPION,
    CONFIG_SHA,
    DATA_HASH,
    DATASET,
    DEFAULT_DATASET,
    EVAL_RUN,
    GIT_REV,
    MODEL_FILES,
    TRAIN_RUN,
    VALIDATION,
    WEIGHTS,
    ModelRef,
    parse_model_ref,
    production_model,
)
from prodgan.ops import production
from prodgan.settings import Settings

SHEET_SEED = 0
SHEET_PER_CATEGORY = 8
SHEET_SCALE = 4  # 28x28 products become 112x112: visible


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
    sheet: str | None = (
        None  # the champion-vs-challenger sheet, a local PNG (also logged to the audit run)
    )
    production_version: str | None = None  # the promoter's copy `champion` points to after a move
    production_previous: str | None = None
    weights_sha256: str | None = None  # of the copied generator.pt, hashed by the promoter
    model_files: dict[str, str] | None = (
        None  # every file of the copy as stored, hashed by the promoter
    )
    phase: str = "final"  # pending: written before the alias moves, closed by a `done` record after

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------- registration


def _lineage_tags(train_run: Any, bundle_dir: Path) -> dict[str, str]:
    from prodgan.models.bundle import read_bundle_record

    record = read_bundle_record(bundle_dir)
    run_tags, extra = train_run.data.tags, record.get("extra") or {}
    tags = {TRAIN_RUN: train_run.info.run_id, WEIGHTS: record["weights_sha256"]}
    for key, extra_key in (
        (DATA_HASH, "data_hash"),
        (GIT_REV, "git_rev"),
        (VALIDATION, "validation"),
        (CONFIG_SHA, "config_sha256"),
    ):
        value = run_tags.get(key) or extra.get(extra_key)
        if value:
            tags[key] = str(value)
    return tags


def register(settings: Settings, train_run_id: str, eval_run_id: str | None = None):
    """Register the training run's generator as a version of its dataset's model (idempotent by run id)."""
    with tracking.reachable(settings, f"registering training run {train_run_id}"):
        client = registry.client_for(settings)
        train_run = tracking.get_run(client, train_run_id, "training run")
        settings = settings.for_dataset(train_run.data.tags.get(DATASET, DEFAULT_DATASET))
        name = settings.model_name
        if train_run.info.status != "FINISHED":
            raise ProdganError(
                f"training run {train_run_id} is {train_run.info.status}, not FINISHED: only a finished run's "
                f"generator can be registered; resume it with `prodgan train --resume` or pick another run"
            )
        evaluation = (
            registry.read_eval_run(client, eval_run_id)
            if eval_run_id
            else registry.latest_eval_run(settings, train_run_id)
        )
        existing = registry.version_by_train_run(client, name, train_run_id)
        if existing is None:
            settings.tmp_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=settings.tmp_dir) as tmp:
                bundle_dir = model_store.download_run_bundle(client, train_run_id, Path(tmp))
                model_uri = serving.log_generator(client, train_run, bundle_dir)
                tags = {
                    **_lineage_tags(train_run, bundle_dir),
                    MODEL_FILES: serving.stored_file_hashes(model_uri, Path(tmp) / "logged"),
                }
            if evaluation is not None:
                registry.check_same_weights(
                    evaluation, tags[WEIGHTS], f"training run {train_run_id}"
                )
            existing = registry.register_version(client, name, model_uri, train_run_id, tags)
            descriptions.describe_version(client, name, str(existing.version))
        if evaluation is not None:
            registry.attach_evaluation(
                settings,
                name,
                existing.version,
                evaluation,
                primary=EVAL_RUN not in (existing.tags or {}) or bool(eval_run_id),
            )
        return client.get_model_version(name, existing.version)


# ---------------------------------------------------------------- promotion


def _champion_evaluation(
    settings: Settings, policy: Policy, champion_mv: Any, challenger: registry.EvalRun
) -> tuple[registry.EvalRun, bool]:
    """The champion's evaluation under the challenger's protocol; re-evaluated if it has none (policy permitting)."""
    from prodgan.ops.evaluate import evaluate

    found = registry.version_evaluation(settings, champion_mv, protocol=challenger.protocol)
    if found is not None:
        return found, False
    if policy.on_mismatch == "refuse":
        raise ProtocolMismatch(
            f"champion v{champion_mv.version} has no evaluation under the challenger's protocol "
            f"{challenger.protocol[:12]} and {policy.path} says on_mismatch: refuse; evaluate the champion "
            f"with the same settings (`prodgan evaluate models:/{champion_mv.name}/{champion_mv.version}`) first"
        )
    run = evaluate(
        settings, ModelRef(name=champion_mv.name, alias=CHAMPION), like_run_id=challenger.run_id
    )
    if run.protocol != challenger.protocol:
        raise ProtocolMismatch(
            f"re-evaluating v{champion_mv.version} gave protocol {run.protocol[:12]}, not the challenger's "
            f"{challenger.protocol[:12]}; the evaluation setup changed (weights, data) - re-evaluate both versions"
        )
    return registry.read_eval_run(registry.client_for(settings), run.run_id), True


def _paired(
    settings: Settings, policy: Policy, protocol: str, challenger_mv: Any, champion_mv: Any
) -> dict[str, tuple[float, float]]:
    """The paired bootstrap interval of the FID difference, when both generators' features are cached here."""
    rule = policy.rules.get("champion") or {}
    if not champion_mv or rule.get("metric") != "fid":
        return {}
    from prodgan.metrics import fid_delta_from_cache

    keys = [(mv.tags or {}).get(WEIGHTS) for mv in (challenger_mv, champion_mv)]
    interval = (
        fid_delta_from_cache(settings.cache_dir, protocol, *keys, confidence=policy.confidence)
        if all(keys)
        else None
    )
    return {"fid": (interval.low, interval.high)} if interval else {}


def _title(label: str, version: str, evaluation: dict[str, Any] | None) -> str:
    return f"{label} v{version}  {descriptions.headline((evaluation or {}).get('metrics') or {})}".rstrip()


def _sheet(
    settings: Settings, decision: Decision, rows: list[tuple[str, str, dict[str, Any] | None]]
) -> tuple[Any, Path]:
    """Champion vs challenger, category by category: the same seed and labels through each generator.

    Written under `<home>/sheets/` before anyone is asked to confirm, and returned for the audit run.
    """
    import torch

    from prodgan.imaging import comparison_sheet, save_png
    from prodgan.models import generate_uint8, load_bundle

    models, categories = [], ()
    for label, version, evaluation in rows:
        generator, spec = load_bundle(
            model_store.resolve_model(
                settings, ModelRef(name=decision.model, version=version)
            ).bundle_dir
        )
        labels = (
            torch.arange(max(spec.num_classes, 1)).repeat_interleave(SHEET_PER_CATEGORY)
            if spec.num_classes
            else None
        )
        n = SHEET_PER_CATEGORY * max(spec.num_classes, 1)
        models.append(
            (
                _title(label, version, evaluation),
                generate_uint8(generator, spec, n, SHEET_SEED, labels=labels).numpy(),
                None if labels is None else labels.numpy(),
            )
        )
        categories = spec.categories
    sheet = comparison_sheet(models, categories, per_category=SHEET_PER_CATEGORY, scale=SHEET_SCALE)
    versions = "-vs-".join(f"v{version}" for _, version, _ in rows)
    path = save_png(
        settings.home / "sheets" / f"{decision.model}-{decision.action}-{versions}.png", sheet
    )
    return sheet, path


def promote(
    settings: Settings,
    version: str | int,
    dry_run: bool = False,
    actor: str | None = None,
    gates_path: Path | None = None,
    force_reason: str | None = None,
    confirm: Callable[[Decision], bool] | None = None,
) -> Decision:
    """Decide on `version` against the current champion; on approval move `champion` (compare-and-set).

    Returns the decision (approved or rejected). Raises ProdganError for bad input (unknown
    version, missing metrics, bad gate file, refused protocol mismatch) before anything is written,
    and ChampionMoved (after auditing it) when another promotion won the race. `force_reason`
    promotes despite failing gates; the record says so (action `force`). `confirm(decision)` is
    asked before an approved decision moves the alias (False: nothing changes, nothing is recorded).
    """
    with tracking.reachable(settings, f"promoting version {version}"):
        settings, number = _version_number(settings, str(version))
        return _promote(settings, number, dry_run, actor, gates_path, force_reason, confirm)


def _version_number(settings: Settings, text: str) -> tuple[Settings, str]:
    """`3`, `models:/NAME/3`, `NAME@ALIAS`...: the trained model it names (a bare number: `settings.model_name`'s) and the number."""
    ref = parse_model_ref(text, settings.model_name)
    if ref.name is None or ref.name == production_model(ref.name):
        raise ProdganError(
            f"{text!r} is not a trained version: promote a version of a trained model "
            f"(models:/{settings.model_name}/3), never a production copy or a run"
        )
    settings = settings.for_model(ref.name)
    return settings, str(registry.find_version(settings, ref).version) if ref.alias else str(
        ref.version
    )


def _promote(
    settings: Settings,
    version: str,
    dry_run: bool,
    actor: str | None,
    gates_path: Path | None,
    force_reason: str | None,
    confirm: Callable[[Decision], bool] | None,
) -> Decision:
    if not dry_run:
        require_model_permission(settings, "MANAGE", "promote")
    policy = load_policy(gates_path or settings.gates_path)
    client, name = registry.client_for(settings), settings.model_name
    mv = registry.get_version(client, name, version)
    audit_verify.require_verified(
        settings,
        force=bool(force_reason) and not dry_run,
        actor=actor,
        purpose=f"promote v{version}",
        reason=force_reason or "",
        version=version,
    )
    state = registry.production_state(client, name)
    champion_before = state.champion
    who = audit.actor_name(settings, actor)
    base = dict(
        model=name,
        version=version,
        champion_before=champion_before,
        actor=who,
        at=_now(),
        gates_path=str(policy.path),
        gates_sha256=policy.sha256,
        data_hash=(mv.tags or {}).get(DATA_HASH),
        seq=state.seq,
        dry_run=dry_run,
    )
    if champion_before == version:
        return Decision(
            action="noop",
            approved=True,
            reasons=[f"v{version} already is {CHAMPION}: nothing to do"],
            champion_after=version,
            previous_after=state.previous,
            **base,
        )

    challenger = registry.version_evaluation(settings, mv)
    if challenger is None:
        raise ProdganError(
            f"v{version} of {name} has no evaluation; run `prodgan evaluate models:/{name}/{version}` first"
        )
    staged = model_store.resolve_model(
        settings, ModelRef(name=name, version=version)
    )  # content checked on read
    production.trusted(settings, challenger, staged.tags.get(WEIGHTS), f"v{version} of {name}")
    challenger_ev = Evaluation.from_metrics(
        challenger.protocol, challenger.metrics, f"eval run {challenger.run_id} of v{version}"
    )
    check_inputs(policy, challenger_ev)
    champion_mv = registry.get_version(client, name, champion_before) if champion_before else None
    champion_eval, champion_ev, reevaluated = None, None, False
    if champion_mv is not None:
        champion_eval, reevaluated = _champion_evaluation(settings, policy, champion_mv, challenger)
        serving_now = model_store.resolve_model(settings, ModelRef(name=name, alias=CHAMPION))
        production.trusted(
            settings,
            champion_eval,
            serving_now.tags.get(WEIGHTS),
            f"champion v{champion_before} of {name}",
        )
        champion_ev = Evaluation.from_metrics(
            champion_eval.protocol,
            champion_eval.metrics,
            f"eval run {champion_eval.run_id} of v{champion_before}",
        )
    verdict = judge(
        policy,
        challenger_ev,
        champion_ev,
        _paired(settings, policy, challenger.protocol, mv, champion_mv),
    )
    action = "promote" if verdict.approved else ("force" if force_reason else "reject")
    reasons = verdict.reasons + ([f"FORCED by {who}: {force_reason}"] if action == "force" else [])
    moves = action in ("promote", "force")
    decision = Decision(
        action=action,
        approved=moves,
        reasons=reasons,
        champion_after=version if moves else champion_before,
        previous_after=champion_before if moves else state.previous,
        challenger=challenger.summary(),
        difference=verdict.difference,
        champion=champion_eval.summary(reevaluated) if champion_eval else None,
        checks=verdict.to_dict()["checks"],
        note=force_reason or "",
        **base,
    )
    rows = ([("champion", champion_before, decision.champion)] if champion_before else []) + [
        ("challenger", version, decision.challenger)
    ]
    sheet, path = _sheet(settings, decision, rows)
    decision.sheet = str(path)
    if dry_run or (moves and confirm is not None and not confirm(decision)):
        decision.dry_run = True
        return decision
    if EVAL_RUN not in (
        mv.tags or {}
    ):  # evaluated after registration: pin the evaluation this decision used
        registry.attach_evaluation(settings, name, version, challenger)
    publish = (
        (lambda: production.copy_to_production(settings, staged, challenger.weights_sha256))
        if moves
        else None
    )
    return production.commit(settings, client, decision, state, sheet, publish)


def rollback(settings: Settings, actor: str | None = None, reason: str = "") -> Decision:
    """Move `champion` back to `previous` (the old champion becomes `previous`), audited like a promotion."""
    with tracking.reachable(settings, "rolling back"):
        require_model_permission(settings, "MANAGE", "roll back")
        client, name = registry.client_for(settings), settings.model_name
        state = registry.production_state(client, name)
        target = state.previous
        if state.champion is None or target is None:
            raise ProdganError(
                f"model {name} has no {'champion' if state.champion is None else 'previous'} alias: nothing "
                f"to roll back to; see `prodgan audit history`"
            )
        audit_verify.require_verified(settings, actor=actor, purpose="roll back")
        who = audit.actor_name(settings, actor)
        target_mv = registry.get_version(client, name, target)
        decision = Decision(
            action="rollback",
            model=name,
            version=target,
            approved=True,
            reasons=[
                f"rollback by {who}: champion v{state.champion} -> v{target}"
                + (f" ({reason})" if reason else "")
            ],
            champion_before=state.champion,
            champion_after=target,
            previous_after=state.champion,
            actor=who,
            at=_now(),
            data_hash=(target_mv.tags or {}).get(DATA_HASH),
            note=reason,
            seq=state.seq,
        )
        sheet, path = _sheet(
            settings, decision, [("rolled back", state.champion, None), ("restored", target, None)]
        )
        decision.sheet = str(path)
        return production.commit(
            settings,
            client,
            decision,
            state,
            sheet,
            production.reuse_production(settings, name, state.previous_version),
        )
