"""MLflow adapter for evaluations: run the metrics core on a generator bundle and record it.

One evaluation = one run in experiment `prodgan-eval`: the protocol as params (plus its
fingerprint as tag `prodgan.protocol`), the metrics, a sample grid, per-category results, and
tags linking it to the training run / model version. The evaluator classifier lives under
`<home>/evaluator/` and is trained (and logged) on first use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from prodgan.errors import ProdganError
from prodgan.settings import Settings

PROTOCOL_TAG, TRAIN_RUN_TAG, WEIGHTS_TAG = "prodgan.protocol", "prodgan.train_run_id", "prodgan.weights_sha256"
KIND_TAG = "prodgan.kind"
ENV_SAMPLES = "PRODGAN_EVAL_SAMPLES"
CPU_SAMPLES = 50  # default on a machine without CUDA: ~12 images/s through InceptionV3
GRID_IMAGES = 64
_PROTOCOL_PARAMS = ("samples", "seed", "real_samples", "split")


@dataclass(frozen=True)
class EvaluationRun:
    run_id: str
    result: Any  # prodgan.metrics.EvalResult
    evaluator_run_id: str | None = None

    @property
    def metrics(self) -> dict[str, float]:
        return self.result.metrics

    @property
    def protocol(self) -> str:
        return self.result.protocol.fingerprint


def default_samples() -> int:
    """`PRODGAN_EVAL_SAMPLES`, else 2,000 with CUDA and 50 on a CPU (the protocol records which)."""
    import torch

    from prodgan.metrics.defaults import DEFAULTS

    env = os.environ.get(ENV_SAMPLES)
    if env:
        try:
            return int(env)
        except ValueError:
            raise ProdganError(f"{ENV_SAMPLES}={env!r} is not a whole number; set it like {ENV_SAMPLES}=2000") from None
    return DEFAULTS["samples"] if torch.cuda.is_available() else CPU_SAMPLES


def evaluator_dir(settings: Settings) -> Path:
    return settings.home / "evaluator"


def _splits(settings: Settings, dataset: str, split: str) -> tuple[Any, Any]:
    from prodgan.data import dvc
    from prodgan.data.tensors import load_split

    data_hash = dvc.require_clean(settings)
    root = settings.data_dir / dataset
    return (load_split(settings.tensor_cache_dir, root, split, data_hash),
            load_split(settings.tensor_cache_dir, root, "train", data_hash))


def train_and_log_evaluator(settings: Settings, dataset: str = "fashion-mnist", *, epochs: int = 3, limit: int | None = None,
                            progress: Callable[[int, int], None] | None = None) -> tuple[Any, float, str]:
    """Train the evaluator on the train split, save it under <home>/evaluator/, log a run; (module, accuracy, run id)."""
    from prodgan.models.evaluator import load_evaluator, save_evaluator, train_evaluator
    from prodgan.tracking import EVAL_EXPERIMENT, RunLogger

    test, train = _splits(settings, dataset, "test")
    model, acc = train_evaluator(train, test, epochs=epochs, limit=limit, progress=progress)
    extra = {"dataset": dataset, "data_hash": train.data_hash, "epochs": epochs, "limit": limit, "test_accuracy": acc}
    save_evaluator(evaluator_dir(settings), model, extra)
    model, record = load_evaluator(evaluator_dir(settings))
    logger = RunLogger.start(settings, EVAL_EXPERIMENT, "evaluator", tags={KIND_TAG: "evaluator", "prodgan.data_hash": train.data_hash,
                                                                           "prodgan.evaluator_sha256": record["weights_sha256"]})
    logger.log_params({"dataset": dataset, "epochs": epochs, "limit": limit, "train_images": len(train) if limit is None else limit})
    logger.log_metrics({"test_accuracy": acc}, step=0)
    logger.log_artifacts(evaluator_dir(settings), "evaluator")
    logger.finish()
    return model, acc, logger.run_id


def _evaluator(settings: Settings, dataset: str, say: Callable[[str], None]) -> tuple[Any, str | None]:
    from prodgan.models.evaluator import RECORD_FILE, load_evaluator

    if (evaluator_dir(settings) / RECORD_FILE).is_file():
        return load_evaluator(evaluator_dir(settings))[0], None
    say("no evaluator classifier yet: training one on the train split (once; `prodgan evaluator train` to redo it)")
    from prodgan.console import progress_bar

    with progress_bar("training evaluator") as progress:
        model, acc, run_id = train_and_log_evaluator(settings, dataset, progress=progress)
    say(f"evaluator test accuracy {acc:.3f}")
    return model, run_id


def _like(settings: Settings, run_id: str) -> dict[str, Any]:
    """The protocol parameters of an earlier evaluation run (to re-evaluate another model the same way)."""
    from prodgan.tracking import setup_mlflow

    params = setup_mlflow(settings).get_run(run_id).data.params
    out = {k: params[k] for k in _PROTOCOL_PARAMS if k in params}
    return {k: (v if k == "split" else int(v)) for k, v in out.items()}


def evaluate_bundle(settings: Settings, bundle_dir: Path, *, train_run_id: str | None = None, like_run_id: str | None = None,
                    samples: int | None = None, seed: int | None = None, split: str = "test",
                    kid_subset_size: int | None = None, model_info: dict[str, str] | None = None,
                    use_evaluator: bool = True, say: Callable[[str], None] = lambda _msg: None) -> EvaluationRun:
    """Evaluate the generator bundle at `bundle_dir` and log one run in `prodgan-eval`.

    `like_run_id` copies the sample count, seed and split of an earlier evaluation (the
    promotion gates re-evaluate a champion under the challenger's protocol this way).
    """
    from prodgan.imaging import grid
    from prodgan.metrics import evaluate_generator
    from prodgan.metrics.evaluate import check_inputs
    from prodgan.metrics.defaults import DEFAULTS
    from prodgan.models import load_bundle, read_bundle_record
    from prodgan.tracking import EVAL_EXPERIMENT, RunLogger

    record = read_bundle_record(bundle_dir)
    generator, spec = load_bundle(bundle_dir)
    like = _like(settings, like_run_id) if like_run_id else {}
    dataset = (record.get("extra") or {}).get("dataset", "fashion-mnist")
    real, train = _splits(settings, dataset, like.get("split", split))
    samples = like.get("samples") or samples or default_samples()
    check_inputs(spec, real, samples=samples, real_samples=like.get("real_samples"), kid_subset_size=kid_subset_size, train=train)
    evaluator, evaluator_run = _evaluator(settings, dataset, say) if use_evaluator else (None, None)
    result = evaluate_generator(generator, spec, real, samples=samples,
                                seed=like.get("seed", DEFAULTS["seed"] if seed is None else seed), train=train,
                                evaluator=evaluator, real_samples=like.get("real_samples"), kid_subset_size=kid_subset_size,
                                cache_dir=settings.cache_dir, generator_key=record["weights_sha256"])

    tags = {PROTOCOL_TAG: result.protocol.fingerprint, WEIGHTS_TAG: record["weights_sha256"], KIND_TAG: "generator",
            "prodgan.data_hash": real.data_hash, "prodgan.real_cached": str(result.real_cached).lower()}
    if train_run_id:
        tags[TRAIN_RUN_TAG] = train_run_id
    if evaluator_run:
        tags["prodgan.evaluator_run_id"] = evaluator_run
    tags.update({f"prodgan.{k}": v for k, v in (model_info or {}).items()})
    logger = RunLogger.start(settings, EVAL_EXPERIMENT, f"eval-{result.protocol.suffix}", tags=tags)
    try:
        logger.log_params({**result.protocol.to_dict(), "protocol_fingerprint": result.protocol.fingerprint,
                           "bundle": str(bundle_dir)})
        logger.log_metrics({**result.metrics, **{f"seconds_{k}": v for k, v in result.timings.items()}}, step=0)
        nrow = spec.num_classes or 8
        logger.log_image(grid(result.images[:GRID_IMAGES], nrow=nrow), "samples.png")
        logger.log_dict({"protocol": result.protocol.to_dict(), "fingerprint": result.protocol.fingerprint,
                         "metrics": result.metrics, "per_category": result.per_category, "timings": result.timings}, "evaluation.json")
        logger.finish()
    except BaseException:
        logger.finish("FAILED")
        raise
    return EvaluationRun(logger.run_id, result, evaluator_run)


def evaluate_model(settings: Settings, uri: str, **options: Any) -> tuple[EvaluationRun, dict[str, str]]:
    """Evaluate a model URI; a registered version also gets the evaluation attached under its protocol.

    `options` go to `evaluate_bundle` (samples, seed, split, ...). Returns the run and the model's
    name/version/run id as logged.
    """
    from prodgan import registry

    resolved = registry.resolve_model(uri, settings=settings)
    info = {k: str(v) for k, v in resolved.info().items() if k != "weights_sha256"}
    run = evaluate_bundle(settings, resolved.bundle_dir, train_run_id=resolved.tags.get(registry.TRAIN_RUN) or resolved.run_id,
                          model_info=info, **options)
    if info.get("model_version"):
        registry.attach_evaluation(settings, info["model_name"], info["model_version"],
                                   registry.read_eval_run(registry.client_for(settings), run.run_id), primary=False)
    return run, info
