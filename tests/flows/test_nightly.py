"""The nightly deployment's flow on two datasets side by side:
each retrains in its own model, only when it changed.
"""

from __future__ import annotations

import re

import pytest
from PIL import Image

from flows.nightly import retrain_datasets
from prodgan import names
from prodgan.adapters import dvc, registry
from prodgan.errors import ProdganError
from prodgan.ops import retrain as pipeline
from prodgan.settings import Settings
from tests.conftest import prodgan
from tests.flows.helpers import FAST, artifact_markdown, parent_flow_run_id, train_runs, versions
from tests.products.helpers import clothing_subset

RECIPES = {"fashion-mnist": "configs/smoke.yaml", "clothing": "configs/products64-smoke.yaml"}


@pytest.mark.slow
def test_nightly_retrains_each_dataset_in_its_own_model_and_only_the_changed_one(
    flow_project: Settings, tmp_path
) -> None:
    # the shop of tests/products/test_end_to_end.py, byte for byte: one data hash, so whichever of
    # the two runs second finds its Inception features (category judge, real side) cached
    shop = clothing_subset(
        tmp_path / "shop",
        {c: (40, 10) for c in ("hat", "pants", "skirt", "t-shirt")},
        rename={"t-shirt": "Men's T-Shirt"},
    )
    prodgan(
        "data",
        "import",
        "folder",
        str(shop),
        "--name",
        "clothing",
        "--size",
        "64",
        cwd=flow_project.root,
    )
    dvc.add(flow_project)
    fmnist, clothing = flow_project, flow_project.for_dataset("clothing")
    assert fmnist.model_name != clothing.model_name

    first = retrain_datasets(recipes=RECIPES, overrides=FAST)
    assert {d: r["decision"] for d, r in first.items()} == {
        "fashion-mnist": "promote",
        "clothing": "promote",
    }, first
    assert [first[d]["model"] for d in RECIPES] == [fmnist.model_name, clothing.model_name]
    for settings, dataset in ((fmnist, "fashion-mnist"), (clothing, "clothing")):
        [mv] = versions(settings)  # one version each, in its own model, trained on its own data
        assert (
            mv.tags[names.DATA_HASH]
            == dvc.dataset_hash(settings, dataset)
            == first[dataset]["data_hash"]
        )
        assert registry.champion_version(settings).version == mv.version

    # one photo of the shop retaken (mirrored), and a second shop too small to train (3 photos)
    # scheduled beside it
    photo = sorted((flow_project.data_dir / "clothing" / "train").rglob("*.png"))[0]
    with Image.open(photo) as img:
        img.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(photo)
    tiny = clothing_subset(tmp_path / "tiny", {"hat": (3, 5), "skirt": (3, 5)})
    prodgan(
        "data",
        "import",
        "folder",
        str(tiny),
        "--name",
        "tiny",
        "--size",
        "64",
        cwd=flow_project.root,
    )
    dvc.add(flow_project)
    with pytest.raises(
        ProdganError,
        match="retrain failed for 1 of 3 datasets: tiny: dataset validation failed: tiny failed",
    ):
        retrain_datasets(
            recipes={**RECIPES, "tiny": "configs/products64-smoke.yaml"}, overrides=FAST
        )
    # the tiny shop stopped at validation, without stopping the others: only the changed shop's
    # model retrained, judged against its own champion
    assert [str(mv.version) for mv in versions(fmnist)] == ["1"] and len(versions(clothing)) == 2
    assert versions(flow_project.for_dataset("tiny")) == []
    [retrained] = [
        r
        for r in train_runs(flow_project)
        if r.data.tags[names.DATASET] == "clothing"
        and r.info.run_id != first["clothing"]["mlflow"]["train_run_id"]
    ]
    table = artifact_markdown(
        parent_flow_run_id(retrained.data.tags[names.FLOW_RUN]), "nightly-retrain"
    )
    assert f"| fashion-mnist | {fmnist.model_name} | skipped | - | nothing changed" in table, table
    assert re.search(rf"\| clothing \| {clothing.model_name} \| (promote|reject) \| 2 \|", table), (
        table
    )
    assert f"| tiny | {flow_project.model_for('tiny')} | failed |" in table, table

    # what is scheduled is checked before anything runs
    assert pipeline.schedule(flow_project, {"clothing": "configs/products64.yaml"})[1] == [
        "fashion-mnist",
        "tiny",
    ]
    with pytest.raises(ProdganError, match="'clothing' has no recipe"):
        pipeline.schedule(flow_project, {"clothing": None})
    with pytest.raises(ProdganError, match="does not pin: shoes"):
        pipeline.schedule(flow_project, {"shoes": "configs/products64.yaml"})
