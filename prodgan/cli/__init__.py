"""`prodgan` command line: nouns as sub-commands, heavy imports deferred into each command.

Each sub-command module owns one noun and exposes `app` (a Typer) or `register(root)`.
"""

from __future__ import annotations

import sys

import typer

from prodgan.errors import ProdganError
from prodgan.settings import configure_environment

app = typer.Typer(
    help="Version, validate, train, evaluate, promote and serve product-image GANs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register() -> None:
    from prodgan.cli import data

    app.add_typer(data.app, name="data")
    from prodgan.cli import edit, generate

    generate.register(app)  # prodgan generate, prodgan serve
    app.add_typer(edit.app, name="edit")
    from prodgan.cli import train as train_cli; train_cli.register(app)  # prodgan train
    from prodgan.cli import flows as flows_cli; flows_cli.register(app)  # prodgan retrain, prodgan schedule
    app.add_typer(__import__("prodgan.cli.admin", fromlist=["app"]).app, name="admin")  # prodgan admin roles
    __import__("prodgan.cli.promote", fromlist=["register"]).register(app)  # prodgan register, promote, rollback
    app.add_typer(__import__("prodgan.cli.audit", fromlist=["app"]).app, name="audit")  # prodgan audit model|dataset|history|verify
    __import__("prodgan.cli.evaluate", fromlist=["register"]).register(app)  # prodgan evaluate, prodgan evaluator train


_register()


def main() -> None:
    configure_environment()
    try:
        app()
    except ProdganError as exc:
        from prodgan.cli.console import err

        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
