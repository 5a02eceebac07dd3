"""Launching a bare job under torchrun: N processes on this host, on one host or several (c10d).

`prodgan train --nproc` and `prodgan evaluate --nproc` run their core entry point
(`-m prodgan.training`, `-m prodgan.metrics`) this way and read what rank 0 left in files. Across
hosts every host runs the same command with `--nnodes M` and the same `--rdzv-endpoint HOST:PORT`
(one of the hosts, reachable by all); torchrun's c10d rendezvous numbers the ranks, so rank 0 may
land on any host, and only that host finds the result.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass

from prodgan.errors import ProdganError

_ENDPOINT = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")


@dataclass(frozen=True)
class Launch:
    nproc: int = 1  # processes on this host (one per GPU; gloo on a CPU)
    nnodes: int = 1  # hosts taking part
    rdzv_endpoint: str | None = None  # HOST:PORT of the c10d rendezvous when nnodes > 1

    def __post_init__(self) -> None:
        if self.nproc < 1 or self.nnodes < 1:
            raise ProdganError(
                f"--nproc {self.nproc} --nnodes {self.nnodes}: both count processes and hosts, "
                "so each must be 1 or more"
            )
        if self.nnodes > 1 and not self.rdzv_endpoint:
            raise ProdganError(
                f"--nnodes {self.nnodes} needs --rdzv-endpoint HOST:PORT, "
                "the same on every host (one of them, reachable by all)"
            )
        if self.rdzv_endpoint and not _ENDPOINT.match(self.rdzv_endpoint):
            raise ProdganError(
                f"--rdzv-endpoint {self.rdzv_endpoint!r} is not HOST:PORT; "
                "use e.g. --rdzv-endpoint 10.0.0.5:29400"
            )

    @property
    def spread(self) -> bool:
        """More than this one process: the job goes through torchrun."""
        return self.nproc > 1 or self.nnodes > 1

    def command(self, module: str, args: list[str]) -> list[str]:
        """torchrun's command line for `python -m module args` on every rank."""
        where = (
            [
                f"--nnodes={self.nnodes}",
                "--rdzv-backend=c10d",
                f"--rdzv-endpoint={self.rdzv_endpoint}",
                f"--rdzv-id={module}",
            ]
            if self.nnodes > 1 or self.rdzv_endpoint
            else ["--standalone"]
        )
        return [
            sys.executable,
            "-m",
            "torch.distributed.run",
            *where,
            f"--nproc-per-node={self.nproc}",
            "-m",
            module,
            *args,
        ]

    def run(self, module: str, args: list[str]) -> int:
        """Run it to the end; its exit code. Progress and errors stay visible on stderr (stdout
        is for results)."""
        return subprocess.run(self.command(module, args), stdout=sys.stderr).returncode
