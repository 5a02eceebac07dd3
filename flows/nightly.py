"""`retrain-datasets`: the nightly retrain of every scheduled dataset, each in its own model,
when it changed: fanned out over the work pool where the retrain deployment is on the API."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows import steps
from flows.retrain import retrain
from prodgan.errors import ProdganError
from prodgan.ops import fan_out, report
from prodgan.ops import retrain as ops


@flow(name="retrain-datasets", log_prints=True)
def retrain_datasets(
    recipes: dict[str, str | None] | None = None,
    force: bool = False,
    overrides: list[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Run `retrain` for each dataset in `recipes` (dataset -> config; `None`: the machine's
    default recipe).

    Each retrain compares its own dataset hash and config with its own model's champion, so only
    what changed trains. With the `retrain` deployment on the API each dataset is its own flow run
    on the work pool (`ops.fan_out`), all at once up to the GPU queue's limit; otherwise they run
    here one after another. One dataset failing (bad data, a tampered registry, a dead worker)
    does not stop the others; this run fails at the end, naming it.
    """
    settings = steps.settings()
    plan, unscheduled = ops.schedule(settings, recipes)
    if unscheduled:
        get_run_logger().warning(
            "datasets pinned by data.dvc but not scheduled (no recipe): %s", ", ".join(unscheduled)
        )
    if fan_out.deployed():
        results = fan_out.retrain_each(
            settings, plan, force, overrides, str(flow_run.get_id()), get_run_logger().info
        )
    else:
        results = {
            dataset: _inline(settings, dataset, config, force, overrides)
            for dataset, config in plan.items()
        }
    steps.publish(
        "nightly-retrain",
        report.datasets_markdown(results, unscheduled),
        "each scheduled dataset's retrain decision",
    )
    failed = [dataset for dataset, r in results.items() if r["decision"] == "failed"]
    if failed:
        raise ProdganError(
            f"retrain failed for {len(failed)} of {len(results)} datasets: "
            + "; ".join(f"{d}: {results[d]['reason']}" for d in failed)
        )
    return results


def _inline(
    settings: Any, dataset: str, config: str, force: bool, overrides: list[str] | None
) -> dict[str, Any]:
    """One dataset's retrain as a subflow of this run, in this process."""
    state = retrain.with_options(flow_run_name=f"retrain-{dataset}")(
        config=config, dataset=dataset, force=force, overrides=overrides, return_state=True
    )
    outcome = state.result(raise_on_failure=False)
    if state.is_completed():
        return outcome
    return {
        "model": settings.model_for(dataset),
        "decision": "failed",
        "version": None,
        "reason": str(outcome),
    }
