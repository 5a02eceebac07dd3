"""`prodgan audit verify`: replay the audit log against the registry (in the `audit` group)."""

from __future__ import annotations

from typing import Optional

import typer

from prodgan.cli.options import dataset_option
from prodgan.console import out
from prodgan.errors import GateFailed


def verify_cmd(
    acknowledge: Optional[str] = typer.Option(
        None,
        "--acknowledge",
        metavar="REASON",
        help="Record a `force` audit entry accepting the findings, "
        "closing pending records (promoter only).",
    ),
    aliased_only: bool = typer.Option(
        False, "--aliased-only", help="Hash only champion's and previous' weights (faster)."
    ),
    dataset: str = dataset_option(
        "Whose model: each dataset has its own registered model and audit chain."
    ),
) -> None:
    """Check the signed audit chain, that it explains every champion/previous position, and that
    every file is intact.

    Exit 0 verified, 1 with one line per unexplained change (version and what changed).
    Example: prodgan audit verify
    """
    from rich.table import Table

    from prodgan.ops.audit import verify
    from prodgan.settings import Settings

    report = verify(
        Settings.load().for_dataset(dataset), all_versions=not aliased_only, acknowledge=acknowledge
    )
    if report.ok:
        hashed = ", ".join(report.hashed) or "none"
        out.print(
            f"[green]verified[/] {report.model}: champion v{report.champion or '-'}, "
            f"previous v{report.previous or '-'}, {report.records} audit records "
            f"({report.decisions} decisions), weights intact for versions {hashed}"
        )
        for line in report.lost:
            out.print(f"[yellow]history[/]: {line}", highlight=False)
        if acknowledge:
            out.print("acknowledged in the audit log (action force)")
        return
    table = Table("version", "unexplained change", title=f"{report.model} fails verification")
    for finding in report.findings:
        table.add_row(finding.version or "-", finding.problem)
    out.print(table)
    if acknowledge:
        out.print(
            "acknowledged in the audit log (action force); "
            "alias positions are explained only by a promotion or rollback"
        )
        return
    raise GateFailed(f"{report.model} fails verification: " + "; ".join(map(str, report.findings)))
