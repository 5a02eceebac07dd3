"""MLflow adapter: one tracking URI, experiments with explicit artifact locations, run logging.

Everything goes through an explicit `MlflowClient` and run id (never MLflow's global "active
run"), so a Prefect task, a thread or a test can log to a run without hidden state.
`reachable` turns a tracking server that does not answer into one line a user can act on.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from prodgan.errors import ProdganError, TrackingUnreachable
from prodgan.names import DEVICE, PRECISION, WORLD_SIZE
from prodgan.settings import Settings

TRACKED_PACKAGES = (
    "prodgan",
    "torch",
    "torchvision",
    "torch-fidelity",
    "mlflow",
    "prefect",
    "dvc",
    "great-expectations",
    "numpy",
)
_MAX_PARAM_CHARS = 6000  # MLflow's limit on a param value
_BATCH = 900  # under MLflow's 1000-metrics-per-batch limit
LOCAL_UI_PORT = 5000  # where `mlflow ui` listens by default, for a local store


def setup_mlflow(settings: Settings):
    """Point MLflow (tracking and registry) at the project's store; return a client for it."""
    import mlflow
    from mlflow import MlflowClient

    if mlflow.get_tracking_uri() != settings.tracking_uri:
        _forget_artifact_locations()
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def _forget_artifact_locations() -> None:
    """MLflow caches each run's artifact repository by run id alone, with the server address it
    was resolved against: after a move to another tracking server (a restart on a new address),
    a cached `mlflow-artifacts:` run would still upload to the old one."""
    from mlflow.tracking._tracking_service import utils

    utils._artifact_repos_cache.clear()


_UNREACHABLE = (
    "Connection refused",
    "Failed to establish a new connection",
    "Max retries exceeded",
)


@contextmanager
def reachable(settings: Settings, doing: str) -> Iterator[None]:
    """A tracking server that does not answer becomes one line saying so and what to do."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        if not any(sign in str(exc) for sign in _UNREACHABLE):
            raise
        raise TrackingUnreachable(
            f"MLflow at {settings.tracking_uri} is unreachable while {doing} (connection refused); "
            "start the tracking server or fix MLFLOW_TRACKING_URI, then rerun: it is safe to repeat"
        ) from None


def not_found(exc: Exception) -> bool:
    return getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST"


def denied(exc: Exception) -> bool:
    """The server refused: on an auth server, asking for something that does not exist is 403."""
    return getattr(exc, "error_code", "") == "PERMISSION_DENIED" or "403" in str(exc)


def is_run_id(value: Any) -> bool:
    """Whether a (trainer-writable) tag value has the shape of an MLflow run id: 32 hex digits."""
    return isinstance(value, str) and len(value) == 32 and all(c in HEX for c in value)


HEX = frozenset("0123456789abcdef")
MAX_TEXT = 4000  # longest free text prodgan writes into a tag or record (MLflow's tag limit: 8000)


def checked_text(value: str, what: str) -> str:
    """Free text headed for MLflow (a reason, an actor, a tag), refused here with one line when the
    server would refuse it late: a NUL byte (PostgreSQL answers 500, which the client retries for
    minutes) or more than MAX_TEXT characters."""
    if "\x00" in value:
        raise ProdganError(f"{what} holds a NUL character; remove it and rerun")
    if len(value) > MAX_TEXT:
        raise ProdganError(
            f"{what} is {len(value)} characters long, "
            f"over the {MAX_TEXT} prodgan writes; shorten it"
        )
    return value


def get_run(client: Any, run_id: str, what: str = "run"):
    """The run, or a one-line error naming what was looked for."""
    from mlflow.exceptions import MlflowException

    missing = ProdganError(
        f"{what} {str(run_id)[:40]!r} not found in {client.tracking_uri} (or not readable by this "
        "user); check the id (`mlflow runs list`) or MLFLOW_TRACKING_URI"
    )
    if not is_run_id(run_id):
        raise missing
    try:
        return client.get_run(run_id)
    except MlflowException as exc:
        if not_found(exc) or denied(exc):
            raise missing from None
        raise


def run_tag(settings: Settings, run_id: str | None, key: str) -> str | None:
    """One tag of a run (None when the run or the tag is missing)."""
    if not run_id:
        return None
    try:
        return get_run(setup_mlflow(settings), run_id).data.tags.get(key)
    except ProdganError:
        return None


def set_tags(settings: Settings, run_id: str, tags: dict[str, str]) -> None:
    from mlflow.entities import RunTag

    if tags:
        setup_mlflow(settings).log_batch(
            run_id, tags=[RunTag(str(k), str(v)) for k, v in tags.items()]
        )


def newest_finished_run(settings: Settings, experiment: str, tags: dict[str, str]):
    """The newest FINISHED run of `experiment` carrying every tag in `tags`, or None."""
    client = setup_mlflow(settings)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return None
    query = " and ".join(
        [*(f"tags.`{k}` = '{v}'" for k, v in tags.items()), "attributes.status = 'FINISHED'"]
    )
    runs = client.search_runs(
        [exp.experiment_id], query, order_by=["attributes.start_time DESC"], max_results=1
    )
    return runs[0] if runs else None


def _is_server(tracking_uri: str) -> bool:
    return tracking_uri.startswith(("http://", "https://"))


def ui_url(settings: Settings) -> str:
    """The MLflow UI's address: the tracking server itself,
    or where `mlflow ui` serves a local store."""
    uri = settings.tracking_uri
    return uri.rstrip("/") if _is_server(uri) else f"http://127.0.0.1:{LOCAL_UI_PORT}"


def ui_command(settings: Settings) -> str | None:
    """The command that serves a local store's MLflow UI, runnable as printed (None for a server:
    it is its own UI)."""
    uri = settings.tracking_uri
    if _is_server(uri):
        return None
    mlflow = Path(sys.executable).with_name("mlflow")  # this environment's, venv active or not
    program = str(mlflow) if mlflow.is_file() else "mlflow"
    return f"{program} ui --backend-store-uri {uri} --host 127.0.0.1 --port {LOCAL_UI_PORT}"


def ui_directions(settings: Settings) -> str:
    """How a person opens the MLflow UI: its address, and the `mlflow ui` command a local store
    needs first."""
    command = ui_command(settings)
    return ui_url(settings) + (f" once this runs: {command}" if command else "")


def run_url(settings: Settings, run_id: str) -> str:
    """A run's page in the MLflow UI."""
    experiment = setup_mlflow(settings).get_run(run_id).info.experiment_id
    return f"{ui_url(settings)}/#/experiments/{experiment}/runs/{run_id}"


def artifact_url(settings: Settings, run_id: str, artifact: str) -> str:
    """One artifact of a run over HTTP, as the MLflow UI serves it (a browser opens it from any
    page, where a `file://` link is refused)."""
    from urllib.parse import urlencode

    return f"{ui_url(settings)}/get-artifact?{urlencode({'path': artifact, 'run_uuid': run_id})}"


def ui_note(settings: Settings) -> str:
    """What a link into the MLflow UI needs first: nothing on a server, `mlflow ui` on a local
    store."""
    if _is_server(settings.tracking_uri):
        return ""
    return f" (start the UI first: {ui_directions(settings)})"


@contextmanager
def unless_forbidden() -> Iterator[None]:
    """For what only helps a person read MLflow's pages: a role that may not write it (HTTP 403)
    goes on without it; every other failure still raises."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        if "403" not in str(exc) and "PERMISSION_DENIED" not in str(exc):
            raise


def is_local_store(tracking_uri: str) -> bool:
    """True when MLflow itself would pick the artifact folder
    (sqlite, files, a database without a server)."""
    return not tracking_uri.startswith(("http://", "https://", "databricks"))


def ensure_experiment(name: str, settings: Settings) -> str:
    """The experiment's id, created on first use;
    local stores get `<artifact_dir>/<name>` explicitly."""
    from mlflow.exceptions import MlflowException

    client = setup_mlflow(settings)
    found = client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            client.restore_experiment(found.experiment_id)
        return found.experiment_id
    location = (
        (settings.artifact_dir / name).as_uri() if is_local_store(settings.tracking_uri) else None
    )
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:  # another process created it between our lookup and create
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def package_versions(packages: Iterable[str] = TRACKED_PACKAGES) -> dict[str, str]:
    versions = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


class RunLogger:
    """Logs to one run; metrics are buffered and sent in batches
    (per-step calls on sqlite are slow)."""

    def __init__(self, client: Any, run_id: str, flush_every: int = 200) -> None:
        self.client, self.run_id, self.flush_every = client, run_id, flush_every
        self._metrics: list[Any] = []

    @classmethod
    def start(
        cls,
        settings: Settings,
        experiment: str,
        run_name: str,
        tags: dict[str, str] | None = None,
        run_id: str | None = None,
    ) -> "RunLogger":
        """Create a run, or reopen `run_id` (a resumed training continues its own run).

        New runs say who and what made them (the MLflow UI's "Created by" and "Source").
        """
        from mlflow.utils.mlflow_tags import MLFLOW_SOURCE_NAME, MLFLOW_SOURCE_TYPE, MLFLOW_USER

        client = setup_mlflow(settings)
        if run_id:
            client.update_run(run_id, status="RUNNING")
        else:
            made_by = {
                MLFLOW_USER: settings.tracking_user or _login(),
                MLFLOW_SOURCE_NAME: f"prodgan ({experiment})",
                MLFLOW_SOURCE_TYPE: "LOCAL",
            }
            run_id = client.create_run(
                ensure_experiment(experiment, settings),
                run_name=run_name,
                tags={**made_by, **(tags or {})},
            ).info.run_id
        return cls(client, run_id)

    def describe(self, text: str) -> None:
        """The run's one-line description (the MLflow UI's "Description")."""
        from mlflow.utils.mlflow_tags import MLFLOW_RUN_NOTE

        self.set_tags({MLFLOW_RUN_NOTE: text})

    def log_dataset(self, dataset: Any, context: str) -> None:
        """Declare a dataset input (`dataset_version`'s entity) with its role: training,
        evaluation."""
        from mlflow.entities import DatasetInput, InputTag
        from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

        self.client.log_inputs(
            self.run_id,
            datasets=[DatasetInput(dataset, tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)])],
        )

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(str(k), str(v)[:_MAX_PARAM_CHARS]) for k, v in sorted(params.items())]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[i : i + 100])

    def set_tags(self, tags: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(str(k), str(v)) for k, v in tags.items()])

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._metrics += [Metric(k, float(v), now, int(step)) for k, v in metrics.items()]
        if len(self._metrics) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        while self._metrics:
            batch, self._metrics = self._metrics[:_BATCH], self._metrics[_BATCH:]
            self.client.log_batch(self.run_id, metrics=batch)

    def log_image(self, array: np.ndarray, artifact_file: str) -> None:
        self.client.log_image(self.run_id, array, artifact_file=artifact_file)

    def log_dict(self, data: dict[str, Any], artifact_file: str) -> None:
        self.client.log_dict(self.run_id, data, artifact_file)

    def log_artifacts(self, local_dir: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifacts(self.run_id, str(local_dir), artifact_path)

    def log_artifact(self, local_file: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(local_file), artifact_path)

    def finish(self, status: str = "FINISHED") -> None:
        self.flush()
        self.client.set_terminated(self.run_id, status=status)


def _login() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (a container without passwd entry)
        return "unknown"


def dataset_version(name: str, data_hash: str, source: str) -> Any:
    """A DVC-pinned dataset as MLflow sees one: its digest is the DVC hash,
    its source the remote location."""
    import warnings

    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    with (
        warnings.catch_warnings()
    ):  # an s3:// remote matches two registered source types; either records the URI
        warnings.simplefilter("ignore", UserWarning)
        resolved = resolve_dataset_source(source)
    return MetaDataset(resolved, name=name, digest=data_hash)._to_mlflow_entity()


def logged_model_id(mv: Any) -> str | None:
    """The logged model behind a registered version
    (MLflow 3 leaves `model_id` empty, the source says it)."""
    source = str(mv.source or "")
    return getattr(mv, "model_id", None) or (
        source.removeprefix("models:/") if source.startswith("models:/m-") else None
    )


def link_to_model(client: Any, run_id: str, model_id: str) -> None:
    """An evaluation run's metrics, logged again against the logged model (and the run's dataset),
    so the model's page in MLflow shows them; the model is also recorded as the run's input."""
    from mlflow.entities import LoggedModelInput, Metric

    run = client.get_run(run_id)
    if run.inputs and model_id in {m.model_id for m in run.inputs.model_inputs or []}:
        return  # linked before (a retry, or the same evaluation attached under another role)
    datasets = [d.dataset for d in (run.inputs.dataset_inputs if run.inputs else [])]
    client.log_inputs(run_id, models=[LoggedModelInput(model_id)])
    now = int(time.time() * 1000)
    metrics = [
        Metric(
            k,
            float(v),
            now,
            0,
            model_id=model_id,
            dataset_name=datasets[0].name if datasets else None,
            dataset_digest=datasets[0].digest if datasets else None,
        )
        for k, v in run.data.metrics.items()
    ]
    for i in range(0, len(metrics), _BATCH):
        client.log_batch(run_id, metrics=metrics[i : i + _BATCH])


def training_hooks(logger: RunLogger, say: Callable[[str], None]):
    """Training-loop hooks that forward the loop's reports to the MLflow run."""
    from prodgan.training.loop import TrainHooks

    class MlflowHooks(TrainHooks):
        def on_start(self, info: dict[str, Any]) -> None:
            logger.set_tags(
                {
                    DEVICE: info["device"],
                    PRECISION: info["precision"],
                    WORLD_SIZE: info["world_size"],
                }
            )
            say(
                f"training on {info['device']} "
                f"({info['precision']}, {info['world_size']} process(es)), "
                f"{info['images']} images, steps {info['start_step']} -> {info['steps']}"
            )

        def on_metrics(self, step: int, metrics: dict[str, float]) -> None:
            logger.log_metrics(metrics, step)

        def on_grid(self, step: int, epoch: int, image: np.ndarray) -> None:
            logger.log_image(image, f"samples/step_{step:07d}.png")

        def on_checkpoint(self, step: int, path: Path) -> None:
            logger.flush()  # metrics up to a checkpoint survive a crash after it

        def on_message(self, message: str) -> None:
            say(message)

    return MlflowHooks()
