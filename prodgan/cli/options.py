"""Options several commands share, so each accepts the same forms and refuses the same bad input."""

from __future__ import annotations

from typing import Any

import typer

from prodgan.errors import ProdganError
from prodgan.names import DEFAULT_DATASET

# \\[ : literal brackets in rich markup
MODEL_HELP = (
    "Model: models:/NAME@ALIAS, models:/NAME/VERSION, NAME@ALIAS, NAME/VERSION, @ALIAS, VERSION or "
    "runs:/RUN_ID\\[/PATH] \\[default: models:/<model name>@champion]"
)
BUNDLE_HELP = (
    "A local generator bundle folder (generator.pt + generator.json) instead of a registry model."
)
FORCE_HELP = "Use the registry even if `prodgan audit verify` fails (the bypass is audited)."


def _known_datasets(value: str | list[str]) -> str | list[str]:
    """Refuse an unknown dataset while parsing: one line, exit 2, before any model is read."""
    from prodgan.ops.data import require_known
    from prodgan.settings import Settings

    settings = Settings.load()
    for dataset in [value] if isinstance(value, str) else value:
        require_known(settings, dataset)
    return value


def dataset_option(help: str, default: str | list[str] = DEFAULT_DATASET) -> Any:
    """`--dataset`, naming whose model a command acts on (each dataset has its own), checked."""
    return typer.Option(default, "--dataset", help=help, callback=_known_datasets)


def _tcp_port(port: int) -> int:
    if not 1 <= port <= 65535:
        raise ProdganError(f"--port {port} is not a TCP port; use one from 1 to 65535")
    return port


def port_option(default: int, help: str = "TCP port.") -> Any:
    """`--port`, refused while parsing unless it is a TCP port (1-65535)."""
    return typer.Option(default, "--port", help=help, callback=_tcp_port)


def nproc_option(help: str) -> Any:
    """`--nproc`: processes on this host (torchrun; one per GPU, gloo on a CPU)."""
    return typer.Option(1, "--nproc", min=1, help=help)


def nnodes_option() -> Any:
    """`--nnodes`: hosts taking part in one torchrun job."""
    return typer.Option(
        1,
        "--nnodes",
        min=1,
        help="Hosts taking part (torchrun's c10d rendezvous): run the same command on each.",
    )


def rdzv_option() -> Any:
    """`--rdzv-endpoint`: where the hosts of one torchrun job meet."""
    return typer.Option(
        None,
        "--rdzv-endpoint",
        help="HOST:PORT of the rendezvous, the same on every host (with --nnodes above 1).",
    )
