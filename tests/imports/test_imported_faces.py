"""An imported generator through the faces a user types, on one real project (sqlite MLflow, DVC,
GX): `prodgan register --model ...` as a subprocess, `mlflow models serve` on the production copy
after promotion, and `edit interpolate` / `edit transfer` on the imported version.

The network is test_import_formats' outside generator (not a prodgan architecture), untrained and
exported once as `.pt2`; the project promotes through a gate file without the champion comparison.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest
import torch

from prodgan import names
from prodgan.adapters import registry, tracking
from prodgan.errors import ProdganError
from prodgan.settings import Settings
from tests.conftest import prodgan
from tests.imports import test_import_formats as formats
from tests.imports.test_import_formats import OutsideGenerator, export, versions, write_spec
from tests.serve.helpers import decode, mlflow_serve, post, records

pytestmark = pytest.mark.slow

CODE_URL, CODE_REV = "https://example.org/outside-gan.git", "0a1b2c3"
project, validated = formats.project, formats.validated  # that module's fixtures, for this one


@pytest.fixture(scope="module")
def outside_files(tmp_path_factory) -> dict[str, Path]:
    """The outside network as `.pt2`, its honest spec, and a spec that lies about its size."""
    out = tmp_path_factory.mktemp("outside")
    torch.manual_seed(2)
    return {
        "model": export(OutsideGenerator().eval(), "pt2", out / "generator.pt2"),
        "spec": write_spec(out / "spec.yaml"),
        "lying spec": write_spec(
            out / "lying.yaml", output={"channels": 1, "resolution": 64, "range": [0, 1]}
        ),
    }


def register_cli(settings: Settings, model: Path, spec: Path):
    """`prodgan register --model ... --spec ...`, typed as a user would, in the project folder."""
    return prodgan(
        "register",
        "--model",
        str(model),
        "--spec",
        str(spec),
        "--dataset",
        "fashion-mnist",
        "--code-url",
        CODE_URL,
        "--code-rev",
        CODE_REV,
        cwd=Path(settings.root),
        check=False,
    )


@pytest.fixture(scope="module")
def imported(validated: Settings, outside_files) -> str:
    """The version `prodgan register --model` made (the CLI's own output names it)."""
    done = register_cli(validated, outside_files["model"], outside_files["spec"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "imported pt2 generator.pt2" in done.stdout, done.stdout
    return done.stdout.split(" v", 1)[1].split()[0]


def test_register_cli_refuses_a_lying_spec_in_one_line_and_registers_nothing(
    validated, outside_files
):
    before = versions(validated)
    refused = register_cli(validated, outside_files["model"], outside_files["lying spec"])
    assert refused.returncode != 0
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "output.resolution: 64" in lines[0], refused.stderr
    assert "Traceback" not in refused.stdout + refused.stderr
    assert versions(validated) == before


def test_register_cli_imports_a_version_with_the_lineage_tags(validated, outside_files, imported):
    mv = registry.client_for(validated).get_model_version(validated.model_name, imported)
    spec_bytes, model_bytes = (outside_files[k].read_bytes() for k in ("spec", "model"))
    assert mv.tags[names.MODEL_KIND] == "pt2"
    assert mv.tags[names.IMPORTED_FILE] == "generator.pt2"
    assert mv.tags[names.CODE_URL] == CODE_URL and mv.tags[names.GIT_REV] == CODE_REV
    assert mv.tags[names.SPEC_SHA] == hashlib.sha256(spec_bytes).hexdigest()
    assert mv.tags[names.WEIGHTS] == hashlib.sha256(model_bytes).hexdigest()
    run = registry.client_for(validated).get_run(mv.run_id).data.tags  # the import's own run
    assert run[names.DATASET] == "fashion-mnist"
    assert len(mv.tags[names.DATA_HASH]) > 20 and run[names.DATA_HASH] == mv.tags[names.DATA_HASH]


def test_mlflow_models_serve_answers_from_the_imported_production_copy(
    validated, outside_files, imported, tmp_path
):
    from prodgan.ops import evaluate, promote

    settings = validated
    run = evaluate.evaluate(settings, f"models:/{settings.model_name}/{imported}")
    client = registry.client_for(settings)
    trained = client.get_model_version(settings.model_name, imported)
    inputs = client.get_run(run.run_id).inputs.model_inputs  # what docs/registry.md says is there
    assert [m.model_id for m in inputs] == [tracking.logged_model_id(trained)]
    decision = promote.promote(settings, imported, actor="tester")
    assert decision.approved, decision.reasons
    production = names.production_model(settings.model_name)
    champion = client.get_model_version_by_alias(production, "champion")
    model_sha = hashlib.sha256(outside_files["model"].read_bytes()).hexdigest()
    assert champion.tags[names.WEIGHTS] == model_sha  # the copy holds the imported file

    # `mlflow models serve` runs `uvicorn` from PATH: the venv's bin must be on it
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    with mlflow_serve(f"models:/{production}@champion", tmp_path / "serve.log", env) as url:
        status, body = post(url, records({"seed": 5, "category": "sneaker", "n": 2}))
        assert status == 200, body
        bad, answer = post(url, records({"seed": 5, "category": "hat"}))
    rows = body["predictions"]
    assert [(r["category"], r["index"]) for r in rows] == [("sneaker", 0), ("sneaker", 1)]
    pixels = [decode(r["png_base64"]) for r in rows]
    assert pixels[0].shape == (28, 28) and (pixels[0] != pixels[1]).any()  # the spec's 1x28x28
    assert bad == 400 and "unknown category 'hat'" in answer.get("message", ""), answer


def test_edit_interpolates_within_a_category_transfers_and_refuses_a_category_blend(
    validated, imported, tmp_path
):
    from PIL import Image

    from prodgan.ops import edit

    settings, model = validated, f"models:/{validated.model_name}/{imported}"
    strip = edit.interpolate(
        settings, tmp_path / "strip.png", category_a="sneaker", steps=4, model=model
    )
    with Image.open(strip["out"]) as png:
        width, height = png.size
    assert 4 * 28 <= width < 5 * 28 and 28 <= height < 2 * 28  # one row of four 28x28 images
    assert strip["start"]["category"] == strip["end"]["category"] == "sneaker"

    moved = edit.transfer(
        settings, tmp_path / "transfer.png", ["bag", "trouser"], category="sneaker", model=model
    )
    assert moved["from"] == "sneaker" and moved["to"] == ["bag", "trouser"]

    with pytest.raises(ProdganError) as refused:
        edit.interpolate(
            settings,
            tmp_path / "blend.png",
            category_a="sneaker",
            category_b="bag",
            steps=4,
            model=model,
        )
    message = str(refused.value)
    assert "\n" not in message
    for words in ("cannot blend", "within one category", "edit transfer"):
        assert words in message, message
    assert not (tmp_path / "blend.png").exists()
