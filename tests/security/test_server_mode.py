"""Authenticated server mode end to end: PostgreSQL + `mlflow server --app-name basic-auth` on 127.0.0.1.

Roles are created by `prodgan admin roles`; every step runs with the credentials of the role
that would do it in a team (the trainer in-process, the CLI with its own environment). The
story: anonymous is refused; the trainer registers but may not promote; the promoter promotes;
a direct alias move made with the trainer's (sufficient!) MLflow rights is caught by `prodgan
audit verify` and blocks the next promotion; replaced weights are refused; and no password is
found anywhere MLflow, PostgreSQL, the artifact store, the project or the output could keep it.
"""

from __future__ import annotations

import os
import secrets
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from mlflow.exceptions import MlflowException

from prodgan.ops import promote as promotion
from prodgan import names
from prodgan.adapters import audit, registry
from prodgan.settings import Settings
from prodgan.adapters.audit_verify import verify
from tests.conftest import run
from tests.registry import helpers
from tests.servers import mlflow_server, postgres

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
        proc = run([sys.executable, "-m", "prodgan", *args], self.root, check=False, env={**self.env(user), **(extra or {})})
        self.outputs += [proc.stdout, proc.stderr]
        return proc

    def ok(self, user: str | None, *args: str, extra: dict[str, str] | None = None):
        proc = self.cli(user, *args, extra=extra)
        assert proc.returncode == 0, f"prodgan {' '.join(args)} as {user}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
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
            cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
            for (table,) in cur.fetchall():
                cur.execute(f'SELECT t::text FROM "{table}" t')
                hits += [table for (row,) in cur.fetchall() for s in secrets_ if s in row]
    finally:
        conn.close()
    return hits


def test_roles_refusals_tamper_evidence_and_no_leaked_passwords(project: Settings, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    auth_ini = tmp_path / "basic_auth.ini"
    auth_ini.write_text(AUTH_INI.format(db=tmp_path / "basic_auth.db"))
    artifacts = tmp_path / "mlartifacts"
    admin_password = secrets.token_urlsafe(18)
    server_env = {"MLFLOW_AUTH_CONFIG_PATH": str(auth_ini), "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(32),
                  "MLFLOW_AUTH_ADMIN_PASSWORD": admin_password}
    with postgres(tmp_path / "pg") as db, mlflow_server(db, artifacts, app_name="basic-auth", env=server_env, timeout=300) as url:
        team = Team(url, project.root)
        team.passwords[ADMIN] = admin_password
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        settings = Settings.load()
        name = settings.model_name
        role_passwords = {"PRODGAN_TRAINER_PASSWORD": team.passwords[TRAINER], "PRODGAN_PROMOTER_PASSWORD": team.passwords[PROMOTER]}

        # anonymous: the REST API and prodgan are both refused
        assert _status(url, "/api/2.0/mlflow/experiments/search?max_results=1") == 401
        anonymous = team.cli(None, "admin", "roles", extra=role_passwords)
        assert anonymous.returncode == 2 and "refused anonymous access" in anonymous.stderr

        # the admin creates the roles; passwords come from the environment only
        team.ok(ADMIN, "admin", "roles", extra=role_passwords)

        # the trainer registers two versions (training runs, evaluations, model versions)
        team.act_as(TRAINER, monkeypatch)
        v1, v2 = helpers.registered(settings, seed=1, fid=300.0), helpers.registered(settings, seed=2, fid=200.0)
        refused = team.cli(TRAINER, "promote", v1)
        assert refused.returncode == 2, refused.stderr
        assert f"user '{TRAINER}' may not promote" in refused.stderr and "needs MANAGE" in refused.stderr
        assert registry.champion_version(settings) is None

        # the promoter promotes v1, then v2 (better): audited as the promoter
        team.ok(PROMOTER, "promote", v1)
        team.act_as(PROMOTER, monkeypatch)
        assert promotion.promote(settings, v2).approved
        assert verify(settings).ok
        assert [r["actor"] for r in audit.audit_records(settings)] == [PROMOTER, PROMOTER]

        team.act_as(TRAINER, monkeypatch)
        # behind prodgan's back: the trainer's EDIT right is enough for MLflow to move the alias
        registry.client_for(settings).set_registered_model_alias(name, "champion", v1)
        caught = team.cli(TRAINER, "audit", "verify")
        assert caught.returncode == 1 and f"v{v1}: alias champion points to v{v1}" in caught.stderr, caught.stderr
        blocked = team.cli(PROMOTER, "promote", v2)
        assert blocked.returncode == 1 and "fails verification" in blocked.stderr
        assert registry.champion_version(settings).version == v1  # nothing moved

        # the promoter restores v2 with an audited --force; the registry verifies again
        team.ok(PROMOTER, "promote", v2, "--force", "restore after an unaudited alias move")
        assert verify(settings).ok
        assert [r["actor"] for r in audit.audit_records(settings) if r.get("bypassed")] == [PROMOTER]
        # ...and the trainer cannot write an audit record to explain a move of its own
        client = registry.client_for(settings)
        with pytest.raises(MlflowException, match="403|Permission denied"):
            client.create_run(client.get_experiment_by_name(names.AUDIT_EXPERIMENT).experiment_id)

        # replaced weights of the previous champion: caught, and generating from it is refused
        model_ids = {v: client.get_model_version(name, v).source.removeprefix("models:/") for v in (v1, v2)}
        stored = {v: next(p for p in artifacts.rglob("generator.pt") if f"/models/{model_ids[v]}/" in p.as_posix()) for v in (v1, v2)}
        stored[v1].write_bytes(stored[v2].read_bytes())  # a valid generator, just not the one registered as v1
        replaced = team.cli(TRAINER, "generate", "--model", f"models:/{name}/{v1}", "-n", "2", "--out", str(tmp_path / "g.png"))
        assert replaced.returncode == 1 and f"v{v1}: generator.pt hashes to" in replaced.stderr
        assert not (tmp_path / "g.png").exists()

        # no password anywhere: tracking database (params, tags, metrics, runs, versions), artifacts, logs, project, output
        passwords = list(team.passwords.values())
        assert _database_rows_holding(db, passwords) == []
        encoded = [p.encode() for p in passwords]
        assert _files_holding(tmp_path, encoded) == []  # artifact store, server and database logs, auth db, the project
        assert not any(p in text for p in passwords for text in team.outputs)
