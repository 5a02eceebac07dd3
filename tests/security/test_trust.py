"""Trust, round two, on one authenticated server (PostgreSQL + `mlflow server --app-name
basic-auth`): every attack of issue 26 replayed as the role that would make it.

One server and one promoted project for the module (v1..v3 registered by the trainer, evaluated by
the promoter, v1 and v2 promoted); each test undoes what it changed that a later one reads. The
attacks: stored code served or loaded by number or version pin, a trainer's `@champion` on the
training model, a swapped production bundle under a plain MLflow client, a rewound or hidden head
of the audit chain, a loss repaired by a signed acknowledgement, squatted claims, promotions
refused for the key that must leave no production version behind, and junk in every value a
trainer can write.
"""

from __future__ import annotations

import json
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from prodgan import names
from prodgan.adapters import audit, registry, serving
from prodgan.errors import GateFailed, ProdganError
from prodgan.fsutil import file_hashes
from prodgan.ops import promote as promotion
from prodgan.ops.audit import verify as audit_verify
from prodgan.ops.serve import serve_target
from prodgan.ops.verification import verify
from prodgan.policy.chain import record_hash
from prodgan.settings import Settings
from tests.conftest import _use_project
from tests.registry import helpers
from tests.security.test_server_mode import ADMIN, AUTH_INI, PROMOTER, TRAINER, Team
from tests.servers import mlflow_server

pytestmark = [pytest.mark.server, pytest.mark.slow]


@dataclass
class World:
    team: Team
    settings: Settings
    versions: list[str]
    key: str  # the promoter's private key file
    root: Path

    @property
    def name(self) -> str:
        return self.settings.model_name

    @property
    def production(self) -> str:
        return names.production_model(self.name)

    def as_user(self, user: str, monkeypatch: pytest.MonkeyPatch, key: bool = False) -> None:
        self.team.act_as(user, monkeypatch)
        if key:
            monkeypatch.setenv("PRODGAN_AUDIT_KEY", self.key)
        else:
            monkeypatch.delenv("PRODGAN_AUDIT_KEY", raising=False)

    def production_versions(self) -> list[str]:
        found = registry.client_for(self.settings).search_model_versions(
            f"name = '{self.production}'"
        )
        return sorted(str(mv.version) for mv in found)


@pytest.fixture(scope="module")
def world(_empty_template: Path, tracking_databases, tmp_path_factory: pytest.TempPathFactory):
    patch = pytest.MonkeyPatch()
    tmp = tmp_path_factory.mktemp("trust")
    root = tmp / "proj"
    shutil.copytree(_empty_template, root, symlinks=True)
    _use_project(root, patch)
    auth_ini = tmp / "basic_auth.ini"
    auth_ini.write_text(AUTH_INI.format(db=tmp / "basic_auth.db"))
    admin_password = secrets.token_urlsafe(18)
    server_env = {
        "MLFLOW_AUTH_CONFIG_PATH": str(auth_ini),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(32),
        "MLFLOW_AUTH_ADMIN_PASSWORD": admin_password,
    }
    keys = tmp / "promoter-keys"
    patch.setenv("PRODGAN_AUDIT_PUBLIC_KEY", str(keys / "audit.pub"))
    key = str(keys / "audit.pem")
    try:
        db = tracking_databases.new()
        with mlflow_server(db, tmp / "mlartifacts", "basic-auth", server_env, 300) as url:
            team = Team(url, root)
            team.passwords[ADMIN] = admin_password
            patch.setenv("MLFLOW_TRACKING_URI", url)
            settings = Settings.load()
            team.ok(
                ADMIN,
                "admin",
                "roles",
                extra={
                    "PRODGAN_TRAINER_PASSWORD": team.passwords[TRAINER],
                    "PRODGAN_PROMOTER_PASSWORD": team.passwords[PROMOTER],
                },
            )
            team.ok(PROMOTER, "admin", "keygen", extra={"PRODGAN_AUDIT_KEY": key})
            team.act_as(TRAINER, patch)
            runs = [helpers.train_run(settings, seed=s) for s in (1, 2, 3)]
            versions = [str(promotion.register(settings, r).version) for r in runs]
            team.act_as(PROMOTER, patch)
            for run_id, fid in zip(runs, (300.0, 200.0, 50.0), strict=True):
                helpers.eval_run(settings, run_id, fid=fid)
            patch.setenv("PRODGAN_AUDIT_KEY", key)
            for version in versions[:2]:
                assert promotion.promote(settings, version).approved
            yield World(team, settings, versions, key, root)
    finally:
        patch.undo()


def _download(uri: str, dest: Path) -> Path:
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dest)))


def _findings(settings: Settings, **kwargs) -> str:
    return "; ".join(map(str, verify(settings, **kwargs).findings))


def test_no_stored_code_runs_where_prodgan_loads_or_serves(world: World, monkeypatch, tmp_path):
    """The trainer rewrites its trained v1's generator.py (and the model_files tag to match),
    registers the same files as its own model, and sets `@champion` on the training model:
    prodgan serves v1 and the pin with its installed loader, and verify names the foreign code and
    the alias a plain MLflow client would follow."""
    settings, name, v1 = world.settings, world.name, world.versions[0]
    client = registry.client_for(settings)
    marker = tmp_path / "trainer-code-ran"
    evil = tmp_path / "evil" / "generator.py"
    evil.parent.mkdir()
    evil.write_text(f"open({str(marker)!r}, 'w').write('ran')\nraise SystemExit('trainer code')\n")
    world.as_user(TRAINER, monkeypatch)
    trained = client.get_model_version(name, v1)
    model_id = trained.source.removeprefix("models:/")
    original_files = trained.tags.get(names.MODEL_FILES)  # registered before the map moved
    client.log_model_artifact(model_id, str(evil))
    stored = file_hashes(_download(f"models:/{name}/{v1}", tmp_path / "stored"))
    client.set_model_version_tag(name, v1, names.MODEL_FILES, json.dumps(stored, sort_keys=True))
    edited = client.get_model_version(name, v1).tags
    pinned = mlflow.register_model(trained.source, f"{name}-evil", tags=edited)
    client.set_registered_model_alias(name, "champion", v1)
    try:
        for uri in (f"models:/{name}/{v1}", f"models:/{name}-evil/{pinned.version}"):
            target = serve_target(settings, uri)
            model = serving.installed_pyfunc(
                target.bundle_dir, target.bundle_hashes, tmp_path / uri.replace("/", "_")
            )
            assert len(model.predict(pd.DataFrame([{"seed": 1, "n": 1}]))) == 1, uri
        assert not marker.exists(), "the stored generator.py ran"
        found = _findings(settings)
        assert f"v{v1}: generator.py is not prodgan's fixed loader" in found, found
        assert f"alias champion is set on the trained model {name}" in found, found
    finally:
        world.as_user(TRAINER, monkeypatch)
        client.log_model_artifact(model_id, str(serving.MODEL_CODE / "generator.py"))
        world.as_user(PROMOTER, monkeypatch)  # a trainer may set aliases and tags, not delete them
        client.delete_registered_model_alias(name, "champion")
        if original_files is None:
            client.delete_model_version_tag(name, v1, names.MODEL_FILES)
        else:
            client.set_model_version_tag(name, v1, names.MODEL_FILES, original_files)
    assert verify(settings).ok


def test_a_plain_mlflow_client_of_production_checks_the_bundle(world: World, monkeypatch, tmp_path):
    """The production copy's stored code is the fixed loader, which checks the bundle against the
    hashes it carries: a promoter login (no key) that swaps in another version's bundle is refused
    by a plain `mlflow.pyfunc.load_model`, not only by prodgan."""
    settings, production = world.settings, world.production
    world.as_user(PROMOTER, monkeypatch)
    client = registry.client_for(settings)
    champion = f"models:/{production}@champion"
    assert len(mlflow.pyfunc.load_model(champion).predict(pd.DataFrame([{"seed": 1, "n": 2}]))) == 2
    stored = _download(champion, tmp_path / "champion")
    assert (stored / "generator.py").read_bytes() == (
        serving.MODEL_CODE / "generator.py"
    ).read_bytes()
    other = _download(f"models:/{production}@previous", tmp_path / "previous")
    bundle = next(stored.rglob("generator.pt")).parent.relative_to(stored).as_posix()
    model_id = client.get_model_version_by_alias(production, "champion").source.split("/")[-1]
    for path in ("generator.pt", "generator.json"):
        client.log_model_artifact(model_id, str(other / bundle / path), bundle)
    try:
        with pytest.raises(GateFailed, match="refusing to load the generator bundle"):
            mlflow.pyfunc.load_model(champion)
    finally:
        for path in ("generator.pt", "generator.json"):
            client.log_model_artifact(model_id, str(stored / bundle / path), bundle)
    assert verify(settings, all_versions=False).ok


def test_the_head_is_signed_and_a_loss_is_repaired_by_a_signed_acknowledgement(
    world: World, monkeypatch
):
    """A promoter login without the key rewinds the head, or hides the newest record (here a
    rejection) and rewinds the head to match: verify fails at once. The promoter accepts the loss
    with a signed acknowledgement; verify passes again and keeps naming the lost record."""
    settings, name, production = world.settings, world.name, world.production
    world.as_user(PROMOTER, monkeypatch, key=True)
    assert not promotion.promote(settings, world.versions[0]).approved  # v1 is worse: a rejection
    world.as_user(PROMOTER, monkeypatch)
    client = registry.client_for(settings)
    records = audit.chain(settings, name)
    newest, before = records[-1], records[-2]
    signed_head = client.get_registered_model(production).tags[names.AUDIT_HEAD]
    rewound = f"{before['n']}:{record_hash(before)}"
    client.set_registered_model_tag(production, names.AUDIT_HEAD, rewound)
    assert "is not signed by the configured audit key" in _findings(settings, all_versions=False)
    history = world.team.cli(TRAINER, "audit", "history")
    assert "warning: fails verification" in history.stdout, history.stdout
    client.set_tag(newest["audit_run_id"], f"{names.AUDIT_TAG}model", "elsewhere")
    assert "is not signed by the configured audit key" in _findings(settings, all_versions=False)
    client.set_registered_model_tag(production, names.AUDIT_HEAD, signed_head)
    found = _findings(settings, all_versions=False)
    assert f"signed {names.AUDIT_HEAD} tag says #{newest['n']}" in found, found
    world.as_user(PROMOTER, monkeypatch, key=True)
    with pytest.raises(GateFailed, match="fails verification"):
        promotion.rollback(settings)
    audit_verify(settings, all_versions=False, acknowledge="record hidden in a test")
    report = verify(settings, all_versions=False)
    assert report.ok, report.findings
    assert any(line.startswith(f"audit record #{newest['n']} is lost") for line in report.lost)
    assert promotion.rollback(settings).approved  # the next append links to the acknowledgement
    assert verify(settings, all_versions=False).ok


def test_claims_cannot_be_squatted_and_refused_promotions_leave_nothing(
    world: World, monkeypatch, tmp_path
):
    """Sixty-two claim-named experiments made by the trainer block nothing; a promotion refused for
    a missing or a wrong key leaves no production version behind."""
    settings, name = world.settings, world.name
    world.as_user(TRAINER, monkeypatch)
    client = registry.client_for(settings)
    start = len(audit.chain(settings, name)) + 1
    for n in range(start, start + 62):
        client.create_experiment(f"{names.AUDIT_CLAIM_PREFIX}/{name}/{n}")
    world.as_user(PROMOTER, monkeypatch)
    before = world.production_versions()
    with pytest.raises(ProdganError, match="no audit signing key"):
        promotion.promote(settings, world.versions[2])
    stranger = tmp_path / "stranger"
    monkeypatch.setenv("PRODGAN_AUDIT_KEY", str(stranger / "audit.pem"))
    monkeypatch.setenv("PRODGAN_AUDIT_PUBLIC_KEY", str(stranger / "audit.pub"))
    from prodgan.adapters import signing

    signing.keygen(Settings.load())
    monkeypatch.setenv("PRODGAN_AUDIT_PUBLIC_KEY", str(Path(world.key).with_name("audit.pub")))
    with pytest.raises(ProdganError, match="does not match the configured public key"):
        promotion.promote(settings, world.versions[2])
    assert world.production_versions() == before
    world.as_user(PROMOTER, monkeypatch, key=True)
    assert promotion.rollback(settings).approved  # claims the trainer made take no place
    assert verify(settings, all_versions=False).ok


def test_junk_in_trainer_writable_values_is_one_line(world: World, monkeypatch):
    """Junk tags name the version and the tag; NULs and oversized text never reach the server;
    a missing model on an auth server is one line."""
    settings, name, v3 = world.settings, world.name, world.versions[2]
    client = registry.client_for(settings)
    world.as_user(TRAINER, monkeypatch)
    original = dict(client.get_model_version(name, v3).tags)

    def restore(tag: str) -> None:
        if tag in original:
            client.set_model_version_tag(name, v3, tag, original[tag])
        else:
            client.delete_model_version_tag(name, v3, tag)

    junk = {
        names.MODEL_FILES: ("{not json", f"v{v3}"),
        names.EVAL_RUN: ("not-a-run", f"{name} v{v3}: tag {names.EVAL_RUN}='not-a-run'"),
        names.TRAIN_RUN: ("one; drop", f"{name} v{v3}: tag {names.TRAIN_RUN}='one; drop'"),
    }
    try:
        for tag, (value, named) in junk.items():
            world.as_user(TRAINER, monkeypatch)
            client.set_model_version_tag(name, v3, tag, value)
            world.as_user(PROMOTER, monkeypatch, key=True)
            with pytest.raises(ProdganError) as refused:
                promotion.promote(settings, v3)
            line = str(refused.value)
            assert named in line and "\n" not in line, line
            restore(tag)
        found = _findings(settings, all_versions=False, include=(v3,))
        assert found == "", found
        before = world.production_versions()
        for reason in ("null\x00byte", "x" * 5000):
            with pytest.raises(ProdganError, match="NUL|characters long"):
                promotion.promote(settings, v3, force_reason=reason)
        assert world.production_versions() == before
    finally:
        world.as_user(PROMOTER, monkeypatch)
        for tag in junk:
            restore(tag)
    missing = world.team.cli(TRAINER, "serve", "-m", "models:/no-such-model/1")
    assert missing.returncode != 0 and "Traceback" not in missing.stderr, missing.stderr
    assert "no-such-model has no version 1" in missing.stderr, missing.stderr
    counted = world.team.cli(TRAINER, "audit", "verify", "--aliased-only")
    records = len(audit.chain(settings, name))
    assert f"{records} audit records" in counted.stdout, counted.stdout + counted.stderr
