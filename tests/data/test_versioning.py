"""DVC versioning through the real `dvc` command, and the decoded-tensor cache keyed by its hash."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from prodgan.adapters import dvc
from prodgan.data.tensors import load_split
from prodgan.errors import ProdganError
from prodgan.settings import Settings
from tests.conftest import prodgan, run


def test_push_pull_round_trip_through_a_real_remote(small_project: Settings) -> None:
    pinned = dvc.pinned(small_project)["md5"]
    prodgan("data", "push", cwd=small_project.root)
    assert any(small_project.dvc_remote.rglob("*")), "remote holds the data"

    shutil.rmtree(small_project.data_dir)
    shutil.rmtree(small_project.root / ".dvc" / "cache")
    proc = prodgan("data", "pull", cwd=small_project.root)
    assert pinned in proc.stdout
    assert prodgan("data", "status", cwd=small_project.root).returncode == 0
    assert len(list(small_project.data_dir.rglob("*.png"))) == 600


def test_status_names_changed_files_and_training_gate_refuses(small_project: Settings) -> None:
    before = dvc.pinned(small_project)["md5"]
    victim = next((small_project.data_dir / "fashion-mnist" / "train" / "bag").glob("*.png"))
    assert dvc.require_clean(small_project)  # records the clean state
    Image.new("L", (28, 28), 0).save(victim)
    proc = prodgan("data", "status", cwd=small_project.root, check=False)
    assert proc.returncode == 1
    assert f"modified: data/fashion-mnist/train/bag/{victim.name}" in proc.stdout
    with pytest.raises(ProdganError, match="differs from data.dvc"):
        dvc.require_clean(small_project)
    new = dvc.add(small_project)
    assert new.data_hash != before
    assert dvc.require_clean(small_project) == new.data_hash


def test_version_matches_data_dvc(small_project: Settings) -> None:
    out = prodgan("data", "version", cwd=small_project.root).stdout
    assert dvc.pinned(small_project)["md5"] in out
    head = dvc.git(small_project.root, "rev-parse", "HEAD").stdout.strip()
    assert head in out


def test_tensor_cache_is_keyed_by_hash(small_project: Settings) -> None:
    data_hash = dvc.require_clean(small_project)
    root = small_project.data_dir / "fashion-mnist"
    split = load_split(small_project.tensor_cache_dir, root, "train", data_hash)
    assert split.images.shape == (300, 1, 28, 28) and split.images.dtype == np.uint8
    assert split.labels.shape == (300,) and set(split.labels) <= set(range(10))
    cache_file = small_project.tensor_cache_dir / data_hash / "fashion-mnist" / "train.npz"
    assert cache_file.is_file()

    # the cached tensors are the decoded PNGs
    first_png = sorted((root / "train" / split.categories[split.labels[0]]).glob("*.png"))[0]
    assert np.array_equal(np.asarray(Image.open(first_png)), split.images[0, 0])

    # a new hash never reuses the old tensors
    other = load_split(small_project.tensor_cache_dir, root, "train", "another-hash")
    assert np.array_equal(other.images, split.images)
    assert (
        small_project.tensor_cache_dir / "another-hash" / "fashion-mnist" / "train.npz"
    ).is_file()


def test_datasets_side_by_side_keep_their_own_versions(small_project: Settings, tmp_path) -> None:
    """A second dataset beside Fashion-MNIST: each has its own hash; changing one leaves the other
    alone."""
    from prodgan.ops.validate import require_validated, validate

    fmnist = dvc.dataset_hash(small_project, "fashion-mnist")
    assert fmnist != dvc.pinned(small_project)["md5"]
    validate(small_project, "fashion-mnist")
    rng = np.random.default_rng(0)
    for cat in ("boots", "bags"):
        (tmp_path / "shoot" / cat).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)).save(
                tmp_path / "shoot" / cat / f"{i}.png"
            )
    prodgan(
        "data",
        "import",
        "folder",
        str(tmp_path / "shoot"),
        "--name",
        "shop",
        "--size",
        "16",
        "--min-test",
        "2",
        cwd=small_project.root,
    )
    dvc.add(small_project)
    shop = dvc.dataset_hash(small_project, "shop")
    assert dvc.dataset_hash(small_project, "fashion-mnist") == fmnist != shop
    assert (
        require_validated(small_project, "fashion-mnist").data_hash == fmnist
    )  # still valid: its data did not change
    out = prodgan("data", "version", "--dataset", "shop", cwd=small_project.root).stdout
    assert shop in out and "files     13" in out  # 12 photos + dataset.json

    victim = next((small_project.data_dir / "shop" / "train" / "bags").glob("*.png"))
    Image.new("RGB", (16, 16), 0).save(victim)
    assert (
        dvc.require_clean(small_project, "fashion-mnist") == fmnist
    )  # the other dataset may still train
    with pytest.raises(ProdganError, match="data/shop differs"):
        dvc.require_clean(small_project, "shop")
    proc = prodgan("data", "version", "--dataset", "nope", cwd=small_project.root, check=False)
    assert (
        proc.returncode != 0
        and "no dataset 'nope'" in proc.stderr
        and "Traceback" not in proc.stderr
    )


def test_new_project_commits_the_default_remote_and_ignores_its_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PRODGAN_DVC_REMOTE is one person's remote: it goes to the untracked config.local, and
    prodgan's own state folder is git-ignored in the user's project."""
    root = tmp_path / "shop"
    root.mkdir()
    run(["git", "init", "-q"], root)
    monkeypatch.setenv("PRODGAN_ROOT", str(root))
    monkeypatch.setenv("PRODGAN_HOME", str(root / ".prodgan"))
    monkeypatch.setenv("PRODGAN_DVC_REMOTE", str(tmp_path / "mine"))
    dvc.ensure_repo(Settings.load())
    assert "../prodgan-dvc-remote" in (root / ".dvc" / "config").read_text()
    assert "mine" not in (root / ".dvc" / "config").read_text()
    assert str(tmp_path / "mine") in (root / ".dvc" / "config.local").read_text()
    (root / ".prodgan").mkdir()
    (root / ".prodgan" / "mlflow.db").write_bytes(b"")
    assert (
        run(["git", "check-ignore", "-q", ".prodgan/mlflow.db"], root, check=False).returncode == 0
    )
