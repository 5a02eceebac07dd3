"""`prodgan register`, `prodgan promote`, `prodgan rollback`: the registry's write side, gated and
audited."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from prodgan.cli.options import dataset_option
from prodgan.console import out
from prodgan.errors import GateFailed, ProdganError
from prodgan.settings import Settings

if TYPE_CHECKING:
    from prodgan.ops.promote import Decision


def print_decision(decision: Decision) -> None:
    """Every gate's outcome and every note, one row each, then the outcome in one line."""
    from rich.table import Table

    table = Table(title=f"{decision.model} v{decision.version}: {decision.action}")
    for column in ("", "gate", "reason"):
        table.add_column(column)
    for check in decision.checks:
        colour = {"PASS": "green", "FAIL": "red", "SKIP": "yellow"}[check.verdict]
        table.add_row(f"[{colour}]{check.verdict}[/]", check.gate, check.reason)
    for note in decision.notes:  # no-op, forced, rollback: not a gate
        table.add_row("", "", note)
    if decision.checks or decision.notes:
        out.print(table)
    if decision.difference:
        d = decision.difference
        out.print(
            f"difference {d['metric']} (challenger - champion): {d['point']:+.4g}, "
            f"interval [{d['low']:+.4g}, {d['high']:+.4g}]"
        )
    if decision.sheet:
        out.print(f"champion vs challenger sheet: {decision.sheet}", highlight=False)
    out.print(
        f"champion: {decision.champion_before or 'none'} -> {decision.champion_after or 'none'}"
        f"  previous: {decision.previous_after or 'none'}  "
        f"gates: {decision.gates_sha256[:12] or '-'}"
        + (f"  audit run: {decision.audit_run_id}" if decision.audit_run_id else "")
        + ("  (dry run: nothing changed)" if decision.dry_run else "")
    )


def register_cmd(
    run: Optional[str] = typer.Option(
        None, "--run", help="MLflow run id of the training run whose generator to register."
    ),
    eval_run: Optional[str] = typer.Option(
        None,
        "--eval-run",
        help="Evaluation run to attach [default: the newest for this training run].",
    ),
    model: Optional[Path] = typer.Option(
        None, "--model", help="A generator prodgan did not train: .pt2, TorchScript .pt or .onnx."
    ),
    spec: Optional[Path] = typer.Option(
        None, "--spec", help="Its spec file (YAML, docs/generators.md), checked against the model."
    ),
    dataset: Optional[str] = typer.Option(
        None,
        "--dataset",
        help="The validated dataset it was trained on (its model gets the version).",
    ),
    code_url: Optional[str] = typer.Option(
        None, "--code-url", help="Where its training code lives (recorded as lineage)."
    ),
    code_rev: Optional[str] = typer.Option(
        None, "--code-rev", help="The revision of that code (recorded as lineage)."
    ),
) -> None:
    """Register a training run's generator, or import an outside one, as a model version.

    Example: prodgan register --run 3f2a...e1 | prodgan register --model g.pt2 --spec g.yaml --dataset fashion-mnist --code-url URL --code-rev REV
    """  # noqa: E501 (one line: typer's command list keeps a summary's line breaks)
    if model is not None or spec is not None:
        if run is not None or model is None or spec is None or dataset is None:
            raise ProdganError(
                "import with --model FILE --spec SPEC --dataset NAME (without --run), "
                "or register a training run with --run RUN_ID"
            )
        from prodgan.ops.imports import import_generator

        imported = import_generator(
            Settings.load(),
            model_file=model,
            spec_file=spec,
            dataset=dataset,
            code_url=code_url,
            code_rev=code_rev,
        )
        out.print(
            f"[bold]{imported.name}[/] v{imported.version}  imported {imported.kind} "
            f"{model.name}  run {imported.run_id}  sha256 {imported.sha256[:12]}"
        )
        return
    if run is None:
        raise ProdganError("name what to register: --run RUN_ID, or --model FILE --spec SPEC")
    from prodgan.ops.promote import register

    mv = register(Settings.load(), run, eval_run_id=eval_run)
    tags = mv.tags or {}
    out.print(
        f"[bold]{mv.name}[/] v{mv.version}  train run {run}  "
        f"eval run {tags.get('prodgan.eval_run_id', 'none yet')}"
        f"  weights {tags.get('prodgan.weights_sha256', '')[:12]}"
    )


def promote_cmd(
    version: str = typer.Argument(
        ...,
        help=(
            "Version to promote: a number, or any reference to a version of the model "
            "(models:/NAME/3, @challenger)."
        ),
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Decide and print, change nothing, write no audit record."
    ),
    gates: Optional[Path] = typer.Option(
        None, help="Gate file [default: PRODGAN_GATES, else evaluation/gates.yaml]."
    ),
    actor: Optional[str] = typer.Option(
        None, help="Who decides [default: MLFLOW_TRACKING_USERNAME, else the OS user]."
    ),
    force: Optional[str] = typer.Option(
        None, "--force", metavar="REASON", help="Promote even if gates fail; the reason is audited."
    ),
    confirm: bool = typer.Option(
        False, "--confirm", help="Show an approved decision and ask before moving the alias."
    ),
) -> None:
    """Apply the promotion gates to VERSION; on approval move `champion` to it (the old one becomes `previous`).

    Exit 0 approved, 1 rejected (every reason printed) or champion moved meanwhile, 2 bad input.
    Example: prodgan promote 3 --dry-run
    """  # noqa: E501 (one line: typer's command list keeps a summary's line breaks)
    from prodgan.ops.promote import promote

    if force is not None and not force.strip():
        raise ProdganError(
            "--force needs a reason, e.g. --force 'hotfix for INC-42 approved by the on-call lead'"
        )

    def ask(decision: Decision) -> bool:
        print_decision(decision)
        return typer.confirm(f"move champion to v{decision.version}?", default=False)

    decision = promote(
        Settings.load(),
        version,
        dry_run=dry_run,
        actor=actor,
        gates_path=gates,
        force_reason=force,
        confirm=ask if confirm else None,
    )
    if confirm and decision.approved:
        out.print(
            f"{decision.model} champion: {decision.champion_before or 'none'} -> "
            f"{decision.champion_after}"
            + (
                f"  audit run: {decision.audit_run_id}"
                if decision.audit_run_id
                else "  (not confirmed: nothing changed)"
            )
        )
    else:
        print_decision(decision)
    if not decision.approved:
        raise GateFailed(
            f"{decision.model} v{decision.version} rejected: "
            f"{len(decision.failed)} gate(s) failed (listed above)"
        )


def rollback_cmd(
    reason: str = typer.Option("", help="Why (kept in the audit record)."),
    actor: Optional[str] = typer.Option(
        None, help="Who rolls back [default: MLFLOW_TRACKING_USERNAME, else the OS user]."
    ),
    dataset: str = dataset_option(
        "Whose champion: each dataset has its own model (Settings.model_for)."
    ),
) -> None:
    """Move `champion` back to `previous`; audited like a promotion (a second rollback undoes the first).

    Example: prodgan rollback --reason "v4 serves blurry sneakers"
    """  # noqa: E501 (one line: typer's command list keeps a summary's line breaks)
    from prodgan.ops.promote import rollback

    print_decision(rollback(Settings.load().for_dataset(dataset), actor=actor, reason=reason))


def register(root: typer.Typer) -> None:
    root.command("register")(register_cmd)
    root.command("promote")(promote_cmd)
    root.command("rollback")(rollback_cmd)
