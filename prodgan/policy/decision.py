"""The decision about a model version, as one typed object every face renders.

A promotion, rejection, forced promotion, rollback, no-op or verification bypass is a `Decision`:
its gate checks stay `Check` objects (never text to parse back), its other lines are `notes`. The
CLI table, the Prefect artifacts and events, the MLflow descriptions and the signed audit record
are all drawn from it; a stored record is read back with `Decision.from_record`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping

from prodgan.policy.gates import Check

PROMOTE = "promote"
REJECT = "reject"
FORCE = "force"
ROLLBACK = "rollback"
NOOP = "noop"
DONE = "done"  # not a decision: the record closing a pending one
MOVES = (PROMOTE, FORCE, ROLLBACK)  # the actions that may move `champion`
BYPASS = (
    "verification"  # `bypassed` of a force record: acting on a registry that failed verification
)


@dataclass
class Decision:
    action: str  # promote | reject | force | rollback | noop
    model: str
    version: str
    approved: bool = False
    champion_before: str | None = None
    champion_after: str | None = None
    previous_after: str | None = None
    actor: str = ""
    at: str = ""
    checks: list[Check] = field(default_factory=list)  # the gates' outcomes, in order
    notes: list[str] = field(default_factory=list)  # what is not a gate: forced, rolled back, no-op
    gates_path: str = ""
    gates_sha256: str = ""
    data_hash: str | None = None
    challenger: dict[str, Any] | None = None
    champion: dict[str, Any] | None = None
    difference: dict[str, Any] | None = None
    note: str = ""  # the person's own words (--force REASON, --reason)
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
    bypassed: str | None = None  # BYPASS on a force record that acted despite failed verification
    purpose: str = ""  # what the bypass was for
    findings: list[str] = field(default_factory=list)  # the verification findings a bypass accepted
    # places of the chain an acknowledgement accepts as lost (None: it accepts no loss)
    lost: list[int] | None = None

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    @property
    def moves(self) -> bool:
        """Whether this decision moves (or moved) `champion`."""
        return self.approved and self.action in MOVES

    @property
    def reasons(self) -> list[str]:
        """Every line a person reads: each check, then the notes."""
        return [c.line for c in self.checks] + list(self.notes)

    @property
    def summary(self) -> str:
        """The one line that explains the outcome: the first failed gate, else the first note."""
        if self.failed:
            return self.failed[0].line
        if self.notes:
            return self.notes[0]
        return "every gate passed" if self.checks else self.action

    def to_dict(self) -> dict[str, Any]:
        """The audit record's body (`reasons` rendered for whoever reads the JSON by eye)."""
        return {**asdict(self), "reasons": self.reasons}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> "Decision":
        """A stored audit record as a Decision (keys it does not know, like `n` or `signature`, are
        left out)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in record.items() if k in known}
        values["checks"] = [Check.from_dict(c) for c in record.get("checks") or []]
        values["version"] = str(record.get("version") or "")
        return cls(**values)
