"""Use case: the trainer and promoter users of an authenticated MLflow server (run as its admin)."""

from __future__ import annotations

from prodgan.adapters.auth import Grant, password_from_env, setup_roles
from prodgan.errors import ProdganError
from prodgan.settings import Settings


def roles(settings: Settings, trainer: str, promoter: str, trainer_password_env: str,
          promoter_password_env: str) -> tuple[list[str], list[str], list[Grant]]:
    """Create (or refresh) both users from passwords in the named variables; (users, created, grants)."""
    if trainer == promoter:
        raise ProdganError("trainer and promoter must be different users (separation of duties)")
    users = {trainer: password_from_env(trainer_password_env), promoter: password_from_env(promoter_password_env)}
    created, grants = setup_roles(settings, users, trainer, promoter)
    return list(users), created, grants
