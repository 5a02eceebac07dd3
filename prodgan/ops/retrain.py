"""Use case: retrain, verify -> freshness -> validate -> train -> evaluate -> register -> promote.

`retrain` runs each step through a `step` hook: the Prefect flow passes one that makes each
step a task, `prodgan retrain` runs that flow, and the benchmark calls the steps directly.
Nothing here imports Prefect. A retrain is data-aware: `freshness` compares the dataset hash
and the training-config hash with what the current champion was trained on, so a scheduled
retrain with nothing new is a no-op.
"""

from __future__ import annotations

import contextvars
import multiprocessing
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from prodgan.adapters import dvc, registry, tracking
from prodgan.errors import ProdganError
from prodgan.names import (
    CHAMPION,
    CONFIG_SHA,
    DATA_HASH,
    DEFAULT_DATASET,
    GIT_REV,
    TRAIN_RUN,
    ModelRef,
)
from prodgan.ops import announce, outside_training, verification
from prodgan.ops import evaluate as evaluate_ops
from prodgan.ops import promote as promote_ops
from prodgan.ops import train as train_ops
from prodgan.ops import validate as validate_ops
from prodgan.settings import Settings
from prodgan.training.config import load_config

# `step(name, fn, *args, **kwargs)` runs one step; a flow passes one that wraps `fn` in a task.
Step = Callable[..., Any]


def direct(name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a step in-process, no orchestration (the benchmark's baseline)."""
    return fn(*args, **kwargs)


@dataclass(frozen=True)
class Freshness:
    """Whether to retrain, and why: the answer a scheduled retrain logs before doing anything."""

    retrain: bool
    reason: str
    data_hash: str
    config_sha256: str
    champion_version: str | None = None
    trainer_code: str | None = None  # an outside trainer's code identity (None: prodgan's loop)


@dataclass
class RetrainOutcome:
    settings: Settings  # acting on the trained dataset's model (`Settings.for_dataset`)
    dataset: str
    freshness: Freshness
    validation: Any = None
    train: Any = None
    evaluation: Any = None
    version: Any = None
    decision: Any = None


def freshness(
    settings: Settings, config: str, overrides: Sequence[str] = (), force: bool = False
) -> Freshness:
    """Compare the data, config and (for an outside trainer) trainer code about to be trained
    with what the champion was trained on."""
    with tracking.reachable(settings, "checking what the champion was trained on"):
        config_path = settings.config_path(config)
        cfg_values = load_config(config_path, overrides)
        dataset = cfg_values.dataset
        # its own champion (another dataset's is no reference), and its own hash (another one
        # changing is no reason)
        settings = settings.for_dataset(dataset)
        data_hash = dvc.require_clean(settings, dataset)
        cfg = train_ops.config_sha256(config_path, overrides)
        trainer = outside_training.code_of(cfg_values, config_path)
        code = trainer.identity if trainer else None
        champion = registry.champion_version(settings)

        def fresh(retrain: bool, reason: str) -> Freshness:
            version = champion.version if champion else None
            return Freshness(retrain, reason, data_hash, cfg, version, code)

        if force:
            return fresh(True, "forced (--force)")
        rejected = _rejected_before(settings, data_hash, cfg, code)
        if rejected is not None:
            return fresh(
                False,
                f"already rejected as v{rejected}, nothing changed "
                f"(data {data_hash}, config {cfg[:12]}, "
                f"{f'trainer code {code}' if code else 'code'}); change one of them or use --force",
            )
        if champion is None:
            return fresh(True, f"no {CHAMPION} for model {settings.model_name} yet")
        tags = champion.tags or {}
        trained_on = tags.get(DATA_HASH)
        trained_cfg = tracking.run_tag(settings, tags.get(TRAIN_RUN), CONFIG_SHA)
    if trained_on != data_hash:
        return fresh(
            True,
            f"dataset changed: {CHAMPION} v{champion.version} was trained on {trained_on}, "
            f"data is now {data_hash}",
        )
    if trained_cfg != cfg:
        return fresh(
            True,
            f"training config changed since {CHAMPION} v{champion.version} "
            f"({(trained_cfg or 'unrecorded')[:12]} -> {cfg[:12]})",
        )
    if code is not None and tags.get(GIT_REV) != code:
        return fresh(
            True,
            f"trainer code changed since {CHAMPION} v{champion.version} "
            f"({tags.get(GIT_REV) or 'unrecorded'} -> {code})",
        )
    return fresh(
        False,
        f"nothing changed: {CHAMPION} v{champion.version} was trained on data {data_hash} "
        f"with config {cfg[:12]}{f' and trainer code {code}' if code else ''}; "
        "use --force to retrain anyway",
    )


def _rejected_before(
    settings: Settings, data_hash: str, cfg: str, trainer_code: str | None
) -> str | None:
    """A version trained on this data, config and code revision (prodgan's, or an outside
    trainer's) that the gates rejected (and that is not champion)."""
    from prodgan.adapters.audit import audit_records

    git_rev = trainer_code or dvc.git_revision(settings.root)[0]
    client, name = registry.client_for(settings), settings.model_name
    same = client.search_model_versions(
        f"name = '{name}' and tags.`{DATA_HASH}` = '{data_hash}' and tags.`{CONFIG_SHA}` = '{cfg}' "
        f"and tags.`{GIT_REV}` = '{git_rev}'"
    )
    champion = registry.production_aliases(client, name).get(CHAMPION)
    candidates = [
        str(mv.version)
        for mv in sorted(same, key=lambda v: int(v.version))
        if str(mv.version) != champion
    ]
    if not candidates:
        return None
    rejected = {
        str(r.get("version")) for r in audit_records(settings, name) if r.get("action") == "reject"
    }  # the chain, read once
    return next((version for version in candidates if version in rejected), None)


def schedule(
    settings: Settings, recipes: dict[str, str | None] | None
) -> tuple[dict[str, str], list[str]]:
    """The config each scheduled dataset retrains with (`recipe`; no recipes: the default
    dataset's), and the datasets data.dvc pins that nobody scheduled;
    checked before anything runs."""
    recipes = recipes or {DEFAULT_DATASET: None}
    tracked = dvc.datasets(settings)
    unknown = sorted(set(recipes) - set(tracked))
    if unknown:
        raise ProdganError(
            f"recipes name datasets data.dvc does not pin: {', '.join(unknown)} "
            f"(it pins: {', '.join(tracked) or 'none'}); "
            "import them and run `prodgan data add`, or drop them from the recipes"
        )
    return {dataset: recipe(dataset, config) for dataset, config in recipes.items()}, [
        d for d in tracked if d not in recipes
    ]


def recipe(dataset: str | None, config: str | None) -> str:
    """`config`, else the machine's recipe (`ops.train.default_config`),
    which is made for the default dataset only."""
    if config:
        return config
    if dataset not in (None, DEFAULT_DATASET):
        raise ProdganError(
            f"dataset {dataset!r} has no recipe: only {DEFAULT_DATASET} has a default; "
            "name its config, e.g. --config configs/products64.yaml "
            f"(nightly: recipes {{{dataset}: configs/products64.yaml}})"
        )
    return train_ops.default_config()


def _alongside(step: Step, name: str, fn: Callable[..., Any], *args: Any) -> Future:
    """Run a step in its own process while training runs, where a core is idle: on a CPU only.

    The CPU recipes train on one thread of two cores. A second *thread* would fight the training
    loop for the GIL (measured: 593 -> 106 images/s), so the work gets its own interpreter. With
    CUDA it runs first instead: training owns the GPU. The step keeps the caller's context (a
    Prefect flow run sees it as one of its tasks).
    """
    import torch

    future: Future = Future()
    if torch.cuda.is_available():
        future.set_result(step(name, fn, *args))
        return future
    pool = ThreadPoolExecutor(1, thread_name_prefix=name)
    future = pool.submit(contextvars.copy_context().run, step, name, _in_own_process, fn, *args)
    pool.shutdown(wait=False)
    return future


def _in_own_process(fn: Callable[..., Any], *args: Any) -> Any:
    with ProcessPoolExecutor(
        1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_helper_process,
        initargs=(os.getpid(),),
    ) as pool:
        return pool.submit(fn, *args).result()


def _helper_process(parent: int) -> None:
    """Set up the process a step runs in beside training: on the cores training leaves idle (the
    CPU recipes train on one thread; torch would otherwise spin a thread on every core, the
    training one too, and a time-budgeted recipe would get fewer steps), ending with its parent."""
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) - 1))
    _exit_with_parent(parent)


def _exit_with_parent(parent: int) -> None:
    """Make this helper process end when the process that started it is gone (kill -9 of a flow
    run): an orphan would keep the flow run's output pipe open, and its worker, which waits for
    that pipe, would neither report the run crashed nor take another one."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def retrain(
    settings: Settings,
    config: str | None,
    overrides: Sequence[str] = (),
    dataset: str | None = None,
    force: bool = False,
    step: Step = direct,
    tags: dict[str, str] | None = None,
    notify: Callable[[announce.Event], None] = lambda _event: None,
    nproc: int = 1,
) -> RetrainOutcome:
    """The whole sequence on `dataset` (default: the config's); raises GateFailed when the registry
    fails verification or validation fails (nothing is trained then).

    `config=None` picks the recipe for this machine (`ops.train.default_config`): the GPU recipe
    where CUDA is present, the CPU one elsewhere, the same rule everywhere (CLI, demo, nightly
    worker). `notify` receives the events an orchestrator's automations react to (`ops.announce`).
    `nproc > 1` trains with that many DDP processes and evaluates with as many (the sharded
    evaluation: the same metrics as one process, in a share of the time).
    """
    config = recipe(dataset, config)
    # one dataset, validated and trained
    overrides = [*overrides, f"dataset={dataset}"] if dataset else list(overrides)
    dataset = load_config(settings.config_path(config), overrides).dataset
    # each dataset is trained into, judged against and promoted in its own model
    settings = settings.for_dataset(dataset)
    # never act unattended on a tampered registry
    step("verify", verification.require_verified, settings, purpose="retrain")
    fresh = step("freshness", freshness, settings, config, overrides, force)
    outcome = RetrainOutcome(settings, dataset, fresh)
    if not fresh.retrain:
        return outcome
    outcome.validation = step("validate", validate_ops.validate, settings, dataset)
    if not outcome.validation.success:
        notify(announce.validation_event(settings, outcome.validation))
    validate_ops.require_passed(outcome.validation)
    # the references of prodgan's own architecture; an outside trainer's come with its import
    references = (
        None
        if fresh.trainer_code
        else _alongside(
            step, "prepare-evaluation", evaluate_ops.warm_references, settings, config, overrides
        )
    )
    outcome.train = step(
        "train",
        train_ops.train,
        settings,
        config,
        overrides,
        reuse=not force,
        tags=tags,
        nproc=nproc,
    )
    if references is not None:
        references.result()
    outcome.evaluation = step(
        "evaluate",
        evaluate_ops.evaluate,
        settings,
        ModelRef(run_id=outcome.train.run_id),
        tags=tags,
        nproc=nproc,
    )
    outcome.version = step(
        "register", promote_ops.register, settings, outcome.train.run_id, outcome.evaluation.run_id
    )
    outcome.decision = step("promote", promote_ops.promote, settings, outcome.version.version)
    event = announce.decision_event(outcome.decision)
    if event is not None:
        notify(event)
    return outcome
