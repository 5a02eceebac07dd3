"""Use cases: the trainer and promoter users of an authenticated MLflow server (run as its admin),
and the promoter's audit signing key."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from prodgan.adapters import signing
from prodgan.adapters.auth import Grant, password_from_env, setup_roles
from prodgan.errors import ProdganError
from prodgan.settings import Settings


def roles(
    settings: Settings,
    trainer: str,
    promoter: str,
    trainer_password_env: str,
    promoter_password_env: str,
    datasets: Sequence[str],
) -> tuple[list[str], list[str], list[Grant]]:
    """Create (or refresh) both users from passwords in the named variables, with rights on each
    dataset's model; (users, created, grants)."""
    if trainer == promoter:
        raise ProdganError("trainer and promoter must be different users (separation of duties)")
    users = {
        trainer: password_from_env(trainer_password_env),
        promoter: password_from_env(promoter_password_env),
    }
    created, grants = setup_roles(settings, users, trainer, promoter, datasets)
    return list(users), created, grants


def keygen(settings: Settings, overwrite: bool = False) -> tuple[Path, Path, str]:
    """The promoter's Ed25519 audit key pair: (private key, public key, key id)."""
    private, public = signing.keygen(settings, overwrite=overwrite)
    return private, public, signing.key_id(settings)
