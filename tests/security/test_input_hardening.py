"""Input is hostile: dataset imports (symlinks, escaping paths, bombs, odd file names) and
command-line values (an unknown --dataset, a --port no socket takes) are refused in one line."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from prodgan.adapters import dvc
from prodgan.data.folder import write_folder
from prodgan.data.layout import MAX_IMAGE_PIXELS
from prodgan.errors import ProdganError
from prodgan.ops.data import import_folder, require_known
from prodgan.settings import Settings
from tests.conftest import prodgan

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


def _one_error_line(proc) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), (
        f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    )
    return lines[0]


def test_unknown_dataset_is_refused_naming_the_pinned_ones(
    small_project: Settings, tmp_path: Path
) -> None:
    """A typo in --dataset was "verified ...-nosuch: 0 audit records" (exit 0); a pinned dataset
    with no model yet, and the default one, are still known."""
    _good_photos(tmp_path / "shoot")
    import_folder(small_project, tmp_path / "shoot", "shop", size=8)
    dvc.add(small_project)
    assert require_known(small_project, "shop") == "shop"  # pinned, never trained
    assert require_known(small_project, "fashion-mnist") == "fashion-mnist"
    untrained = prodgan("audit", "verify", "--dataset", "shop", cwd=small_project.root)
    assert f"verified {small_project.model_for('shop')}:" in untrained.stdout, untrained.stdout
    commands = (["audit", "verify"], ["admin", "roles", "--dataset", "shop"], ["rollback"])
    for command in (*commands, ["audit", "history"]):
        proc = prodgan(*command, "--dataset", "nosuch", cwd=small_project.root, check=False)
        line = _one_error_line(proc)
        assert "'nosuch'" in line and "fashion-mnist, shop" in line, line


def test_serve_port_out_of_range_is_refused_while_parsing(tmp_path: Path) -> None:
    """`--port 99999` ended in an OverflowError traceback from the socket."""
    for port in ("99999", "0"):
        proc = prodgan("serve", "--port", port, cwd=tmp_path, check=False)
        assert (
            _one_error_line(proc)
            == f"error: --port {port} is not a TCP port; use one from 1 to 65535"
        )
