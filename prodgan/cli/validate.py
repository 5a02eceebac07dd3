"""`prodgan data validate`: the Great Expectations gate, with a summary a person can act on."""

from __future__ import annotations

import typer

from prodgan.console import out, progress_bar
from prodgan.settings import Settings


def validate(
    dataset: str = typer.Option("fashion-mnist", help="Dataset folder under data/."),
    show: int = typer.Option(5, min=1, help="Offending files listed per failed expectation."),
    fresh: bool = typer.Option(
        False, help="Run the checkpoint even if this data was already validated under this suite."
    ),
) -> None:
    """Check data/<dataset> against its expectation suite (GX Checkpoint), build Data Docs, record
    the result.

    Exit 0 when every expectation passes, 1 when any fails (training then refuses this data).

    Example: prodgan data validate --dataset fashion-mnist
    """
    from prodgan.ops.validate import require_passed
    from prodgan.ops.validate import validate as run_validation

    with progress_bar(f"describing {dataset}", out) as progress:
        record = run_validation(Settings.load(), dataset, progress=progress, fresh=fresh)
    _print_summary(record, show)
    require_passed(record)


def _print_summary(record, show: int) -> None:
    where = record.data_hash or f"{record.data_key} (not pinned)"
    source = (
        "result of " + record.timestamp + " reused (--fresh re-runs it)"
        if record.reused
        else "cached manifest"
        if record.manifest_cached
        else "fresh manifest"
    )
    passed = record.expectations - record.failed - len(record.warnings)
    mark = "[bold green]passed[/]" if record.success else "[bold red]FAILED[/]"
    warned = (
        f" ({len(record.warnings)} warning{'s' if len(record.warnings) != 1 else ''})"
        if record.warnings
        else ""
    )
    out.print(
        f"{mark} {record.dataset}: {passed}/{record.expectations} expectations{warned} of suite "
        f"[bold]{record.suite_name}[/] ({record.suite_sha256[:12]}) on {record.rows} images, "
        f"data {where}, {source}",
        highlight=False,
    )
    for failure in [*record.failures, *record.warnings]:
        _print_failure(failure, show)
    for note in record.notes:
        out.print(f"[yellow]note:[/] {note}", highlight=False)
    out.print(f"Data Docs: {record.docs_path}", highlight=False, soft_wrap=True)


def _print_failure(failure, show: int) -> None:
    """What was checked, observed against expected, the files (and their source photos), the fix."""
    from rich.markup import escape

    found = (
        f"{failure.unexpected_count} unexpected"
        if failure.unexpected_count is not None
        else f"observed {failure.observed}"
    )
    expected = f", expected {failure.expected}" if failure.expected else ""
    mark = "[red]x[/]" if failure.severity != "warning" else "[yellow]![/]"
    column = failure.column or "table"
    scope = f"{failure.scope}-level: " if failure.scope else ""
    out.print(
        f"  {mark} {escape(failure.rule)} [dim]({scope}{failure.expectation} on {column}: "
        f"{found}{expected})[/]",
        highlight=False,
        soft_wrap=True,
    )
    for item in failure.offending[:show]:  # whole lines, never cut: paths are to be copied
        source = f"  source {item['source']}" if item.get("source") else ""
        out.print(
            f"    {escape(str(item['file']))}[bold]{escape(source)}[/]  "
            f"[dim]{escape(str(item['value']))}[/]",
            highlight=False,
            soft_wrap=True,
        )
    more = (failure.unexpected_count or 0) - min(show, len(failure.offending))
    if failure.offending and more > 0:
        out.print(f"      ... and {more} more (see Data Docs)", highlight=False)
    if failure.fix:
        out.print(f"    [bold]fix:[/] {escape(failure.fix)}", highlight=False, soft_wrap=True)
