"""`mlflow models serve` and `prodgan serve` over real HTTP,
serving a generator from the sqlite registry.

One registered model and one server of each kind per module (starting them is the slow part).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Iterator

import pytest

from prodgan.generate import MAX_IMAGES_PER_ROW
from prodgan.ops.promote import register as promotion_register
from prodgan.settings import Settings, configure_environment
from tests.conftest import run
from tests.registry import helpers as registry_helpers
from tests.serve.helpers import decode, mlflow_serve, post, prodgan_serve, records

pytestmark = pytest.mark.slow  # ~40 s: one model logged, two servers started

BODY_LIMIT = 4096


@pytest.fixture(scope="module")
def registered(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Settings, str, dict[str, str]]]:
    """A tiny generator registered as version 1 in a private sqlite registry; (settings, URI,
    env)."""
    root = tmp_path_factory.mktemp("serve") / "proj"
    root.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PRODGAN_ROOT", str(root))
        mp.setenv("PRODGAN_HOME", str(root / ".prodgan"))
        for key in ("MLFLOW_TRACKING_URI", "TMPDIR", "PREFECT_HOME"):
            mp.delenv(key, raising=False)
        settings = configure_environment(Settings.load())
        mp.setenv("MLFLOW_TRACKING_URI", settings.tracking_uri)
        run_id = registry_helpers.train_run(settings, seed=3)
        version = promotion_register(settings, run_id).version
        # `mlflow models serve` runs `uvicorn` from PATH: the venv's bin must be on it, as in an
        # activated venv
        env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        yield settings, f"models:/{settings.model_name}/{version}", env


@pytest.fixture(scope="module")
def mlflow_url(registered, tmp_path_factory) -> Iterator[str]:
    settings, uri, env = registered
    with mlflow_serve(uri, tmp_path_factory.mktemp("logs") / "mlflow-serve.log", env) as url:
        yield url


def test_generates_pngs_deterministically(mlflow_url):
    spec = registry_helpers.SPEC
    status, body = post(
        mlflow_url,
        records(
            {"seed": 7, "category": "trouser", "n": 3},
            {"seed": 8, "category": "2", "n": 1},
            {"seed": 7, "n": 2},
        ),
    )
    assert status == 200, body
    rows = body["predictions"]
    assert [(r["seed"], r["category"], r["index"]) for r in rows] == [
        (7, "trouser", 0),
        (7, "trouser", 1),
        (7, "trouser", 2),
        (8, "pullover", 0),
        (7, rows[4]["category"], 0),
        (7, rows[5]["category"], 1),
    ]
    assert {rows[4]["category"], rows[5]["category"]} <= set(
        spec.categories
    )  # no category: balanced over all
    for row in rows:
        assert decode(row["png_base64"]).shape == (
            spec.size,
            spec.size,
        )  # grayscale PNG of the model's size

    _, again = post(mlflow_url, records({"seed": 7, "category": "TROUSER", "n": 3}))
    assert [r["png_base64"] for r in again["predictions"]] == [r["png_base64"] for r in rows[:3]]
    _, other = post(mlflow_url, records({"seed": 9, "category": "trouser", "n": 1}))
    assert other["predictions"][0]["png_base64"] != rows[0]["png_base64"]


@pytest.mark.parametrize(
    "body, status, words",
    [
        ('{"dataframe_records": [{"seed": 1,', 400, ["JSON"]),
        (
            records({"seed": 1, "category": "hat"}),
            400,
            ["unknown category 'hat'", "t-shirt, trouser, pullover"],
        ),
        (
            records({"seed": 1, "n": MAX_IMAGES_PER_ROW + 1}),
            400,
            ["too large", str(MAX_IMAGES_PER_ROW)],
        ),
        (records({"seed": 1, "n": 0}), 400, ["too small"]),
        (records(*[{"seed": i, "n": MAX_IMAGES_PER_ROW} for i in range(5)]), 400, ["at most"]),
        (records({"n": 2}), 400, ["seed"]),
    ],
)
def test_bad_requests_get_4xx_and_the_server_keeps_answering(mlflow_url, body, status, words):
    got, answer = post(mlflow_url, body)
    assert got == status, answer
    for word in words:
        assert word in answer.get("message", ""), answer
    ok, _ = post(mlflow_url, records({"seed": 1}))
    assert ok == 200


def post_chunked(url: str, body: bytes) -> tuple[int, dict]:
    """POST `body` with Transfer-Encoding: chunked (no declared length), as a streaming client
    does."""
    import http.client
    import json
    from urllib.parse import urlparse

    where = urlparse(url)
    conn = http.client.HTTPConnection(where.hostname, where.port, timeout=60)
    try:
        chunks = iter([body[i : i + 1024] for i in range(0, len(body), 1024)])
        conn.request(
            "POST",
            "/invocations",
            body=chunks,
            headers={"Content-Type": "application/json"},
            encode_chunked=True,
        )
        resp = conn.getresponse()
        data = resp.read()
        try:
            return resp.status, json.loads(data or b"{}")
        except ValueError:
            return resp.status, {"message": data.decode(errors="replace")}
    finally:
        conn.close()


def test_prodgan_serve_caps_the_body_and_refuses_a_missing_model(registered, tmp_path):
    settings, uri, env = registered
    with prodgan_serve(uri, tmp_path / "prodgan-serve.log", env, max_body_bytes=BODY_LIMIT) as url:
        status, body = post(url, records({"seed": 5, "category": "t-shirt", "n": 2}))
        assert status == 200 and len(body["predictions"]) == 2
        big = records(*[{"seed": i} for i in range(BODY_LIMIT // 10)])
        assert len(big) > BODY_LIMIT
        status, body = post(url, big)
        assert status == 413 and str(BODY_LIMIT) in body["message"]
        status, body = post_chunked(
            url, big[: BODY_LIMIT + 512].encode()
        )  # no Content-Length: streamed
        assert status == 413 and str(BODY_LIMIT) in body["message"], body
        assert post(url, records({"seed": 5}))[0] == 200

    missing = run(
        [sys.executable, "-m", "prodgan", "serve", "--model", f"models:/{settings.model_name}/99"],
        cwd=Path(settings.root),
        check=False,
        env=env,
    )
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert "99" in missing.stderr
