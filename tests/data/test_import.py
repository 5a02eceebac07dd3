"""Dataset import: determinism, folder import policy, and every bad input named in the issue."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from prodgan.adapters import dvc
from prodgan.data.fashion_mnist import CATEGORIES, DEBIAN_SOURCE
from prodgan.data.layout import read_meta
from prodgan.settings import Settings
from tests.conftest import prodgan


def _one_line_error(proc, *needles: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr + proc.stdout
    message = proc.stderr.strip()
    assert message.startswith("error:"), message
    for needle in needles:
        assert needle in message, message


def test_fashion_mnist_import_is_deterministic(project: Settings, tmp_path: Path) -> None:
    prodgan("data", "import", "fashion-mnist", "--limit", "40", cwd=project.root)
    first = dvc.add(project).data_hash
    meta = read_meta(project.data_dir / "fashion-mnist")
    assert meta.categories == CATEGORIES and meta.size == 28 and meta.mode == "L"
    assert meta.total("train") == 40 and meta.total("test") == 40
    files = sorted(p.relative_to(project.data_dir) for p in project.data_dir.rglob("*.png"))
    assert len(files) == 80 and all(
        p.parts[1] in ("train", "test") and p.parts[2] in CATEGORIES for p in files
    )

    shutil.rmtree(project.data_dir)
    prodgan("data", "import", "fashion-mnist", "--limit", "40", cwd=project.root)
    assert dvc.add(project).data_hash == first
    version = prodgan("data", "version", cwd=project.root).stdout
    assert first in version


def test_reimport_over_existing_dataset_keeps_hash(small_project: Settings) -> None:
    pinned = dvc.pinned(small_project)["md5"]
    prodgan("data", "import", "fashion-mnist", "--limit", "300", cwd=small_project.root)
    assert dvc.require_clean(small_project) == pinned


def _gz_copy(dst: Path, truncate_images: bool = False) -> Path:
    dst.mkdir()
    for f in DEBIAN_SOURCE.glob("*.gz"):
        shutil.copy(f, dst / f.name)
    if truncate_images:
        raw = gzip.decompress((dst / "t10k-images-idx3-ubyte.gz").read_bytes())
        (dst / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw[: len(raw) // 2]))
    return dst


@pytest.mark.parametrize(
    "case, needles",
    [
        ("missing", ["t10k-images-idx3-ubyte", "apt-get install dataset-fashion-mnist"]),
        ("truncated", ["t10k-images-idx3-ubyte", "truncated"]),
        ("cut-gzip", ["truncated"]),
    ],
)
def test_bad_idx_files_fail_cleanly(
    project: Settings, tmp_path: Path, case: str, needles: list[str]
) -> None:
    src = _gz_copy(tmp_path / "src", truncate_images=case == "truncated")
    if case == "missing":
        (src / "t10k-images-idx3-ubyte.gz").unlink()
    if case == "cut-gzip":
        blob = (src / "t10k-labels-idx1-ubyte.gz").read_bytes()
        (src / "t10k-labels-idx1-ubyte.gz").write_bytes(blob[: len(blob) // 2])
    proc = prodgan(
        "data", "import", "fashion-mnist", "--source", str(src), cwd=project.root, check=False
    )
    _one_line_error(proc, *needles)
    assert not (project.data_dir / "fashion-mnist").exists(), "nothing half-written"
    assert not list(project.data_dir.glob(".fashion-mnist*")) if project.data_dir.exists() else True


def test_unknown_dataset_name_is_a_usage_error(project: Settings) -> None:
    proc = prodgan("data", "import", "cifar-11", cwd=project.root, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "cifar-11" in proc.stderr


def test_target_holding_another_dataset_is_refused_and_kept(
    small_project: Settings, tmp_path: Path
) -> None:
    photos = _photo_folder(tmp_path / "photos")
    target = small_project.data_dir / "fashion-mnist"
    before = sorted(p.name for p in target.rglob("*.png"))
    proc = prodgan(
        "data",
        "import",
        "folder",
        str(photos),
        "--name",
        "fashion-mnist",
        cwd=small_project.root,
        check=False,
    )
    _one_line_error(proc, "different dataset", "--name")
    assert sorted(p.name for p in target.rglob("*.png")) == before


def _photo_folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for cat, shape in (("shoe", (40, 70, 3)), ("bag", (90, 30, 3))):
        (root / cat).mkdir(parents=True)
        for i in range(6):
            img = Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8))
            fmt = ("JPEG", "PNG", "WEBP")[i % 3]
            img.save(root / cat / f"{cat} {i}.{fmt.lower().replace('jpeg', 'jpg')}", format=fmt)
    (root / "shoe" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "bag" / "notes.txt").write_text("not an image")
    rgba = Image.fromarray(rng.integers(0, 255, (20, 20, 4), dtype=np.uint8), mode="RGBA")
    rgba.save(root / "bag" / "transparent.png")
    return root


def test_folder_import_normalises_and_reports_bad_files(project: Settings, tmp_path: Path) -> None:
    photos = _photo_folder(tmp_path / "photos")
    (photos / "bag" / "link.png").symlink_to(photos / "shoe" / "shoe 1.png")
    proc = prodgan(
        "data", "import", "folder", str(photos), "--name", "shop", "--size", "32", cwd=project.root
    )
    assert "shoe/broken.jpg" in proc.stdout and "unreadable" in proc.stdout
    assert "bag/notes.txt" in proc.stdout and "bag/link.png" in proc.stdout
    meta = read_meta(project.data_dir / "shop")
    assert meta.categories == ["bag", "shoe"] and meta.size == 32 and meta.mode == "RGB"
    assert meta.total() == 13  # 6 + 6 good photos + the flattened RGBA one
    for png in (project.data_dir / "shop").rglob("*.png"):
        with Image.open(png) as img:
            assert img.size == (32, 32) and img.mode == "RGB"
    # re-import: same content, same split, same bytes
    first = sorted(
        (p.relative_to(project.data_dir), p.read_bytes())
        for p in (project.data_dir / "shop").rglob("*.png")
    )
    prodgan(
        "data", "import", "folder", str(photos), "--name", "shop", "--size", "32", cwd=project.root
    )
    assert first == sorted(
        (p.relative_to(project.data_dir), p.read_bytes())
        for p in (project.data_dir / "shop").rglob("*.png")
    )


@pytest.mark.parametrize("case", ["empty", "no-images", "not-a-folder"])
def test_empty_or_unreadable_folder_fails_cleanly(
    project: Settings, tmp_path: Path, case: str
) -> None:
    src = tmp_path / "src"
    if case != "not-a-folder":
        src.mkdir()
    if case == "no-images":
        (src / "shoe").mkdir()
        (src / "shoe" / "a.jpg").write_bytes(b"garbage")
    proc = prodgan(
        "data", "import", "folder", str(src), "--name", "shop", cwd=project.root, check=False
    )
    _one_line_error(proc)
    assert not (project.data_dir / "shop").exists()
