"""The generator as an MLflow pyfunc, so `mlflow models serve -m models:/NAME-production@champion`
answers with PNGs.

Request rows `{seed, category, n}` (category by name or index, optional); the answer has one row
per image: `seed, category, index, png_base64`. Same row -> same bytes. Bad values are raised as
`MlflowException(INVALID_PARAMETER_VALUE)`, which the scoring server turns into a 400 with the
message and survives.

No code from storage runs where prodgan loads or serves: the stored `generator.py` is a fixed
loader (`model_code/generator.py`, three lines that import this module from the installed
package), and every model carries the sha256 of each bundle file in its `model_config`, which
`GeneratorPyfunc.load_context` checks before anything is unpickled. `prodgan serve` never loads
the stored MLflow model at all: it builds a fresh pyfunc from the installed loader around the
verified local bundle (`installed_pyfunc`). `prodgan` must be importable where a plain MLflow
client loads the model (`--env-manager local`, or the pip requirements below).
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd
from mlflow.entities import LoggedModelOutput
from mlflow.exceptions import MlflowException
from mlflow.models.signature import ModelSignature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.types.schema import ColSpec, Schema

from prodgan.errors import GateFailed, ProdganError
from prodgan.fsutil import file_hashes
from prodgan.generate import MAX_IMAGES_PER_REQUEST, MAX_IMAGES_PER_ROW, parse_request
from prodgan.names import LOGGED_MODEL_NAME, PRODUCTION_EXPERIMENT, TRAIN_RUN
from prodgan.settings import Settings

OUTPUT_COLUMNS = ["seed", "category", "index", "png_base64"]
MODEL_CODE = Path(__file__).with_name("model_code")  # models-from-code entry points, one per pyfunc
# model_config key: {file name inside the bundle: sha256}, checked by the loader before loading
BUNDLE_HASHES = "prodgan_bundle_sha256"


def _invalid(message: str) -> MlflowException:
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


def png_base64(image_chw: Any) -> str:
    """One uint8 [C,H,W] image as deterministic PNG bytes, base64 text."""
    from prodgan.generate import hwc
    from prodgan.imaging import png_bytes

    return base64.b64encode(png_bytes(hwc(image_chw))).decode("ascii")


class GeneratorPyfunc(mlflow.pyfunc.PythonModel):
    """Loads the bundle once per process; every predict is a pure function of the request rows."""

    def load_context(self, context: Any) -> None:
        import torch

        from prodgan.models.bundle import load_bundle

        bundle = Path(context.artifacts["bundle"])
        check_bundle(bundle, (context.model_config or {}).get(BUNDLE_HASHES))
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.generator, self.spec = load_bundle(bundle, device=self.device)

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        from prodgan.generate import generate

        requests = self._requests(model_input)
        rows: list[dict[str, Any]] = []
        for request in requests:
            images, labels = generate(self.generator, self.spec, request, device=self.device)
            for i in range(request.n):
                category = None if labels is None else self.spec.categories[int(labels[i])]
                rows.append(
                    {
                        "seed": request.seed,
                        "category": category,
                        "index": i,
                        "png_base64": png_base64(images[i]),
                    }
                )
        return pd.DataFrame(rows, columns=OUTPUT_COLUMNS)

    def _requests(self, model_input: Any) -> list:
        if not isinstance(model_input, pd.DataFrame):
            model_input = pd.DataFrame(model_input)
        if model_input.empty:
            raise _invalid(
                'the request holds no rows: send dataframe_records like [{"seed": 1, "n": 4}]'
            )
        if "seed" not in model_input.columns:
            raise _invalid(
                'every row needs a seed: send rows like {"seed": 1, "category": "sneaker", "n": 4}'
            )
        try:
            requests = [
                parse_request(
                    self.spec,
                    row.get("seed"),
                    row.get("category"),
                    row.get("n"),
                    max_images=MAX_IMAGES_PER_ROW,
                )
                for row in model_input.to_dict(orient="records")
            ]
        except ProdganError as exc:
            raise _invalid(str(exc)) from None
        total = sum(r.n for r in requests)
        if total > MAX_IMAGES_PER_REQUEST:
            raise _invalid(
                f"the request asks for {total} images: "
                f"at most {MAX_IMAGES_PER_REQUEST} per request; split it"
            )
        return requests


def check_bundle(bundle: Path, expected: Any) -> None:
    """Refuse a bundle whose files are not exactly the ones the model was logged with, before
    anything in it is read: `expected` is the {file: sha256} the logger wrote into the model's
    config (for production, the promoter's copy: the same files its signed record hashes)."""
    from prodgan.policy.files import changed_files

    if not isinstance(expected, dict) or not expected:
        raise GateFailed(
            f"refusing to load {bundle}: the model carries no {BUNDLE_HASHES} in its model_config, "
            "so its files cannot be checked; it was not logged by this prodgan (re-register it)"
        )
    changes = changed_files({str(k): str(v) for k, v in expected.items()}, file_hashes(bundle))
    if changes:
        found = "; ".join(change.describe("the model's config") for change in changes)
        raise GateFailed(f"refusing to load the generator bundle {bundle}: {found}")


def log_generator(client: Any, train_run: Any, bundle_dir: Path) -> str:
    """The pyfunc model logged for this training run (reused on retry), as a `models:/m-...` URI."""
    run_id, exp_id = train_run.info.run_id, train_run.info.experiment_id
    for lm in client.search_logged_models([exp_id], filter_string=f"source_run_id = '{run_id}'"):
        if lm.name == LOGGED_MODEL_NAME and str(lm.status).endswith("READY"):
            return f"models:/{lm.model_id}"
    logged = mlflow.initialize_logged_model(
        name=LOGGED_MODEL_NAME, source_run_id=run_id, experiment_id=exp_id, tags={TRAIN_RUN: run_id}
    )
    uri = _log_pyfunc(bundle_dir, logged.model_id)
    # the training run's page lists its model
    client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
    return uri


def log_production(settings: Settings, bundle_dir: Path) -> str:
    """The promoter's copy: `bundle_dir` with prodgan's own `model_code/generator.py` (never the
    trained version's stored code), logged under the promoter-only production experiment; its
    `models:/m-...` URI."""
    from prodgan.adapters.tracking import ensure_experiment

    exp_id = ensure_experiment(PRODUCTION_EXPERIMENT, settings)
    logged = mlflow.initialize_logged_model(name=LOGGED_MODEL_NAME, experiment_id=exp_id)
    return _log_pyfunc(bundle_dir, logged.model_id)


def _log_pyfunc(bundle_dir: Path, model_id: str) -> str:
    """`bundle_dir` with prodgan's own model code as the files of logged model `model_id`."""
    info = mlflow.pyfunc.log_model(
        name=LOGGED_MODEL_NAME,
        model_id=model_id,
        input_example=input_example(),
        **_pyfunc_parts(bundle_dir, file_hashes(bundle_dir)),
    )
    return info.model_uri


def _pyfunc_parts(bundle_dir: Path, hashes: dict[str, str]) -> dict[str, Any]:
    """What every generator pyfunc is made of: the installed fixed loader, the bundle, and the
    hashes the loader checks the bundle against."""
    return {
        "python_model": str(MODEL_CODE / "generator.py"),
        "artifacts": {"bundle": str(bundle_dir)},
        "model_config": {BUNDLE_HASHES: dict(hashes)},
        "signature": signature(),
        "pip_requirements": pip_requirements(),
    }


def installed_pyfunc(bundle_dir: Path, hashes: dict[str, str], workdir: Path) -> Any:
    """A pyfunc of prodgan's installed loader around a verified local bundle, never the stored
    MLflow model: `hashes` are what the bundle was verified against, and the loader checks the
    copy it loads against them once more."""
    target = workdir / "model"
    mlflow.pyfunc.save_model(path=str(target), **_pyfunc_parts(bundle_dir, hashes))
    return mlflow.pyfunc.load_model(str(target))


def stored_file_hashes(model_uri: str, dest: Path) -> str:
    """The logged model's file hashes as stored (the `prodgan.model_files` map `prodgan audit
    verify` replays), as canonical JSON text."""
    from prodgan.fsutil import file_hashes
    from prodgan.policy.files import canonical_file_map

    location = mlflow.get_logged_model(model_uri.removeprefix("models:/")).artifact_location
    return canonical_file_map(
        file_hashes(
            Path(mlflow.artifacts.download_artifacts(artifact_uri=location, dst_path=str(dest)))
        )
    )


def signature() -> ModelSignature:
    """Typed, so MLflow itself refuses a bad request: a category is a name (or an index written as
    text), and `n` is given in every row of a request or in none (a missing value would make the
    column float)."""
    inputs = Schema(
        [
            ColSpec("long", "seed"),
            ColSpec("string", "category", required=False),
            ColSpec("long", "n", required=False),
        ]
    )
    outputs = Schema(
        [
            ColSpec("long", "seed"),
            ColSpec("string", "category", required=False),
            ColSpec("long", "index"),
            ColSpec("string", "png_base64"),
        ]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)


def input_example() -> pd.DataFrame:
    return pd.DataFrame(
        [{"seed": 1, "n": 2}]
    )  # no category: valid for unconditional generators too


def pip_requirements() -> list[str]:
    """What the served model needs; `prodgan` itself pins torch, mlflow, pandas and pillow."""
    from importlib.metadata import version

    return [
        f"prodgan=={version('prodgan')}",
        f"torch=={version('torch').split('+')[0]}",
        f"mlflow=={version('mlflow')}",
        "pandas",
        "pillow",
    ]


# `mlflow models serve` reads any body size; `prodgan serve` puts this cap in front of the same app.
# 64 KiB holds ~1,000 request rows, which is already past MAX_IMAGES_PER_REQUEST.
MAX_BODY_BYTES = 64 * 1024


class BodyLimit:
    """ASGI wrapper: the whole body is read here first, up to `max_bytes`; a body over it (declared
    or streamed) gets 413 before the app parses anything. The app then reads the buffered body."""

    def __init__(self, app: Any, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _reject(self, send: Any) -> None:
        body = (
            f'{{"error_code": "REQUEST_TOO_LARGE", '
            f'"message": "request body over {self.max_bytes} bytes: '
            f'send fewer rows per request"}}'
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            return await self._reject(send)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                return await self._reject(send)
            if not message.get("more_body"):
                break
        buffered = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replay() -> dict:
            return buffered.pop() if buffered else await receive()

        await self.app(scope, replay, send)


def serve(
    bundle_dir: Path,
    hashes: dict[str, str],
    workdir: Path,
    host: str,
    port: int,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> None:
    """Run MLflow's own scoring app for prodgan's installed loader around the verified bundle,
    behind the body-size cap (blocks until stopped)."""
    import uvicorn
    from mlflow.pyfunc import scoring_server

    model = installed_pyfunc(bundle_dir, hashes, workdir)
    uvicorn.run(
        BodyLimit(scoring_server.init(model), max_body_bytes),
        host=host,
        port=port,
        workers=1,
        log_level="info",
    )
