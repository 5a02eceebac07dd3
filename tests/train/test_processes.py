"""Real processes: kill -9 mid-run then --resume, and a 2-process gloo DDP run on CPU."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from prodgan.training.checkpoints import list_checkpoints
from tests.train.helpers import write_config, write_dataset

STEPS = 20


def _train_cmd(config, out, data, *extra):
    return [
        sys.executable,
        "-m",
        "prodgan.training",
        "--config",
        str(config),
        "--out",
        str(out),
        "--data-dir",
        str(data),
        *extra,
    ]


@pytest.mark.slow
def test_kill_9_then_resume_reaches_the_same_final_step(tmp_path):
    data = write_dataset(tmp_path / "data")
    config = write_config(
        tmp_path / "cfg.yaml", steps=STEPS, checkpoint_every=5, log_every=5, grid_every=STEPS
    )
    out = tmp_path / "run"
    proc = subprocess.Popen(
        _train_cmd(config, out, data), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while not list_checkpoints(out) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    reached = list_checkpoints(out)
    assert proc.returncode == -signal.SIGKILL, (
        f"the run ended before it could be killed: {proc.stderr.read()}"
    )
    assert reached and int(reached[0].stem.split("_")[1]) < STEPS

    resumed = subprocess.run(
        _train_cmd(config, out, data, "--resume"), capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    assert re.search(rf"rank 0 step {STEPS} weights sha256", resumed.stdout)
    assert list_checkpoints(out)[0].name == f"ckpt_{STEPS:08d}.pt"
    assert (out / "bundle" / "generator.pt").is_file()


@pytest.mark.slow
def test_two_process_gloo_ddp_ranks_agree(tmp_path):
    data = write_dataset(tmp_path / "data")
    config = write_config(
        tmp_path / "cfg.yaml", steps=6, checkpoint_every=3, log_every=3, grid_every=6
    )
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "prodgan.training",
        "--config",
        str(config),
        "--out",
        str(tmp_path / "run"),
        "--data-dir",
        str(data),
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    digests = dict(re.findall(r"rank (\d) step 6 weights sha256 ([0-9a-f]{64})", proc.stdout))
    assert set(digests) == {"0", "1"} and digests["0"] == digests["1"]
    assert list_checkpoints(tmp_path / "run")[0].name == "ckpt_00000006.pt"
