"""Importing a shop's own photos:
bad files, every image mode, EXIF, splits, category names, determinism.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from prodgan.adapters import dvc
from prodgan.data.folder import normalise, write_folder
from prodgan.data.layout import read_meta
from prodgan.settings import Settings
from tests.conftest import prodgan
from tests.products.helpers import CLOTHING, clothing_subset, png_header_only


def _modes_and_bad_files(folder: Path) -> dict[str, str]:
    """Every mode the importer must convert, an EXIF-rotated copy, and the four bad files of the
    issue."""
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (48, 80, 3), dtype=np.uint8)
    Image.fromarray(rgb).convert("CMYK").save(folder / "cmyk.jpg", quality=95)
    Image.fromarray(rng.integers(0, 65536, (64, 48)).astype(np.uint16)).save(folder / "gray16.png")
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE).save(folder / "palette.png")
    Image.fromarray(rng.integers(0, 256, (50, 50, 2), dtype=np.uint8), "LA").save(folder / "la.png")
    Image.fromarray(rgb[..., 0]).save(folder / "gray.jpg")
    # the same photo stored upright, and stored sideways with EXIF orientation 6
    # ("rotate 90 clockwise to view")
    upright = Image.fromarray(rng.integers(0, 256, (40, 70, 3), dtype=np.uint8))
    upright.save(folder / "upright.png")
    exif = Image.Exif()
    exif[0x0112] = 6
    upright.transpose(Image.Transpose.ROTATE_90).save(folder / "sideways.png", exif=exif)
    (folder / "empty.jpg").write_bytes(b"")
    good_jpeg = sorted((CLOTHING / "train" / "hat").iterdir())[0].read_bytes()
    (folder / "truncated.jpg").write_bytes(good_jpeg[: len(good_jpeg) // 2])
    (folder / "notes.jpg").write_text("this is a text file named .jpg\n")
    png_header_only(folder / "bomb.png", 20000, 20000)
    return {
        "empty.jpg": "empty file",
        "truncated.jpg": "truncated",
        "notes.jpg": "not an image",
        "bomb.png": "decompression bomb",
        "sideways.png": "duplicate of",
    }


def test_bad_photos_are_listed_and_skipped_and_every_mode_converts(
    project: Settings, tmp_path: Path
) -> None:
    src = clothing_subset(tmp_path / "shoot", {"hat": (4, 0), "skirt": (4, 0)}, split_layout=False)
    expected = _modes_and_bad_files(src / "hat")
    proc = prodgan(
        "data",
        "import",
        "folder",
        str(src),
        "--name",
        "shop",
        "--size",
        "32",
        "--min-test",
        "1",
        cwd=project.root,
    )
    assert "Traceback" not in proc.stdout + proc.stderr
    for name, reason in expected.items():
        line = next((ln for ln in proc.stdout.splitlines() if f"hat/{name}" in ln), "")
        assert "skipped" in line and reason in line, (name, proc.stdout)
    meta = read_meta(project.data_dir / "shop")
    assert (
        meta.total() == 8 + 6
    )  # 8 photos + cmyk, gray16, palette, la, gray, upright (its sideways twin is a duplicate)
    for png in (project.data_dir / "shop").rglob("*.png"):
        with Image.open(png) as img:
            assert img.mode == "RGB" and img.size == (32, 32)


def test_pad_colour_comes_from_the_border_and_crop_fills_the_square() -> None:
    grey = np.full((40, 80, 3), 128, dtype=np.uint8)
    grey[10:30, 30:50] = (200, 30, 30)
    padded = normalise(Image.fromarray(grey), 16, "RGB", "pad")
    assert tuple(padded[0, 8]) == (
        128,
        128,
        128,
    )  # the added band is the photo's own background, not white
    cropped = normalise(Image.fromarray(grey), 16, "RGB", "crop")
    assert cropped[8, 8, 0] > 180  # the product fills the centred square


def test_split_keys_ambiguous_labels_and_same_hash_from_two_folders(
    project: Settings, tmp_path: Path
) -> None:
    counts = {"hat": (30, 0), "skirt": (12, 0), "t-shirt": (14, 0)}
    first = clothing_subset(
        tmp_path / "a" / "photos", counts, rename={"t-shirt": "Men's T-Shirt"}, split_layout=False
    )
    shutil.copyfile(
        next((first / "hat").iterdir()), first / "skirt" / "filed-twice.jpg"
    )  # one photo, two categories
    report = write_folder(first, tmp_path / "out", "shop", size=16)
    assert report.meta.categories == ["hat", "men-s-t-shirt", "skirt"]
    assert report.meta.display["men-s-t-shirt"] == "Men's T-Shirt"
    assert report.meta.counts["test"] == {
        "hat": 10,
        "men-s-t-shirt": 7,
        "skirt": 6,
    }  # min_test 10, at most half
    ambiguous = [rel for rel, reason in report.skipped if reason.startswith("ambiguous label")]
    assert len(ambiguous) == 2 and "skirt/filed-twice.jpg" in ambiguous
    kept = write_folder(first, tmp_path / "out-first", "shop", size=16, ambiguous="first")
    assert kept.meta.total() == report.meta.total() + 1

    second = tmp_path / "elsewhere" / "copy"
    shutil.copytree(first, second)
    hashes = []
    for src in (first, second):
        shutil.rmtree(project.data_dir / "shop", ignore_errors=True)
        prodgan(
            "data", "import", "folder", str(src), "--name", "shop", "--size", "16", cwd=project.root
        )
        dvc.add(project)
        hashes.append((dvc.pinned(project)["md5"], dvc.dataset_hash(project, "shop")))
    assert hashes[0] == hashes[1]
    assert (
        json.loads((project.data_dir / "shop" / "dataset.json").read_text())["display"][
            "men-s-t-shirt"
        ]
        == "Men's T-Shirt"
    )


def test_existing_split_layout_is_kept(tmp_path: Path) -> None:
    src = clothing_subset(tmp_path / "shop", {"hat": (6, 3), "skirt": (5, 2)})
    (src / "validation" / "hat").mkdir(parents=True)
    shutil.copyfile(
        sorted((CLOTHING / "validation" / "hat").iterdir())[0], src / "validation" / "hat" / "v.jpg"
    )
    shutil.copyfile(
        sorted((src / "train" / "hat").iterdir())[0], src / "test" / "hat" / "leak.jpg"
    )  # a train photo in test
    report = write_folder(src, tmp_path / "out", "shop", size=16)
    assert report.meta.counts == {"train": {"hat": 7, "skirt": 5}, "test": {"hat": 3, "skirt": 2}}
    assert dict(report.skipped)["test/hat/leak.jpg"].startswith("duplicate of train/hat/")
