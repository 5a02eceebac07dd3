"""Tamper evidence: check the signed audit chain, then replay it against the registry, before anyone acts.

prodgan moves `champion`/`previous` (aliases of the promoter-only production model) only through
audited decisions, so the log, verified with the configured public key, predicts the registry:

0. the chain is whole: places 1..N with none missing or doubled, each record signed by the
   promoter's key and naming the hash of the one before, the newest matching the production
   model's `prodgan.audit_head` tag, and no decision left `pending` (a move that never finished);
1. the latest moving record (promote, force, rollback) must name the current `champion` and
   `previous`, as trained versions and as the production versions the aliases point to;
2. every moving record must find `champion` where the one before left it, unless a later
   `force` bypass record (written when someone acted on a registry that failed verification,
   at transition counter >= the gap's) acknowledged it;
3. every file of each production version behind an alias must hash to what the promoter's signed
   record of that version states; trained versions' `generator.pt` must still hash to
   `prodgan.weights_sha256`, and their other files to `prodgan.model_files` (trainer-written tags:
   a finding there means the trained version changed, not that production did).

`require_verified` is what `promote`, `generate`, `serve` and the retrain flow call first.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from prodgan.adapters import signing
from prodgan.adapters.audit import (
    MOVES,
    actor_name,
    chain,
    decisions,
    production_record,
    write_audit,
)
from prodgan.adapters.model_store import MLFLOW_WRITTEN
from prodgan.adapters.registry import champion_state, client_for, get_version, production_state
from prodgan.errors import GateFailed, ProdganError
from prodgan.names import AUDIT_HEAD, MODEL_FILES, WEIGHTS, production_model
from prodgan.settings import Settings

BYPASS = "verification"  # decision.json `bypassed` of a force record written by require_verified


@dataclass(frozen=True)
class Finding:
    version: str | None
    problem: str

    def __str__(self) -> str:
        return f"v{self.version}: {self.problem}" if self.version else self.problem


@dataclass
class Report:
    model: str
    champion: str | None = None
    previous: str | None = None
    records: int = 0
    hashed: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


def _opt(value: Any) -> str | None:
    return str(value) if value not in (None, "", "None") else None


def _who(record: dict[str, Any]) -> str:
    return f"{record.get('action')} by {record.get('actor') or '?'} at {record.get('at') or '?'}, audit run {record.get('audit_run_id')}"


def is_move(record: dict[str, Any]) -> bool:
    return (
        record.get("action") in MOVES
        and _opt(record.get("champion_after")) is not None
        and not record.get("bypassed")
        and record.get("state") != "pending"
    )


def check_chain(
    settings: Settings, records: list[dict[str, Any]], head: str | None
) -> list[Finding]:
    """Findings for a chain (stored records, by place) that is not whole, not signed, or not finished."""
    findings: list[Finding] = []
    expected_prev: str | None = None
    for i, record in enumerate(records, start=1):
        n, where = record.get("n"), f"audit record #{record.get('n')} ({_who(record)})"
        if n != i:
            missing = f"#{i}" if not isinstance(n, int) or n > i else f"a second #{n}"
            findings.append(
                Finding(
                    None,
                    f"the audit chain has {'a gap at ' + missing if missing.startswith('#') else missing} "
                    f"before {where}: a record was deleted or forged",
                )
            )
        if not signing.verify(settings, record):
            findings.append(
                Finding(
                    None,
                    f"{where} has no valid signature by the configured audit key "
                    f"{settings.audit_public_key_path}: it was edited or written without the promoter's key",
                )
            )
        if i > 1 and record.get("prev") != expected_prev:
            findings.append(
                Finding(
                    None,
                    f"{where} does not name the hash of the record before it: the chain was edited",
                )
            )
        expected_prev = signing.record_hash(record)
    if records and head != f"{records[-1].get('n')}:{expected_prev}":
        findings.append(
            Finding(
                None,
                f"the newest audit record is #{records[-1].get('n')} but the production model's {AUDIT_HEAD} "
                f"tag says {str(head)[:24]}…: records at the end of the chain were deleted or replaced",
            )
        )
    elif not records and head:
        findings.append(
            Finding(
                None,
                f"the audit log is empty but {AUDIT_HEAD} says {head[:24]}…: the records were deleted",
            )
        )
    acknowledged = max((r.get("n") or 0 for r in records if r.get("bypassed") == BYPASS), default=0)
    for record in decisions(records):
        if record["state"] == "pending" and (record.get("n") or 0) > acknowledged:
            findings.append(
                Finding(
                    _opt(record.get("champion_after")),
                    f"audit record #{record.get('n')} ({_who(record)}) is "
                    f"pending: its alias move never completed; a promoter inspects the aliases and acknowledges "
                    f"with `prodgan audit verify --acknowledge REASON`",
                )
            )
    return findings


def check_aliases(
    records: list[dict[str, Any]], champion: str | None, previous: str | None
) -> list[Finding]:
    """Findings for alias positions the audit log (in chain order) does not explain; pure, no MLflow.

    A gap before a move is acknowledged only by a `force` bypass record written after the move
    before it: one bypass excuses the one gap it saw, never every earlier one."""
    findings: list[Finding] = []
    moves: list[dict[str, Any]] = []
    left: str | None = None  # champion as the log left it
    acknowledged = False
    for record in records:
        if record.get("bypassed") == BYPASS:
            acknowledged = True
        if not is_move(record):
            continue
        before = _opt(record.get("champion_before"))
        if before != left and not acknowledged:
            findings.append(
                Finding(
                    before,
                    f"{_who(record)} found champion at v{before}, but the audit log had left it at "
                    f"v{left}: an unaudited alias move happened before it",
                )
            )
        left, acknowledged = _opt(record.get("champion_after")), False
        moves.append(record)
    last = moves[-1] if moves else {}
    for alias, current, expected in (
        ("champion", champion, _opt(last.get("champion_after"))),
        ("previous", previous, _opt(last.get("previous_after"))),
    ):
        if current != expected:
            because = (
                f"the latest audit record ({_who(last)}) left it at v{expected}"
                if last
                else "no audit record ever moved it"
            )
            where = f"points to v{current}" if current else "is unset"
            findings.append(
                Finding(current, f"alias {alias} {where} but {because}: moved outside prodgan")
            )
    return findings


def _download_version(client: Any, name: str, version: str, dest: Path) -> tuple[Path, str]:
    """Download every file of a model version as stored; returns (folder, path of its generator.pt in it)."""
    import mlflow
    import yaml

    from prodgan.models.bundle import WEIGHTS_FILE

    root = client.get_model_version_download_uri(name, version).rstrip("/")
    folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=root, dst_path=str(dest)))
    mlmodel = (
        yaml.safe_load((folder / "MLmodel").read_text()) if (folder / "MLmodel").is_file() else {}
    )
    artifacts = mlmodel.get("flavors", {}).get("python_function", {}).get("artifacts") or {}
    bundle = (artifacts.get("bundle") or {}).get("path")
    if not bundle:
        raise ValueError("its MLmodel names no `bundle` artifact")
    return folder, f"{bundle.strip('/')}/{WEIGHTS_FILE}"


def _file_findings(
    version: str, recorded: str | None, actual: dict[str, str], weights: str
) -> list[Finding]:
    """Files added, removed or changed since registration (the weights have their own, clearer finding)."""
    import json

    if not recorded:
        return [
            Finding(
                version,
                f"has no {MODEL_FILES} tag: it was not registered by prodgan or the tag was removed",
            )
        ]
    expected = json.loads(recorded)
    changed = sorted(
        p
        for p in set(expected) | set(actual)
        if p != weights and p not in MLFLOW_WRITTEN and expected.get(p) != actual.get(p)
    )
    if not changed:
        return []
    what = ", ".join(
        f"{p} ({'added' if p not in expected else 'removed' if p not in actual else 'changed'})"
        for p in changed
    )
    return [
        Finding(
            version,
            f"model files differ from registration: {what}; the stored model (code, MLmodel or "
            f"environment) was edited outside prodgan",
        )
    ]


def check_artifacts(
    settings: Settings,
    versions: list[Any],
    progress: Callable[[int, int], None] = lambda _done, _total: None,
) -> tuple[list[str], list[Finding]]:
    """(versions hashed, findings) for model versions whose stored files are not the registered ones;
    `progress(done, total)` hears before each version is downloaded."""
    from prodgan.fsutil import file_hashes

    client, hashed, findings = client_for(settings), [], []
    settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    for done, mv in enumerate(versions):
        progress(done, len(versions))
        version, tags = str(mv.version), mv.tags or {}
        recorded = tags.get(WEIGHTS)
        if not recorded:
            findings.append(
                Finding(
                    version,
                    f"has no {WEIGHTS} tag: it was not registered by prodgan or the tag was removed",
                )
            )
            continue
        with tempfile.TemporaryDirectory(dir=settings.tmp_dir) as tmp:
            try:
                folder, weights = _download_version(client, mv.name, version, Path(tmp))
                actual = file_hashes(folder)
            except Exception as exc:  # noqa: BLE001 - any failure to fetch the model is itself a finding
                findings.append(
                    Finding(
                        version,
                        f"the model cannot be read from the artifact store ({str(exc).splitlines()[0]})",
                    )
                )
                continue
        hashed.append(version)
        got = actual.get(weights)
        if got is None:
            findings.append(
                Finding(
                    version,
                    "generator.pt is missing from the stored model: the weights were removed",
                )
            )
        elif got != recorded:
            findings.append(
                Finding(
                    version,
                    f"generator.pt hashes to {got[:16]}…, but {WEIGHTS} recorded "
                    f"{recorded[:16]}… at registration: the weights were replaced",
                )
            )
        findings += _file_findings(version, tags.get(MODEL_FILES), actual, weights)
    return hashed, findings


def check_production(
    settings: Settings, records: list[dict[str, Any]], state: Any
) -> list[Finding]:
    """Findings for production aliases no finished record put where they are, or whose stored files changed since
    (hashed from a fresh download: plain MLflow clients load the store, not prodgan's cache)."""
    import mlflow

    from prodgan.adapters.model_store import file_problems

    findings: list[Finding] = []
    moves = [r for r in decisions(records) if is_move(r)]
    last = moves[-1] if moves else {}
    production = production_model(settings.model_name)
    for alias, current, expected in (
        ("champion", state.champion_version, _opt(last.get("production_version"))),
        ("previous", state.previous_version, _opt(last.get("production_previous"))),
    ):
        if current != expected and expected is not None:
            findings.append(
                Finding(
                    None,
                    f"alias {alias} of {production} points to production v{current}, but the latest audit "
                    f"record ({_who(last)}) left it at production v{expected}: moved outside prodgan",
                )
            )
    settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    for version in sorted(
        {v for v in (state.champion_version, state.previous_version) if v}, key=int
    ):
        try:
            record = production_record(settings, settings.model_name, version)
            with tempfile.TemporaryDirectory(dir=settings.tmp_dir) as tmp:
                folder = Path(
                    mlflow.artifacts.download_artifacts(
                        artifact_uri=f"models:/{production}/{version}", dst_path=tmp
                    )
                )
                problems = file_problems(folder, record["model_files"])
        except ProdganError as exc:
            findings.append(Finding(None, str(exc)))
            continue
        if problems:
            findings.append(
                Finding(
                    None,
                    f"production v{version} of {settings.model_name} (trained v{record['champion_after']}) "
                    f"differs from the promoter's signed record: {'; '.join(problems)}",
                )
            )
    return findings


def verify(
    settings: Settings,
    all_versions: bool = True,
    include: tuple[str, ...] = (),
    progress: Callable[[int, int], None] = lambda _done, _total: None,
) -> Report:
    """Check the chain, replay it against the registry; hash production and every (or the `include`d) trained version."""
    client, name = client_for(settings), settings.model_name
    report = Report(name)
    state = production_state(client, name)
    report.champion, report.previous = state.champion, state.previous
    records = chain(settings, name)
    head = None
    if state.seq or records:
        from mlflow.exceptions import MlflowException

        try:
            head = (client.get_registered_model(production_model(name)).tags or {}).get(AUDIT_HEAD)
        except MlflowException:
            head = None
    report.findings += check_chain(settings, records, head)
    found = decisions(records)
    report.records = len(found)
    report.findings += check_aliases(found, report.champion, report.previous)
    report.findings += check_production(settings, records, state)
    if all_versions:
        versions = client.search_model_versions(f"name = '{name}'")
    else:
        versions = [get_version(client, name, v) for v in sorted(set(include), key=int)]
    report.hashed, file_findings = check_artifacts(
        settings, sorted(versions, key=lambda mv: int(mv.version)), progress
    )
    report.findings += file_findings
    return report


def require_verified(
    settings: Settings,
    force: bool = False,
    actor: str | None = None,
    purpose: str = "act",
    reason: str = "",
    version: str | None = None,
) -> Report:
    """Raise GateFailed when the registry fails verification; with `force`, audit the bypass and go on.

    Checks the chain, the aliases, the production copies behind them and the trained `version`
    about to be used; `prodgan audit verify` hashes every trained version too.
    """
    report = verify(settings, all_versions=False, include=(str(version),) if version else ())
    if report.ok:
        return report
    problems = "; ".join(map(str, report.findings))
    if not force:
        raise GateFailed(
            f"refusing to {purpose}: registry {report.model} fails verification: {problems}. "
            f"Inspect with `prodgan audit verify`; re-run with --force to act anyway (audited)"
        )
    audit_bypass(settings, report, actor, purpose, reason)
    return report


def audit_bypass(
    settings: Settings, report: Report, actor: str | None, purpose: str, reason: str
) -> str:
    """Write the `force` record of acting on (or accepting) a registry that failed verification."""
    from datetime import datetime, timezone

    who = actor_name(settings, actor)
    seq = champion_state(client_for(settings), report.model)[1]
    record = {
        "action": "force",
        "model": report.model,
        "version": report.champion or "",
        "actor": who,
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "bypassed": BYPASS,
        "purpose": purpose,
        "champion_before": report.champion,
        "champion_after": None,
        "previous_after": None,
        "seq": seq,
        "findings": [str(f) for f in report.findings],
        "note": reason,
        "reasons": [
            f"FORCED by {who}: {purpose} despite failed verification"
            + (f" ({reason})" if reason else "")
        ],
    }
    try:
        return write_audit(settings, record)
    except Exception as exc:  # noqa: BLE001 - an unaudited bypass must not happen
        raise ProdganError(
            f"--force needs an audit record, and writing it failed ({str(exc).splitlines()[0]}); "
            f"only a promoter may bypass verification"
        ) from None
