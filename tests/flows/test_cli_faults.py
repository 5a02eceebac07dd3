"""`prodgan retrain` as a user runs it (a subprocess on the embedded Prefect API),
killed mid-training.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from prodgan.adapters import audit, registry
from prodgan.settings import Settings
from tests.conftest import run
from tests.flows.helpers import train_runs, versions

# Long enough to be caught mid-run; checkpoints every few steps so the rerun has one to resume.
KILLABLE = ["steps=40", "checkpoint_every=4", "log_every=4", "grid_every=20"]


@pytest.mark.slow
def test_killed_retrain_resumes_and_completes_with_one_version(
    flow_project: Settings, tmp_path
) -> None:
    args = [sys.executable, "-m", "prodgan", "retrain", "--config", "configs/smoke.yaml"]
    for override in KILLABLE:
        args += ["--set", override]
    log = tmp_path / "killed.log"
    with open(log, "wb") as sink:
        proc = subprocess.Popen(
            args,
            cwd=flow_project.root,
            env=os.environ.copy(),
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 300
    checkpoints = flow_project.home / "train"
    while not list(checkpoints.glob("*/checkpoints/ckpt_*.pt")):
        assert proc.poll() is None, (
            f"retrain ended before its first checkpoint:\n{log.read_text()[-3000:]}"
        )
        assert time.monotonic() < deadline, f"no checkpoint after 300 s:\n{log.read_text()[-3000:]}"
        time.sleep(0.2)
    os.killpg(
        proc.pid, signal.SIGKILL
    )  # the flow process, its training and its embedded Prefect API
    proc.wait(timeout=30)
    assert versions(flow_project) == []

    done = run(args, cwd=flow_project.root)
    assert (
        "champion" in done.stdout and "MLflow UI" in done.stdout and "Data Docs" in done.stdout
    ), done.stdout
    runs = train_runs(flow_project)
    assert len(runs) == 1, "the rerun resumed the killed training run instead of starting another"
    assert runs[0].info.status == "FINISHED" and "prodgan.resumed" in runs[0].data.tags
    assert [str(mv.version) for mv in versions(flow_project)] == ["1"]
    records = audit.audit_records(flow_project)
    assert [(r["action"], r["champion_after"]) for r in records] == [("promote", "1")]
    assert str(registry.champion_version(flow_project).version) == "1"


def test_auto_resume_finds_the_killed_run_of_its_own_dataset(project: Settings) -> None:
    """One config trains several datasets at once (the fan-out): a killed run is resumed even
    when another dataset's run of the same config started after it, and never in its place."""
    from prodgan.fsutil import write_json_atomic
    from prodgan.ops.train import STATE_FILE, find_resumable

    def run(name: str, dataset: str, status: str) -> Path:
        folder = project.train_runs_dir / name
        state = {"config_name": "smoke", "status": status, "overrides": [f"dataset={dataset}"]}
        write_json_atomic(folder / STATE_FILE, {**state, "mlflow_run_id": name})
        return folder

    killed = run("smoke-20261206-010000-aaaa", "shoes", "running")
    run("smoke-20261206-010100-bbbb", "tops", "running")  # newer, another dataset's
    run("smoke-20261206-010200-cccc", "shoes", "finished")
    assert find_resumable(project, "smoke", ["dataset=shoes"]) == killed
    assert find_resumable(project, "smoke", ["dataset=hats"]) is None
    assert find_resumable(project, "smoke").name.endswith("bbbb")  # --resume: the newest
