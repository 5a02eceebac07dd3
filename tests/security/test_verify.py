"""Tamper evidence on a real sqlite registry: unaudited alias moves and replaced weights are
caught."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest

from prodgan import names
from prodgan.adapters import audit, registry
from prodgan.errors import GateFailed, ProdganError
from prodgan.ops import promote as promotion
from prodgan.ops.verification import require_verified, verify
from prodgan.policy.chain import check_aliases
from tests.conftest import run
from tests.registry import helpers


def move(
    version: str, before: str | None, previous: str | None, seq: int, action: str = "promote"
) -> dict:
    return {
        "action": action,
        "version": version,
        "champion_before": before,
        "champion_after": version,
        "previous_after": previous,
        "seq": seq,
        "actor": "alice",
        "audit_run_id": f"run{seq}",
    }


LOG = [
    move("1", None, None, 1),
    {
        "action": "reject",
        "version": "3",
        "champion_before": "1",
        "champion_after": "1",
        "previous_after": None,
        "seq": 1,
    },
    move("2", "1", "1", 2),
]
BYPASS = {
    "action": "force",
    "bypassed": "verification",
    "champion_before": "5",
    "champion_after": None,
    "seq": 2,
}


@pytest.mark.parametrize(
    "records, champion, previous, flagged",
    [
        ([], None, None, []),
        ([], "1", None, ["1"]),  # an alias no record ever set
        (LOG, "2", "1", []),
        (LOG, "1", "1", ["1"]),  # champion moved back by hand
        (LOG, "2", None, [None]),  # previous deleted by hand
        (
            LOG + [move("4", "5", "5", 3)],
            "4",
            "5",
            ["5"],
        ),  # a later promotion found champion where no record put it
        (
            LOG + [BYPASS, move("4", "5", "5", 3)],
            "4",
            "5",
            [],
        ),  # ... unless a force record acknowledged the gap
        (
            [LOG[0], BYPASS, move("2", "1", "1", 2), move("4", "5", "5", 3)],
            "4",
            "5",
            ["5"],
        ),  # a force excuses one gap, not later ones
        (
            [
                move("2", None, None, 1),
                move("3", "2", "2", 2, "rollback"),
                move("2", "3", "3", 3, "force"),
            ],
            "2",
            "3",
            [],
        ),
    ],
)
def test_alias_positions_are_replayed_from_the_audit_log(
    records, champion, previous, flagged
) -> None:
    assert [f.version for f in check_aliases(records, champion, previous)] == flagged


def _aliases(settings) -> dict[str, str]:
    return registry.production_aliases(registry.client_for(settings), settings.model_name)


def _production(settings) -> tuple[str, dict[str, str]]:
    """(production model name, {trained version: production version}) of the promoter's copies."""
    client, production = registry.client_for(settings), names.production_model(settings.model_name)
    copies = {
        mv.tags[names.SOURCE_VERSION]: str(mv.version)
        for mv in client.search_model_versions(f"name = '{production}'")
    }
    return production, copies


def test_direct_alias_move_is_caught_and_blocks_promotion(store) -> None:
    v1, v2, v3 = (
        helpers.registered(store, seed=s, fid=f) for s, f in ((1, 300.0), (2, 200.0), (3, 100.0))
    )
    for version in (v1, v2):
        assert promotion.promote(store, version, actor="alice").approved
    clean = verify(store)
    assert (
        clean.ok and clean.hashed == [v1, v2, v3] and (clean.champion, clean.previous) == (v2, v1)
    )

    production, copies = _production(store)
    registry.client_for(store).set_registered_model_alias(
        production, "champion", copies[v1]
    )  # behind prodgan's back
    report = verify(store)
    assert any(
        f.version == v1 and "alias champion" in f.problem and "moved outside prodgan" in f.problem
        for f in report.findings
    )
    with pytest.raises(GateFailed, match=f"v{v1}: alias champion points to v{v1}"):
        promotion.promote(store, v3, actor="alice")
    assert _aliases(store) == {
        "champion": v1,
        "previous": v1,
    }  # the refused promotion changed nothing

    decision = promotion.promote(
        store, v3, actor="alice", force_reason="restore after the unaudited move"
    )
    assert decision.approved and _aliases(store) == {"champion": v3, "previous": v1}
    forced = [r for r in audit.audit_records(store) if r.get("bypassed")]
    assert len(forced) == 1 and forced[0]["action"] == "force" and forced[0]["actor"] == "alice"
    assert any(f"v{v1}" in finding for finding in forced[0]["findings"])
    assert verify(store).ok  # the forced promotion re-established an explained state


def _stored(settings, model: str, version: str) -> Path:
    """The stored generator.pt of a model version (embedded store: files on local disk)."""
    uri = registry.client_for(settings).get_model_version_download_uri(model, version)
    (weights,) = Path(urlparse(uri).path).rglob("generator.pt")
    return weights


def test_replaced_production_weights_are_caught_and_refused(store) -> None:
    v1, v2 = (
        helpers.registered(store, seed=1, fid=300.0),
        helpers.registered(store, seed=2, fid=200.0),
    )
    promotion.promote(store, v1, actor="alice")
    production, copies = _production(store)
    _stored(store, production, copies[v1]).write_bytes(
        _stored(store, store.model_name, v2).read_bytes()
    )

    report = verify(store)
    assert report.findings and all(
        f"production v{copies[v1]}" in f.problem for f in report.findings
    ), report.findings
    proc = run(
        [
            sys.executable,
            "-m",
            "prodgan",
            "generate",
            "-n",
            "4",
            "--out",
            str(store.root / "grid.png"),
        ],
        store.root,
        check=False,
    )
    assert proc.returncode == 1 and not (store.root / "grid.png").exists()
    assert (
        f"refusing to load production v{copies[v1]}" in proc.stderr
        and "generator.pt hashes to" in proc.stderr
    )
    assert "Traceback" not in proc.stderr
    with pytest.raises(GateFailed, match="generator.pt hashes to"):
        require_verified(store, purpose="serve")


def test_edited_trained_code_never_reaches_production_and_edited_production_code_is_refused(
    store,
) -> None:
    v1 = helpers.registered(store, seed=1, fid=300.0)
    promotion.promote(store, v1, actor="alice")
    production, copies = _production(store)
    # <model>/artifacts/bundle/generator.pt -> <model>, where the models-from-code file lives
    trained, served = (
        _stored(store, store.model_name, v1).parents[2],
        _stored(store, production, copies[v1]).parents[2],
    )
    assert (served / "generator.py").is_file() and not list(
        served.rglob("*.pkl")
    )  # models-from-code, no pickle
    assert verify(store).ok

    with (trained / "generator.py").open("a") as code:  # the trainer's own version: it may edit it
        code.write("\nraise SystemExit('trainer code ran')\n")
    report = verify(store)
    assert {f.version for f in report.findings} == {v1}, report.findings
    assert "generator.py (changed)" in report.findings[0].problem
    assert "generator.py is not prodgan's fixed loader" in report.findings[1].problem
    assert (served / "generator.py").read_text() == (
        Path(promotion.serving.MODEL_CODE) / "generator.py"
    ).read_text()

    with (served / "generator.py").open(
        "a"
    ) as code:  # production's copy: only a promoter (or the disk) could
        code.write("\nimport os  # an edit behind prodgan's back\n")
    with pytest.raises(GateFailed, match=rf"production v{copies[v1]} .*generator.py hashes to"):
        require_verified(store, purpose="serve")


def test_a_malformed_production_tag_is_a_one_line_error_naming_the_repair(store) -> None:
    v1 = helpers.registered(store, seed=1, fid=300.0)
    promotion.promote(store, v1, actor="alice")
    client = registry.client_for(store)
    client.set_registered_model_tag(
        store.model_name, "prodgan.champion_seq", "one; drop"
    )  # the old counter: not read
    production, copies = _production(store)
    assert verify(store, all_versions=False).ok
    client.set_model_version_tag(production, copies[v1], names.SOURCE_VERSION, "one; drop")
    with pytest.raises(
        ProdganError,
        match=rf"production version {copies[v1]} of {production} has prodgan.source_version="
        r"'one; drop', not a version number; a promoter repairs it",
    ):
        promotion.rollback(store)
    proc = run([sys.executable, "-m", "prodgan", "audit", "verify"], store.root, check=False)
    assert (
        proc.returncode == 2
        and "a promoter repairs it" in proc.stderr
        and "Traceback" not in proc.stderr
    )


def test_champion_of_any_model_name_is_the_promoters_copy_only(store) -> None:
    """Every dataset has its own model, so `@champion` is honoured by name pattern nowhere: a
    trainer who registers a model of its own making and points its alias at a version is refused,
    not served."""
    from prodgan.ops.serve import serve_target

    v1 = helpers.registered(store, seed=1, fid=300.0)
    client = registry.client_for(store)
    mv = client.get_model_version(store.model_name, v1)
    client.create_registered_model("prodgan-generator-mine")
    mine = client.create_model_version(
        "prodgan-generator-mine", mv.source, run_id=mv.run_id, tags=mv.tags
    )
    client.set_registered_model_alias(
        "prodgan-generator-mine", names.CHAMPION, mine.version
    )  # the trainer's own alias
    with pytest.raises(ProdganError, match="prodgan-generator-mine has no alias @champion yet"):
        serve_target(store, "models:/prodgan-generator-mine@champion")
    assert serve_target(
        store, f"models:/prodgan-generator-mine/{mine.version}"
    )  # by number it is what it says it is
    with pytest.raises(ProdganError, match="is not a trained version"):
        promotion.promote(
            store, f"models:/{names.production_model(store.model_name)}/1", actor="alice"
        )


def test_a_trained_versions_file_map_must_match_the_hash_its_tag_keeps(store) -> None:
    v1 = helpers.registered(store, seed=1, fid=300.0)
    client = registry.client_for(store)
    mv = client.get_model_version(store.model_name, v1)
    assert names.MODEL_FILES not in mv.tags, "the JSON map is an artifact, not a tag"
    assert verify(store).ok
    files = json.loads(str(registry.registered_file_map(client, mv)))
    files["generator.py"] = "0" * 64  # a map edited to bless edited code
    client.log_text(mv.tags[names.TRAIN_RUN], json.dumps(files), names.MODEL_FILES_ARTIFACT)
    assert registry.registered_file_map(client, mv) is None
    report = verify(store)
    assert [f.version for f in report.findings] == [v1], report.findings
    assert "has no readable prodgan.model_files map" in report.findings[0].problem
