"""Use case: evaluate a generator under the fingerprinted protocol,
one MLflow run in `prodgan-eval`.

The run holds the protocol as params (plus its fingerprint as tag `prodgan.protocol`), the
metrics, a sample grid, per-category results, and tags linking it to the training run and the
model version. `evaluate` is the one way to evaluate a model reference: the CLI, the flows and
the promotion gates (re-evaluating a champion under the challenger's protocol) all use it. The
category judge behind cond_acc (a linear probe on Inception features) lives under
`<home>/evaluator/` and is fitted (and logged) on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from prodgan.adapters import descriptions, dvc, registry, tracking
from prodgan.console import sides_progress
from prodgan.errors import ProdganError
from prodgan.fsutil import write_json_atomic
from prodgan.names import (
    DATA_HASH,
    EVAL_EXPERIMENT,
    EVALUATOR_RUN,
    EVALUATOR_SHA,
    KIND,
    NOISE_REFERENCE,
    PROTOCOL,
    REAL_CACHED,
    SAMPLES_KIND,
    SAMPLES_SHA,
    TRAIN_RUN,
    WEIGHTS,
    WORLD_SIZE,
    ModelRef,
    metric_name,
    model_ref,
)
from prodgan.ops.torchrun import Launch
from prodgan.settings import Settings

if TYPE_CHECKING:
    from prodgan.metrics.bundle_job import BundleJob

# Default without CUDA (fid_500): the calibrated gates separate noise from a trained model at this
# count, and each side costs ~40 s through InceptionV3 on 2 cores (~12.8 images/s); fid_1k
# doubles that.
CPU_SAMPLES = 500
GRID_IMAGES = 64
# Photos of each split the category judge is fitted and measured on, at most (see train_evaluator).
JUDGE_IMAGES = 2000
_PROTOCOL_PARAMS = ("samples", "seed", "real_samples", "split")
Say = Callable[[str], None]


@dataclass(frozen=True)
class EvaluationRun:
    run_id: str
    result: Any  # prodgan.metrics.EvalResult
    evaluator_run_id: str | None = None
    model: dict[str, str] | None = (
        None  # name/version/run id of the model evaluated, when it was a reference
    )
    samples_sha256: str | None = None  # a samples-only evaluation: the pixels it measured

    @property
    def metrics(self) -> dict[str, float]:
        return self.result.metrics

    @property
    def protocol(self) -> str:
        return self.result.protocol.fingerprint


def default_samples(settings: Settings) -> int:
    """`PRODGAN_EVAL_SAMPLES`, else 2,000 with CUDA and 500 on a CPU
    (the protocol records which)."""
    import torch

    from prodgan.metrics.defaults import DEFAULTS

    if settings.eval_samples:
        try:
            return int(settings.eval_samples)
        except ValueError:
            raise ProdganError(
                f"PRODGAN_EVAL_SAMPLES={settings.eval_samples!r} is not a whole number; "
                "set it like PRODGAN_EVAL_SAMPLES=2000"
            ) from None
    return DEFAULTS["samples"] if torch.cuda.is_available() else CPU_SAMPLES


def _splits(settings: Settings, dataset: str, split: str) -> tuple[Any, Any]:
    from prodgan.adapters import dvc
    from prodgan.data.tensors import load_split

    data_hash = dvc.require_clean(settings, dataset)
    root = settings.data_dir / dataset
    return (
        load_split(settings.tensor_cache_dir, root, split, data_hash),
        load_split(settings.tensor_cache_dir, root, "train", data_hash),
    )


def train_evaluator(
    settings: Settings,
    dataset: str = "fashion-mnist",
    *,
    limit: int | None = JUDGE_IMAGES,
    progress: Callable[[str, int, int], None] | None = None,
) -> tuple[Any, float, str]:
    """Fit the category judge (a linear probe on Inception features) on the train split, measure
    it on the test split, save it under <home>/evaluator/<dataset>/ and log a run; (probe,
    test accuracy, run id).

    `limit` caps the photos of each split (the protocol's seed-0 subset): a few thousand photos
    already pin a linear probe down, and every one costs a pass through InceptionV3.
    """
    from prodgan.metrics.inception_weights import resolve_inception_weights
    from prodgan.metrics.judge import capped, fit_judge
    from prodgan.models.probe import load_probe, save_probe

    test, train = (capped(s, limit) for s in _splits(settings, dataset, "test"))
    weights = resolve_inception_weights(settings.cache_dir)
    fitted = fit_judge(train, test, weights, settings.cache_dir, progress=progress)
    extra = {
        "dataset": dataset,
        "data_hash": train.data_hash,
        "train_images": fitted.train_images,
        "test_images": fitted.test_images,
        "test_accuracy": fitted.test_accuracy,
        "chance": 1 / len(train.categories),
    }
    save_probe(settings.evaluator_dir(dataset), fitted.probe, extra)
    probe, record = load_probe(settings.evaluator_dir(dataset))
    with tracking.reachable(settings, "logging the evaluator"):
        logger = tracking.RunLogger.start(
            settings,
            EVAL_EXPERIMENT,
            "evaluator",
            tags={
                KIND: "evaluator",
                DATA_HASH: train.data_hash,
                EVALUATOR_SHA: record["weights_sha256"],
            },
        )
        logger.log_params(
            {
                "dataset": dataset,
                "judge": record["kind"],
                "inception_sha256": probe.spec.inception_sha256,
                "limit": limit,
                "train_images": fitted.train_images,
                "test_images": fitted.test_images,
            }
        )
        logger.log_metrics(
            {"test_accuracy": fitted.test_accuracy, "chance": extra["chance"]}, step=0
        )
        logger.log_artifacts(settings.evaluator_dir(dataset), "evaluator")
        logger.finish()
    return probe, fitted.test_accuracy, logger.run_id


def _evaluator(
    settings: Settings, dataset: str, say: Say, show_progress: bool = True
) -> tuple[Any, str | None]:
    from contextlib import nullcontext

    from prodgan.models.probe import RECORD_FILE, load_probe

    if (settings.evaluator_dir(dataset) / RECORD_FILE).is_file():
        return load_probe(settings.evaluator_dir(dataset))[0], None
    say(
        "no category judge yet: fitting one on the train split's Inception features "
        "(once; `prodgan evaluator train` to redo it)"
    )
    with sides_progress("fitting the category judge:") if show_progress else nullcontext() as bar:
        model, acc, run_id = train_evaluator(settings, dataset, progress=bar)
    say(f"category judge test accuracy {acc:.3f} ({len(model.categories)} categories)")
    return model, run_id


def warm_references(
    settings: Settings, config: str | Path, overrides: Sequence[str] = (), *, say: Say = print
) -> str:
    """Compute and cache what evaluating `config`'s generator needs before its weights exist;
    the protocol fingerprint.

    The evaluator classifier, the real side, the floor and the noise reference depend on the data,
    the protocol and the architecture only. The retrain sequence runs this beside a one-thread CPU
    recipe, on the core training leaves idle, so the evaluation after training has only the
    generated side left. It is the noise reference's own evaluation, cached under its noise key.
    """
    from prodgan.metrics import evaluate_generator
    from prodgan.metrics.calibration import noise_key, untrained_like
    from prodgan.training.config import load_config
    from prodgan.training.plan import make_spec

    cfg = load_config(settings.config_path(config), overrides)
    real, train = _splits(settings, cfg.dataset, "test")
    spec = make_spec(cfg, train)
    evaluator, _ = _evaluator(settings, cfg.dataset, say, show_progress=False)
    result = evaluate_generator(
        untrained_like(spec),
        spec,
        real,
        samples=default_samples(settings),
        train=train,
        evaluator=evaluator,
        metrics=(),
        cache_dir=settings.cache_dir,
        generator_key=noise_key(spec),
    )
    floor, noise = (
        result.metrics[metric_name(k, result.protocol.samples)] for k in ("fid_floor", "fid_noise")
    )
    say(
        f"evaluation references ready under protocol {result.protocol.fingerprint[:12]}: "
        f"fid floor {floor:.1f}, noise {noise:.1f}"
    )
    return result.protocol.fingerprint


def _like(settings: Settings, run_id: str) -> dict[str, Any]:
    """The protocol parameters of an earlier evaluation run
    (to evaluate another model the same way)."""
    params = tracking.get_run(tracking.setup_mlflow(settings), run_id, "evaluation run").data.params
    out: dict[str, Any] = {k: params[k] for k in _PROTOCOL_PARAMS if k in params}
    out = {k: (v if k == "split" else int(v)) for k, v in out.items()}
    out["use_evaluator"] = bool(params.get("evaluator_sha256"))
    return out


def evaluate_bundle(
    settings: Settings,
    bundle_dir: Path,
    *,
    train_run_id: str | None = None,
    like_run_id: str | None = None,
    samples: int | None = None,
    seed: int | None = None,
    split: str = "test",
    kid_subset_size: int | None = None,
    model_info: dict[str, str] | None = None,
    use_evaluator: bool = True,
    tags: dict[str, str] | None = None,
    batch_size: int | None = None,
    launch: Launch = Launch(),
    say: Say = lambda _msg: None,
) -> EvaluationRun | None:
    """Evaluate the generator bundle at `bundle_dir` and log one run in `prodgan-eval`.

    `like_run_id` copies the sample count, seed, split and evaluator use of an earlier
    evaluation (the promotion gates re-evaluate a champion under the challenger's protocol).
    `batch_size` images go through each forward pass (memory; each rank takes whole batches).
    A spread `launch` (more than one process, or hosts each running the same command with the
    same rendezvous) shares the samples out over torchrun's ranks (`python -m prodgan.metrics`):
    the same metrics as one process. Only the host where rank 0 ran logs the run; the others
    return None.
    """
    from prodgan.metrics.bundle_job import BundleJob
    from prodgan.metrics.calibration import bundle_noise_reference
    from prodgan.metrics.defaults import DEFAULTS
    from prodgan.metrics.evaluate import check_inputs
    from prodgan.models import load_bundle, read_bundle_record

    record = read_bundle_record(bundle_dir)
    generator, spec = load_bundle(bundle_dir)
    noise = bundle_noise_reference(bundle_dir)
    like = _like(settings, like_run_id) if like_run_id else {}
    dataset = (record.get("extra") or {}).get("dataset", "fashion-mnist")
    real, train = _splits(settings, dataset, like.get("split", split))
    samples = like.get("samples") or samples or default_samples(settings)
    check_inputs(
        spec,
        real,
        samples=samples,
        real_samples=like.get("real_samples"),
        kid_subset_size=kid_subset_size,
        train=train,
    )
    evaluator, evaluator_run = (
        _evaluator(settings, dataset, say)
        if like.get("use_evaluator", use_evaluator)
        else (None, None)
    )
    subject = (
        f"{model_info['model_name']} v{model_info['model_version']}"
        if (model_info or {}).get("model_version")
        else f"training run {train_run_id[:8]}"
        if train_run_id
        else f"bundle {bundle_dir.name}"
    )
    options = {
        "samples": samples,
        "seed": like.get("seed", DEFAULTS["seed"] if seed is None else seed),
        "real_samples": like.get("real_samples"),
        "kid_subset_size": kid_subset_size,
        "batch_size": batch_size or DEFAULTS["batch_size"],
    }
    job = BundleJob(
        bundle=bundle_dir,
        dataset_root=settings.data_dir / dataset,
        data_hash=real.data_hash,
        split=real.split,
        tensor_cache=settings.tensor_cache_dir,
        cache_dir=settings.cache_dir,
        options=options,
        evaluator=settings.evaluator_dir(dataset) if evaluator is not None else None,
    )
    if launch.spread:
        result = _evaluate_processes(settings, launch, job)
        if result is None:
            say("this host's ranks are done; the host that ran rank 0 logs the evaluation")
            return None
    else:
        with sides_progress(f"evaluating {subject}:") as progress:
            result = job.evaluate(
                generator,
                spec,
                real,
                train=train,
                evaluator=evaluator,
                noise=noise,
                progress=progress,
            )

    run_tags = {
        WEIGHTS: record["weights_sha256"],
        KIND: "generator",
        NOISE_REFERENCE: noise.name,
        WORLD_SIZE: str(launch.nproc * launch.nnodes),  # ranks that shared the samples
        **(tags or {}),
    }
    if train_run_id:
        run_tags[TRAIN_RUN] = train_run_id
    run_tags.update({f"prodgan.{k}": v for k, v in (model_info or {}).items()})
    run_id = _log_evaluation(
        settings,
        result,
        subject,
        dataset,
        run_tags,
        {"bundle": str(bundle_dir)},
        evaluator_run,
        grid_rows=spec.num_classes or 8,
    )
    return EvaluationRun(run_id, result, evaluator_run, model_info)


def evaluate_samples(
    settings: Settings,
    images: Path,
    dataset: str,
    *,
    seed: int | None = None,
    split: str = "test",
    kid_subset_size: int | None = None,
    use_evaluator: bool = True,
    tags: dict[str, str] | None = None,
    say: Say = lambda _msg: None,
) -> EvaluationRun:
    """Evaluate samples handed in (a folder of images or an `.npz`) as one run in `prodgan-eval`.

    For a generator prodgan cannot run (a diffusion pipeline): the same protocol, metrics, floor
    and report as a model's evaluation, calibrated against the fixed untrained reference at the
    samples' size and channels. The run names the samples' pixel sha256 and no model, so no
    version can be promoted on it (`registry.attach_evaluation` and the promoter refuse it).
    """
    from prodgan.data.layout import read_meta
    from prodgan.data.samples import read_samples
    from prodgan.metrics import evaluate_samples as score
    from prodgan.metrics.calibration import samples_reference
    from prodgan.metrics.defaults import DEFAULTS

    meta = read_meta(settings.data_dir / dataset)
    samples = read_samples(
        images,
        channels=meta.channels,
        size=meta.size,
        min_count=DEFAULTS["min_samples"],
        max_count=DEFAULTS["max_samples"],
    )
    real, train = _splits(settings, dataset, split)
    noise = samples_reference(meta.channels, meta.size)
    evaluator, evaluator_run = _evaluator(settings, dataset, say) if use_evaluator else (None, None)
    subject = f"samples {samples.sha256[:12]}"
    with sides_progress(f"evaluating {subject}:") as progress:
        result = score(
            samples.images,
            real,
            noise=noise,
            seed=DEFAULTS["seed"] if seed is None else seed,
            train=train,
            evaluator=evaluator,
            kid_subset_size=kid_subset_size,
            cache_dir=settings.cache_dir,
            samples_key=f"samples-{samples.sha256}",
            progress=progress,
        )
    run_tags = {
        SAMPLES_SHA: samples.sha256,
        KIND: SAMPLES_KIND,
        NOISE_REFERENCE: noise.name,
        **(tags or {}),
    }
    params = {"samples_source": samples.source, "samples_sha256": samples.sha256}
    run_id = _log_evaluation(settings, result, subject, dataset, run_tags, params, evaluator_run)
    return EvaluationRun(run_id, result, evaluator_run, samples_sha256=samples.sha256)


def _log_evaluation(
    settings: Settings,
    result: Any,
    subject: str,
    dataset: str,
    tags: dict[str, str],
    params: dict[str, str],
    evaluator_run: str | None,
    grid_rows: int = 8,
) -> str:
    """One run in `prodgan-eval` holding an evaluation: protocol, metrics, grid, report; its id."""
    from prodgan.imaging import grid

    run_tags = {
        PROTOCOL: result.protocol.fingerprint,
        DATA_HASH: result.protocol.data_hash,
        REAL_CACHED: str(result.real_cached).lower(),
        **tags,
    }
    if evaluator_run:
        run_tags[EVALUATOR_RUN] = evaluator_run
    with tracking.reachable(settings, "logging an evaluation"):
        logger = tracking.RunLogger.start(
            settings, EVAL_EXPERIMENT, f"eval-{result.protocol.suffix}", tags=run_tags
        )
        try:
            logger.log_params(
                {
                    **result.protocol.to_dict(),
                    "protocol_fingerprint": result.protocol.fingerprint,
                    "noise_reference": run_tags[NOISE_REFERENCE],
                    **params,
                }
            )
            logger.log_dataset(
                tracking.dataset_version(
                    f"{dataset}:{result.protocol.split}",
                    result.protocol.data_hash,
                    dvc.remote_location(settings, result.protocol.data_hash),
                ),
                "evaluation",
            )
            logger.describe(
                descriptions.evaluation(
                    subject,
                    dataset,
                    result.protocol.split,
                    result.protocol.data_hash,
                    result.protocol.fingerprint,
                    result.metrics,
                )
            )
            logger.log_metrics(
                {**result.metrics, **{f"seconds_{k}": v for k, v in result.timings.items()}}, step=0
            )
            logger.log_image(grid(result.images[:GRID_IMAGES], nrow=grid_rows), "samples.png")
            logger.log_dict(
                {
                    "protocol": result.protocol.to_dict(),
                    "fingerprint": result.protocol.fingerprint,
                    "noise_reference": run_tags[NOISE_REFERENCE],
                    "metrics": result.metrics,
                    "per_category": result.per_category,
                    "timings": result.timings,
                    **{k: v for k, v in tags.items() if k in (SAMPLES_SHA, WEIGHTS)},
                },
                "evaluation.json",
            )
            logger.finish()
        except BaseException:
            logger.finish("FAILED")
            raise
    return logger.run_id


def _evaluate_processes(settings: Settings, launch: Launch, job: BundleJob) -> Any:
    """Run `job` under torchrun (`python -m prodgan.metrics`); rank 0's EvalResult, or None when
    rank 0 ran on another host."""
    import tempfile

    from prodgan.metrics.result_file import load_result

    settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.tmp_dir, prefix="eval-job-") as tmp:
        job_file = Path(tmp) / "job.json"
        write_json_atomic(job_file, job.writing_to(Path(tmp) / "result").to_json())
        code = launch.run("prodgan.metrics", [str(job_file)])
        if code:
            raise ProdganError(
                f"the sharded evaluation ({launch.nproc} processes on each of {launch.nnodes} "
                f"hosts) exited with {code} (its error is printed above); nothing was logged"
            )
        return load_result(Path(tmp) / "result")


def evaluate(
    settings: Settings,
    model: str | ModelRef | None = None,
    bundle: Path | None = None,
    *,
    tags: dict[str, str] | None = None,
    nproc: int = 1,
    nnodes: int = 1,
    rdzv_endpoint: str | None = None,
    **options: Any,
) -> EvaluationRun | None:
    """Evaluate a model reference (any form of `names.REF_FORMS`) or a local bundle.

    A registered version gets the evaluation attached under its protocol. `options` go to
    `evaluate_bundle` (samples, seed, split, like_run_id, ...). `nproc` processes on each of
    `nnodes` hosts share the work (torchrun; `rdzv_endpoint` HOST:PORT where the hosts meet);
    None on a host whose ranks did not include rank 0 (it logged nothing).
    """
    options["launch"] = Launch(nproc, nnodes, rdzv_endpoint)
    ref = (
        model
        if isinstance(model, ModelRef)
        else model_ref(model, bundle, settings.model_name, default_alias=None)
    )
    if ref.bundle is not None:
        from prodgan.models.bundle import SPEC_FILE

        if not (ref.bundle / SPEC_FILE).is_file():
            raise ProdganError(
                f"{ref.bundle} is not a generator bundle ({SPEC_FILE} missing); "
                "point --bundle at a folder written by `prodgan train`"
            )
        return evaluate_bundle(settings, ref.bundle, tags=tags, **options)
    from prodgan.adapters.production_state import resolve_model

    with tracking.reachable(settings, f"evaluating {ref.uri}"):
        resolved = resolve_model(settings, ref)
        info = {k: str(v) for k, v in resolved.info().items() if k != "weights_sha256"}
        run = evaluate_bundle(
            settings,
            resolved.bundle_dir,
            train_run_id=resolved.tags.get(TRAIN_RUN) or resolved.run_id,
            model_info=info,
            tags=tags,
            **options,
        )
        if run is not None and resolved.version:
            registry.attach_evaluation(
                settings,
                resolved.name,
                resolved.version,
                registry.read_eval_run(registry.client_for(settings), run.run_id),
                primary=False,
            )
    return run


def summary(run: EvaluationRun) -> dict[str, Any]:
    """An evaluation as plain data (a flow's return value)."""
    return {
        "eval_run_id": run.run_id,
        "model": run.model or {},
        "protocol": run.protocol,
        "metrics": run.metrics,
        "per_category": run.result.per_category,
        "real_cached": run.result.real_cached,
    }
