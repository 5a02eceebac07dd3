"""The nightly run fanned out over the work pool: two process workers, three small datasets.

One stack (`prodgan stack up`: PostgreSQL, SeaweedFS, MLflow, Prefect and its worker) and a
second worker (`--limit 1`, one GPU's worth) for the module. The nightly deployment submits one
`retrain` flow run per dataset to the pool's `gpu` queue: with two slots the retrains overlap in
time and each promotes or rejects into its own model; with one slot (`prodgan deploy
--gpu-slots 1`) the next nightly's runs do not overlap, and they make no second model version.

Then the same stack loses workers and processes to kill -9 (`prodgan retrain --all` is the
nightly, two project-configured GPU workers serve the `gpu` queue): a whole worker mid-training
(the machine dies), the training process mid-training, the flow run's process mid-evaluation and
mid-upload of the model version. After each retry the registry holds one complete version per
training run, `audit verify` passes, the DVC remote is in sync, and the next nightly proceeds.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator
from uuid import UUID

import pytest

from prodgan.adapters.processes import spawn
from prodgan.adapters.stack_services import flow_heartbeat_env, worker_args
from prodgan.names import (
    DATASET,
    DEFAULT_DATASET,
    EVAL_EXPERIMENT,
    EVAL_RUN,
    GPU_QUEUE,
    MODEL_FILES_SHA,
    RESUMED,
    TRAIN_EXPERIMENT,
    TRAIN_RUN,
)
from prodgan.ops.stack_state import StackState
from tests.conftest import run
from tests.flows.helpers import FAST, NIGHTLY, artifacts, prefect_api
from tests.flows.test_cli_faults import KILLABLE
from tests.products.helpers import clothing_subset
from tests.stack.test_two_checkouts import Checkout, _env, stack  # noqa: F401 (the stack fixture)

pytestmark = [pytest.mark.server, pytest.mark.slow]
# Fashion-MNIST (the template's 300 + 300 images) and two shops of clothing-small's real photos,
# 30 + 10 per category, imported at 28x28. (Shops cut from Fashion-MNIST's own images fail the
# folder suite's near-duplicate check: a few distinct 28x28 sneakers are within its copy distance.)
SHOPS = {"shoes": ("shoes", "hat", "skirt"), "tops": ("t-shirt", "shirt", "longsleeve")}
RECIPES = {dataset: "configs/smoke.yaml" for dataset in ("fashion-mnist", *SHOPS)}


@pytest.fixture(scope="module")
def shop(stack: StackState, _small_fmnist_template: Path) -> Checkout:  # noqa: F811
    """One checkout with three pinned datasets, the deployments applied, two GPU slots."""
    root = stack.directory.parent / "shop"
    shutil.copytree(_small_fmnist_template, root, symlinks=True)
    checkout = Checkout(root, stack)
    for name, categories in SHOPS.items():
        source = clothing_subset(
            stack.directory.parent / f"photos-{name}", {c: (30, 10) for c in categories}
        )
        checkout.ok("data", "import", "folder", source, "--name", name, "--size", "28")
    checkout.ok("data", "add")
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-q", "-m", "three datasets"], root)
    for dataset in RECIPES:  # hashes memoised once, so concurrent retrains only read them
        checkout.ok("data", "version", "--dataset", dataset)
    checkout.ok("admin", "keygen")  # the promoter's machine: retrains sign their audit records
    checkout.ok("deploy", "--gpu-slots", "2")
    return checkout


def _gpu_worker(stack: StackState, shop: Checkout, name: str) -> subprocess.Popen:  # noqa: F811
    """A process worker of the pool's `gpu` queue that runs one flow at a time (one GPU), set up
    for the shop's project as a GPU machine would be, its flow runs sending heartbeats."""
    env = {
        **shop.env,
        **stack.client_env(),
        **flow_heartbeat_env(),
        "PREFECT_HOME": str(stack.directory.parent / name),
    }
    args = [*worker_args(stack.pool, (GPU_QUEUE,), limit=1), "--name", name]
    online = len(_online_workers(stack))
    proc = spawn(args, stack.directory.parent / f"{name}.log", env, cwd=shop.root)
    deadline = time.monotonic() + 120
    while len(_online_workers(stack)) <= online:
        assert proc.poll() is None and time.monotonic() < deadline, f"{name} never online"
        time.sleep(0.5)
    return proc


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:  # a fault test may have killed it
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)


@pytest.fixture(scope="module")
def second_worker(stack: StackState, shop: Checkout) -> Iterator[subprocess.Popen]:  # noqa: F811
    """A second worker beside the stack's own."""
    proc = _gpu_worker(stack, shop, "second-gpu-worker")
    yield proc
    _stop(proc)


def _online_workers(state: StackState) -> list[Any]:
    from prefect.client.orchestration import get_client

    with prefect_api(state.prefect_api), get_client(sync_client=True) as client:
        return [w for w in client.read_workers_for_work_pool(state.pool) if w.status == "ONLINE"]


def _nightly(state: StackState, shop: Checkout) -> list[Any]:
    """One nightly run on the pool, to the end; its retrain flow runs, by start time."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId
    from prefect.deployments import run_deployment

    job_env = {k: v for k, v in shop.env.items() if k.startswith("PRODGAN_")}
    with prefect_api(state.prefect_api):
        nightly = run_deployment(
            NIGHTLY,
            parameters={"recipes": RECIPES, "overrides": FAST},
            job_variables={"env": job_env, "working_dir": str(shop.root)},
            timeout=900,
            poll_interval=2,
        )
        assert nightly.state.is_completed(), (
            f"{nightly.state}\n{state.log('worker').read_text()[-4000:]}"
        )
        with get_client(sync_client=True) as client:
            children = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[UUID(str(nightly.id))])
                )
            )
    assert sorted(child.name for child in children) == sorted(f"retrain-{d}" for d in RECIPES)
    assert all(child.state.is_completed() for child in children)
    busy = sum((child.end_time - child.start_time).total_seconds() for child in children)
    first_start = min(child.start_time for child in children)
    wall = (max(child.end_time for child in children) - first_start).total_seconds()
    print(f"retrains: {wall:.1f} s first start to last end, {busy:.1f} s added up")  # -s
    return sorted(children, key=lambda child: child.start_time)


def _outcomes(state: StackState, children: list[Any]) -> dict[str, dict[str, Any]]:
    """Each retrain's row of the nightly table, as the run published it."""
    found = {}
    with prefect_api(state.prefect_api):
        for child in children:
            data = artifacts(str(child.id))["retrain-outcome"].data
            [row] = json.loads(data) if isinstance(data, str) else data
            found[row["dataset"]] = row
    return found


def _overlap(a: Any, b: Any) -> bool:
    return a.start_time < b.end_time and b.start_time < a.end_time


def _versions(state: StackState, model: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    from mlflow import MlflowClient

    for key, value in state.client_env().items():
        if key.startswith("MLFLOW_"):
            monkeypatch.setenv(key, value)
    # the registry named too: an earlier test in this process may have set MLflow's global one
    client = MlflowClient(tracking_uri=state.mlflow_url, registry_uri=state.mlflow_url)
    return sorted(mv.version for mv in client.search_model_versions(f"name = '{model}'"))


def test_two_slots_overlap_one_slot_serialises_and_no_version_is_made_twice(
    stack: StackState,  # noqa: F811
    shop: Checkout,
    second_worker: subprocess.Popen,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = _nightly(stack, shop)
    assert any(_overlap(a, b) for i, a in enumerate(first) for b in first[i + 1 :]), [
        (child.name, child.start_time, child.end_time) for child in first
    ]
    outcomes = _outcomes(stack, first)
    assert sorted(outcomes) == sorted(RECIPES)
    assert all(row["decision"] in ("promote", "reject") for row in outcomes.values()), outcomes
    models = {row["model"] for row in outcomes.values()}
    assert len(models) == 3, outcomes  # each dataset into its own model
    made = {model: _versions(stack, model, monkeypatch) for model in models}
    assert all(len(v) == 1 for v in made.values()), made

    shop.ok("deploy", "--gpu-slots", "1")
    second = _nightly(stack, shop)
    for earlier, later in zip(second, second[1:], strict=False):
        assert later.start_time >= earlier.end_time, [
            (child.name, child.start_time, child.end_time) for child in second
        ]
    assert {row["decision"] for row in _outcomes(stack, second).values()} == {"skipped"}
    assert {model: _versions(stack, model, monkeypatch) for model in models} == made


# ---------------------------------------------------------------- kill -9 on the pool


@pytest.fixture(scope="module")
def gpu_workers(
    stack: StackState,  # noqa: F811
    shop: Checkout,
    second_worker: subprocess.Popen,
) -> Iterator[list[subprocess.Popen]]:
    """Two project-configured GPU workers and no other: the stack's own worker (which serves
    every queue, set up for no project) is stopped, as an admin would before handing the pool
    to GPU machines. The data is on the remote, as a nightly's data is."""
    os.killpg(stack.pids["worker"], signal.SIGTERM)
    shop.ok("data", "push")
    third = _gpu_worker(stack, shop, "third-gpu-worker")
    yield [second_worker, third]
    _stop(third)


class Nightly:
    """`prodgan retrain --all` in the shop, as a user (or cron) starts it: the nightly flow runs in
    this process and fans each dataset out to the pool."""

    def __init__(self, stack: StackState, shop: Checkout, dataset: str, overrides: list[str]):  # noqa: F811
        # the stack's API (else an embedded one); a wide console, so no table cell wraps
        env = {**shop.env, "PREFECT_API_URL": stack.prefect_api, "COLUMNS": "400"}
        args = [sys.executable, "-m", "prodgan", "retrain", "--all"]
        args += ["--recipe", f"{dataset}=configs/smoke.yaml"]
        for override in overrides:
            args += ["--set", override]
        self.log = shop.root.parent / f"nightly-{dataset}-{time.monotonic_ns()}.log"
        with open(self.log, "wb") as sink:
            self.proc = subprocess.Popen(
                args, cwd=shop.root, env=env, stdout=sink, stderr=subprocess.STDOUT
            )
        self.began = time.time()

    def alive(self) -> None:
        assert self.proc.poll() is None, f"the nightly ended early:\n{self.output()[-4000:]}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def end(self, timeout: float = 600) -> tuple[int, str]:
        return self.proc.wait(timeout=timeout), self.output()


@pytest.fixture
def nightly(stack: StackState, shop: Checkout) -> Iterator[Any]:  # noqa: F811
    """Starts `Nightly`s; any still running when the test ends (it failed) is killed."""
    started: list[Nightly] = []

    def start(dataset: str, overrides: list[str]) -> Nightly:
        started.append(Nightly(stack, shop, dataset, overrides))
        return started[-1]

    yield start
    for each in started:
        if each.proc.poll() is None:
            each.proc.kill()
            each.proc.wait(timeout=30)


def _retrain_runs(state: StackState, dataset: str, since: float) -> list[Any]:
    """The retrain flow runs of `dataset` created after `since` (epoch seconds), oldest first."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    with prefect_api(state.prefect_api), get_client(sync_client=True) as client:
        found = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[f"retrain-{dataset}"]))
        )
    return sorted((r for r in found if r.created.timestamp() >= since - 1), key=lambda r: r.created)


def _mlflow(state: StackState, monkeypatch: pytest.MonkeyPatch) -> Any:
    from mlflow import MlflowClient

    for key, value in state.client_env().items():
        if key.startswith("MLFLOW_"):
            monkeypatch.setenv(key, value)
    return MlflowClient(tracking_uri=state.mlflow_url, registry_uri=state.mlflow_url)


def _runs(client: Any, experiment: str, query: str) -> list[Any]:
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], query) if exp else []


def _wait(what: str, found: Any, nightly: Nightly, timeout: float = 420) -> Any:
    """Poll `found()` until it returns something, while the nightly still runs."""
    deadline = time.monotonic() + timeout
    while not (value := found()):
        nightly.alive()
        assert time.monotonic() < deadline, f"no {what} after {timeout} s:\n{nightly.output()}"
        time.sleep(0.1)
    return value


def _running_retrain(state: StackState, dataset: str, nightly: Nightly, after: int = 0) -> Any:
    """The retrain flow run of `dataset` that a worker is running (the `after`-th of the
    nightly's), with the pid of its process."""

    def running() -> Any:
        runs = _retrain_runs(state, dataset, nightly.began)[after:]
        return next((r for r in runs if r.state.is_running() and r.infrastructure_pid), None)

    return _wait(f"running retrain-{dataset}", running, nightly)


def _pid(flow_run: Any) -> int:
    return int(str(flow_run.infrastructure_pid).rsplit(":", 1)[-1])


def _worker_of(pid: int, workers: list[subprocess.Popen]) -> subprocess.Popen:
    """The worker whose process tree holds `pid` (walking up its parents)."""
    by_pid = {w.pid: w for w in workers}
    while pid > 1 and pid not in by_pid:
        stat = Path(f"/proc/{pid}/stat").read_text()
        pid = int(stat[stat.rindex(")") + 2 :].split()[1])
    assert pid in by_pid, "the flow run runs under none of the GPU workers"
    return by_pid[pid]


def _checkpoint(shop: Checkout, dataset: str, nightly: Nightly) -> Path:
    """The first checkpoint of a training run of `dataset` that this nightly started."""

    def written() -> Path | None:
        for ckpt in (shop.root / ".prodgan" / "train").glob("*/checkpoints/ckpt_*.pt"):
            state = json.loads((ckpt.parent.parent / "state.json").read_text())
            if f"dataset={dataset}" in state.get("overrides", []) and (
                ckpt.stat().st_mtime >= nightly.began
            ):
                return ckpt
        return None

    return _wait(f"checkpoint of {dataset}", written, nightly)


def _model(dataset: str) -> str:
    """The registered model `dataset` trains into (Settings.model_for, default family)."""
    return "prodgan-generator" if dataset == DEFAULT_DATASET else f"prodgan-generator-{dataset}"


def _after_the_retry(
    stack: StackState,  # noqa: F811
    shop: Checkout,
    client: Any,
    dataset: str,
    since: float,
    versions_before: int,
) -> Any:
    """The registry, the audit chain and the DVC remote after the retry: one more version, made
    from the one training run since `since` (resumed, finished) and complete (file map,
    evaluation, description); `audit verify` passes with nothing pending; the remote holds the
    pinned data."""
    trained = _runs(
        client,
        TRAIN_EXPERIMENT,
        f"tags.`{DATASET}` = '{dataset}' and attributes.start_time >= {int(since * 1000)}",
    )
    assert len(trained) == 1, "one training run: the re-run resumed it instead of starting over"
    [run] = trained
    assert run.info.status == "FINISHED" and RESUMED in run.data.tags, run.data.tags
    versions = client.search_model_versions(f"name = '{_model(dataset)}'")
    assert len(versions) == versions_before + 1, [v.version for v in versions]
    [made] = [v for v in versions if (v.tags or {}).get(TRAIN_RUN) == run.info.run_id]
    assert made.description and {EVAL_RUN, MODEL_FILES_SHA} <= set(made.tags), made
    verified = shop.ok("audit", "verify", "--dataset", dataset).stdout
    assert "verified" in verified and "pending" not in verified, verified
    synced = _dvc_status(stack, shop)
    assert "in sync" in synced, synced
    return made


def _dvc_status(stack: StackState, shop: Checkout) -> str:  # noqa: F811
    dvc = Path(sys.executable).with_name("dvc")
    proc = subprocess.run(
        [str(dvc), "status", "-c"],
        cwd=shop.root,
        env={**shop.env, **stack.client_env()},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_a_dead_worker_mid_training_is_crashed_and_rerun_on_the_other_worker(
    stack: StackState,  # noqa: F811
    shop: Checkout,
    gpu_workers: list[subprocess.Popen],
    nightly: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = _mlflow(stack, monkeypatch)
    before = len(client.search_model_versions(f"name = '{_model(DEFAULT_DATASET)}'"))
    night = nightly(DEFAULT_DATASET, KILLABLE)
    _checkpoint(shop, DEFAULT_DATASET, night)
    first = _running_retrain(stack, DEFAULT_DATASET, night)
    worker = _worker_of(_pid(first), gpu_workers)
    os.killpg(worker.pid, signal.SIGKILL)  # the machine dies: its worker ...
    os.killpg(os.getpgid(_pid(first)), signal.SIGKILL)  # ... and the flow run's own session
    worker.wait(timeout=30)

    code, out = night.end()
    assert code == 0, out
    runs = _retrain_runs(stack, DEFAULT_DATASET, night.began)
    assert [r.state.type.value for r in runs] == ["CRASHED", "COMPLETED"], runs
    assert "no heartbeat" in runs[0].state.message, runs[0].state  # the zombie automation
    assert "re-run of crashed flow run" in out, out
    _after_the_retry(stack, shop, client, DEFAULT_DATASET, night.began, before)


def test_killed_training_evaluation_and_upload_are_resumed_and_the_next_nightly_proceeds(
    stack: StackState,  # noqa: F811
    shop: Checkout,
    gpu_workers: list[subprocess.Popen],
    nightly: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dataset = "shoes"
    client = _mlflow(stack, monkeypatch)
    before = len(client.search_model_versions(f"name = '{_model(dataset)}'"))
    began = time.time()

    # (b) the training process, mid-training: the worker lives and reports the run CRASHED
    night = nightly(dataset, KILLABLE)
    _checkpoint(shop, dataset, night)
    os.kill(_pid(_running_retrain(stack, dataset, night)), signal.SIGKILL)

    # (c) its re-run resumes training; killed mid-evaluation, this nightly has no re-run left
    rerun = _running_retrain(stack, dataset, night, after=1)
    [trained] = _runs(
        client,
        TRAIN_EXPERIMENT,
        f"tags.`{DATASET}` = '{dataset}' and attributes.start_time >= {int(began * 1000)}",
    )

    def evaluating() -> list[Any]:
        query = f"tags.`{TRAIN_RUN}` = '{trained.info.run_id}' and attributes.status = 'RUNNING'"
        return _runs(client, EVAL_EXPERIMENT, query)

    _wait("evaluation run", evaluating, night)
    os.kill(_pid(rerun), signal.SIGKILL)
    code, out = night.end()
    assert code != 0 and "retrain failed for 1 of 1 datasets" in out, out
    assert "ended CRASHED" in out and "re-run of crashed flow run" in out, out
    runs = _retrain_runs(stack, dataset, night.began)
    assert [r.state.type.value for r in runs] == ["CRASHED", "CRASHED"], runs
    # the living worker said so itself, at once: no helper of the killed process held it up
    assert all("no heartbeat" not in r.state.message for r in runs), runs
    assert len(client.search_model_versions(f"name = '{_model(dataset)}'")) == before
    assert "verified" in shop.ok("audit", "verify", "--dataset", dataset).stdout

    # (d) the next nightly reuses the finished training run; killed while the version's model
    # files are uploaded (the logged model exists, not yet READY or not yet registered)
    night = nightly(dataset, KILLABLE)
    uploading = _running_retrain(stack, dataset, night)

    def logged() -> list[Any]:
        return client.search_logged_models(
            [trained.info.experiment_id],
            filter_string=f"source_run_id = '{trained.info.run_id}'",
        )

    _wait("logged model", logged, night)
    os.kill(_pid(uploading), signal.SIGKILL)
    code, out = night.end()
    assert code == 0, out
    assert [r.state.type.value for r in _retrain_runs(stack, dataset, night.began)] == [
        "CRASHED",
        "COMPLETED",
    ]
    _after_the_retry(stack, shop, client, dataset, began, before)
