"""The nightly deployment's flow on two datasets side by side: each retrains in its own model, only when it changed."""

from __future__ import annotations

import pytest
from PIL import Image

from flows.nightly import retrain_datasets
from prodgan import names
from prodgan.adapters import dvc, registry
from prodgan.errors import ProdganError
from prodgan.ops import retrain as pipeline
from prodgan.settings import Settings
from tests.conftest import prodgan
from tests.flows.helpers import FAST, artifact_markdown, parent_flow_run_id, versions
from tests.products.helpers import clothing_subset

RECIPES = {"fashion-mnist": "configs/smoke.yaml", "clothing": "configs/products64-smoke.yaml"}


@pytest.mark.slow
def test_nightly_retrains_each_dataset_in_its_own_model_and_only_the_changed_one(flow_project: Settings, tmp_path) -> None:
    shop = clothing_subset(tmp_path / "shop", {c: (40, 10) for c in ("hat", "pants", "skirt", "t-shirt")})
    prodgan("data", "import", "folder", str(shop), "--name", "clothing", "--size", "64", cwd=flow_project.root)
    dvc.add(flow_project)
    fmnist, clothing = flow_project, flow_project.for_dataset("clothing")
    assert fmnist.model_name != clothing.model_name

    first = retrain_datasets(recipes=RECIPES, overrides=FAST)
    assert {d: r["decision"] for d, r in first.items()} == {"fashion-mnist": "promote", "clothing": "promote"}, first
    assert [first[d]["model"] for d in RECIPES] == [fmnist.model_name, clothing.model_name]
    for settings, dataset in ((fmnist, "fashion-mnist"), (clothing, "clothing")):
        [mv] = versions(settings)  # one version each, in its own model, trained on its own data
        assert mv.tags[names.DATA_HASH] == dvc.dataset_hash(settings, dataset) == first[dataset]["data_hash"]
        assert registry.champion_version(settings).version == mv.version

    # one photo of the shop retaken (mirrored): only the shop's model retrains, judged against its own champion
    photo = sorted((flow_project.data_dir / "clothing" / "train").rglob("*.png"))[0]
    with Image.open(photo) as img:
        img.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(photo)
    dvc.add(flow_project)
    second = retrain_datasets(recipes=RECIPES, overrides=FAST)
    assert second["fashion-mnist"]["decision"] == "skipped" and "nothing changed" in second["fashion-mnist"]["reason"]
    assert second["clothing"]["freshness"].startswith("dataset changed"), second["clothing"]
    assert second["clothing"]["decision"] in ("promote", "reject") and second["clothing"]["version"] == "2"
    assert [str(mv.version) for mv in versions(fmnist)] == ["1"] and len(versions(clothing)) == 2

    # the nightly run's own artifact: one row per dataset
    nightly = parent_flow_run_id(second["clothing"]["orchestrator"][names.FLOW_RUN])
    table = artifact_markdown(nightly, "nightly-retrain")
    assert f"| fashion-mnist | {fmnist.model_name} | skipped |" in table and f"| clothing | {clothing.model_name} |" in table

    # what is scheduled is checked before anything runs
    assert pipeline.schedule(flow_project, {"clothing": "configs/products64.yaml"})[1] == ["fashion-mnist"]
    with pytest.raises(ProdganError, match="'clothing' has no recipe"):
        pipeline.schedule(flow_project, {"clothing": None})
    with pytest.raises(ProdganError, match="does not pin: shoes"):
        pipeline.schedule(flow_project, {"shoes": "configs/products64.yaml"})
