"""Replaying the signed audit chain against a registry snapshot: records in, typed findings out.

prodgan moves `champion`/`previous` (aliases of the promoter-only production model) only through
audited decisions, so the chain, once its signatures are checked, predicts the registry:

0. the chain is whole: places 1..N with none missing or doubled (a place a later signed record
   names `lost` is accepted, and reported), each record signed by the promoter's key and naming
   the hash of the one before, the newest matching the production model's `prodgan.audit_head`
   tag, which the promoter's key signs too (so it cannot be rewound without the key), and no
   decision left `pending` (a move that never finished);
1. the latest moving record (promote, force, rollback) names the current `champion` and
   `previous`, as trained versions and as the production versions the aliases point to;
2. every moving record finds `champion` where the one before left it, unless a `force` bypass
   record (written when someone acted on a registry that failed verification) acknowledged it.

Nothing here reads MLflow or checks a signature: the caller hands in the records, whether each
signature verified, and the aliases it found (`prodgan.adapters.production_state`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from prodgan.errors import GateFailed
from prodgan.names import AUDIT_HEAD
from prodgan.policy.decision import BYPASS, DONE, MOVES

Record = Mapping[str, Any]
UNSIGNED = ("signature", "audit_run_id", "state")  # `state` is derived on read
PENDING, FINAL = "pending", "final"


@dataclass(frozen=True)
class Finding:
    version: str | None
    problem: str

    def __str__(self) -> str:
        return f"v{self.version}: {self.problem}" if self.version else self.problem


@dataclass
class Report:
    """What verification found for one model: the aliases, how many decisions, what was hashed."""

    model: str
    champion: str | None = None
    previous: str | None = None
    records: int = 0  # stored records: decisions and the `done` marks that close them
    decisions: int = 0
    lost: list[str] = field(default_factory=list)  # places acknowledged lost, and by whom
    hashed: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


def canonical(record: Record) -> bytes:
    """The bytes a record's signature and hash cover: sorted JSON without the unsigned fields."""
    body = {k: v for k, v in record.items() if k not in UNSIGNED}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()


def record_hash(record: Record) -> str:
    """What the next record's `prev` names: the signed body plus its signature."""
    signature = str(record.get("signature", "")).encode()
    return hashlib.sha256(canonical(record) + signature).hexdigest()


def version_or_none(value: Any) -> str | None:
    return str(value) if value not in (None, "", "None") else None


def who(record: Record) -> str:
    """`promote by alice at 2026-…, audit run 1a2b`: a record as a finding names it."""
    return (
        f"{record.get('action')} by {record.get('actor') or '?'} at {record.get('at') or '?'}, "
        f"audit run {record.get('audit_run_id')}"
    )


def decisions(records: Sequence[Record]) -> list[dict[str, Any]]:
    """The decisions of a chain, each with `state`: pending (its move was never confirmed), done,
    or final."""
    done = {r.get("done_of") for r in records if r.get("action") == DONE}
    found = []
    for record in records:
        if record.get("action") == DONE:
            continue
        if record.get("phase") == PENDING:
            state = "done" if record.get("n") in done else PENDING
        else:
            state = FINAL
        found.append({**record, "state": state})
    return found


def is_move(record: Record) -> bool:
    """A finished decision that moved `champion` (a bypass record moves nothing)."""
    return (
        record.get("action") in MOVES
        and version_or_none(record.get("champion_after")) is not None
        and not record.get("bypassed")
        and record.get("state") != PENDING
    )


def acknowledged_losses(records: Sequence[Record], signed: Sequence[bool]) -> dict[int, Record]:
    """{place: the signed record that accepted it as lost}: a deleted or hidden record, after a
    promoter acknowledged it (`prodgan audit verify --acknowledge`)."""
    found: dict[int, Record] = {}
    for record, valid in zip(records, signed, strict=True):
        places = record.get("lost") if valid else None
        for place in places if isinstance(places, list) else []:
            if isinstance(place, int):
                found.setdefault(place, record)
    return found


def missing_places(records: Sequence[Record], head: str | None) -> list[int]:
    """Places 1..N (N: the newest record's, or the head's if higher) that hold no record."""
    held = {r.get("n") for r in records if isinstance(r.get("n"), int)}
    newest = max([p for p in held if isinstance(p, int)] + [head_place(head)], default=0)
    return [p for p in range(1, newest + 1) if p not in held]


def head_place(head: str | None) -> int:
    """The place the `prodgan.audit_head` tag names (`n:hash:signature`); 0 if it names none."""
    first = str(head or "").split(":", 1)[0]
    return int(first) if first.isdigit() else 0


def lost_notes(records: Sequence[Record], signed: Sequence[bool]) -> list[str]:
    """One line per acknowledged lost place, for reports and history: the gap stays visible."""
    return [
        f"audit record #{place} is lost: accepted by audit record #{r.get('n')} ({who(r)})"
        + (f": {r.get('note')}" if r.get("note") else "")
        for place, r in sorted(acknowledged_losses(records, signed).items())
    ]


def check_chain(
    records: Sequence[Record],
    signed: Sequence[bool],
    head: str | None,
    head_signed: bool,
    key: str,
) -> list[Finding]:
    """Findings for a chain (stored records by place; `signed[i]`: record i's signature verified
    with the configured key `key`; `head_signed`: the head tag's signature did) that is not
    whole, not signed, or not finished."""
    findings: list[Finding] = []
    lost = acknowledged_losses(records, signed)
    expected_prev: str | None = None
    place = 0
    for record, valid in zip(records, signed, strict=True):
        n = record.get("n")
        where = f"audit record #{n} ({who(record)})"
        skipped = False
        if not isinstance(n, int) or n <= place:
            findings.append(
                Finding(None, f"the audit chain has a second #{n} at {where}: a record was forged")
            )
        else:
            gaps = [p for p in range(place + 1, n) if p not in lost]
            if gaps:
                findings.append(
                    Finding(
                        None,
                        f"the audit chain has a gap at #{gaps[0]} before {where}: a record was "
                        f"deleted or hidden (a promoter who accepts the loss records it with "
                        f"`prodgan audit verify --acknowledge REASON`)",
                    )
                )
            skipped = n > place + 1 and not gaps  # every place between accepted as lost
            place = n
        if not valid:
            findings.append(
                Finding(
                    None,
                    f"{where} has no valid signature by the configured audit key {key}: "
                    f"it was edited or written without the promoter's key",
                )
            )
        if expected_prev is not None and not skipped and record.get("prev") != expected_prev:
            findings.append(
                Finding(
                    None,
                    f"{where} does not name the hash of the record before it: the chain was edited",
                )
            )
        expected_prev = record_hash(record)
    findings += _head_findings(records, expected_prev, head, head_signed)
    findings += _pending_findings(records)
    return findings


def _head_findings(
    records: Sequence[Record], newest: str | None, head: str | None, head_signed: bool
) -> list[Finding]:
    if not records and not head:
        return []
    if not head_signed:
        return [
            Finding(
                None,
                f"the production model's {AUDIT_HEAD} tag ({str(head)[:24]}…) is not signed by "
                f"the configured audit key: the head of the audit chain was rewound or forged",
            )
        ]
    if not records:
        return [
            Finding(
                None,
                f"the audit log is empty but {AUDIT_HEAD} says {str(head)[:24]}…: "
                "the records were deleted",
            )
        ]
    if ":".join(str(head).split(":")[:2]) != f"{records[-1].get('n')}:{newest}":
        return [
            Finding(
                None,
                f"the newest audit record is #{records[-1].get('n')} but the production model's "
                f"signed {AUDIT_HEAD} tag says #{head_place(head)}: records at the end of the "
                f"chain were deleted, hidden or replaced",
            )
        ]
    return []


def _pending_findings(records: Sequence[Record]) -> list[Finding]:
    """Decisions whose alias move never completed, unless a later bypass record accepted them."""
    bypasses = (r.get("n") or 0 for r in records if r.get("bypassed") == BYPASS)
    acknowledged = max(bypasses, default=0)
    return [
        Finding(
            version_or_none(record.get("champion_after")),
            f"audit record #{record.get('n')} ({who(record)}) is pending: its alias move never "
            f"completed; a promoter inspects the aliases and acknowledges with "
            f"`prodgan audit verify --acknowledge REASON`",
        )
        for record in decisions(records)
        if record["state"] == PENDING and (record.get("n") or 0) > acknowledged
    ]


def check_aliases(
    decided: Sequence[Record], champion: str | None, previous: str | None
) -> list[Finding]:
    """Findings for trained-version alias positions the decisions (in chain order) do not explain.

    A gap before a move is acknowledged only by a `force` bypass record written after the move
    before it: one bypass excuses the one gap it saw, never every earlier one."""
    findings: list[Finding] = []
    left: str | None = None  # champion as the log left it
    last: Record = {}
    acknowledged = False
    for record in decided:
        if record.get("bypassed") == BYPASS:
            acknowledged = True
        if not is_move(record):
            continue
        before = version_or_none(record.get("champion_before"))
        if before != left and not acknowledged:
            findings.append(
                Finding(
                    before,
                    f"{who(record)} found champion at v{before}, but the audit log had left it at "
                    f"v{left}: an unaudited alias move happened before it",
                )
            )
        left, acknowledged, last = version_or_none(record.get("champion_after")), False, record
    expected = {
        "champion": (champion, version_or_none(last.get("champion_after"))),
        "previous": (previous, version_or_none(last.get("previous_after"))),
    }
    for alias, (current, wanted) in expected.items():
        if current == wanted:
            continue
        if last:
            because = f"the latest audit record ({who(last)}) left it at v{wanted}"
        else:
            because = "no audit record ever moved it"
        where = f"points to v{current}" if current else "is unset"
        findings.append(
            Finding(current, f"alias {alias} {where} but {because}: moved outside prodgan")
        )
    return findings


def check_production_aliases(
    decided: Sequence[Record], production: str, champion: str | None, previous: str | None
) -> list[Finding]:
    """Findings for production-version alias positions (`champion`/`previous` of `production`)
    that the latest finished move did not leave there."""
    moves = [r for r in decided if is_move(r)]
    last: Record = moves[-1] if moves else {}
    expected = {
        "champion": (champion, version_or_none(last.get("production_version"))),
        "previous": (previous, version_or_none(last.get("production_previous"))),
    }
    return [
        Finding(
            None,
            f"alias {alias} of {production} points to production v{current}, but the latest audit "
            f"record ({who(last)}) left it at production v{wanted}: moved outside prodgan",
        )
        for alias, (current, wanted) in expected.items()
        if current != wanted and wanted is not None
    ]


def production_record(
    decided: Sequence[Record], signed_runs: frozenset[str], model: str, production_version: str
) -> dict[str, Any]:
    """The promoter's signed, finished record that made production version `production_version`;
    `signed_runs` holds the audit run ids whose signature verified. GateFailed if there is none."""
    refusing = f"refusing to load production v{production_version} of {model}"
    for record in reversed(decided):
        made_it = str(record.get("production_version")) == str(production_version)
        if not made_it or record.get("action") not in MOVES:
            continue
        if record.get("audit_run_id") not in signed_runs:
            raise GateFailed(
                f"{refusing}: its audit record #{record.get('n')} has no valid signature by the "
                f"configured audit key; run `prodgan audit verify`"
            )
        if record["state"] == PENDING:
            raise GateFailed(
                f"{refusing}: the move that made it (audit record #{record.get('n')}) never "
                f"completed; run `prodgan audit verify`"
            )
        return dict(record)
    raise GateFailed(
        f"{refusing}: no signed audit record made it (a move outside prodgan); "
        "run `prodgan audit verify`"
    )
