"""Real scoring servers for the serving tests,
and tiny generators whose categories differ visibly.
"""

from __future__ import annotations

import base64
import io
import json
import sys
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from PIL import Image

from prodgan.adapters.processes import free_port, spawn, stop, wait_healthy
from prodgan.models import GeneratorSpec, build_generator, save_bundle

EDIT_SPEC = GeneratorSpec(
    arch="cdcgan",
    z_dim=8,
    num_classes=3,
    channels=1,
    size=28,
    width=4,
    categories=("pullover", "coat", "sneaker"),
)


def tiny_bundle(directory: Path, spec: GeneratorSpec = EDIT_SPEC, seed: int = 0) -> Path:
    """An untrained generator whose images depend visibly on latent and category.

    Fresh category embeddings are zero (no effect) and the fresh latent layer is too weak to
    make samples differ much; both are re-drawn larger so that inversion tests can fail.
    """
    torch.manual_seed(seed)
    generator = build_generator(spec)
    for module in generator.modules():
        if isinstance(module, torch.nn.Embedding):
            torch.nn.init.normal_(module.weight, 0.0, 0.5)
        elif isinstance(module, torch.nn.Linear):
            torch.nn.init.normal_(module.weight, 0.0, 1.0)
    return save_bundle(directory, generator, spec, {"test": True})


@contextmanager
def scoring_server(
    args: list[str], log: Path, env: dict[str, str], timeout: float = 120.0
) -> Iterator[str]:
    """Start a scoring server command (`--port` appended), wait for /health, yield its URL, SIGTERM
    it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = spawn([*args, "--port", str(port)], log, env, cwd=Path.cwd())
    try:
        wait_healthy(f"{url}/health", proc, log, timeout, Path(args[0]).name)
        yield url
    finally:
        stop(proc)


def mlflow_serve(model_uri: str, log: Path, env: dict[str, str]):
    mlflow_bin = str(Path(sys.executable).parent / "mlflow")
    return scoring_server(
        [
            mlflow_bin,
            "models",
            "serve",
            "-m",
            model_uri,
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
        ],
        log,
        env,
    )


def prodgan_serve(model_uri: str, log: Path, env: dict[str, str], max_body_bytes: int):
    return scoring_server(
        [
            sys.executable,
            "-m",
            "prodgan",
            "serve",
            "--model",
            model_uri,
            "--host",
            "127.0.0.1",
            "--max-body-bytes",
            str(max_body_bytes),
        ],
        log,
        env,
    )


def post(url: str, body: bytes | str) -> tuple[int, dict]:
    """POST to /invocations; (status, parsed JSON body) for success and error answers alike."""
    data = body.encode() if isinstance(body, str) else body
    request = urllib.request.Request(
        f"{url}/invocations", data=data, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def records(*rows: dict) -> str:
    return json.dumps({"dataframe_records": list(rows)})


def decode(png_base64: str) -> np.ndarray:
    with Image.open(io.BytesIO(base64.b64decode(png_base64))) as img:
        assert img.format == "PNG"
        return np.asarray(img)
