"""Ed25519 keys for the audit log: the promoter signs records, anyone with the public key verifies
them.

The private key lives only in the promoter's state (`prodgan admin keygen`, mode 0600); the
public key is configured (`PRODGAN_AUDIT_PUBLIC_KEY`, default beside the private key), never
read from MLflow, so whoever can write MLflow cannot also choose the key records are checked with.
An embedded store (sqlite, one machine) gets its key pair made on first use.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Any

from prodgan.adapters.auth import is_server
from prodgan.errors import ProdganError
from prodgan.policy.chain import canonical
from prodgan.settings import Settings


def keygen(settings: Settings, overwrite: bool = False) -> tuple[Path, Path]:
    """Write a new key pair: the private key (PEM, 0600) and the public key (raw, base64);
    (private, public)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private, public = settings.audit_key_path, settings.audit_public_key_path
    if private.exists() and not overwrite:
        raise ProdganError(
            f"{private} already holds an audit key; "
            "records signed with it would no longer verify if it changed. "
            "Pass --overwrite only to rotate the key (and configure the new public key everywhere)"
        )
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    for path, data, mode in ((private, pem, 0o600), (public, base64.b64encode(raw) + b"\n", 0o644)):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    return private, public


def _public_key(settings: Settings):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    path = settings.audit_public_key_path
    try:
        return Ed25519PublicKey.from_public_bytes(
            base64.b64decode(path.read_text().strip(), validate=True)
        )
    except FileNotFoundError:
        raise ProdganError(
            f"no audit public key at {path}: configure the promoter's public key there or in "
            f"PRODGAN_AUDIT_PUBLIC_KEY (the promoter makes the pair with `prodgan admin keygen`)"
        ) from None
    except ValueError:
        raise ProdganError(
            f"{path} is not an Ed25519 public key (base64 of 32 bytes); copy the promoter's "
            f"`audit-ed25519.pub` there"
        ) from None


def ensure_embedded_key(settings: Settings) -> None:
    """An embedded store's first signer makes its key pair (one machine: the promoter is whoever
    runs it)."""
    if (
        not is_server(settings)
        and not settings.audit_key_path.exists()
        and not settings.audit_public_key_path.exists()
    ):
        keygen(settings)


def key_id(settings: Settings) -> str:
    """A short fingerprint of the configured public key, recorded in every record it verifies."""
    from cryptography.hazmat.primitives import serialization

    raw = _public_key(settings).public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return hashlib.sha256(raw).hexdigest()[:16]


def sign(settings: Settings, record: dict[str, Any]) -> str:
    """The base64 Ed25519 signature of `record` with the promoter's key (made here first on an
    embedded store)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = settings.audit_key_path
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise ProdganError(
            f"no audit signing key at {path}: only a promoter can write audit records; "
            "make the key pair with `prodgan admin keygen` "
            "(or set PRODGAN_AUDIT_KEY to the promoter's key)"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ProdganError(
            f"{path} is not an Ed25519 private key; make one with `prodgan admin keygen`"
        )
    signature = base64.b64encode(key.sign(canonical(record))).decode()
    if not verify(settings, {**record, "signature": signature}):
        raise ProdganError(
            f"the audit key {path} does not match the configured public key "
            f"{settings.audit_public_key_path}; "
            f"records signed with it would not verify: configure the matching pair"
        )
    return signature


def require_signer(settings: Settings, doing: str) -> None:
    """Refuse `doing` before it writes anything when the promoter's key is missing or does not
    match the configured public key (a signature is made and checked here)."""
    ensure_embedded_key(settings)
    try:
        sign(settings, {"signer_check": doing})
    except ProdganError as exc:
        raise ProdganError(f"refusing to {doing}, nothing was written: {exc}") from None


def verify(settings: Settings, record: dict[str, Any]) -> bool:
    """True when `record` carries a valid signature by the configured public key."""
    from cryptography.exceptions import InvalidSignature

    try:
        _public_key(settings).verify(
            base64.b64decode(str(record.get("signature", "")), validate=True), canonical(record)
        )
        return True
    except (InvalidSignature, ValueError):
        return False
