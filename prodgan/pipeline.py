"""The retrain sequence as plain functions: validate -> train -> evaluate -> register -> promote.

Prefect flows (`flows/`) run each step as a task through the `step` hook of `retrain`; the
benchmark and tests call the very same functions directly. Nothing here imports Prefect.
A step is data-aware: `freshness` compares the dataset hash and the training-config hash with
what the current champion was trained on, so a scheduled retrain with nothing new is a no-op.
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from prodgan.errors import GateFailed, ProdganError
from prodgan.settings import Settings
from prodgan.verify import require_verified

CODE_ROOT = Path(__file__).resolve().parent.parent  # the checkout holding prodgan/, flows/, configs/
CHAMPION = "champion"
CONFIG_TAG = "prodgan.config_sha256"
FLOW_RUN_TAG = "prefect.flow_run_id"

class TrackingUnreachable(ProdganError):
    """The MLflow tracking server did not answer: worth retrying, unlike other user-facing errors."""


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


@dataclass
class RetrainOutcome:
    freshness: Freshness
    validation: Any = None
    train: Any = None
    evaluation: Any = None
    version: Any = None
    decision: Any = None


def resolve_config(settings: Settings, config: str | Path) -> Path:
    """`--config` as given (absolute or from the working directory), else in the project, else prodgan's `configs/`."""
    path = Path(config).expanduser()
    if path.is_absolute():
        return path
    for base in (Path.cwd(), settings.root, CODE_ROOT):
        if (base / path).is_file():
            return (base / path).resolve()
    return path  # load_config reports it as missing


def default_config() -> str:
    """The full recipe where a CUDA GPU is present (and shipped), else the seconds-long CPU smoke run."""
    import torch

    full = "configs/fmnist.yaml"
    return full if torch.cuda.is_available() and (CODE_ROOT / full).is_file() else "configs/smoke.yaml"


def config_sha256(config_path: Path, overrides: Sequence[str] = ()) -> str:
    """Hash of the training config as it will run (file values + `key=value` overrides, resolved)."""
    from prodgan.train_config import load_config

    resolved = load_config(Path(config_path), overrides).to_dict()
    return hashlib.sha256(json.dumps(resolved, sort_keys=True).encode()).hexdigest()


def freshness(settings: Settings, config_path: Path, overrides: Sequence[str] = (), force: bool = False) -> Freshness:
    """Compare the data and config about to be trained with what the champion was trained on."""
    from prodgan import registry
    from prodgan.data import dvc

    data_hash = dvc.require_clean(settings)
    cfg = config_sha256(config_path, overrides)
    champion = registry.champion_version(settings)
    if force:
        return Freshness(True, "forced (--force)", data_hash, cfg, champion and champion.version)
    if champion is None:
        return Freshness(True, f"no {CHAMPION} for model {settings.model_name} yet", data_hash, cfg)
    tags = champion.tags or {}
    trained_on = tags.get("prodgan.data_hash")
    trained_cfg = tags.get(CONFIG_TAG) or registry.train_run_tag(settings, tags.get("prodgan.train_run_id"), CONFIG_TAG)
    if trained_on != data_hash:
        return Freshness(True, f"dataset changed: {CHAMPION} v{champion.version} was trained on {trained_on}, data is now {data_hash}", data_hash, cfg, champion.version)
    if trained_cfg != cfg:
        return Freshness(True, f"training config changed since {CHAMPION} v{champion.version} ({trained_cfg or 'unrecorded'} -> {cfg[:12]})", data_hash, cfg, champion.version)
    return Freshness(False, f"nothing changed: {CHAMPION} v{champion.version} was trained on data {data_hash} with config {cfg[:12]}; use --force to retrain anyway", data_hash, cfg, champion.version)


def validate(settings: Settings, dataset: str):
    """Great Expectations over the pinned dataset; the record says where its Data Docs are."""
    from prodgan import validation

    return validation.validate_dataset(settings, dataset)


def require_passed(record: Any) -> None:
    """Stop here when validation failed: nothing downstream may run on data that failed its checks."""
    if not record.success:
        raise GateFailed(f"dataset validation failed for data {record.data_hash}: see the Data Docs at {record.docs_path}; "
                         "fix the data, `prodgan data add`, and retrain")


def train(settings: Settings, config_path: Path, overrides: Sequence[str], tags: dict[str, str] | None = None,
          force: bool = False):
    """Train once per (data, config): a retry reuses the finished run, a crash resumes the unfinished one.

    Reused: the finished training run this flow run made before (a flow retry), or, unless
    forced, the newest finished run with the same data hash and config hash (a rerun after a
    later step failed). Resumed: the unfinished run of this config a kill left behind (same
    MLflow run, from its last checkpoint). Otherwise a new run.
    """
    from prodgan.data import dvc
    from prodgan.training_run import find_resumable, run_training

    data_hash, cfg = dvc.require_clean(settings), config_sha256(config_path, overrides)
    same = {"prodgan.data_hash": data_hash, CONFIG_TAG: cfg}
    flow_run = (tags or {}).get(FLOW_RUN_TAG)
    done = (_finished_train_run(settings, {**same, FLOW_RUN_TAG: flow_run}) if flow_run else None) \
        or (None if force else _finished_train_run(settings, same))
    if done is not None:
        return _reused(settings, done, data_hash)
    try:
        find_resumable(settings, Path(config_path).stem)
        resume = True
    except ProdganError:
        resume = False
    result = run_training(settings, Path(config_path), list(overrides), resume=resume)
    _tag_run(settings, result.run_id, {**(tags or {}), CONFIG_TAG: cfg})
    return result


def _finished_train_run(settings: Settings, tags: dict[str, str]):
    from prodgan.tracking import TRAIN_EXPERIMENT, setup_mlflow

    client = setup_mlflow(settings)
    exp = client.get_experiment_by_name(TRAIN_EXPERIMENT)
    if exp is None:
        return None
    query = " and ".join([*(f"tags.`{k}` = '{v}'" for k, v in tags.items()), "attributes.status = 'FINISHED'"])
    runs = client.search_runs([exp.experiment_id], query, order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0] if runs else None


def _reused(settings: Settings, run: Any, data_hash: str):
    from prodgan import registry
    from prodgan.training_run import GENERATOR_ARTIFACT, TrainResult

    print(f"reusing finished training run {run.info.run_id} (same data and config)")
    bundle = registry.resolve_model(f"runs:/{run.info.run_id}/{GENERATOR_ARTIFACT}", settings=settings).bundle_dir
    return TrainResult(run.info.run_id, bundle, dict(run.data.metrics), data_hash=data_hash)


def evaluate(settings: Settings, trained: Any, tags: dict[str, str] | None = None):
    """Evaluate the training run's generator bundle under the protocol; one MLflow run in prodgan-eval."""
    from prodgan import evaluation_log

    result = evaluation_log.evaluate_bundle(settings, trained.bundle_dir, train_run_id=trained.run_id)
    _tag_run(settings, result.run_id, tags or {})
    return result


def evaluate_model(settings: Settings, version: str, tags: dict[str, str] | None = None) -> dict[str, Any]:
    """Evaluate a registered version (number or alias) and tie the evaluation to it by protocol."""
    from prodgan import evaluation_log

    uri = f"models:/{settings.model_name}/{version}" if str(version).isdigit() else f"models:/{settings.model_name}@{version}"
    run, info = evaluation_log.evaluate_model(settings, uri)
    _tag_run(settings, run.run_id, tags or {})
    return {"model": uri, "version": info["model_version"], "eval_run_id": run.run_id, "protocol": run.protocol, "metrics": run.metrics}


def register(settings: Settings, trained: Any, evaluation: Any):
    """Idempotent by training run id: a retried flow finds the version it registered before."""
    from prodgan import registry

    with _tracking_reachable(settings, f"registering training run {trained.run_id}"):
        return registry.register_from_run(settings, trained.run_id, eval_run_id=evaluation.run_id)


def promote(settings: Settings, version: Any, actor: str | None = None):
    """The gates decide; the version that already is champion is a no-op (no second promotion)."""
    from prodgan import promotion

    number = getattr(version, "version", version)
    with _tracking_reachable(settings, f"promoting version {number}"):
        return promotion.promote_version(settings, number, actor=actor)


@contextmanager
def _tracking_reachable(settings: Settings, doing: str) -> Iterator[None]:
    """A tracking server that does not answer becomes one line saying so and what to do."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        text = str(exc)
        if not any(sign in text for sign in ("Connection refused", "Failed to establish a new connection", "Max retries exceeded")):
            raise
        raise TrackingUnreachable(f"MLflow at {settings.tracking_uri} is unreachable while {doing} (connection refused); "
                                  "start the tracking server or fix MLFLOW_TRACKING_URI, then rerun: it is safe to repeat") from None


def _tag_run(settings: Settings, run_id: str, tags: dict[str, str]) -> None:
    from prodgan.tracking import setup_mlflow

    client = setup_mlflow(settings)
    for key, value in tags.items():
        client.set_tag(run_id, key, value)


def retrain(
    settings: Settings,
    config_path: Path,
    overrides: Sequence[str] = (),
    dataset: str = "fashion-mnist",
    force: bool = False,
    step: Step = direct,
    tags: dict[str, str] | None = None,
) -> RetrainOutcome:
    """The whole sequence; raises GateFailed when the registry fails verification or validation fails (nothing is trained then)."""
    step("verify", require_verified, settings, purpose="retrain")  # never act unattended on a tampered registry
    fresh = step("freshness", freshness, settings, config_path, overrides, force)
    outcome = RetrainOutcome(fresh)
    if not fresh.retrain:
        return outcome
    outcome.validation = step("validate", validate, settings, dataset)
    require_passed(outcome.validation)
    outcome.train = step("train", train, settings, config_path, overrides, tags, force)
    outcome.evaluation = step("evaluate", evaluate, settings, outcome.train, tags)
    outcome.version = step("register", register, settings, outcome.train, outcome.evaluation)
    outcome.decision = step("promote", promote, settings, outcome.version)
    return outcome


# ---------------------------------------------------------------- reporting (CLI, flow artifacts, logs)

def _headline(mv: Any) -> dict[str, float]:
    return {k.removeprefix("metric."): float(v) for k, v in (mv.tags or {}).items() if k.startswith("metric.")} if mv else {}


def _artifact_location(settings: Settings, run_id: str | None, artifact: str) -> str | None:
    """A local path for a local store, else the `runs:/` URI (open it in the MLflow UI)."""
    if not run_id:
        return None
    from prodgan.tracking import setup_mlflow

    uri = setup_mlflow(settings).get_run(run_id).info.artifact_uri
    return str(Path(uri.removeprefix("file://")) / artifact) if uri.startswith("file://") else f"runs:/{run_id}/{artifact}"


def summary(settings: Settings, outcome: RetrainOutcome, links: dict[str, str] | None = None) -> dict[str, Any]:
    """What a retrain did, as plain data: the flow's return value, the CLI's output, the artifact.

    `links` are the orchestrator's ids of this run (the Prefect flow run), if there is one.
    """
    from prodgan import registry

    fresh, decision = outcome.freshness, outcome.decision
    champion = registry.champion_version(settings)
    audit_run = decision.audit_run_id if decision else None
    return {
        "decision": decision.action if decision else "skipped",
        "reason": "; ".join(decision.reasons) if decision else fresh.reason,
        "freshness": fresh.reason,
        "model": settings.model_name,
        "data_hash": fresh.data_hash,
        "config_sha256": fresh.config_sha256,
        "version": str(outcome.version.version) if outcome.version else None,
        "metrics": _headline(outcome.version),
        "champion": {"version": str(champion.version), "metrics": _headline(champion)} if champion else None,
        "mlflow": {"tracking_uri": settings.tracking_uri,
                   "train_run_id": outcome.train.run_id if outcome.train else None,
                   "eval_run_id": outcome.evaluation.run_id if outcome.evaluation else None,
                   "audit_run_id": audit_run},
        "data_docs": str(outcome.validation.docs_path) if outcome.validation else None,
        "sheet": _artifact_location(settings, audit_run, registry.AUDIT_SHEET),
        "orchestrator": links or {},
    }


def _metrics_table(metrics: dict[str, float]) -> str:
    rows = "".join(f"| {name} | {value:.4g} |\n" for name, value in sorted(metrics.items()))
    return f"| metric | value |\n|---|---|\n{rows}" if rows else "(no metrics)\n"


def report_markdown(result: dict[str, Any]) -> str:
    """The retrain flow's artifact: decision, metrics, MLflow runs and the champion-vs-challenger sheet."""
    runs = result["mlflow"]
    lines = [f"# retrain {result['model']}: {result['decision']}", "", result["reason"], "",
             f"- data: `{result['data_hash']}`, config sha256 `{result['config_sha256'][:12]}`"]
    if result["version"]:
        lines.append(f"- challenger: version {result['version']}")
    for label, key in (("training run", "train_run_id"), ("evaluation run", "eval_run_id"), ("audit record", "audit_run_id")):
        if runs[key]:
            lines.append(f"- MLflow {label}: `runs:/{runs[key]}` ({runs['tracking_uri']})")
    if result["data_docs"]:
        lines.append(f"- Data Docs: `{result['data_docs']}`")
    if result["sheet"]:
        lines.append(f"- champion vs challenger sheet: `{result['sheet']}`")
    if result["version"]:
        lines += ["", f"## challenger v{result['version']}", "", _metrics_table(result["metrics"])]
    champion = result["champion"]
    lines += ["", f"## champion v{champion['version']}" if champion else "## no champion yet", ""]
    if champion:
        lines.append(_metrics_table(champion["metrics"]))
    return "\n".join(lines)


def failure_markdown(exc: Exception) -> str:
    return f"# retrain stopped\n\n{exc}\n"


def where_to_look(settings: Settings, result: dict[str, Any]) -> list[tuple[str, str]]:
    """Where a person goes next: the MLflow UI, the Data Docs, the sample sheet."""
    uri = settings.tracking_uri
    ui = uri if uri.startswith(("http://", "https://")) else f"mlflow ui --backend-store-uri {uri} --port 5000  (then http://127.0.0.1:5000)"
    found = [("MLflow UI", ui)]
    if result.get("data_docs"):
        found.append(("Data Docs", result["data_docs"]))
    if result.get("sheet"):
        found.append(("champion vs challenger", result["sheet"]))
    flow_run = (result.get("orchestrator") or {}).get(FLOW_RUN_TAG)
    if flow_run:
        api = result["orchestrator"].get("prefect.api_url")
        where = f"PREFECT_API_URL={api}" if api else f"PREFECT_HOME={os.environ.get('PREFECT_HOME', settings.home / 'prefect')}"
        found.append(("Prefect flow run", f"{where} prefect flow-run inspect {flow_run}"))
    return found


def plain(record: Any) -> dict[str, Any]:
    """A dataclass record as JSON-able data (paths as strings): what a flow returns."""
    import dataclasses

    data = record.to_dict() if hasattr(record, "to_dict") else dataclasses.asdict(record)
    return json.loads(json.dumps(data, default=str))


def record_markdown(title: str, fields: dict[str, Any]) -> str:
    """One step's result as a markdown artifact: a title and a field/value list."""
    lines = [f"# {title}", ""] + [f"- {key}: `{value}`" for key, value in fields.items() if value not in (None, "", [], {})]
    return "\n".join(lines)
