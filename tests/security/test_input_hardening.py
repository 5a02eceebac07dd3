"""Dataset import treats its input as hostile: symlinks, escaping paths, bombs, odd file names."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from prodgan.data.folder import write_folder
from prodgan.data.layout import MAX_IMAGE_PIXELS
from prodgan.errors import ProdganError

HOSTILE_NAMES = [
    "$(touch PWNED).png",
    "`touch PWNED`.png",
    "{0.__class__}.png",
    "%s%n%x.png",
    "-rf .png",
    "a;b|c&d.png",
]


def _photo(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((12, 12, 3), value, dtype=np.uint8)).save(path)


def _good_photos(src: Path, n: int = 8) -> None:
    """Enough distinct photos that the content-hash split leaves some in train."""
    for i in range(n):
        _photo(src / "shoe" / f"good{i}.png", 100 + i)


def _written(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*") if p.is_file())


def test_symlinks_and_escaping_paths_are_refused(tmp_path: Path) -> None:
    src, outside = tmp_path / "src", tmp_path / "outside"
    _good_photos(src)
    _photo(outside / "secret" / "secret.png", 200)
    (src / "stolen").symlink_to(
        outside / "secret", target_is_directory=True
    )  # a category that leaves the source
    (src / "shoe" / "link.png").symlink_to(outside / "secret" / "secret.png")
    report = write_folder(src, tmp_path / "out", "shop", size=8)
    refused = dict(report.skipped)
    assert refused["stolen"] == "symlink refused" and refused["shoe/link.png"] == "symlink refused"
    assert report.meta.categories == ["shoe"] and report.meta.total() == 8
    assert all(
        out.resolve().is_relative_to((tmp_path / "out").resolve())
        for out in _written(tmp_path / "out")
    )

    (tmp_path / "src-link").symlink_to(src, target_is_directory=True)
    with pytest.raises(ProdganError, match="symlink"):
        write_folder(tmp_path / "src-link", tmp_path / "out2", "shop", size=8)


def test_decompression_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _good_photos(src)
    side = int(MAX_IMAGE_PIXELS**0.5) + 64
    Image.new("1", (side, side)).save(
        src / "shoe" / "bomb.png"
    )  # a few KiB on disk, > MAX_IMAGE_PIXELS decoded
    assert (src / "shoe" / "bomb.png").stat().st_size < 100_000
    report = write_folder(src, tmp_path / "out", "shop", size=8)
    reason = dict(report.skipped)["shoe/bomb.png"]
    assert "pixel" in reason and report.meta.total() == 8


def test_file_names_are_data_not_commands_or_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    for i, name in enumerate(HOSTILE_NAMES):
        _photo(src / "shoe" / name, 20 + 10 * i)
    monkeypatch.chdir(tmp_path)
    report = write_folder(src, tmp_path / "out", "shop", size=8)
    assert report.meta.total() == len(HOSTILE_NAMES) and not report.skipped
    assert not (tmp_path / "PWNED").exists() and not (src / "shoe" / "PWNED").exists()
    names = [p.name for p in _written(tmp_path / "out")]
    assert all(
        len(n) == len("0123456789abcdef.png") and n[:16].isalnum() for n in names
    )  # renamed to content hashes
    assert sorted(os.listdir(src / "shoe")) == sorted(HOSTILE_NAMES)  # the source is left untouched
