"""`pip install` of the built wheel, outside the checkout:
the flows and the shipped defaults come along.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(args: list[str], cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PRODGAN_", "PYTHON"))}
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.mark.slow
def test_wheel_installs_outside_the_checkout_with_flows_and_shipped_defaults(
    tmp_path: Path,
) -> None:
    source = (
        tmp_path / "source"
    )  # the build writes build/ and *.egg-info beside the sources: not into the checkout
    state = {".git", ".venv", ".prodgan", "data", "build"}
    shutil.copytree(
        ROOT,
        source,
        ignore=lambda folder, names: [
            n
            for n in names
            if (Path(folder) == ROOT and n in state)
            or n == "__pycache__"
            or n.endswith(".egg-info")
        ],
    )
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "dist"),
            str(source),
        ],
        tmp_path,
    )
    wheel = next((tmp_path / "dist").glob("prodgan-*.whl"))
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path)
    python = venv / "bin" / "python"
    # The venv's own pip: pip run from this environment would uninstall this environment's
    # prodgan first.
    _run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], tmp_path
    )
    # The dependencies (torch, mlflow, prefect, ...) come from this environment; prodgan itself only
    # from the wheel.
    purelib = Path(
        _run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            tmp_path,
        ).strip()
    )
    (purelib / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    where = _run(
        [
            str(python),
            "-c",
            "import flows.retrain, prodgan.settings as s; print(flows.retrain.__file__); "
            "print(s.shipped('configs/smoke.yaml')); print(s.shipped('prefect.yaml'))",
        ],
        outside,
    ).split()
    assert all(Path(p).is_relative_to(venv) and Path(p).is_file() for p in where), where
    prodgan = str(venv / "bin" / "prodgan")
    assert "Validate -> train -> evaluate" in _run([prodgan, "retrain", "--help"], outside)
    assert "prefect.yaml" in _run([prodgan, "deploy", "--help"], outside)
