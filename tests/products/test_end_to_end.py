"""A shop's photos end to end:
import -> validate -> train -> evaluate -> register -> promote -> generate -> serve.

200 photos of clothing-small, one category renamed as a shop would write it ("Men's T-Shirt"),
beside nothing else in a fresh project; every record on the way names the clothing dataset's hash,
and the champion is that of the clothing dataset's own registered model.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from PIL import Image

from prodgan import names
from prodgan.adapters import dvc, registry
from prodgan.ops import retrain as pipeline
from prodgan.ops.audit import dataset_lineage
from prodgan.settings import Settings
from tests.conftest import prodgan
from tests.flows.helpers import FAST
from tests.products.helpers import clothing_subset
from tests.serve.helpers import decode, post, prodgan_serve, records

CONFIG = "configs/products64-smoke.yaml"


def test_clothing_photos_from_import_to_serving(project: Settings, tmp_path: Path) -> None:
    src = clothing_subset(
        tmp_path / "shop",
        {c: (40, 10) for c in ("hat", "pants", "skirt", "t-shirt")},
        rename={"t-shirt": "Men's T-Shirt"},
    )
    prodgan(
        "data", "import", "folder", str(src), "--name", "clothing", "--size", "64", cwd=project.root
    )
    dvc.add(project)
    clothing = dvc.dataset_hash(project, "clothing")

    # the same steps `prodgan retrain` runs as a Prefect flow; a handful of training steps: what is
    # checked here is the records and the faces, not the samples' quality
    outcome = pipeline.retrain(project, CONFIG, FAST)
    assert outcome.validation.success and outcome.validation.data_hash == clothing
    assert outcome.decision.action == "promote", outcome.decision.reasons

    client = registry.client_for(project)
    train_tags = client.get_run(outcome.train.run_id).data.tags
    assert train_tags[names.DATA_HASH] == clothing and train_tags[names.DATASET] == "clothing"
    assert f":{clothing}@" in train_tags[names.VALIDATION]
    evaluation = client.get_run(outcome.evaluation.run_id)
    assert evaluation.data.tags[names.DATA_HASH] == clothing
    assert any(key.endswith("/men-s-t-shirt") for key in evaluation.data.metrics), sorted(
        evaluation.data.metrics
    )
    shop = project.for_dataset("clothing")
    assert (
        shop.model_name == f"{project.model_name}-clothing"
        and outcome.version.name == shop.model_name
    )
    champion = registry.champion_version(shop)
    assert (
        champion.version == outcome.version.version and champion.tags[names.DATA_HASH] == clothing
    )
    lineage = dataset_lineage(project, clothing)
    assert lineage["datasets"] == ["clothing"] and [v["aliases"] for v in lineage["versions"]] == [
        [names.CHAMPION]
    ]
    unknown = prodgan("audit", "dataset", "0123456789abcdef", cwd=project.root, check=False)
    assert (
        unknown.returncode != 0
        and unknown.stderr.strip().startswith("error: no training run")
        and "Traceback" not in unknown.stderr
    )

    grid = tmp_path / "grid.png"
    model = f"models:/{shop.model_name}@{names.CHAMPION}"
    out = prodgan(
        "generate",
        "--model",
        model,
        "--category",
        "Men's T-Shirt",
        "-n",
        "4",
        "--out",
        str(grid),
        cwd=project.root,
    ).stdout
    assert "Traceback" not in out
    with Image.open(grid) as img:
        assert img.mode == "RGB" and img.width > 4 * 64

    # a real test photo inverted into the champion (PSNR recorded), then moved to another category
    photo = sorted((src / "test" / "skirt").iterdir())[0]
    prodgan(
        "edit",
        "invert",
        str(photo),
        "--model",
        model,
        "--out-dir",
        str(tmp_path / "inv"),
        "--to",
        "Men's T-Shirt",
        "--steps",
        "40",
        "--restarts",
        "1",
        cwd=project.root,
    )
    inverted = json.loads((tmp_path / "inv" / "edit.json").read_text())
    assert 0 < inverted["psnr_db"] < 100 and inverted["transfer_to"] == ["men-s-t-shirt"], inverted
    with Image.open(tmp_path / "inv" / "transfer.png") as img:
        assert img.mode == "RGB"

    # `prodgan serve` of the champion over real HTTP (MLflow's scoring server behind the size cap)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    with prodgan_serve(model, tmp_path / "serve.log", env, 4096) as url:
        status, body = post(url, records({"seed": 7, "category": "Men's T-Shirt", "n": 2}))
    assert status == 200, body
    assert [r["category"] for r in body["predictions"]] == ["men-s-t-shirt"] * 2
    assert decode(body["predictions"][0]["png_base64"]).shape == (64, 64, 3)
