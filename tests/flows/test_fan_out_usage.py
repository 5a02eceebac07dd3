"""The fan-out's usage errors: one line, exit 2, before any Prefect API is reached."""

from __future__ import annotations

import pytest

from prodgan.settings import Settings
from tests.conftest import prodgan


@pytest.mark.parametrize(
    "args,match",
    [
        (["retrain", "--all", "--recipe", "clothing"], "--recipe 'clothing' is not DATASET=CONFIG"),
        (
            ["deploy", "--gpu-slots", "0", "--api-url", "http://127.0.0.1:9/api"],
            "--gpu-slots 0: give the number of GPUs",
        ),
    ],
)
def test_bad_fan_out_input_is_one_line(project: Settings, args, match):
    proc = prodgan(*args, cwd=project.root, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and match in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
