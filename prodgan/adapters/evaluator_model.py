"""The evaluator classifier as its own registered MLflow model (`prodgan-evaluator`).

Evaluations name the evaluator's weights hash in their protocol; registering the classifier
makes that hash resolvable to a loadable model (`models:/prodgan-evaluator/N`) with its own
lineage. Rows `{png_base64}` in, `{category, confidence}` out. Registration is idempotent by
the weights' sha256.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

from prodgan.errors import ProdganError
from prodgan.names import EVAL_EXPERIMENT, EVALUATOR_MODEL, WEIGHTS
from prodgan.settings import Settings

LOGGED_NAME = "evaluator"


def _decode(png_b64: str, channels: int, size: int) -> np.ndarray:
    from PIL import Image

    # reads the header only: no pixel is decoded yet; PIL's own bomb error becomes prodgan's message
    try:
        image = Image.open(io.BytesIO(base64.b64decode(png_b64)))
    except Image.DecompressionBombError:
        raise ValueError(
            f"image is over PIL's decompression-bomb limit, the evaluator takes {size}x{size}"
        ) from None
    if image.size != (
        size,
        size,
    ):  # checked before decoding, so a PNG that claims 60000x60000 costs nothing
        raise ValueError(
            f"image is {image.size[0]}x{image.size[1]}, the evaluator takes {size}x{size}"
        )
    image = image.convert("L" if channels == 1 else "RGB")
    pixels = np.asarray(image, dtype=np.uint8)
    return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)


class EvaluatorPyfunc(mlflow.pyfunc.PythonModel):
    """Classifies product images: the same network the metrics use for cond_acc."""

    def load_context(self, context: Any) -> None:
        from prodgan.models.evaluator import load_evaluator

        self.model, self.record = load_evaluator(context.artifacts["evaluator"])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        import torch

        spec = self.model.spec
        images = np.stack([_decode(b, spec.channels, spec.size) for b in model_input["png_base64"]])
        with torch.no_grad():
            probs = torch.softmax(
                self.model(torch.from_numpy(images).float().div_(127.5).sub_(1)), dim=1
            )
        confidence, index = probs.max(dim=1)
        return pd.DataFrame(
            {
                "category": [spec.categories[i] for i in index.tolist()],
                "confidence": confidence.tolist(),
            }
        )


def register_evaluator(settings: Settings, evaluator_dir: Path, source_run_id: str | None = None):
    """Log + register the classifier in `evaluator_dir` as a version of `prodgan-evaluator`
    (idempotent by weights)."""
    import json

    import mlflow
    from mlflow.models import infer_signature

    from prodgan.adapters import serving
    from prodgan.adapters.tracking import ensure_experiment, setup_mlflow
    from prodgan.models.evaluator import RECORD_FILE

    record_path = Path(evaluator_dir) / RECORD_FILE
    if not record_path.is_file():
        raise ProdganError(
            f"{evaluator_dir} holds no {RECORD_FILE}; "
            "train the evaluator first (`prodgan evaluator train`)"
        )
    sha = json.loads(record_path.read_text())["weights_sha256"]
    client = setup_mlflow(settings)
    found = client.search_model_versions(
        f"name = '{EVALUATOR_MODEL}' and tags.`{WEIGHTS}` = '{sha}'"
    )
    if found:
        return min(found, key=lambda mv: int(mv.version))
    example = pd.DataFrame(
        {"png_base64": [_blank_png(json.loads(record_path.read_text())["spec"])]}
    )
    logged = mlflow.initialize_logged_model(
        name=LOGGED_NAME,
        source_run_id=source_run_id,
        experiment_id=ensure_experiment(EVAL_EXPERIMENT, settings),
    )
    info = mlflow.pyfunc.log_model(
        name=LOGGED_NAME,
        python_model=str(serving.MODEL_CODE / "evaluator.py"),
        artifacts={"evaluator": str(evaluator_dir)},
        signature=infer_signature(example, pd.DataFrame({"category": ["x"], "confidence": [1.0]})),
        input_example=example,
        pip_requirements=serving.pip_requirements(),
        model_id=logged.model_id,
    )
    return mlflow.register_model(
        info.model_uri,
        EVALUATOR_MODEL,
        tags={WEIGHTS: sha, **({"prodgan.source_run_id": source_run_id} if source_run_id else {})},
    )


def _blank_png(spec: dict[str, Any]) -> str:
    from prodgan.imaging import png_bytes

    shape = (
        (spec["size"], spec["size"]) if spec["channels"] == 1 else (spec["size"], spec["size"], 3)
    )
    return base64.b64encode(png_bytes(np.zeros(shape, dtype=np.uint8))).decode("ascii")
