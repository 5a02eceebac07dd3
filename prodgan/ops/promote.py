"""Use cases: register a training run's generator, promote a version through the gates, roll back.

Every decision that acts (approve, reject, force, rollback, or a lost race) writes one audit
record; a dry run and a no-op (the version already is champion) write none, because nothing
was decided: the registry and the audit log stay exactly as they were.
"""

from __future__ import annotations

import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from prodgan.adapters import (
    audit,
    descriptions,
    model_store,
    registry,
    serving,
    signing,
    tracking,
)
from prodgan.adapters.auth import require_model_permission
from prodgan.adapters.production_state import ProductionState
from prodgan.errors import ProdganError
from prodgan.names import (
    CHAMPION,
    CODE_URL,
    CONFIG_SHA,
    DATA_HASH,
    DATASET,
    DEFAULT_DATASET,
    EVAL_RUN,
    GIT_REV,
    IMPORTED_FILE,
    KIND,
    MODEL_KIND,
    SAMPLES_KIND,
    SPEC_SHA,
    TRAIN_RUN,
    VALIDATION,
    WEIGHTS,
    ModelRef,
    parse_model_ref,
    production_model,
)
from prodgan.ops import production
from prodgan.ops.sheet import comparison
from prodgan.ops.verification import require_verified
from prodgan.policy.decision import FORCE, NOOP, PROMOTE, REJECT, ROLLBACK, Decision
from prodgan.policy.gate_file import Policy, load_policy
from prodgan.policy.gates import Evaluation, ProtocolMismatch, check_inputs, judge
from prodgan.settings import Settings


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
        (MODEL_KIND, "model_kind"),
        (CODE_URL, "code_url"),
        (SPEC_SHA, "spec_sha256"),
        (IMPORTED_FILE, "imported_file"),
    ):
        value = run_tags.get(key) or extra.get(extra_key)
        if value:
            tags[key] = str(value)
    return tags


def register(settings: Settings, train_run_id: str, eval_run_id: str | None = None):
    """Register the training run's generator as a version of its dataset's model (idempotent by
    run id)."""
    with tracking.reachable(settings, f"registering training run {train_run_id}"):
        client = registry.client_for(settings)
        train_run = tracking.get_run(client, train_run_id, "training run")
        settings = settings.for_dataset(train_run.data.tags.get(DATASET, DEFAULT_DATASET))
        name = settings.model_name
        if train_run.info.status != "FINISHED":
            raise ProdganError(
                f"training run {train_run_id} is {train_run.info.status}, not FINISHED: "
                f"only a finished run's generator can be registered; "
                f"resume it with `prodgan train --resume` or pick another run"
            )
        evaluation = (
            registry.read_eval_run(client, eval_run_id)
            if eval_run_id
            else registry.latest_eval_run(settings, train_run_id)
        )
        if evaluation is not None:
            evaluation.require_model(f"training run {train_run_id}")
        existing = registry.version_by_train_run(client, name, train_run_id)
        if existing is None:
            settings.tmp_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=settings.tmp_dir) as tmp:
                bundle_dir = model_store.download_run_bundle(client, train_run_id, Path(tmp))
                model_uri = serving.log_generator(client, train_run, bundle_dir)
                files = serving.stored_file_hashes(model_uri, Path(tmp) / "logged")
                tags = {
                    **_lineage_tags(train_run, bundle_dir),
                    **registry.store_file_map(client, train_run_id, files),
                }
            if evaluation is not None:
                registry.check_same_weights(
                    evaluation, tags[WEIGHTS], f"training run {train_run_id}"
                )
            existing = registry.register_version(client, name, model_uri, train_run_id, tags)
        # also completes a version whose registration was killed before its description
        if not existing.description:
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
    state: ProductionState, policy: Policy, champion_mv: Any, challenger: registry.EvalRun
) -> tuple[registry.EvalRun, bool]:
    """The champion's evaluation under the challenger's protocol; re-evaluated if it has none
    (policy permitting)."""
    from prodgan.ops.evaluate import evaluate

    settings = state.settings
    found = registry.version_evaluation(settings, champion_mv, protocol=challenger.protocol)
    if found is not None:
        return found, False
    where = f"models:/{champion_mv.name}/{champion_mv.version}"
    if policy.on_mismatch == "refuse":
        raise ProtocolMismatch(
            f"champion v{champion_mv.version} has no evaluation under the challenger's protocol "
            f"{challenger.protocol[:12]} and {policy.path} says on_mismatch: refuse; evaluate "
            f"the champion with the same settings (`prodgan evaluate {where}`) first"
        )
    champion_ref = ModelRef(name=champion_mv.name, alias=CHAMPION)
    run = evaluate(settings, champion_ref, like_run_id=challenger.run_id)
    if run.protocol != challenger.protocol:
        raise ProtocolMismatch(
            f"re-evaluating v{champion_mv.version} gave protocol {run.protocol[:12]}, not the "
            f"challenger's {challenger.protocol[:12]}; the evaluation setup changed (weights, "
            f"data) - re-evaluate both versions"
        )
    return registry.read_eval_run(state.client, run.run_id), True


def _paired(
    settings: Settings, policy: Policy, protocol: str, challenger_mv: Any, champion_mv: Any
) -> dict[str, tuple[float, float]]:
    """The paired bootstrap interval of the FID difference, when both generators' features are
    cached here."""
    rule = policy.rules.get("champion") or {}
    if not champion_mv or rule.get("metric") != "fid":
        return {}
    from prodgan.metrics import fid_delta_from_cache

    keys = [(mv.tags or {}).get(WEIGHTS) for mv in (challenger_mv, champion_mv)]
    if not all(keys):
        return {}
    interval = fid_delta_from_cache(
        settings.cache_dir, protocol, *keys, confidence=policy.confidence
    )
    return {"fid": (interval.low, interval.high)} if interval else {}


def promote(
    settings: Settings,
    version: str | int,
    dry_run: bool = False,
    actor: str | None = None,
    gates_path: Path | None = None,
    force_reason: str | None = None,
    confirm: Callable[[Decision], bool] | None = None,
) -> Decision:
    """Decide on `version` against the current champion; on approval move `champion`
    (compare-and-set).

    Returns the decision (approved or rejected). Raises ProdganError for bad input (unknown
    version, missing metrics, bad gate file, refused protocol mismatch) before anything is written,
    and ChampionMoved (after auditing it) when another promotion won the race. `force_reason`
    promotes despite failing gates; the record says so (action `force`). `confirm(decision)` is
    asked before an approved decision moves the alias (False: nothing changes, nothing is recorded).
    """
    _checked_words(actor=actor, force_reason=force_reason)
    with tracking.reachable(settings, f"promoting version {version}"):
        state, number = _trained_version(settings, str(version))
        return _promote(state, number, dry_run, actor, gates_path, force_reason, confirm)


def _checked_words(**words: str | None) -> None:
    """A person's own words (`--actor`, `--force REASON`, `--reason`) go into MLflow tags and the
    signed record: NULs and oversized text are refused before anything is read or written."""
    for option, text in words.items():
        if text:
            tracking.checked_text(text, f"--{option.replace('_', '-')}")


def _trained_version(settings: Settings, text: str) -> tuple[ProductionState, str]:
    """`3`, `models:/NAME/3`, `NAME@ALIAS`...: the production state of the trained model it names
    (a bare number: `settings.model_name`'s) and the version number."""
    ref = parse_model_ref(text, settings.model_name)
    if ref.run_id and tracking.run_tag(settings, ref.run_id, KIND) == SAMPLES_KIND:
        registry.read_eval_run(registry.client_for(settings), ref.run_id).require_model(
            f"promote {text}"
        )
    if ref.name is None or ref.name == production_model(ref.name):
        raise ProdganError(
            f"{text!r} is not a trained version: promote a version of a trained model "
            f"(models:/{settings.model_name}/3), never a production copy or a run"
        )
    state, ref = ProductionState.for_ref(settings, ref)
    number = str(state.version(ref).version) if ref.alias else str(ref.version)
    if text.strip().isdigit():
        _require_bare_version(settings, state, number)
    return state, number


def _require_bare_version(settings: Settings, state: ProductionState, number: str) -> None:
    """A bare number names a version of the default dataset's model: when that has no such
    version, say so and name the other datasets' models (each dataset has its own)."""
    try:
        state.trained(number)
    except ProdganError as exc:
        others = registry.dataset_models(state.client, settings.model_family)
        hint = (
            f"; a bare number names a version of {state.model}, the {DEFAULT_DATASET} dataset's "
            "model: "
            + (
                f"other datasets' models are {', '.join(others)} "
                f"(e.g. `prodgan promote models:/{others[0]}/{number}`)"
                if others
                else "no other dataset has a model yet"
            )
        )
        raise ProdganError(f"{exc}{hint}") from None


def _promote(
    state: ProductionState,
    version: str,
    dry_run: bool,
    actor: str | None,
    gates_path: Path | None,
    force_reason: str | None,
    confirm: Callable[[Decision], bool] | None,
) -> Decision:
    settings, name, aliases = state.settings, state.model, state.aliases
    if not dry_run:
        require_model_permission(settings, "MANAGE", "promote")
    policy = load_policy(gates_path or settings.gates_path)
    mv = state.trained(version)
    require_verified(
        state,
        force=bool(force_reason) and not dry_run,
        actor=actor,
        purpose=f"promote v{version}",
        reason=force_reason or "",
        version=version,
    )
    if not dry_run:  # before anything is published: a refused key leaves nothing behind
        signing.require_signer(settings, f"promote v{version}")
    champion_before = aliases.champion
    who = audit.actor_name(settings, actor)
    decision = Decision(
        action=NOOP,
        model=name,
        version=version,
        champion_before=champion_before,
        actor=who,
        at=_now(),
        gates_path=str(policy.path),
        gates_sha256=policy.sha256,
        data_hash=(mv.tags or {}).get(DATA_HASH),
        seq=aliases.seq,
        dry_run=dry_run,
    )
    if champion_before == version:
        decision.approved, decision.champion_after = True, version
        decision.previous_after = aliases.previous
        decision.notes = [f"v{version} already is {CHAMPION}: nothing to do"]
        return decision

    challenger = registry.version_evaluation(settings, mv)
    if challenger is None:
        raise ProdganError(
            f"v{version} of {name} has no evaluation; run "
            f"`prodgan evaluate models:/{name}/{version}` first"
        )
    staged = state.resolve(ModelRef(name=name, version=version))  # content checked on read
    production.trusted(settings, challenger, staged.tags.get(WEIGHTS), f"v{version} of {name}")
    challenger_ev = Evaluation.from_metrics(
        challenger.protocol, challenger.metrics, f"eval run {challenger.run_id} of v{version}"
    )
    check_inputs(policy, challenger_ev)
    champion_mv = state.trained(champion_before) if champion_before else None
    champion_eval, champion_ev, reevaluated = None, None, False
    if champion_mv is not None:
        champion_eval, reevaluated = _champion_evaluation(state, policy, champion_mv, challenger)
        serving_now = state.resolve(ModelRef(name=name, alias=CHAMPION))
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
    paired = _paired(settings, policy, challenger.protocol, mv, champion_mv)
    verdict = judge(policy, challenger_ev, champion_ev, paired)
    if verdict.approved:
        decision.action = PROMOTE
    else:
        decision.action = FORCE if force_reason else REJECT
    decision.approved = decision.action in (PROMOTE, FORCE)
    decision.checks = list(verdict.checks)
    if decision.action == FORCE:
        decision.notes = [f"FORCED by {who}: {force_reason}"]
    decision.champion_after = version if decision.approved else champion_before
    decision.previous_after = champion_before if decision.approved else aliases.previous
    decision.challenger = challenger.summary()
    decision.champion = champion_eval.summary(reevaluated) if champion_eval else None
    decision.difference = verdict.difference
    decision.note = force_reason or ""

    rows = [("challenger", version, decision.challenger)]
    if champion_before:
        rows.insert(0, ("champion", champion_before, decision.champion))
    sheet, path = comparison(state, decision, rows)
    decision.sheet = str(path)
    if dry_run or (decision.approved and confirm is not None and not confirm(decision)):
        decision.dry_run = True
        return decision
    if EVAL_RUN not in (mv.tags or {}):  # evaluated after registration: pin what was decided on
        registry.attach_evaluation(settings, name, version, challenger)
    publish = None
    if decision.approved:

        def publish() -> tuple[str, str, dict[str, str]]:
            return production.copy_to_production(settings, staged, challenger.weights_sha256)

    return production.commit(state, decision, sheet, publish)


def rollback(settings: Settings, actor: str | None = None, reason: str = "") -> Decision:
    """Move `champion` back to `previous` (the old champion becomes `previous`), audited like a
    promotion."""
    _checked_words(actor=actor, reason=reason)
    with tracking.reachable(settings, "rolling back"):
        require_model_permission(settings, "MANAGE", "roll back")
        state = ProductionState.read(settings)
        name, aliases = state.model, state.aliases
        target = aliases.previous
        if aliases.champion is None or target is None:
            missing = "champion" if aliases.champion is None else "previous"
            raise ProdganError(
                f"model {name} has no {missing} alias: nothing to roll back to; "
                f"see `prodgan audit history`"
            )
        require_verified(state, actor=actor, purpose="roll back")
        signing.require_signer(settings, "roll back")
        who = audit.actor_name(settings, actor)
        why = f"rollback by {who}: champion v{aliases.champion} -> v{target}"
        decision = Decision(
            action=ROLLBACK,
            model=name,
            version=target,
            approved=True,
            notes=[why + (f" ({reason})" if reason else "")],
            champion_before=aliases.champion,
            champion_after=target,
            previous_after=aliases.champion,
            actor=who,
            at=_now(),
            data_hash=(state.trained(target).tags or {}).get(DATA_HASH),
            note=reason,
            seq=aliases.seq,
        )
        rows = [("rolled back", aliases.champion, None), ("restored", target, None)]
        sheet, path = comparison(state, decision, rows)
        decision.sheet = str(path)
        restored = production.reuse_production(state, aliases.previous_version)
        return production.commit(state, decision, sheet, restored)
