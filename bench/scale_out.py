"""Scale-out: one evaluation on 1 vs 2 processes, and the nightly fan-out on 1 vs 2 GPU workers.

`--part eval`: both runs are `torchrun --standalone --nproc-per-node K -m prodgan.metrics JOB.json`
on the first `--n` Fashion-MNIST images of each split (Debian's package, written to a temp folder)
with an empty stats cache (generated side, real side, floor and noise all computed), so each pays
the same start-up; the ratio is wall time 1 / wall time 2, and FID must agree to 1e-6 relative.
No GPU is lent here: on a GPU host `--nproc` is the GPU count.

`--part fanout`: `prodgan stack up` in a temp folder, one checkout with three datasets
(Fashion-MNIST's first 300 images per split and two shops of clothing-small's photos, 30 + 10 per
category at 28x28, each on `configs/smoke.yaml`) and `prodgan deploy --gpu-slots K`. The stack's
own worker polls every queue, so it is stopped and the pool gets the production layout instead:
one CPU worker (`--work-queue cpu`, runs the nightly run) and K GPU workers (`--work-queue gpu
--limit 1`, each a GPU's worth). One untimed nightly run (forced) fills the caches; then a forced
nightly run with 1 GPU worker and one with K, timed from submission to the nightly run's end; the
ratio is wall time 1 / wall time K. The queue limit stays K both times: the workers are the limit.
On this 2-core CPU the retrains share two cores with whatever else runs: a load change between the
two timed runs moves the ratio (docs/deploy.md has three runs), so run it on a quiet machine.

    .venv/bin/python bench/scale_out.py [--part eval|fanout|all] [--n 200] [--nproc 2] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # prodgan, and tests.products.helpers (reads clothing-small)

# The fan-out's datasets: Fashion-MNIST and two shops of clothing-small's real photos (what
# tests/stack/test_fan_out.py trains), every one on the smoke recipe.
SHOPS = {"shoes": ("shoes", "hat", "skirt"), "tops": ("t-shirt", "shirt", "longsleeve")}
RECIPES = {dataset: "configs/smoke.yaml" for dataset in ("fashion-mnist", *SHOPS)}
NIGHTLY = "retrain-datasets/retrain-nightly"
DROP = ("MLFLOW_", "PREFECT_", "PRODGAN_", "AWS_", "DVC_SITE_CACHE_DIR", "TMPDIR")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("eval", "fanout", "all"), default="all")
    parser.add_argument("--n", type=int, default=200, help="generated and real images per side")
    parser.add_argument("--nproc", type=int, default=2, help="processes of the sharded run")
    parser.add_argument("--workers", type=int, default=2, help="GPU workers of the fanned-out run")
    parser.add_argument(
        "--samples", type=int, default=50, help="evaluation samples of each retrain (fan-out)"
    )
    args = parser.parse_args()
    if args.part in ("eval", "all"):
        evaluation(args.n, args.nproc)
    if args.part in ("fanout", "all"):
        fan_out(args.workers, args.samples)


def evaluation(n: int, nproc: int) -> None:
    """One evaluation, sharded over 1 and `nproc` torchrun processes; prints the ratio."""
    import torch

    from prodgan.data.fashion_mnist import CATEGORIES, DEBIAN_SOURCE, write_fashion_mnist
    from prodgan.data.layout import META_FILE
    from prodgan.fsutil import write_json_atomic
    from prodgan.metrics.bundle_job import BundleJob
    from prodgan.metrics.inception_weights import inception_dir, resolve_inception_weights
    from prodgan.metrics.result_file import load_result
    from prodgan.models import GeneratorSpec, build_generator, save_bundle
    from prodgan.ops.torchrun import Launch
    from prodgan.settings import Settings, configure_environment

    settings = configure_environment(Settings.load())
    weights = resolve_inception_weights(settings.cache_dir)
    torch.manual_seed(0)
    spec = GeneratorSpec("cdcgan", 32, len(CATEGORIES), 1, 28, 8, tuple(CATEGORIES))
    settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.tmp_dir) as tmp:
        tmp = Path(tmp)
        meta = write_fashion_mnist(DEBIAN_SOURCE, tmp / "data", limit=n)
        (tmp / "data" / META_FILE).write_bytes(meta.to_json())
        bundle = save_bundle(tmp / "bundle", build_generator(spec), spec, {})
        results = {}
        for k in (1, nproc):
            cache = tmp / f"cache-{k}"
            inception_dir(cache).mkdir(parents=True)
            (inception_dir(cache) / weights.path.name).symlink_to(weights.path)
            job = BundleJob(
                bundle=bundle,
                dataset_root=tmp / "data",
                data_hash=f"bench-scale-out-{n}",
                split="test",
                tensor_cache=tmp / "tensors",
                cache_dir=cache,
                options={"samples": n, "seed": 0, "bootstrap": 0},
                out=tmp / f"result-{k}",
            )
            write_json_atomic(tmp / f"job-{k}.json", job.to_json())
            began = time.perf_counter()
            code = Launch(k).run("prodgan.metrics", [str(tmp / f"job-{k}.json")])
            seconds = time.perf_counter() - began
            assert code == 0, f"the {k}-process evaluation exited with {code}"
            results[k] = (seconds, load_result(tmp / f"result-{k}"))
    (t1, one), (tk, many) = results[1], results[nproc]
    fid = f"fid_{one.protocol.suffix}"
    drift = abs(many.metrics[fid] - one.metrics[fid]) / one.metrics[fid]
    print(f"{n} generated vs {n} real images (+ floor, noise), every side computed")
    print(f"  1 process:  {t1:7.1f} s   {fid} {one.metrics[fid]:.6f}")
    print(f"  {nproc} processes: {tk:7.1f} s   {fid} {many.metrics[fid]:.6f}")
    print(f"  speed-up {t1 / tk:.2f}x   FID relative difference {drift:.1e} (must be < 1e-6)")
    assert drift < 1e-6


def _env(**extra: str) -> dict[str, str]:
    """This process's environment without any stack, project or credential setting (the cache of
    Inception weights kept), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(DROP)}
    if "PRODGAN_CACHE_DIR" in os.environ:
        env["PRODGAN_CACHE_DIR"] = os.environ["PRODGAN_CACHE_DIR"]
    return {**env, **extra}


def _prodgan(args: list[Any], cwd: Path, env: dict[str, str]) -> None:
    began = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "prodgan", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(f"prodgan {' '.join(map(str, args))} failed:\n{proc.stderr[-2000:]}")
    print(f"  {time.perf_counter() - began:6.1f} s  prodgan {' '.join(map(str, args[:3]))}")


def _shop(base: Path, env: dict[str, str]) -> Path:
    """A checkout pinning the three datasets, their hashes memoised, the promoter's key made."""
    from tests.products.helpers import clothing_subset

    root = base / "shop"
    root.mkdir()
    for args in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "config", "user.email", "bench@prodgan.local"],
        ["git", "config", "user.name", "bench"],
    ):
        subprocess.run(args, cwd=root, check=True, capture_output=True)
    (root / ".gitignore").write_text("/.prodgan/\n")
    _prodgan(["data", "import", "fashion-mnist", "--limit", "300"], root, env)
    for name, categories in SHOPS.items():
        photos = clothing_subset(base / f"photos-{name}", {c: (30, 10) for c in categories})
        _prodgan(["data", "import", "folder", photos, "--name", name, "--size", "28"], root, env)
    _prodgan(["data", "add"], root, env)
    for args in (["git", "add", "-A"], ["git", "commit", "-q", "-m", "three datasets"]):
        subprocess.run(args, cwd=root, check=True, capture_output=True)
    for dataset in RECIPES:  # hashes memoised once, so concurrent retrains only read them
        _prodgan(["data", "version", "--dataset", dataset], root, env)
    _prodgan(["admin", "keygen"], root, env)
    return root


def _online(pool: str) -> set[str]:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return {w.name for w in client.read_workers_for_work_pool(pool) if w.status == "ONLINE"}


def _worker(pool: str, name: str, queue: str, limit: int | None, root: Path, env: dict) -> int:
    """A process worker of `pool` polling only `queue`, once it is online; its process group."""
    from prodgan.adapters.processes import spawn
    from prodgan.adapters.stack_services import flow_heartbeat_env, worker_args

    env = {
        **env,
        "PREFECT_HOME": str(root.parent / f"home-{name}"),
        "PREFECT_WORKER_QUERY_SECONDS": "2",  # not 10: less idle time between runs
        **flow_heartbeat_env(),  # as the stack's worker: the zombie automation watches them
    }
    args = [*worker_args(pool, (queue,), limit), "--name", name]
    proc = spawn(args, root.parent / f"{name}.log", env, cwd=root)
    deadline = time.monotonic() + 240
    while name not in _online(pool):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"worker {name} never came online: see {root.parent / name}.log")
        time.sleep(0.5)
    return proc.pid


def _unscheduled(deployment: str) -> None:
    """Turn off `deployment`'s cron and drop the runs it queued: a 03:00 UTC run of its own would
    otherwise train between (or during) the timed ones."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    with get_client(sync_client=True) as client:
        found = client.read_deployment_by_name(deployment)
        for schedule in found.schedules:
            client.update_deployment_schedule(found.id, schedule.id, active=False)
        queued = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[found.id])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))
            ),
        )
        for run in queued:
            client.delete_flow_run(run.id)


def _nightly(root: Path, shop_env: dict[str, str]) -> tuple[float, float, float]:
    """One forced nightly run on the pool, to its end: (seconds from submission to its end,
    seconds from the first retrain's start to the last one's end, the retrains' seconds added
    up: more with more workers when they share the cores)."""
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId
    from prefect.deployments import run_deployment

    job_env = {k: v for k, v in shop_env.items() if k.startswith("PRODGAN_")}
    began = time.perf_counter()
    nightly = run_deployment(
        NIGHTLY,
        parameters={"recipes": RECIPES, "force": True},
        job_variables={"env": job_env, "working_dir": str(root)},
        timeout=3600,
        poll_interval=1,
    )
    wall = time.perf_counter() - began
    if not nightly.state.is_completed():
        raise SystemExit(f"the nightly run ended {nightly.state}: see {root.parent}/*.log")
    with get_client(sync_client=True) as client:
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[UUID(str(nightly.id))])
            )
        )
    first = min(child.start_time for child in children)
    span = (max(child.end_time for child in children) - first).total_seconds()
    busy = sum((child.end_time - child.start_time).total_seconds() for child in children)
    for child in sorted(children, key=lambda child: child.start_time):
        print(
            f"    {child.name:<22} queue {child.work_queue_name}  "
            f"{(child.start_time - first).total_seconds():6.1f} s -> "
            f"{(child.end_time - first).total_seconds():6.1f} s"
        )
    return wall, span, busy


def fan_out(workers: int, samples: int) -> None:
    """The nightly run of three datasets on 1 GPU worker and on `workers`; prints the ratio."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from prodgan.adapters.processes import stop_group
    from prodgan.names import CPU_QUEUE, GPU_QUEUE
    from prodgan.ops.stack_state import load

    # stopped early (SIGTERM; SIGINT is ignored when started in the background): still tear down
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    base = Path(tempfile.mkdtemp(prefix="prodgan-bench-fanout-", dir="/tmp"))
    os.chmod(base, 0o755)  # PostgreSQL runs as its own account when we are root
    stack_dir, env = base / "stack", _env()
    started: list[int] = []
    print(f"fan-out: {len(RECIPES)} datasets on configs/smoke.yaml, in {base}")
    try:
        _prodgan(["stack", "up", "--dir", stack_dir, "--worker-dir", base], base, env)
        state = load(stack_dir)
        shop_env = _env(
            PRODGAN_ROOT=str(base / "shop"),
            PRODGAN_STACK_ENV=str(state.env_file),
            PRODGAN_EVAL_SAMPLES=str(samples),
        )
        root = _shop(base, shop_env)
        _prodgan(["deploy", "--gpu-slots", workers], root, shop_env)
        stop_group(state.pids["worker"])  # it polls every queue: the pool gets its own workers
        worker_env = {**env, **state.client_env(), "PRODGAN_STACK_ENV": str(state.env_file)}
        with temporary_settings(updates={PREFECT_API_URL: state.prefect_api}):
            _unscheduled(NIGHTLY)
            started.append(_worker(state.pool, "cpu-0", CPU_QUEUE, None, root, worker_env))
            gpus = [
                _worker(state.pool, f"gpu-{i}", GPU_QUEUE, 1, root, worker_env)
                for i in range(workers)
            ]
            started += gpus
            print("  warm-up nightly run (untimed: caches, evaluator judges)")
            _nightly(root, shop_env)
            for pid in gpus[1:]:
                stop_group(pid)
                started.remove(pid)
            print("  1 GPU worker:")
            one = _nightly(root, shop_env)
            for i in range(1, workers):
                started.append(_worker(state.pool, f"gpu-{i}b", GPU_QUEUE, 1, root, worker_env))
            print(f"  {workers} GPU workers:")
            many = _nightly(root, shop_env)
    finally:
        for pid in started:
            stop_group(pid)
        _prodgan(["stack", "down", "--dir", stack_dir], base, env)
        shutil.rmtree(base, ignore_errors=True)
    print(
        f"nightly run of {len(RECIPES)} smoke datasets: submission to end "
        "(first retrain start to last end; retrains added up)"
    )
    print(f"  1 GPU worker:   {one[0]:7.1f} s  ({one[1]:.1f} s; {one[2]:.1f} s)")
    print(f"  {workers} GPU workers:  {many[0]:7.1f} s  ({many[1]:.1f} s; {many[2]:.1f} s)")
    print(f"  speed-up {one[0] / many[0]:.2f}x  (retrains' span {one[1] / many[1]:.2f}x)")


if __name__ == "__main__":
    main()
