"""MLflow basic-auth adapter: users, grants, and "may the caller do this to the registered model?".

MLflow's auth app (`mlflow server --app-name basic-auth`) cannot protect a single alias: anyone
who may register versions (EDIT on a registered model) may also move its aliases. So production
is a second registered model (`<name>-production`) with its files in a second experiment, both
created by the admin, which trainers may only read:

- trainer: EDIT on the train experiment and the trained model (runs, versions); READ elsewhere;
- promoter: MANAGE on both models, EDIT on the eval, audit and production experiments.

Evaluations the gates read are therefore written by promoters only, and a trainer's attempt to
move `champion`, overwrite a production file or log a metric into an evaluation gets HTTP 403.

Credentials come only from the environment (`MLFLOW_TRACKING_USERNAME`/`PASSWORD`, read by
MLflow itself); the new users' passwords from variables named on the command line. Nothing
here logs, returns or stores a password. REST paths are those of `mlflow/server/auth/routes.py`
(MLflow 3.17); they are called directly because importing MLflow's server package costs seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from prodgan.errors import ProdganError
from prodgan.names import (
    AUDIT_EXPERIMENT,
    DEFAULT_DATASET,
    EVAL_EXPERIMENT,
    PRODUCTION_EXPERIMENT,
    TRAIN_EXPERIMENT,
    production_model,
)
from prodgan.settings import Settings, env

CURRENT_USER = "/api/2.0/mlflow/users/current"
GET_USER = "/api/2.0/mlflow/users/get"
CREATE_USER = "/api/2.0/mlflow/users/create"
UPDATE_PASSWORD = "/api/2.0/mlflow/users/update-password"
GRANT = "/api/3.0/mlflow/users/permissions/grant"
GET_PERMISSION = "/api/3.0/mlflow/users/permissions/get"

# permission names in MLflow's order of power (mlflow.server.auth.permissions.PERMISSION_PRIORITY)
LEVELS = ("NO_PERMISSIONS", "READ", "USE", "EDIT", "MANAGE")
EXPERIMENT, REGISTERED_MODEL = "experiment", "registered_model"
USERNAME_ENV, PASSWORD_ENV = "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"


def is_server(settings: Settings) -> bool:
    return settings.tracking_uri.startswith(("http://", "https://"))


class AuthApi:
    """The auth app's REST API at one tracking server, as the user in the environment."""

    def __init__(self, settings: Settings) -> None:
        self.tracking_uri = settings.tracking_uri.rstrip("/")
        self.username = settings.tracking_user

    def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON body); never raises for an HTTP error status."""
        from mlflow.exceptions import MlflowException
        from mlflow.utils.credentials import get_default_host_creds
        from mlflow.utils.rest_utils import http_request

        try:
            resp = http_request(
                get_default_host_creds(self.tracking_uri), path, method, max_retries=1, **kwargs
            )
        except MlflowException as exc:
            raise ProdganError(
                f"cannot reach the MLflow server at {self.tracking_uri} "
                f"({exc.message.splitlines()[0]}); check MLFLOW_TRACKING_URI"
            ) from None
        try:
            body = resp.json() if resp.content else {}
        except ValueError:
            body = {}
        return resp.status_code, body if isinstance(body, dict) else {}

    def expect(self, method: str, path: str, what: str, **kwargs: Any) -> dict[str, Any]:
        status, body = self.call(method, path, **kwargs)
        if status == 401:
            raise ProdganError(
                f"{what}: the MLflow server refused the credentials; set {USERNAME_ENV} and "
                f"{PASSWORD_ENV} to an existing user"
            )
        if status == 403:
            raise ProdganError(
                f"{what}: user {self.username!r} is not allowed to; run this as an MLflow admin"
            )
        if status >= 400:
            raise ProdganError(f"{what} failed ({status}: {body.get('message', 'no message')})")
        return body

    def current_user(self) -> dict[str, Any] | None:
        """{id, username, is_admin}, or None when the server has no auth app (nothing to check)."""
        status, body = self.call("GET", CURRENT_USER)
        if status == 404:
            return None
        if status == 401:
            who = f"user {self.username!r}" if self.username else "anonymous access"
            raise ProdganError(
                f"the MLflow server at {self.tracking_uri} refused {who}: set {USERNAME_ENV} and "
                f"{PASSWORD_ENV} (environment only, never on the command line)"
            )
        if status >= 400:
            raise ProdganError(
                f"cannot read the current MLflow user ({status}: {body.get('message', '')})"
            )
        return body.get("user")

    def ensure_user(self, username: str, password: str) -> bool:
        """Create the user, or reset its password if it exists; True when it was created."""
        status, _ = self.call("GET", GET_USER, params={"username": username})
        if status == 200:
            self.expect(
                "PATCH",
                UPDATE_PASSWORD,
                f"setting the password of {username!r}",
                json={"username": username, "password": password},
            )
            return False
        self.expect(
            "POST",
            CREATE_USER,
            f"creating user {username!r}",
            json={"username": username, "password": password},
        )
        return True

    def grant(self, username: str, resource_type: str, resource_id: str, permission: str) -> None:
        self.expect(
            "POST",
            GRANT,
            f"granting {permission} on {resource_type} {resource_id} to {username!r}",
            json={
                "username": username,
                "resource_type": resource_type,
                "resource_id": resource_id,
                "permission": permission,
            },
        )

    def permission(self, username: str, resource_type: str, resource_id: str) -> str:
        body = self.expect(
            "GET",
            GET_PERMISSION,
            f"reading {username!r}'s permission on {resource_type} {resource_id}",
            params={
                "username": username,
                "resource_type": resource_type,
                "resource_id": resource_id,
            },
        )
        return str(body.get("permission", "NO_PERMISSIONS"))


def at_least(have: str, need: str) -> bool:
    return have in LEVELS and LEVELS.index(have) >= LEVELS.index(need)


def require_model_permission(settings: Settings, need: str, action: str) -> None:
    """Refuse `action` unless the caller holds `need` on the registered model
    (server with auth only).

    Embedded stores have no users: whoever can write the files can do anything,
    so nothing is checked.
    """
    if not is_server(settings):
        return
    api = AuthApi(settings)
    user = api.current_user()
    if user is None or user.get("is_admin"):
        return
    name = production_model(settings.model_name)
    have = api.permission(user["username"], REGISTERED_MODEL, name)
    if not at_least(have, need):
        raise ProdganError(
            f"user {user['username']!r} may not {action}: "
            f"it has {have} on registered model {name}, {action} needs {need}; "
            "run it with a promoter's credentials (an admin creates one with `prodgan admin roles`)"
        )


@dataclass(frozen=True)
class Grant:
    username: str
    resource_type: str
    resource_id: str
    resource_name: str
    permission: str


def role_grants(
    settings: Settings, trainer: str, promoter: str, datasets: Sequence[str] = (DEFAULT_DATASET,)
) -> list[Grant]:
    """The least-privilege grants of both roles on each dataset's model;
    creates the experiments and models they refer to.

    The admin creates the audit experiment (and the others) so no trainer can become its owner
    (MLflow gives the creator MANAGE) and write audit records;
    likewise each dataset's production model.
    """
    from prodgan.adapters.registry import ensure_registered_model
    from prodgan.adapters.tracking import ensure_experiment, setup_mlflow

    client = setup_mlflow(settings)
    names = (TRAIN_EXPERIMENT, EVAL_EXPERIMENT, AUDIT_EXPERIMENT, PRODUCTION_EXPERIMENT)
    ids = {name: ensure_experiment(name, settings) for name in names}
    grants = [
        Grant(trainer, EXPERIMENT, ids[TRAIN_EXPERIMENT], TRAIN_EXPERIMENT, "EDIT"),
        Grant(trainer, EXPERIMENT, ids[EVAL_EXPERIMENT], EVAL_EXPERIMENT, "READ"),
        Grant(trainer, EXPERIMENT, ids[AUDIT_EXPERIMENT], AUDIT_EXPERIMENT, "READ"),
        Grant(trainer, EXPERIMENT, ids[PRODUCTION_EXPERIMENT], PRODUCTION_EXPERIMENT, "READ"),
        Grant(promoter, EXPERIMENT, ids[AUDIT_EXPERIMENT], AUDIT_EXPERIMENT, "EDIT"),
        Grant(promoter, EXPERIMENT, ids[EVAL_EXPERIMENT], EVAL_EXPERIMENT, "EDIT"),
        Grant(promoter, EXPERIMENT, ids[PRODUCTION_EXPERIMENT], PRODUCTION_EXPERIMENT, "EDIT"),
    ]
    for dataset in dict.fromkeys(datasets):
        model = settings.model_for(dataset)
        production = production_model(model)
        for registered in (model, production):
            ensure_registered_model(client, registered)
        grants += [
            Grant(trainer, REGISTERED_MODEL, model, model, "EDIT"),
            Grant(trainer, REGISTERED_MODEL, production, production, "READ"),
            Grant(promoter, REGISTERED_MODEL, model, model, "MANAGE"),
            Grant(promoter, REGISTERED_MODEL, production, production, "MANAGE"),
        ]
    return grants


def password_from_env(variable: str) -> str:
    value = env(variable) or ""
    if not value:
        raise ProdganError(
            f"environment variable {variable} is empty: export the new user's password there "
            f"(prodgan never takes passwords on the command line)"
        )
    if len(value) < 12:
        raise ProdganError(
            f"the password in {variable} is shorter than 12 characters; choose a longer one"
        )
    return value


def setup_roles(
    settings: Settings,
    users: dict[str, str],
    trainer: str,
    promoter: str,
    datasets: Sequence[str] = (DEFAULT_DATASET,),
) -> tuple[list[str], list[Grant]]:
    """Create/refresh the users (name -> password) and apply the role grants;
    (created users, grants)."""
    if not is_server(settings):
        raise ProdganError(
            f"roles need an MLflow server with `--app-name basic-auth`; MLFLOW_TRACKING_URI is "
            f"{settings.tracking_uri} (embedded stores have no users)"
        )
    api = AuthApi(settings)
    me = api.current_user()
    if me is None:
        raise ProdganError(
            f"the MLflow server at {settings.tracking_uri} has no auth app; start it with "
            f"`mlflow server --app-name basic-auth ...`"
        )
    if not me.get("is_admin"):
        raise ProdganError(
            f"user {me.get('username')!r} is not an MLflow admin; "
            f"set {USERNAME_ENV}/{PASSWORD_ENV} to the admin's credentials"
        )
    created = [name for name, password in users.items() if api.ensure_user(name, password)]
    grants = role_grants(settings, trainer, promoter, datasets)
    for g in grants:
        api.grant(g.username, g.resource_type, g.resource_id, g.permission)
    return created, grants
