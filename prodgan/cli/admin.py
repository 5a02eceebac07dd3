"""`prodgan admin roles`: the trainer and promoter users of an authenticated MLflow server."""

from __future__ import annotations

import typer

from prodgan.cli.options import dataset_option
from prodgan.console import out
from prodgan.names import DEFAULT_DATASET

app = typer.Typer(
    help="Administer an authenticated MLflow server (run as the MLflow admin).",
    no_args_is_help=True,
)


@app.command("roles")
def roles(
    trainer: str = typer.Option(
        "prodgan-trainer", help="Username of the trainer (runs, model versions)."
    ),
    promoter: str = typer.Option(
        "prodgan-promoter", help="Username of the promoter (moves champion)."
    ),
    trainer_password_env: str = typer.Option(
        "PRODGAN_TRAINER_PASSWORD", help="Environment variable holding the trainer's password."
    ),
    promoter_password_env: str = typer.Option(
        "PRODGAN_PROMOTER_PASSWORD", help="Environment variable holding the promoter's password."
    ),
    datasets: list[str] = dataset_option(
        "A dataset whose registered model the roles work on "
        "(repeat for each; each dataset has its own model).",
        default=[DEFAULT_DATASET],
    ),
) -> None:
    """Create (or refresh) the trainer and promoter users and grant them least privilege.

    Passwords are read from environment variables, never from the command line, and never printed.
    Runs as the admin given by MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD.

    Example: PRODGAN_TRAINER_PASSWORD=... PRODGAN_PROMOTER_PASSWORD=... \\
      prodgan admin roles --dataset fashion-mnist --dataset clothing
    """
    from rich.table import Table

    from prodgan.ops.admin import roles as apply_roles
    from prodgan.settings import Settings

    settings = Settings.load()
    users, created, grants = apply_roles(
        settings, trainer, promoter, trainer_password_env, promoter_password_env, datasets
    )
    table = Table(
        "user", "resource", "name", "permission", title=f"grants on {settings.tracking_uri}"
    )
    for g in grants:
        table.add_row(g.username, g.resource_type, g.resource_name, g.permission)
    out.print(table)
    for name in users:
        out.print(f"{name}: {'created' if name in created else 'existed, password reset'}")


@app.command("keygen")
def keygen(
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Replace an existing key (rotation: records "
        "signed before then need the old public key).",
    ),
) -> None:
    """Make the promoter's audit signing key pair (run as the promoter, on the promoter's machine).

    The private key is written with mode 0600 to PRODGAN_AUDIT_KEY (default
    .prodgan/keys/audit-ed25519.pem); the public key to PRODGAN_AUDIT_PUBLIC_KEY (default beside
    it). Copy the public key to every machine that verifies or loads production models and point
    PRODGAN_AUDIT_PUBLIC_KEY at it; the private key never leaves.

    Example: prodgan admin keygen
    """
    from prodgan.ops.admin import keygen as make_key
    from prodgan.settings import Settings

    private, public, key_id = make_key(Settings.load(), overwrite=overwrite)
    out.print(
        f"audit signing key {key_id}: private {private} (0600, keep it on this machine), "
        f"public {public} (configure it everywhere records are verified: PRODGAN_AUDIT_PUBLIC_KEY)"
    )
