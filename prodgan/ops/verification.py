"""Tamper evidence before anyone acts: the chain, the aliases and the stored files, checked once.

`verify` replays the signed chain against the registry (the rules are `prodgan.policy.chain`)
and hashes the files behind the aliases and the trained versions asked for. `prodgan audit
verify` hashes fresh downloads (what a plain MLflow client would load); the guard
`require_verified`, which `promote`, `rollback`, `generate`, `serve`, `edit` and the retrain flow
call first, hashes the content-addressed local copies the command is about to load, so verified
files are the loaded files and nothing is downloaded twice.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable

from prodgan.adapters import audit, model_store, registry
from prodgan.adapters.production_state import ProductionState, foreign_code
from prodgan.errors import GateFailed, ProdganError
from prodgan.names import CHAMPION, PREVIOUS, WEIGHTS
from prodgan.policy import chain
from prodgan.policy.chain import Finding, Report
from prodgan.policy.decision import BYPASS, FORCE, Decision
from prodgan.settings import Settings

Progress = Callable[[int, int], None]


def _no_progress(_done: int, _total: int) -> None:
    return None


def verify(
    where: Settings | ProductionState,
    all_versions: bool = True,
    include: tuple[str, ...] = (),
    progress: Progress = _no_progress,
    fresh: bool = True,
) -> Report:
    """Check the chain, replay it against the registry; hash production and every (or the
    `include`d) trained version. `fresh`: hash new downloads, else the verified local copies."""
    state = where if isinstance(where, ProductionState) else ProductionState.read(where)
    aliases = state.aliases
    report = Report(
        state.model,
        champion=aliases.champion,
        previous=aliases.previous,
        records=len(state.records),
        decisions=len(state.decisions),
    )
    head = aliases.head if aliases.seq or state.records else None
    key = str(state.settings.audit_public_key_path)
    report.findings += chain.check_chain(state.records, state.signed, head, state.head_signed, key)
    report.lost = chain.lost_notes(state.records, state.signed)
    report.findings += chain.check_aliases(state.decisions, aliases.champion, aliases.previous)
    report.findings += chain.check_production_aliases(
        state.decisions, state.production, aliases.champion_version, aliases.previous_version
    )
    if fresh:  # what plain MLflow clients would follow; prodgan never does, so it blocks nothing
        report.findings += _trained_alias_findings(state)
    report.findings += _production_findings(state, fresh)
    if all_versions:
        versions = state.client.search_model_versions(f"name = '{state.model}'")
    else:
        versions = [state.trained(v) for v in sorted(set(include), key=int)]
    ordered = sorted(versions, key=lambda mv: int(mv.version))
    report.hashed, trained_findings = _trained_findings(state, ordered, fresh, progress)
    report.findings += trained_findings
    return report


def _trained_alias_findings(state: ProductionState) -> list[Finding]:
    """`champion`/`previous` set on the trained model: prodgan never sets them there (they live on
    the production twin), so a trainer did, and a plain MLflow client of that alias would load
    trainer-writable files."""
    return [
        Finding(
            version,
            f"alias {alias} is set on the trained model {state.model} (prodgan keeps it only on "
            f"{state.production}): a plain MLflow client of models:/{state.model}@{alias} loads "
            f"trainer-writable files; delete the alias (`MlflowClient().delete_registered_model_"
            f"alias('{state.model}', '{alias}')`)",
        )
        for alias, version in sorted(registry.trained_aliases(state.client, state.model).items())
        if alias in (CHAMPION, PREVIOUS)
    ]


def _production_findings(state: ProductionState, fresh: bool) -> list[Finding]:
    """Production copies behind the aliases whose files differ from the promoter's signed record."""
    findings: list[Finding] = []
    held = {v for v in (state.aliases.champion_version, state.aliases.previous_version) if v}
    for version in sorted(held, key=int):
        source = f"models:/{state.production}/{version}"
        try:
            record, key, problems = state.production_copy(version)
            if fresh:
                found = problems(model_store.fresh_hashes(state.settings, source))
            else:
                found = model_store.checked_copy(state.settings, key, source, problems)[1]
        except ProdganError as exc:
            findings.append(Finding(None, str(exc)))
            continue
        if found:
            findings.append(
                Finding(
                    None,
                    f"production v{version} of {state.model} (trained v{record['champion_after']}) "
                    f"differs from the promoter's signed record: {'; '.join(found)}",
                )
            )
    return findings


def _trained_findings(
    state: ProductionState, versions: list[Any], fresh: bool, progress: Progress
) -> tuple[list[str], list[Finding]]:
    """(versions hashed, findings) for trained versions whose stored files are not the registered
    ones; `progress(done, total)` hears before each version is fetched."""
    hashed: list[str] = []
    findings: list[Finding] = []
    for done, mv in enumerate(versions):
        progress(done, len(versions))
        version = str(mv.version)
        if not (mv.tags or {}).get(WEIGHTS):
            findings.append(
                Finding(
                    version,
                    f"has no {WEIGHTS} tag: "
                    "it was not registered by prodgan or the tag was removed",
                )
            )
            continue
        problems = state.trained_problems(mv)
        source = f"models:/{mv.name}/{version}"
        try:
            if fresh:  # what a plain MLflow client loads: its code must be prodgan's loader
                stored = model_store.fresh_hashes(state.settings, source)
                found = problems(stored) + foreign_code(stored, source)
            else:  # what prodgan loads: the data files, with its own installed code
                found = model_store.checked_copy(
                    state.settings, state.trained_key(mv), source, problems
                )[1]
        except Exception as exc:  # noqa: BLE001 - any failure to fetch the model is itself a finding
            first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            findings.append(
                Finding(version, f"the model cannot be read from the artifact store ({first_line})")
            )
            continue
        hashed.append(version)
        findings += [Finding(version, problem) for problem in found]
    return hashed, findings


def require_verified(
    where: Settings | ProductionState,
    force: bool = False,
    actor: str | None = None,
    purpose: str = "act",
    reason: str = "",
    version: str | None = None,
) -> Report:
    """Raise GateFailed when the registry fails verification; with `force`, audit the bypass and
    go on.

    Checks the chain, the aliases, the production copies behind them and the trained `version`
    about to be used, on the local copies the command loads; `prodgan audit verify` hashes every
    trained version, freshly downloaded.
    """
    state = where if isinstance(where, ProductionState) else ProductionState.read(where)
    include = (str(version),) if version else ()
    report = verify(state, all_versions=False, include=include, fresh=False)
    if report.ok:
        return report
    problems = "; ".join(map(str, report.findings))
    if not force:
        raise GateFailed(
            f"refusing to {purpose}: registry {report.model} fails verification: {problems}. "
            f"Inspect with `prodgan audit verify`; re-run with --force to act anyway (audited)"
        )
    audit_bypass(state, report, actor, purpose, reason)
    return report


def audit_bypass(
    state: ProductionState,
    report: Report,
    actor: str | None,
    purpose: str,
    reason: str,
    lost: list[int] | None = None,
) -> str:
    """Write the `force` record of acting on (or accepting) a registry that failed verification;
    `lost`: places of the chain it accepts as lost (an acknowledgement, not an action)."""
    who = audit.actor_name(state.settings, actor)
    why = f"FORCED by {who}: {purpose} despite failed verification" + (
        f" ({reason})" if reason else ""
    )
    record = Decision(
        action=FORCE,
        model=report.model,
        version=report.champion or "",
        actor=who,
        at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        champion_before=report.champion,
        seq=state.aliases.seq,
        notes=[why],
        note=reason,
        bypassed=BYPASS,
        purpose=purpose,
        findings=[str(f) for f in report.findings],
        lost=lost,
    )
    try:
        return audit.write_audit(state.settings, record.to_dict())
    except Exception as exc:  # noqa: BLE001 - an unaudited bypass must not happen
        raise ProdganError(
            f"--force needs an audit record, and writing it failed ({str(exc).splitlines()[0]}); "
            f"only a promoter may bypass verification"
        ) from None
