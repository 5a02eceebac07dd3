"""`prodgan audit model|dataset|history|verify`: read the lineage and the decisions back, as tables
or JSON."""

from __future__ import annotations

import json
from typing import Any, Optional

import typer

from prodgan.cli.options import MODEL_HELP, dataset_option
from prodgan.console import out
from prodgan.settings import Settings

app = typer.Typer(
    help="Lineage and promotion history: what a model came from, who promoted it, when.",
    no_args_is_help=True,
)
JSON_HELP = "Print JSON (all fields) instead of tables."


def _json(data: Any) -> None:
    out.print_json(json.dumps(data, default=str))


def _metrics(metrics: dict[str, float], limit: int = 8) -> str:
    head = [f"{k}={v:.4g}" for k, v in sorted(metrics.items()) if "/" not in k][:limit]
    return ", ".join(head) or "-"


@app.command("model")
def model_cmd(
    ref: str = typer.Argument(..., help=MODEL_HELP.split(" [default")[0] + "."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """The whole chain behind a model version: dataset -> validation -> training -> evaluations -> decisions.

    Example: prodgan audit model prodgan-generator@champion
    """  # noqa: E501 (one line: typer's command list keeps a summary's line breaks)
    from rich.tree import Tree

    from prodgan.ops.audit import model_lineage

    chain = model_lineage(Settings.load(), ref)
    if as_json:
        return _json(chain)

    m, d, t = chain["model"], chain["dataset"], chain["training"]
    tree = Tree(
        f"[bold]{m['name']} v{m['version']}[/] {' '.join('@' + a for a in m['aliases'])}  "
        f"registered {m['registered']}"
        f"  weights {str(m['weights_sha256'])[:12]}"
    )
    v = d.get("validation") or {}
    data = tree.add(
        f"dataset {d.get('dataset') or ''} [bold]{d.get('data_hash')}[/] "
        f"(git {str(d.get('git_rev'))[:10]})"
    )
    status = {True: "[green]passed[/]", False: "[red]FAILED[/]"}.get(
        v.get("success"), "(no validation.json in the run)"
    )
    data.add(
        f"validation {status} {v.get('reference') or ''}  Data Docs: {v.get('docs_path') or '-'}"
    )
    train = tree.add(
        f"training run {t.get('run_id') or t.get('missing')}  {t.get('status', '')}  "
        f"{t.get('started') or ''}"
    )
    train.add(
        f"config {t.get('config_file') or '-'}: "
        + ", ".join(f"{k}={val}" for k, val in list((t.get("config") or {}).items())[:12])
    )
    train.add(
        f"code {str((t.get('code') or {}).get('git_rev'))[:10]} "
        f"dirty={(t.get('code') or {}).get('git_dirty')}  "
        f"device {t.get('device') or '-'} {t.get('precision') or ''}"
    )
    train.add(
        "environment " + ", ".join(f"{k} {val}" for k, val in (t.get("environment") or {}).items())
    )
    evals = tree.add(f"evaluations ({len(chain['evaluations'])})")
    for e in chain["evaluations"]:
        evals.add(
            f"{e['started']} run {e['run_id']} protocol {str(e['protocol'])[:12]}"
            f"{' (headline)' if e['headline'] else ''}: "
            f"{_metrics(e['metrics'])}"
        )
    decisions = tree.add(f"decisions ({len(chain['decisions'])})")
    for r in chain["decisions"]:
        fails = r.get("failed") or []
        decisions.add(
            f"{r['at']} [bold]{r['action']}[/] v{r['version']} by {r['actor']}: "
            f"champion {r['champion_before'] or '-'} -> {r['champion_after'] or '-'}  "
            f"gates {str(r['gates_sha256'] or '-')[:12]}  audit run {r['audit_run_id']}"
            + (f"\n  {'; '.join(fails)}" if fails else "")
        )
    out.print(tree, soft_wrap=False)  # long lines wrap inside the tree instead of being cut


@app.command("dataset")
def dataset_cmd(
    data_hash: str = typer.Argument(
        ..., help="DVC hash of data/ (from data.dvc; a prefix of 6+ hex digits is enough)."
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Training runs and model versions built from a dataset version.

    Example: prodgan audit dataset 73a87175
    """
    from rich.table import Table

    from prodgan.ops.audit import dataset_lineage

    found = dataset_lineage(Settings.load(), data_hash)
    if as_json:
        return _json(found)
    table = Table(
        "model",
        "version",
        "aliases",
        "registered",
        "training run",
        title=f"versions trained on {data_hash}",
    )
    for v in found["versions"]:
        table.add_row(
            v["model"],
            v["version"],
            " ".join("@" + a for a in v["aliases"]),
            v["registered"],
            v["train_run_id"],
        )
    out.print(table)
    out.print(
        f"{len(found['training_runs'])} training run(s): "
        + ", ".join(r["run_id"] for r in found["training_runs"])
    )


@app.command("history")
def history_cmd(
    model: Optional[str] = typer.Option(
        None, help="Registered model [default: the --dataset's model]."
    ),
    dataset: str = dataset_option("Whose model: each dataset has its own (Settings.model_for)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Which version was champion when (from the audit log), newest last.

    Example: prodgan audit history --dataset clothing
    """
    from rich.table import Table

    from prodgan.ops.audit import champion_history, history_warnings

    settings = Settings.load().for_dataset(dataset)
    periods = champion_history(settings, model)
    if as_json:
        return _json(periods)
    table = Table(
        "champion",
        "from",
        "until",
        "how",
        "by",
        "replaced",
        "audit run",
        title=f"{model or settings.model_name} champion history",
    )
    for p in periods:
        table.add_row(
            f"v{p['version']}",
            p["from"],
            p["until"] or "now",
            p["how"],
            p["actor"],
            p["replaced"] or "-",
            p["audit_run_id"],
        )
    out.print(table)
    for line in history_warnings(settings, model):
        out.print(f"[red]warning[/]: {line}", highlight=False)


from prodgan.cli.audit_verify import verify_cmd  # noqa: E402  (lives in its own module)

app.command("verify")(verify_cmd)
