"""The folder suite on real photos:
a clean catalogue passes (imbalance only warns); real problems fail, named.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from PIL import Image

from prodgan.ops.validate import validate
from prodgan.settings import Settings
from tests.conftest import prodgan
from tests.products.helpers import clothing_subset


def test_catalogue_passes_with_warnings_and_real_problems_fail(
    project: Settings, tmp_path: Path
) -> None:
    src = clothing_subset(tmp_path / "shop", {"pants": (150, 6), "hat": (10, 6), "skirt": (12, 4)})
    # a test photo that is a train photo re-encoded (other bytes, same picture), and a blank "photo"
    with Image.open(sorted((src / "train" / "pants").iterdir())[0]) as img:
        img.save(src / "test" / "pants" / "reshot.jpg", quality=70)
    Image.new("RGB", (96, 128), (240, 240, 240)).save(src / "train" / "hat" / "blank.png")
    prodgan("data", "import", "folder", str(src), "--name", "shop", cwd=project.root)

    record = validate(project, "shop")
    failed = {f.rule.split(":")[0]: [o["file"] for o in f.offending] for f in record.failures}
    assert not record.success
    assert set(failed) == {
        "too small to evaluate",
        "leakage",
        "no single-colour or blank images (pixel std >= 2)",
    }, failed
    perceptual = next(
        f for f in record.failures if f.column == "perceptual_dup_distance"
    )  # the copy, by perceptual hash
    assert (
        perceptual.offending[0]["file"].endswith(".png")
        and "/pants/" in perceptual.offending[0]["value"]
    )
    assert len(failed["too small to evaluate"]) == 16  # skirt's rows
    assert [w.rule.split(" ")[0] for w in record.warnings] == [
        "balance"
    ]  # hat and skirt are starved: a warning only

    shutil.rmtree(project.data_dir / "shop")
    (src / "test" / "pants" / "reshot.jpg").unlink()
    (src / "train" / "hat" / "blank.png").unlink()
    clothing_subset(tmp_path / "more", {"skirt": (0, 6)})
    for photo in sorted((tmp_path / "more" / "test" / "skirt").iterdir())[4:]:
        shutil.copyfile(photo, src / "test" / "skirt" / photo.name)
    prodgan("data", "import", "folder", str(src), "--name", "shop", cwd=project.root)
    proc = prodgan("data", "validate", "--dataset", "shop", cwd=project.root)
    assert (
        "passed shop" in proc.stdout
        and "1 warning" in proc.stdout
        and "balance (warning)" in proc.stdout
    )
