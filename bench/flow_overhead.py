"""Orchestration overhead: the `retrain` Prefect flow vs the same `prodgan.ops.retrain` calls
directly.

Both retrain the smoke config (forced, so neither skips) in a throwaway prodgan home (its own
sqlite MLflow, model name and Prefect home), after one untimed warm-up run that fills the tensor,
statistics and evaluator caches. The data is the current project's, or with `--limit N` a
throwaway git+DVC project holding the first N Fashion-MNIST images of each split. The embedded
Prefect API is started before the timed flow run; its start-up is reported on its own line (it
is paid once per process). Target: overhead <= 10% or <= 5 s.

Run: .venv/bin/python bench/flow_overhead.py [--limit 300] [--config configs/smoke.yaml] [--set
steps=60 ...]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _small_project(where: Path, limit: int) -> Path:
    """A git repo holding the first `limit` images per split, pinned by DVC
    (what `prodgan data` makes)."""
    root = where / "proj"
    root.mkdir(parents=True)
    env = {**os.environ, "PRODGAN_ROOT": str(root), "PRODGAN_DVC_REMOTE": str(where / "remote")}
    for args in (
        ["git", "init", "-q"],
        ["git", "config", "user.email", "bench@prodgan.local"],
        ["git", "config", "user.name", "bench"],
        [sys.executable, "-m", "prodgan", "data", "import", "fashion-mnist", "--limit", str(limit)],
        [sys.executable, "-m", "prodgan", "data", "add"],
        ["git", "add", "-A"],
        ["git", "commit", "-q", "-m", "data"],
    ):
        subprocess.run(args, cwd=root, env=env, check=True, capture_output=True)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/smoke.yaml")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], help="config override key=value"
    )
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument(
        "--limit", type=int, default=0, help="use a throwaway project with N images per split"
    )
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="prodgan-bench-flow-"))
    if args.limit:
        os.environ["PRODGAN_ROOT"] = str(_small_project(scratch, args.limit))
    home = scratch / "home"
    os.environ.update(
        {
            "PRODGAN_HOME": str(home),
            "PRODGAN_MODEL_NAME": "bench-flow-overhead",
            "PREFECT_HOME": str(home / "prefect"),
            "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
        }
    )
    os.environ.pop("PREFECT_API_URL", None)
    import flows  # noqa: F401  sets Prefect's start-up timeout before anything imports prefect
    from prodgan.ops import retrain as ops
    from prodgan.settings import Settings, configure_environment

    settings = configure_environment(Settings.load())
    config = args.config

    def direct() -> float:
        start = time.perf_counter()
        ops.retrain(settings, config, args.overrides, args.dataset, force=True)
        return time.perf_counter() - start

    print(
        f"project {settings.root}, scratch {scratch}; warm-up run (direct, untimed: fills caches)",
        flush=True,
    )
    direct()
    t_direct = direct()

    from prefect import flow

    from flows.retrain import retrain

    @flow(name="bench-noop")
    def noop() -> None:
        return None

    start = time.perf_counter()
    noop()
    t_api = time.perf_counter() - start

    start = time.perf_counter()
    retrain(config=config, dataset=args.dataset, force=True, overrides=args.overrides)
    t_flow = time.perf_counter() - start

    overhead = t_flow - t_direct
    ok = overhead <= max(0.10 * t_direct, 5.0)
    load = os.getloadavg()[0]
    print(f"direct prodgan.ops.retrain     : {t_direct:7.2f} s")
    print(f"retrain Prefect flow            : {t_flow:7.2f} s")
    print(
        f"overhead                        : {overhead:+7.2f} s "
        f"({100 * overhead / t_direct:+.1f}%)  "
        f"target <= 10% or <= 5 s: {'OK' if ok else 'MISSED'}"
    )
    print(
        "(embedded Prefect API start-up + one empty flow run, once per process, "
        f"not included above: {t_api:.2f} s; load average {load:.1f})"
    )


if __name__ == "__main__":
    main()
