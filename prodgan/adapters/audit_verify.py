"""Tamper evidence: replay the audit log against the registry before anyone acts on it.

MLflow lets anyone with EDIT on a registered model move an alias or overwrite an artifact, and
records neither. prodgan moves `champion`/`previous` only through audited decisions (runs in
`prodgan-audit`), so the log predicts the registry:

1. the latest moving record (promote, force, rollback) must name the current `champion` and
   `previous`;
2. every moving record must find `champion` where the one before left it, unless a later
   `force` bypass record (written when someone acted on a registry that failed verification,
   at transition counter >= the gap's) acknowledged it;
3. each version's `generator.pt` must still hash to `prodgan.weights_sha256`, and every other
   stored file (the models-from-code `generator.py`, MLmodel, environment) to its hash in
   `prodgan.model_files`; both tags are written at registration.

`require_verified` is what `promote`, `generate`, `serve` and the retrain flow call first.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from prodgan.adapters.audit import actor_name, audit_records, write_audit
from prodgan.adapters.registry import alias_version, champion_state, client_for, get_version
from prodgan.errors import GateFailed, ProdganError
from prodgan.names import CHAMPION, MODEL_FILES, PREVIOUS, WEIGHTS
from prodgan.settings import Settings

MOVES = ("promote", "force", "rollback")
BYPASS = "verification"  # decision.json `bypassed` of a force record written by require_verified
# MLflow itself writes this (model name + version) into a local store the first time a version loads.
MLFLOW_WRITTEN = frozenset({"registered_model_meta"})


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


def _seq(record: dict[str, Any]) -> int:
    return int(record["seq"]) if str(record.get("seq", "")).isdigit() else -1


def _who(record: dict[str, Any]) -> str:
    return f"{record.get('action')} by {record.get('actor') or '?'} at {record.get('at') or '?'}, audit run {record.get('audit_run_id')}"


def is_move(record: dict[str, Any]) -> bool:
    return record.get("action") in MOVES and _opt(record.get("champion_after")) is not None and not record.get("bypassed")


def check_aliases(records: list[dict[str, Any]], champion: str | None, previous: str | None) -> list[Finding]:
    """Findings for alias positions the audit log (oldest first) does not explain; pure, no MLflow."""
    findings: list[Finding] = []
    acknowledged = max((_seq(r) for r in records if r.get("bypassed") == BYPASS), default=-2)
    moves = sorted((r for r in records if is_move(r)), key=_seq)  # stable: equal seqs keep log order
    left: str | None = None  # champion as the log left it
    for record in moves:
        before = _opt(record.get("champion_before"))
        if before != left and _seq(record) - 1 > acknowledged:
            findings.append(Finding(before, f"{_who(record)} found champion at v{before}, but the audit log had left it at "
                                            f"v{left}: an unaudited alias move happened before it"))
        left = _opt(record.get("champion_after"))
    last = moves[-1] if moves else {}
    for alias, current, expected in (("champion", champion, _opt(last.get("champion_after"))),
                                     ("previous", previous, _opt(last.get("previous_after")))):
        if current != expected:
            because = f"the latest audit record ({_who(last)}) left it at v{expected}" if last else "no audit record ever moved it"
            where = f"points to v{current}" if current else "is unset"
            findings.append(Finding(current, f"alias {alias} {where} but {because}: moved outside prodgan"))
    return findings


def _download_version(client: Any, name: str, version: str, dest: Path) -> tuple[Path, str]:
    """Download every file of a model version as stored; returns (folder, path of its generator.pt in it)."""
    import mlflow
    import yaml

    from prodgan.models.bundle import WEIGHTS_FILE

    root = client.get_model_version_download_uri(name, version).rstrip("/")
    folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=root, dst_path=str(dest)))
    mlmodel = yaml.safe_load((folder / "MLmodel").read_text()) if (folder / "MLmodel").is_file() else {}
    artifacts = (mlmodel.get("flavors", {}).get("python_function", {}).get("artifacts") or {})
    bundle = (artifacts.get("bundle") or {}).get("path")
    if not bundle:
        raise ValueError("its MLmodel names no `bundle` artifact")
    return folder, f"{bundle.strip('/')}/{WEIGHTS_FILE}"


def _file_findings(version: str, recorded: str | None, actual: dict[str, str], weights: str) -> list[Finding]:
    """Files added, removed or changed since registration (the weights have their own, clearer finding)."""
    import json

    if not recorded:
        return [Finding(version, f"has no {MODEL_FILES} tag: it was not registered by prodgan or the tag was removed")]
    expected = json.loads(recorded)
    changed = sorted(p for p in set(expected) | set(actual)
                     if p != weights and p not in MLFLOW_WRITTEN and expected.get(p) != actual.get(p))
    if not changed:
        return []
    what = ", ".join(f"{p} ({'added' if p not in expected else 'removed' if p not in actual else 'changed'})" for p in changed)
    return [Finding(version, f"model files differ from registration: {what}; the stored model (code, MLmodel or "
                             f"environment) was edited outside prodgan")]


def check_artifacts(settings: Settings, versions: list[Any],
                    progress: Callable[[int, int], None] = lambda _done, _total: None) -> tuple[list[str], list[Finding]]:
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
            findings.append(Finding(version, f"has no {WEIGHTS} tag: it was not registered by prodgan or the tag was removed"))
            continue
        with tempfile.TemporaryDirectory(dir=settings.tmp_dir) as tmp:
            try:
                folder, weights = _download_version(client, mv.name, version, Path(tmp))
                actual = file_hashes(folder)
            except Exception as exc:  # noqa: BLE001 - any failure to fetch the model is itself a finding
                findings.append(Finding(version, f"the model cannot be read from the artifact store ({str(exc).splitlines()[0]})"))
                continue
        hashed.append(version)
        got = actual.get(weights)
        if got is None:
            findings.append(Finding(version, "generator.pt is missing from the stored model: the weights were removed"))
        elif got != recorded:
            findings.append(Finding(version, f"generator.pt hashes to {got[:16]}…, but {WEIGHTS} recorded "
                                             f"{recorded[:16]}… at registration: the weights were replaced"))
        findings += _file_findings(version, tags.get(MODEL_FILES), actual, weights)
    return hashed, findings


def verify(settings: Settings, all_versions: bool = True, include: tuple[str, ...] = (),
           progress: Callable[[int, int], None] = lambda _done, _total: None) -> Report:
    """Replay the audit log against the registry; hash every version's weights (or the aliased and `include`d ones)."""
    client, name = client_for(settings), settings.model_name
    report = Report(name)
    aliased = [alias_version(client, name, CHAMPION), alias_version(client, name, PREVIOUS)]
    report.champion, report.previous = (_opt(mv.version) if mv else None for mv in aliased)
    records = audit_records(settings, model=name)
    report.records = len(records)
    report.findings += check_aliases(records, report.champion, report.previous)
    if all_versions:
        versions = client.search_model_versions(f"name = '{name}'")
    else:
        chosen = {str(mv.version): mv for mv in aliased if mv}
        versions = [*chosen.values(), *(get_version(client, name, v) for v in include if v not in chosen)]
    report.hashed, file_findings = check_artifacts(settings, sorted(versions, key=lambda mv: int(mv.version)), progress)
    report.findings += file_findings
    return report


def require_verified(settings: Settings, force: bool = False, actor: str | None = None, purpose: str = "act",
                     reason: str = "", version: str | None = None) -> Report:
    """Raise GateFailed when the registry fails verification; with `force`, audit the bypass and go on.

    Checks the aliases and the weights of `champion`, `previous` and `version` (what is about to
    be used); `prodgan audit verify` hashes every version.
    """
    report = verify(settings, all_versions=False, include=(str(version),) if version else ())
    if report.ok:
        return report
    problems = "; ".join(map(str, report.findings))
    if not force:
        raise GateFailed(f"refusing to {purpose}: registry {report.model} fails verification: {problems}. "
                         f"Inspect with `prodgan audit verify`; re-run with --force to act anyway (audited)")
    audit_bypass(settings, report, actor, purpose, reason)
    return report


def audit_bypass(settings: Settings, report: Report, actor: str | None, purpose: str, reason: str) -> str:
    """Write the `force` record of acting on (or accepting) a registry that failed verification."""
    from datetime import datetime, timezone

    who = actor_name(settings, actor)
    seq = champion_state(client_for(settings), report.model)[1]
    record = {"action": "force", "model": report.model, "version": report.champion or "", "actor": who,
              "at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "bypassed": BYPASS, "purpose": purpose,
              "champion_before": report.champion, "champion_after": None, "previous_after": None, "seq": seq,
              "findings": [str(f) for f in report.findings], "note": reason,
              "reasons": [f"FORCED by {who}: {purpose} despite failed verification" + (f" ({reason})" if reason else "")]}
    try:
        return write_audit(settings, record)
    except Exception as exc:  # noqa: BLE001 - an unaudited bypass must not happen
        raise ProdganError(f"--force needs an audit record, and writing it failed ({str(exc).splitlines()[0]}); "
                           f"only a promoter may bypass verification") from None
