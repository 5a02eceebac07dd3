"""Two "machines", one team stack, everything through the real `prodgan` CLI.

`prodgan stack up` starts PostgreSQL, SeaweedFS (S3), `mlflow server` (basic-auth, artifacts in
the bucket), `prefect server` and a process worker once for the module. Checkout A pushes its
data to the S3 remote (surviving SeaweedFS dying mid-push), deploys, and has the worker run the
retrain deployment, which promotes. Checkout B, a `git clone` of A with its own DVC cache and no
MLflow state, knows the stack only through the env file: it pulls the dataset by hash, audits the
champion back to that hash, verifies the registry and generates. `prodgan stack down` then
leaves no process and no open port behind.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from prodgan.adapters.processes import alive, group_alive, port_open
from prodgan.ops.stack_state import SERVICES, StackState, load
from tests.conftest import MECHANICS_GATES, run
from tests.flows.helpers import FAST, NIGHTLY, prefect_api

pytestmark = [pytest.mark.server, pytest.mark.slow]
DROP = ("MLFLOW_", "PREFECT_", "PRODGAN_", "AWS_", "DVC_SITE_CACHE_DIR", "TMPDIR")


def _env(**extra: str) -> dict[str, str]:
    """This process's environment without any stack, project or credential setting, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(DROP)}
    env["PRODGAN_CACHE_DIR"] = os.environ.get(
        "PRODGAN_CACHE_DIR", str(Path.home() / ".cache" / "prodgan")
    )
    return {**env, **extra}


def prodgan(*args: str, cwd: Path, env: dict[str, str], check: bool = True):
    began = time.monotonic()
    proc = run([sys.executable, "-m", "prodgan", *map(str, args)], cwd, check=False, env=env)
    print(
        f"{time.monotonic() - began:6.1f} s  prodgan {' '.join(map(str, args[:3]))}"
    )  # the budget, step by step (-s)
    assert not check or proc.returncode == 0, (
        f"prodgan {' '.join(map(str, args))}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    )
    return proc


class Checkout:
    """A project folder and the environment a user there would have: the stack's env file, nothing
    else."""

    def __init__(self, root: Path, stack: StackState) -> None:
        self.root = root
        self.env = _env(
            PRODGAN_ROOT=str(root),
            PRODGAN_STACK_ENV=str(stack.env_file),
            PRODGAN_GATES=str(MECHANICS_GATES),
            PRODGAN_EVAL_SAMPLES="50",
        )

    def ok(self, *args: str):
        return prodgan(*args, cwd=self.root, env=self.env)

    def fails(self, *args: str):
        return prodgan(*args, cwd=self.root, env=self.env, check=False)


@pytest.fixture(scope="module")
def stack() -> Iterator[StackState]:
    """The stack, started by `prodgan stack up` under /tmp (reachable by the postgres account when
    we are root)."""
    base = Path(tempfile.mkdtemp(prefix="prodgan-stack-", dir="/tmp"))
    os.chmod(base, 0o755)
    stack_dir = base / "stack"
    print(
        "\n"
        + prodgan(
            "stack", "up", "--dir", stack_dir, "--worker-dir", base, cwd=base, env=_env()
        ).stdout
    )
    try:
        yield load(stack_dir)
    finally:
        if any(
            alive(pid) for pid in load(stack_dir).pids.values()
        ):  # a test failed before `stack down` ran
            prodgan("stack", "down", "--dir", stack_dir, cwd=base, env=_env(), check=False)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def checkout_a(stack: StackState, _small_fmnist_template: Path) -> Checkout:
    root = stack.directory.parent / "a"
    shutil.copytree(_small_fmnist_template, root, symlinks=True)
    return Checkout(root, stack)


def _bucket_keys(stack: StackState, prefix: str) -> list[str]:
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=stack.s3_endpoint,
        aws_access_key_id=stack.secrets["s3_access_key"],
        aws_secret_access_key=stack.secrets["s3_secret_key"],
        region_name="us-east-1",
    )
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=stack.bucket, Prefix=prefix)
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def test_storage_dies_mid_push_then_the_retry_completes(
    stack: StackState, checkout_a: Checkout
) -> None:
    a = checkout_a
    nfiles = yaml.safe_load((a.root / "data.dvc").read_text())["outs"][0]["nfiles"]
    push = subprocess.Popen(
        [sys.executable, "-m", "prodgan", "data", "push"],
        cwd=a.root,
        env=a.env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # the CLI, as a user runs it
    deadline = time.monotonic() + 120
    while not (landed := _bucket_keys(stack, "dvc/")) and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(stack.pids["seaweedfs"], signal.SIGKILL)
    assert push.poll() is None and len(landed) < nfiles + 1, (
        "the push ended before SeaweedFS died: nothing was tested"
    )
    out, err = push.communicate(timeout=60)
    assert push.returncode == 2, out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "stopped answering during `dvc push`" in lines[0], err

    down = prodgan("stack", "status", "--dir", stack.directory, cwd=a.root, env=a.env, check=False)
    assert down.returncode == 1 and "seaweedfs" in down.stderr, down.stdout + down.stderr
    restarted = prodgan("stack", "up", "--dir", stack.directory, cwd=a.root, env=a.env).stdout
    assert restarted.count("already running") == 4, (
        restarted
    )  # only SeaweedFS came back, on its old port

    a.ok("data", "push")
    assert len(_bucket_keys(stack, "dvc/")) == nfiles + 1, "every file and the .dir listing, once"


def test_retrain_on_the_worker_then_a_second_checkout_pulls_audits_verifies_generates(
    stack: StackState, checkout_a: Checkout, tmp_path: Path
) -> None:
    from prefect.deployments import run_deployment

    a = checkout_a
    a.ok("data", "push")
    pinned = yaml.safe_load((a.root / "data.dvc").read_text())["outs"][0]
    nfiles = pinned["nfiles"]
    data_hash = re.search(
        r"data_hash\s+(\S+)", a.ok("data", "version", "--dataset", "fashion-mnist").stdout
    )[1]  # this dataset's own hash
    a.ok("admin", "keygen")  # A is the promoter's machine: the audit signing key lives there
    a.ok("deploy")
    job_env = {k: v for k, v in a.env.items() if k.startswith("PRODGAN_")}
    with prefect_api(stack.prefect_api):
        done = run_deployment(
            NIGHTLY,
            parameters={"recipes": {"fashion-mnist": "configs/smoke.yaml"}, "overrides": FAST},
            job_variables={"env": job_env, "working_dir": str(a.root)},
            timeout=420,
            poll_interval=2,
        )
    assert done.state.is_completed(), f"{done.state}\n{(stack.log('worker')).read_text()[-4000:]}"
    assert not (a.root / ".prodgan" / "mlflow.db").exists(), (
        "the worker tracked on the server, not locally"
    )
    assert _bucket_keys(stack, "mlartifacts/"), "MLflow's artifacts are in the bucket"

    # machine B: a clone of the repository (data.dvc, no data, no DVC cache, no MLflow state)
    b_root = stack.directory.parent / "b"
    run(["git", "clone", "-q", str(a.root), str(b_root)], tmp_path)
    assert not (b_root / "data").exists() and not (b_root / ".dvc" / "cache").exists()
    b = Checkout(b_root, stack)
    b.env["PRODGAN_AUDIT_PUBLIC_KEY"] = str(
        a.root / ".prodgan" / "keys" / "audit-ed25519.pub"
    )  # configured, never fetched
    b.ok("data", "pull")
    assert len([p for p in (b_root / "data").rglob("*") if p.is_file()]) == nfiles

    champion = json.loads(b.ok("audit", "model", "@champion", "--json").stdout)
    assert champion["dataset"]["data_hash"] == data_hash
    assert "champion" in champion["model"]["aliases"]
    built = json.loads(b.ok("audit", "dataset", data_hash, "--json").stdout)
    assert [v["version"] for v in built["versions"] if "champion" in v["aliases"]] == [
        str(champion["model"]["version"])
    ]
    b.ok("audit", "verify")
    grid = tmp_path / "grid.png"
    b.ok("generate", "-n", "4", "--out", str(grid))
    assert grid.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (
        not (b_root / ".prodgan" / "mlflow.db").exists()
        and not (b_root / ".prodgan" / "mlartifacts").exists()
    )


def test_stack_down_leaves_nothing_running(stack: StackState) -> None:
    state = load(stack.directory)
    pids = dict(state.pids)
    ports = [
        state.ports[p] for p in ("postgres", "mlflow", "prefect", "s3", "master", "volume", "filer")
    ]
    assert sorted(pids) == sorted(SERVICES) and all(alive(pid) for pid in pids.values())
    assert all(port_open(p) for p in ports)
    prodgan("stack", "down", "--dir", stack.directory, cwd=stack.directory, env=_env())
    # each server's whole process group (web workers, job consumers) is gone;
    # PostgreSQL's backends go with it
    assert [
        name
        for name, pid in pids.items()
        if (alive(pid) if name == "postgres" else group_alive(pid))
    ] == []
    assert [p for p in ports if port_open(p)] == []
    status = prodgan(
        "stack", "status", "--dir", stack.directory, cwd=stack.directory, env=_env(), check=False
    )
    assert status.returncode == 1, status.stdout
