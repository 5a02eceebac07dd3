"""The chain-replay rules and the file comparison as pure functions: records in, findings out.

No MLflow here: each case builds the records a registry snapshot would hold and checks that a
forged, missing, reordered or unfinished record is named, and that a whole chain passes.
"""

from __future__ import annotations

import json

import pytest

from prodgan.errors import GateFailed
from prodgan.policy import chain
from prodgan.policy.decision import BYPASS, Decision
from prodgan.policy.files import changed_files, registration_problems
from prodgan.policy.gates import Check

KEY = "/keys/audit-ed25519.pub"


def _linked(*bodies: dict) -> list[dict]:
    """Records 1..N, each naming the hash of the one before, as `audit.append` writes them."""
    records, prev = [], None
    for n, body in enumerate(bodies, start=1):
        record = {
            "model": "m",
            "actor": "alice",
            **body,
            "n": n,
            "prev": prev,
            "signature": f"s{n}",
        }
        record["audit_run_id"] = f"run{n}"
        records.append(record)
        prev = chain.record_hash(record)
    return records


def _head(records: list[dict]) -> str:
    return f"{records[-1]['n']}:{chain.record_hash(records[-1])}"


PROMOTE_V1 = {"action": "promote", "version": "1", "champion_before": None, "champion_after": "1"}
PROMOTE_V2 = {"action": "promote", "version": "2", "champion_before": "1", "champion_after": "2"}


def test_a_whole_signed_chain_has_no_findings() -> None:
    records = _linked(PROMOTE_V1, PROMOTE_V2)
    assert chain.check_chain(records, [True, True], _head(records), True, KEY) == []


def test_a_deleted_record_is_a_gap_and_a_broken_link() -> None:
    records = _linked(PROMOTE_V1, PROMOTE_V2, {"action": "reject", "version": "3"})
    kept = [records[0], records[2]]
    problems = [f.problem for f in chain.check_chain(kept, [True, True], _head(records), True, KEY)]
    assert any("a gap at #2" in p for p in problems), problems
    assert any("does not name the hash of the record before it" in p for p in problems)


def test_a_doubled_place_is_named() -> None:
    records = _linked(PROMOTE_V1, PROMOTE_V2)
    second = {**records[1], "n": 1}
    problems = [
        f.problem for f in chain.check_chain([records[0], second], [True, True], None, True, KEY)
    ]
    assert any("a second #1" in p for p in problems), problems


def test_an_unsigned_record_is_named_with_the_configured_key() -> None:
    records = _linked(PROMOTE_V1, PROMOTE_V2)
    findings = chain.check_chain(records, [True, False], _head(records), True, KEY)
    assert [f.problem for f in findings if "no valid signature" in f.problem] == [
        f"audit record #2 ({chain.who(records[1])}) has no valid signature by the configured "
        f"audit key {KEY}: it was edited or written without the promoter's key"
    ]


def test_a_head_that_does_not_match_the_newest_record_is_named() -> None:
    records = _linked(PROMOTE_V1, PROMOTE_V2)
    tail_deleted = chain.check_chain(records[:1], [True], _head(records), True, KEY)
    assert any("records at the end of the chain were deleted" in f.problem for f in tail_deleted)
    emptied = chain.check_chain([], [], _head(records), True, KEY)
    assert any("the audit log is empty" in f.problem for f in emptied)


def test_an_unsigned_head_is_named_even_when_it_matches() -> None:
    records = _linked(PROMOTE_V1, PROMOTE_V2)
    rewound = chain.check_chain(records, [True, True], _head(records), False, KEY)
    assert any("is not signed by the configured audit key" in f.problem for f in rewound), rewound


def test_a_lost_place_passes_only_once_a_signed_record_accepts_it_and_stays_reported() -> None:
    records = _linked(PROMOTE_V1, PROMOTE_V2, {"action": "reject", "version": "3"})
    ack = {**_linked({"action": "force", "bypassed": BYPASS, "lost": [2]})[0], "n": 4}
    ack["prev"] = chain.record_hash(records[2])
    kept = [records[0], records[2], ack]
    assert chain.missing_places(kept[:2], _head(records)) == [2]
    assert chain.check_chain(kept, [True] * 3, _head(kept), True, KEY) == []
    assert chain.lost_notes(kept, [True] * 3)[0].startswith("audit record #2 is lost: accepted")
    unsigned_ack = chain.check_chain(kept, [True, True, False], _head(kept), True, KEY)
    assert any("a gap at #2" in f.problem for f in unsigned_ack), unsigned_ack


def test_a_pending_move_is_named_until_a_bypass_acknowledges_it() -> None:
    pending = {**PROMOTE_V2, "phase": "pending"}
    records = _linked(PROMOTE_V1, pending)
    findings = chain.check_chain(records, [True, True], _head(records), True, KEY)
    assert [f.version for f in findings] == ["2"] and "is pending" in findings[0].problem
    acknowledged = _linked(PROMOTE_V1, pending, {"action": "force", "bypassed": BYPASS})
    assert chain.check_chain(acknowledged, [True] * 3, _head(acknowledged), True, KEY) == []
    closed = _linked(PROMOTE_V1, pending, {"action": "done", "done_of": 2})
    assert chain.check_chain(closed, [True] * 3, _head(closed), True, KEY) == []


def test_production_aliases_must_be_where_the_latest_move_left_them() -> None:
    moves = [
        {**PROMOTE_V2, "production_version": "7", "production_previous": "6", "state": "final"}
    ]
    assert chain.check_production_aliases(moves, "m-production", "7", "6") == []
    moved = chain.check_production_aliases(moves, "m-production", "6", "6")
    assert len(moved) == 1 and "alias champion of m-production points to production v6" in str(
        moved[0]
    )


def test_production_record_is_refused_unsigned_pending_or_missing() -> None:
    made = {
        **PROMOTE_V2,
        "production_version": "7",
        "audit_run_id": "run2",
        "n": 2,
        "state": "final",
    }
    assert chain.production_record([made], frozenset({"run2"}), "m", "7")["version"] == "2"
    with pytest.raises(GateFailed, match="has no valid signature"):
        chain.production_record([made], frozenset(), "m", "7")
    with pytest.raises(GateFailed, match="never completed"):
        chain.production_record([{**made, "state": "pending"}], frozenset({"run2"}), "m", "7")
    with pytest.raises(GateFailed, match="no signed audit record made it"):
        chain.production_record([made], frozenset({"run2"}), "m", "8")


def test_changed_files_names_added_missing_and_changed_but_not_what_mlflow_writes() -> None:
    expected = {"MLmodel": "a", "generator.py": "b", "artifacts/bundle/generator.pt": "c"}
    actual = {"MLmodel": "a", "generator.py": "x", "extra.py": "d", "registered_model_meta": "e"}
    changes = {c.path: c.kind for c in changed_files(expected, actual)}
    assert changes == {
        "artifacts/bundle/generator.pt": "missing",
        "extra.py": "added",
        "generator.py": "changed",
    }


@pytest.mark.parametrize(
    "files_tag", [None, "", "{not json", "[1, 2]", json.dumps({"MLmodel": 3})], ids=repr
)
def test_junk_in_the_trainer_writable_files_tag_is_a_finding_not_a_crash(files_tag) -> None:
    actual = {"MLmodel": "a", "bundle/generator.pt": "w"}
    problems = registration_problems("w", files_tag, actual, "bundle/generator.pt")
    assert len(problems) == 1 and "has no readable prodgan.model_files map" in problems[0]


def test_registration_problems_name_replaced_weights_and_edited_code() -> None:
    files = json.dumps({"MLmodel": "a", "generator.py": "b", "bundle/generator.pt": "w"})
    intact = {"MLmodel": "a", "generator.py": "b", "bundle/generator.pt": "w"}
    assert registration_problems("w", files, intact, "bundle/generator.pt") == []
    edited = {**intact, "generator.py": "evil", "bundle/generator.pt": "other"}
    problems = registration_problems("w", files, edited, "bundle/generator.pt")
    assert "the weights were replaced" in problems[0]
    assert "generator.py (changed)" in problems[1]
    assert registration_problems(None, files, intact, "bundle/generator.pt")[0].startswith("has no")


def test_a_decision_reads_back_from_its_record_with_typed_checks() -> None:
    decision = Decision(
        action="reject",
        model="m",
        version="3",
        checks=[
            Check("absolute.fid", False, "fid_50 = 300 too high"),
            Check("protocol", True, "same"),
        ],
        notes=["a note"],
    )
    stored = {**decision.to_dict(), "n": 4, "signature": "s", "state": "final"}
    again = Decision.from_record(json.loads(json.dumps(stored)))
    assert again.checks == decision.checks and again.notes == ["a note"]
    assert [c.gate for c in again.failed] == ["absolute.fid"]
    assert stored["reasons"] == [
        "FAIL absolute.fid: fid_50 = 300 too high",
        "PASS protocol: same",
        "a note",
    ]
    assert again.summary == "FAIL absolute.fid: fid_50 = 300 too high"
