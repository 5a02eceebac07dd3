"""A real catalogue on the first try (issue 25): the importer warns about what validation would
reject, every failure names the source photos and prints a fix that works, colour variants pass
while a re-encoded copy is caught.

Catalogues are built from clothing-small photos in temp folders (never copied into the repo).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from prodgan.data.folder import write_folder
from prodgan.data.layout import read_meta
from prodgan.errors import ProdganError
from prodgan.ops.validate import validate
from prodgan.settings import Settings
from tests.conftest import prodgan, run
from tests.products.helpers import CLOTHING, clothing_subset, colour_variant


def _photo(category: str, index: int, split: str = "train") -> Path:
    return sorted((CLOTHING / split / category).iterdir())[index]


def _most_colourful(category: str, candidates: int = 20) -> Path:
    def colour(photo: Path) -> float:
        with Image.open(photo) as img:
            ycc = np.asarray(img.convert("YCbCr"), dtype=np.float64)
        return float((np.hypot(ycc[..., 1] - 128, ycc[..., 2] - 128) > 20).mean())

    return max(sorted((CLOTHING / "train" / category).iterdir())[:candidates], key=colour)


def test_small_category_warned_at_import_and_the_printed_fix_passes_validation(
    project: Settings, tmp_path: Path
) -> None:
    src = clothing_subset(
        tmp_path / "shop",
        {"t-shirt": (16, 0), "pants": (30, 0)},
        rename={"t-shirt": "Tops & Tees"},
        split_layout=False,
    )
    with Image.open(_photo("pants", 40)) as img:  # an RGBA PNG named .jpg
        rgba = img.convert("RGBA")
    rgba.putalpha(200)
    rgba.save(src / "pants" / "transparent.jpg", format="PNG")

    imported = prodgan("data", "import", "folder", str(src), "--name", "shop", cwd=project.root)
    assert "0 skipped" in imported.stdout  # the RGBA file is read by content, flattened on white
    warning = re.search(
        r"warning: category 'Tops & Tees' has 8 train and 8 test.*", imported.stdout
    )
    assert warning and "--min-test 5" in warning.group(0), imported.stdout
    assert "not a git repository" not in imported.stdout

    proc = prodgan("data", "validate", "--dataset", "shop", cwd=project.root, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "category-level" in proc.stdout and "expected >= 10" in proc.stdout
    assert "source Tops & Tees/" in proc.stdout  # the photo, not only the imported hash
    fix = re.search(r"fix: 'Tops & Tees': re-import with (--min-test \d+)", proc.stdout)
    assert fix, proc.stdout
    assert "fix or remove the files listed" not in proc.stdout + proc.stderr

    before = (project.data_dir / "shop" / "dataset.json").read_bytes()
    strict = prodgan(
        "data", "import", "folder", str(src), "--name", "shop", "--strict", "--force",
        cwd=project.root, check=False,
    )  # fmt: skip
    assert strict.returncode != 0 and "--min-test 5" in strict.stderr
    assert (project.data_dir / "shop" / "dataset.json").read_bytes() == before

    flag, value = fix.group(1).split()
    again = prodgan(
        "data", "import", "folder", str(src), "--name", "shop", flag, value, "--force",
        cwd=project.root,
    )  # fmt: skip
    assert "warning" not in again.stdout
    passed = prodgan("data", "validate", "--dataset", "shop", cwd=project.root)
    assert "passed shop" in passed.stdout


def test_copy_caught_colour_variant_passes_and_every_fix_works(
    project: Settings, tmp_path: Path
) -> None:
    src = clothing_subset(tmp_path / "shop", {"shirt": (20, 6), "pants": (20, 6)})
    original = _photo("pants", 0)
    with Image.open(original) as img:  # resized to 3/4 and re-saved as JPEG q60, in test
        img.resize((img.width * 3 // 4, img.height * 3 // 4)).save(
            src / "test" / "pants" / "reshot.jpg", quality=60
        )
    colourful = _most_colourful("shirt")
    shutil.copyfile(colourful, src / "train" / "shirt" / colourful.name)
    colour_variant(Image.open(colourful)).save(src / "test" / "shirt" / "other-colour.png")
    Image.new("RGB", (96, 128), (240, 240, 240)).save(src / "train" / "shirt" / "blank.png")
    prodgan("data", "import", "folder", str(src), "--name", "shop", cwd=project.root)
    meta = read_meta(project.data_dir / "shop")
    by_hand = next(
        p for p, s in meta.sources.items() if s == "train/pants/" + _photo("pants", 1).name
    )
    (project.data_dir / "shop" / by_hand).unlink()  # what users do to a listed file: rows change

    record = validate(project, "shop")
    failed = {f.scope: f for f in record.failures}
    assert len(failed) == len(record.failures) == 3, [f.rule for f in record.failures]
    rows = failed["dataset"]
    assert rows.expected == f"exactly {meta.total()}" and rows.observed == meta.total() - 1
    assert "--force" in rows.fix and "never delete an imported file" in rows.fix
    copy = failed["split"]
    assert copy.column == "perceptual_dup_distance" and len(copy.offending) == 2
    named = {item["source"]: item["value"] for item in copy.offending}
    assert set(named) == {"test/pants/reshot.jpg", f"train/pants/{original.name}"}
    assert f"(source train/pants/{original.name})" in named["test/pants/reshot.jpg"]
    assert "other-colour" not in str(record.failures)  # a colour variant is not a copy
    blank = failed["file"]
    assert [item["source"] for item in blank.offending] == ["train/shirt/blank.png"]
    assert blank.fix.startswith("fix or remove the source photo listed")

    proc = prodgan(
        "data", "validate", "--dataset", "shop", "--fresh", cwd=project.root, check=False
    )
    for printed in (
        "dataset-level",
        "split-level",
        "file-level",
        f"expected exactly {meta.total()}",
    ):
        assert printed in proc.stdout, proc.stdout
    assert "source test/pants/reshot.jpg" in proc.stdout
    assert proc.stdout.count("fix:") == 3

    # the fixes as printed: remove the source photos listed, re-import with --force
    (src / "test" / "pants" / "reshot.jpg").unlink()
    (src / "train" / "shirt" / "blank.png").unlink()
    prodgan("data", "import", "folder", str(src), "--name", "shop", "--force", cwd=project.root)
    record = validate(project, "shop")
    assert record.success, [(f.rule, f.offending) for f in record.failures]
    assert record.rows == meta.total() - 2  # the colour variant is still there, and passes


def test_product_pattern_keeps_colour_variants_in_one_split(tmp_path: Path) -> None:
    src = tmp_path / "shop" / "Shirts & Tops"
    src.mkdir(parents=True)
    for i, photo in enumerate(sorted((CLOTHING / "train" / "shirt").iterdir())[:12]):
        shutil.copyfile(photo, src / f"SKU{i:02d}_blue.jpg")
        colour_variant(Image.open(photo)).save(src / f"SKU{i:02d}_red.png")

    def splits_per_product(pattern: str | None) -> dict[str, set[str]]:
        out = tmp_path / f"out-{pattern is None}"
        report = write_folder(src.parent, out, "shop", size=16, min_test=5, product_pattern=pattern)
        products: dict[str, set[str]] = {}
        for imported, source in report.meta.sources.items():
            products.setdefault(source.split("/")[1][:5], set()).add(imported.split("/")[0])
        assert report.meta.total("test") >= 5
        return products

    assert any(len(s) == 2 for s in splits_per_product(None).values())  # variants split apart
    assert all(len(s) == 1 for s in splits_per_product(r"^(SKU\d+)_").values())
    with pytest.raises(ProdganError, match="not a regular expression"):
        write_folder(src.parent, tmp_path / "bad", "shop", size=16, product_pattern="SKU(")


def test_import_outside_a_git_repository_says_git_init(tmp_path: Path) -> None:
    src = clothing_subset(tmp_path / "shop", {"hat": (12, 0)}, split_layout=False)
    plain = tmp_path / "plain"
    plain.mkdir()
    env = {**os.environ, "PRODGAN_ROOT": str(plain), "PRODGAN_HOME": str(plain / ".prodgan")}
    proc = run(
        [sys.executable, "-m", "prodgan", "data", "import", "folder", str(src), "--name", "hats"],
        cwd=plain,
        env=env,
    )
    assert "not a git repository" in proc.stdout and "git init" in proc.stdout
