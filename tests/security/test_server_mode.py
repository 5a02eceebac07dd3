"""Authenticated server mode end to end:
PostgreSQL + `mlflow server --app-name basic-auth` on 127.0.0.1.

Roles are created by `prodgan admin roles`; every step runs with the credentials of the role that
would do it in a team (in-process through the environment, or the CLI with its own). Each attack of
issue 14 is replayed here and must get HTTP 403 or be refused at load, promotion or verify time with
a reason naming the version: the trainer's code cannot reach production, forged evaluations are not
read, production aliases and files and the audit log are out of the trainer's reach, an
MLflow-rights holder without the promoter's signing key cannot edit, delete or invent audit records
unnoticed, a malformed tag stops nothing, the local cache is re-checked, and no password is found
anywhere MLflow, PostgreSQL, the artifact store, the project or the output keeps it.
"""

from __future__ import annotations

import os
import secrets
import sys
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import pytest
from mlflow.exceptions import MlflowException

from prodgan import names
from prodgan.adapters import audit, registry, serving
from prodgan.adapters.production_state import resolve_model
from prodgan.errors import GateFailed, ProdganError
from prodgan.ops import promote as promotion
from prodgan.ops.verification import verify
from prodgan.settings import Settings
from tests.conftest import run
from tests.registry import helpers
from tests.servers import mlflow_server

pytestmark = [pytest.mark.server, pytest.mark.slow]

ADMIN, TRAINER, PROMOTER = "admin", "prodgan-trainer", "prodgan-promoter"
AUTH_INI = """[mlflow]
default_permission = READ
database_uri = sqlite:///{db}
admin_username = admin
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
# each request otherwise pays a PBKDF2 hash (seconds on a loaded 2-core machine)
auth_cache_ttl_seconds = 60
"""


def _status(url: str, path: str) -> int:
    try:
        with urllib.request.urlopen(f"{url}{path}", timeout=30) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


class Team:
    """Who is who on the server: passwords (random per test) and the environment of each user."""

    def __init__(self, url: str, root: Path) -> None:
        self.url, self.root = url, root
        self.passwords = {name: secrets.token_urlsafe(18) for name in (ADMIN, TRAINER, PROMOTER)}
        self.outputs: list[str] = []

    def env(self, user: str | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}
        env["MLFLOW_TRACKING_URI"] = self.url
        if user:
            env.update(MLFLOW_TRACKING_USERNAME=user, MLFLOW_TRACKING_PASSWORD=self.passwords[user])
        return env

    def cli(self, user: str | None, *args: str, extra: dict[str, str] | None = None):
        proc = run(
            [sys.executable, "-m", "prodgan", *args],
            self.root,
            check=False,
            env={**self.env(user), **(extra or {})},
        )
        self.outputs += [proc.stdout, proc.stderr]
        return proc

    def ok(self, user: str | None, *args: str, extra: dict[str, str] | None = None):
        proc = self.cli(user, *args, extra=extra)
        assert proc.returncode == 0, (
            f"prodgan {' '.join(args)} as {user}: exit {proc.returncode}\n"
            f"{proc.stdout}\n{proc.stderr}"
        )
        return proc

    def act_as(self, user: str, monkeypatch: pytest.MonkeyPatch) -> None:
        """In-process MLflow calls read the credentials from the environment on every request."""
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", self.passwords[user])


def _files_holding(root: Path, secrets_: list[bytes]) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            hits += [f"{path}" for s in secrets_ if s in data]
    return hits


def _database_rows_holding(db_uri: str, secrets_: list[str]) -> list[str]:
    """Every row of every table of the tracking database, as text, searched for the secrets."""
    import psycopg2
    from sqlalchemy.engine import make_url

    url = make_url(db_uri)
    conn = psycopg2.connect(host=url.host, port=url.port, user=url.username, dbname=url.database)
    hits = []
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
            for (table,) in cur.fetchall():
                cur.execute(f'SELECT t::text FROM "{table}" t')
                hits += [table for (row,) in cur.fetchall() for s in secrets_ if s in row]
    finally:
        conn.close()
    return hits


def _denied(call, *args, **kwargs) -> None:
    """The server refuses the call with 403 (an MlflowException, or requests' error for artifact
    uploads)."""
    import requests

    with pytest.raises(
        (MlflowException, requests.HTTPError), match="403|PERMISSION_DENIED|Permission denied"
    ):
        call(*args, **kwargs)


def _verify_fails(settings: Settings, *words: str) -> None:
    report = verify(settings, all_versions=False)
    text = "; ".join(map(str, report.findings))
    assert not report.ok and all(w in text for w in words), text


def test_roles_attacks_and_no_leaked_passwords(
    project: Settings, tracking_databases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth_ini = tmp_path / "basic_auth.ini"
    auth_ini.write_text(AUTH_INI.format(db=tmp_path / "basic_auth.db"))
    artifacts = tmp_path / "mlartifacts"
    admin_password = secrets.token_urlsafe(18)
    server_env = {
        "MLFLOW_AUTH_CONFIG_PATH": str(auth_ini),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(32),
        "MLFLOW_AUTH_ADMIN_PASSWORD": admin_password,
    }
    # the promoter's key stays in the promoter's own folder; everyone verifies with the configured
    # public key
    keys = tmp_path / "promoter-keys"
    monkeypatch.setenv("PRODGAN_AUDIT_PUBLIC_KEY", str(keys / "audit.pub"))
    promoter_key = {"PRODGAN_AUDIT_KEY": str(keys / "audit.pem")}
    db = tracking_databases.new()
    with mlflow_server(db, artifacts, app_name="basic-auth", env=server_env, timeout=300) as url:
        team = Team(url, project.root)
        team.passwords[ADMIN] = admin_password
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        settings = Settings.load()
        name, production = settings.model_name, names.production_model(settings.model_name)
        role_passwords = {
            "PRODGAN_TRAINER_PASSWORD": team.passwords[TRAINER],
            "PRODGAN_PROMOTER_PASSWORD": team.passwords[PROMOTER],
        }

        # anonymous: the REST API and prodgan are both refused
        assert _status(url, "/api/2.0/mlflow/experiments/search?max_results=1") == 401
        anonymous = team.cli(None, "admin", "roles", extra=role_passwords)
        assert anonymous.returncode == 2 and "refused anonymous access" in anonymous.stderr

        # the admin creates the roles (passwords from the environment only);
        # the promoter makes its key
        team.ok(ADMIN, "admin", "roles", extra=role_passwords)
        team.ok(PROMOTER, "admin", "keygen", extra=promoter_key)
        assert (keys / "audit.pem").stat().st_mode & 0o777 == 0o600

        # the trainer trains and registers; only the promoter may evaluate for the gates
        team.act_as(TRAINER, monkeypatch)
        runs = [helpers.train_run(settings, seed=s) for s in (1, 2, 3, 4)]
        v1, v2, v3, v4 = (str(promotion.register(settings, r).version) for r in runs)
        with pytest.raises(MlflowException, match="403|PERMISSION_DENIED|Permission denied"):
            helpers.eval_run(settings, runs[0], fid=1.0)
        team.act_as(PROMOTER, monkeypatch)
        evals = [
            helpers.eval_run(settings, r, fid=f)
            for r, f in zip(runs, (300.0, 200.0, 50.0, 400.0), strict=True)
        ]

        refused = team.cli(TRAINER, "promote", v1)
        assert refused.returncode == 2, refused.stderr
        assert (
            f"user '{TRAINER}' may not promote" in refused.stderr
            and "needs MANAGE" in refused.stderr
        )
        assert registry.champion_version(settings) is None

        # the promoter promotes v1 (CLI), then v2; the actor is the server's authenticated user
        team.ok(PROMOTER, "promote", v1, extra=promoter_key)
        monkeypatch.setenv("PRODGAN_AUDIT_KEY", promoter_key["PRODGAN_AUDIT_KEY"])
        assert promotion.promote(settings, v2, actor="mallory").approved
        assert verify(settings).ok
        assert [r["actor"] for r in audit.audit_records(settings)] == [
            PROMOTER,
            f"{PROMOTER} (as mallory)",
        ]
        client = registry.client_for(settings)
        copies = {
            mv.tags[names.SOURCE_VERSION]: str(mv.version)
            for mv in client.search_model_versions(f"name = '{production}'")
        }

        # ---- the trainer's attacks: every one is refused by the server
        monkeypatch.delenv("PRODGAN_AUDIT_KEY")
        team.act_as(TRAINER, monkeypatch)
        _denied(
            client.set_registered_model_alias, production, "champion", copies[v1]
        )  # direct alias move
        _denied(client.set_registered_model_tag, production, names.AUDIT_HEAD, "1:forged")
        served = client.get_model_version(production, copies[v2])
        assert served.source.startswith("models:/m-")
        evil = tmp_path / "evil" / "generator.py"
        evil.parent.mkdir()
        evil.write_text("raise SystemExit('trainer code ran on the serving host')\n")
        _denied(
            client.log_model_artifact, served.source.removeprefix("models:/"), str(evil)
        )  # its code into production's files
        _denied(
            client.log_metric, evals[3], "fid_50", 1.0
        )  # better numbers into a gate's evaluation
        _denied(
            client.create_run, client.get_experiment_by_name(names.AUDIT_EXPERIMENT).experiment_id
        )  # audit records
        # what the trainer may still do changes nothing that is served or gated
        trained = client.get_model_version(name, v2)
        client.log_model_artifact(
            trained.source.removeprefix("models:/"), str(evil)
        )  # its own trained version's code
        client.set_registered_model_tag(name, "prodgan.champion_seq", "one; drop")
        forged_exp = client.create_experiment("trainer-evaluations")
        forged = client.create_run(
            forged_exp,
            tags={
                names.PROTOCOL: "proto-a" * 4,
                names.TRAIN_RUN: runs[3],
                names.WEIGHTS: client.get_run(runs[3]).data.tags[names.WEIGHTS],
            },
        )
        for metric, value in {
            "fid_50": 1.0,
            "fid_50_ci_low": 0.5,
            "fid_50_ci_high": 1.5,
            "kid_50": 0.001,
            "kid_50_std": 0.001,
            "cond_acc_50": 0.99,
            "memorization_50": 0.0,
        }.items():
            client.log_metric(forged.info.run_id, metric, value)
        client.set_terminated(forged.info.run_id)
        client.set_model_version_tag(name, v4, names.EVAL_RUN, forged.info.run_id)

        grid = tmp_path / "champion.png"
        team.ok(
            TRAINER, "generate", "-n", "2", "--out", str(grid)
        )  # production's code ran, not the trainer's
        code = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{production}@champion", dst_path=str(tmp_path / "dl")
            )
        )
        assert (code / "generator.py").read_text() == (
            Path(serving.MODEL_CODE) / "generator.py"
        ).read_text()

        # ---- the promoter: the forged evaluation is not read; the malformed tag stops nothing
        team.act_as(PROMOTER, monkeypatch)
        monkeypatch.setenv("PRODGAN_AUDIT_KEY", promoter_key["PRODGAN_AUDIT_KEY"])
        with pytest.raises(
            ProdganError,
            match=f"v{v4} of {name}: evaluation run {forged.info.run_id} "
            "is not in the prodgan-eval",
        ):
            promotion.promote(settings, v4)
        assert promotion.promote(settings, v3).approved
        assert (
            registry.champion_version(settings).version == v3
            and verify(settings, all_versions=False).ok
        )
        v3_copy = registry.production_state(client, name).champion_version
        trained_edit = verify(
            settings
        ).findings  # the trained version the trainer edited is reported, production is not
        assert {f.version for f in trained_edit} == {v2}, trained_edit
        assert "generator.py (changed)" in str(trained_edit[0]), trained_edit
        assert "generator.py is not prodgan's fixed loader" in str(trained_edit[1]), trained_edit

        # ---- MLflow rights without the signing key (a promoter account, or its stolen password)
        monkeypatch.delenv("PRODGAN_AUDIT_KEY")
        records = audit.chain(settings, name)
        first, last = records[0], records[-1]
        client.log_dict(
            first["audit_run_id"], {**first, "actor": "someone else"}, names.AUDIT_FILE
        )  # an edit
        _verify_fails(settings, "audit record #1", "no valid signature")
        client.log_dict(
            first["audit_run_id"],
            {k: v for k, v in first.items() if k != "audit_run_id"},
            names.AUDIT_FILE,
        )
        _denied(
            client.delete_run, last["audit_run_id"]
        )  # a promoter may not delete records (MANAGE); an admin may:
        team.act_as(ADMIN, monkeypatch)
        client.delete_run(last["audit_run_id"])  # a deletion at the end of the chain
        _verify_fails(settings, "records at the end of the chain were deleted")
        client.restore_run(last["audit_run_id"])
        team.act_as(PROMOTER, monkeypatch)
        made_up = client.create_run(
            client.get_experiment_by_name(names.AUDIT_EXPERIMENT).experiment_id,
            tags={"prodgan.audit.model": name, "prodgan.audit.n": str(last["n"] + 1)},
        )
        client.log_dict(
            made_up.info.run_id,
            {**last, "n": last["n"] + 1, "action": "promote", "version": v4},
            names.AUDIT_FILE,
        )
        _verify_fails(settings, f"audit record #{last['n'] + 1}", "no valid signature")
        team.act_as(ADMIN, monkeypatch)
        client.delete_run(made_up.info.run_id)
        team.act_as(PROMOTER, monkeypatch)
        client.set_registered_model_alias(
            production, "champion", copies[v1]
        )  # a move outside prodgan
        caught = team.cli(TRAINER, "audit", "verify", "--aliased-only")
        assert caught.returncode == 1 and "moved outside prodgan" in caught.stderr, caught.stderr
        with pytest.raises(GateFailed, match="fails verification"):
            promotion.promote(settings, v4)
        client.set_registered_model_alias(production, "champion", v3_copy)
        assert verify(settings, all_versions=False).ok

        # ---- the local cache is re-checked on every read, not trusted for its name
        first_read = resolve_model(settings, "@champion")
        assert first_read.production_version == v3_copy
        cached = first_read.bundle_dir / "generator.pt"
        good = cached.read_bytes()
        cached.write_bytes(good[:-64] + bytes(64))
        again = resolve_model(settings, "@champion")
        assert (again.bundle_dir / "generator.pt").read_bytes() == good

        # no password anywhere: tracking database (params, tags, metrics, runs, versions),
        # artifacts, logs, project, output
        passwords = list(team.passwords.values())
        assert _database_rows_holding(db, passwords) == []
        encoded = [p.encode() for p in passwords]
        assert (
            _files_holding(tmp_path, encoded) == []
        )  # artifact store, server and database logs, auth db, the project
        assert not any(p in text for p in passwords for text in team.outputs)
