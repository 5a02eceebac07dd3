"""The nightly run fanned out over the work pool: two process workers, three small datasets.

One stack (`prodgan stack up`: PostgreSQL, SeaweedFS, MLflow, Prefect and its worker) and a
second worker (`--limit 1`, one GPU's worth) for the module. The nightly deployment submits one
`retrain` flow run per dataset to the pool's `gpu` queue: with two slots the retrains overlap in
time and each promotes or rejects into its own model; with one slot (`prodgan deploy
--gpu-slots 1`) the next nightly's runs do not overlap, and they make no second model version.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any, Iterator
from uuid import UUID

import pytest

from prodgan.adapters.processes import spawn
from prodgan.adapters.stack_services import worker_args
from prodgan.ops.stack_state import StackState
from tests.conftest import run
from tests.flows.helpers import FAST, NIGHTLY, artifacts, prefect_api
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


@pytest.fixture(scope="module")
def second_worker(stack: StackState, shop: Checkout) -> Iterator[int]:  # noqa: F811
    """A second process worker of the pool that runs one flow at a time (one GPU)."""
    env = {
        **_env(),
        **stack.client_env(),
        "PRODGAN_STACK_ENV": str(stack.env_file),
        "PREFECT_HOME": str(stack.directory.parent / "second-worker"),
    }
    args = [*worker_args(stack.pool), "--limit", "1", "--name", "second-gpu-worker"]
    proc = spawn(args, stack.directory.parent / "second-worker.log", env, cwd=shop.root)
    deadline = time.monotonic() + 120
    while len(_online_workers(stack)) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, "second worker never online"
        time.sleep(0.5)
    yield proc.pid
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=60)


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
    second_worker: int,
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
