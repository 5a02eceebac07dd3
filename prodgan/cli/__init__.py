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
    from prodgan.cli import (
        admin,
        audit,
        data,
        edit,
        evaluate,
        generate,
        orchestrate,
        promote,
        setup,
        stack,
        train,
    )

    # import, add, push, pull, status, version, setup, validate
    app.add_typer(data.app, name="data")
    train.register(app)  # train
    evaluate.register(app)  # evaluate, evaluator train
    promote.register(app)  # register, promote, rollback
    app.add_typer(audit.app, name="audit")  # model, dataset, history, verify
    generate.register(app)  # generate, serve
    app.add_typer(edit.app, name="edit")  # invert, interpolate, transfer
    orchestrate.register(app)  # retrain, deploy
    app.add_typer(admin.app, name="admin")  # roles
    setup.register(app)  # setup
    app.add_typer(stack.app, name="stack")  # up, down, status


_register()


def main() -> None:
    configure_environment()
    try:
        app()
    except ProdganError as exc:
        from rich.markup import escape

        from prodgan.console import err

        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
