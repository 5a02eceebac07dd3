"""The generic `folder` suite reads size, mode and categories from dataset.json
(GX suite parameters).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from prodgan.data.folder import write_folder
from prodgan.data.importer import import_into
from prodgan.ops.validate import validate as validate_dataset
from prodgan.settings import Settings


def _photos(src: Path, categories: tuple[str, ...], per_category: int) -> None:
    rng = np.random.default_rng(0)
    for category in categories:
        (src / category).mkdir(parents=True)
        for i in range(per_category):
            pixels = rng.integers(0, 256, size=(40, 30, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(src / category / f"{i}.jpg", quality=95)


def test_folder_dataset_checked_against_its_own_declaration(
    project: Settings, tmp_path: Path
) -> None:
    _photos(tmp_path / "shoots", ("boots", "bags"), per_category=24)
    import_into(
        project.data_dir,
        "shop",
        "folder",
        lambda out: write_folder(tmp_path / "shoots", out, "shop", size=16, mode="RGB").meta,
    )

    record = validate_dataset(project, "shop")  # never `dvc add`ed: keyed by file stats
    assert record.success, [(f.rule, f.offending[:2]) for f in record.failures]
    assert record.suite_name == "folder" and record.data_hash is None and record.notes

    # Grayscale where RGB is declared, and 17 px where 16 are: both named.
    victim = sorted((project.data_dir / "shop" / "train" / "bags").iterdir())[0]
    with Image.open(victim) as img:
        img.convert("L").resize((17, 16)).save(victim)
    record = validate_dataset(project, "shop")
    named = {f.rule: [o["file"] for o in f.offending] for f in record.failures}
    rel = victim.relative_to(project.root).as_posix()
    assert not record.success
    assert rel in named["mode: the PIL mode dataset.json declares (L or RGB)"]
    assert rel in named["size: as wide as dataset.json declares"]
