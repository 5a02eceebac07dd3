"""Use case: `prodgan deploy`, the deployments of `prefect.yaml` applied to a Prefect server.

The work pool is created only when it is missing: an existing pool keeps the concurrency,
job variables and queues someone tuned. Flow entrypoints are module paths (`flows.retrain.retrain`),
so a worker runs them from the installed package, inside or outside a checkout.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from prodgan.errors import ProdganError
from prodgan.settings import Settings, shipped


@dataclass(frozen=True)
class Deployed:
    api_url: str
    pool: str
    pool_created: bool
    prefect_yaml: Path


def _prefect(args: list[str], api_url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PREFECT_API_URL": api_url}
    return subprocess.run(
        [str(Path(sys.executable).with_name("prefect")), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
    )


def _require(proc: subprocess.CompletedProcess[str], args: list[str], api_url: str) -> None:
    if proc.returncode != 0:
        last = next(
            (line for line in reversed((proc.stderr or proc.stdout).splitlines()) if line.strip()),
            "no output",
        )
        raise ProdganError(
            f"`prefect {' '.join(args)}` failed against {api_url}: {last.strip()}; "
            "is the server running?"
        )


def deploy(settings: Settings, pool: str = "prodgan", api_url: str | None = None) -> Deployed:
    """Create the process work pool if missing, then `prefect deploy --all` from the project's
    (or shipped) prefect.yaml."""
    api_url = api_url or settings.prefect_api_url
    if not api_url:
        raise ProdganError(
            "deployments need a Prefect server: start one (`prefect server start`) and pass "
            "--api-url http://127.0.0.1:4200/api or set PREFECT_API_URL"
        )
    prefect_yaml = shipped("prefect.yaml", settings.root)
    cwd = prefect_yaml.parent
    created = _prefect(["work-pool", "inspect", pool], api_url, cwd).returncode != 0
    steps = ([["work-pool", "create", pool, "--type", "process"]] if created else []) + [
        ["--no-prompt", "deploy", "--all", "--pool", pool, "--prefect-file", str(prefect_yaml)]
    ]
    for args in steps:
        _require(_prefect(args, api_url, cwd), args, api_url)
    return Deployed(api_url, pool, created, prefect_yaml)
