"""The GX gate on real datasets:
the tiny Fashion-MNIST passes, each kind of damage fails naming the file.

Every test runs a real GX Checkpoint (file context, Data Docs) over a real manifest of real PNGs.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from prodgan.adapters import dvc
from prodgan.errors import GateFailed, ProdganError
from prodgan.ops.validate import (
    ValidationRecord,
    load_record,
    require_validated,
)
from prodgan.ops.validate import (
    validate as validate_dataset,
)
from prodgan.settings import Settings
from tests.conftest import prodgan

DATASET = "fashion-mnist"


def _root(settings: Settings) -> Path:
    return settings.data_dir / DATASET


def _first(settings: Settings, split: str, category: str, n: int = 0) -> Path:
    return sorted((_root(settings) / split / category).iterdir())[n]


def _rel(settings: Settings, path: Path) -> str:
    return path.relative_to(settings.root).as_posix()


def _offenders(record: ValidationRecord, rule_part: str) -> list[str]:
    matching = [f for f in record.failures if rule_part in f.rule]
    assert matching, (
        f"no failed rule containing {rule_part!r}; failures: {[f.rule for f in record.failures]}"
    )
    return [item["file"] for f in matching for item in f.offending]


# Each breaker damages the tiny Fashion-MNIST in one way and returns
# (rule fragment, file it must name).
def _truncated_png(s: Settings) -> tuple[str, str]:
    victim = _first(s, "train", "bag")
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    return "every image decodes", _rel(s, victim)


def _image_27x28(s: Settings) -> tuple[str, str]:
    victim = _first(s, "train", "coat")
    with Image.open(victim) as img:
        img.crop((0, 0, 27, 28)).save(victim)
    return "wide", _rel(s, victim)


def _rgb_in_grayscale(s: Settings) -> tuple[str, str]:
    victim = _first(s, "test", "dress")
    with Image.open(victim) as img:
        img.convert("RGB").save(victim)
    return "mode", _rel(s, victim)


def _train_copied_to_test(s: Settings) -> tuple[str, str]:
    source, victim = _first(s, "train", "sneaker"), _first(s, "test", "sneaker")
    shutil.copyfile(source, victim)
    return "bytes appear in both train and test", _rel(s, victim)


def _near_copy_in_test(s: Settings) -> tuple[str, str]:
    source, victim = _first(s, "train", "trouser"), _first(s, "test", "trouser")
    with Image.open(source) as img:
        pixels = np.asarray(img).copy()
    pixels[0, :3] = np.clip(
        pixels[0, :3].astype(int) + 5, 0, 255
    )  # three pixels nudged: new bytes, same picture
    Image.fromarray(pixels).save(victim)
    return "near-duplicate", _rel(s, victim)


def _unknown_category(s: Settings) -> tuple[str, str]:
    source = _first(s, "train", "shirt")
    target = _root(s) / "train" / "hats" / source.name
    target.parent.mkdir()
    source.rename(target)
    return "categories: only", _rel(s, target)


def _empty_category(s: Settings) -> tuple[str, str]:
    folder = _root(s) / "test" / "bag"
    for f in folder.iterdir():
        f.unlink()
    return "empty", _rel(s, folder) + "/"


def _duplicate_in_split(s: Settings) -> tuple[str, str]:
    source, victim = _first(s, "train", "sandal", 0), _first(s, "train", "sandal", 1)
    shutil.copyfile(source, victim)
    return "duplicates", _rel(s, victim)


def _blank_image(s: Settings) -> tuple[str, str]:
    victim = _first(s, "test", "pullover")
    Image.new("L", (28, 28), 0).save(victim)
    return "blank", _rel(s, victim)


BREAKERS = [
    _truncated_png,
    _image_27x28,
    _rgb_in_grayscale,
    _train_copied_to_test,
    _near_copy_in_test,
    _unknown_category,
    _empty_category,
    _duplicate_in_split,
    _blank_image,
]


def test_broken_dataset_fails_naming_each_file(small_project: Settings) -> None:
    """Nine kinds of damage, each in a different split/category so none can hide another."""
    expected = [breaker(small_project) for breaker in BREAKERS]
    record = validate_dataset(small_project, DATASET)
    assert not record.success
    for rule, named in expected:
        assert named in _offenders(record, rule), (rule, named)
    near = next(f for f in record.failures if "near-duplicate" in f.rule)
    twin = _rel(small_project, _first(small_project, "train", "trouser"))
    assert any(
        str(o["value"]).endswith(f"from {twin}") for o in near.offending
    )  # a leak names its twin
    assert record.data_hash is None and record.data_key.startswith(
        "stat-"
    )  # changed data has no DVC hash yet
    assert Path(record.docs_path).is_file()
    with pytest.raises(ProdganError, match="prodgan data validate"):
        require_validated(small_project, DATASET)


def _outside_references(site: Path) -> list[str]:
    """Scripts, stylesheets and images of every Data Docs page that are remote, or local but missing
    (GX's own favicon link on validation pages points one folder too high: not a style, not
    checked)."""
    import re

    bad = []
    for page in site.rglob("*.html"):
        html = page.read_text()
        refs = re.findall(
            r'<(?:script[^>]*\ssrc|img[^>]*\ssrc|link[^>]*rel="stylesheet"[^>]*\shref)="([^"]+)"',
            html,
        )
        for ref in refs + re.findall(r"url\('([^']+)'\)", html):
            if re.match(r"(https?:)?//", ref) or not (page.parent / ref).is_file():
                bad.append(f"{page.name}: {ref}")
    return bad


def test_reference_check_rejects_cdn_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "here.css").write_text("")
    (tmp_path / "index.html").write_text(
        '<link rel="stylesheet" href="here.css"><script src="https://code.jquery.com/jquery-3.7.1.min.js">'
        '</script><link rel="stylesheet" href="gone.css"><img src="//x.org/a.png">'
    )
    assert _outside_references(tmp_path) == [
        "index.html: https://code.jquery.com/jquery-3.7.1.min.js",
        "index.html: gone.css",
        "index.html: //x.org/a.png",
    ]


def test_clean_dataset_passes_and_gates_training(small_project: Settings) -> None:
    record = validate_dataset(small_project, DATASET)
    assert record.success, [f.rule for f in record.failures]
    site = Path(record.docs_index).parent
    assert (
        len(list(site.rglob("*.html"))) >= 2 and _outside_references(site) == []
    )  # styled offline
    page = Path(record.docs_path).read_text()
    assert (
        "static/vendor/bootstrap@4.3.1/dist/css/bootstrap.min.css" in page
        and "integrity=" not in page
    )  # checked, then dropped
    pinned = dvc.dataset_hash(small_project, DATASET)
    assert record.data_hash == pinned and record.rows == 600 and not record.manifest_cached
    assert sum(record.counts["test"].values()) == 300
    assert "<html" in Path(record.docs_path).read_text().lower()
    assert load_record(small_project, DATASET, pinned) == record
    assert require_validated(small_project, DATASET) == record

    # Unchanged data under the same suite: the earlier result;
    # --fresh re-runs GX on the cached manifest.
    again = validate_dataset(small_project, DATASET)
    assert again.reused and again.timestamp == record.timestamp
    rerun = validate_dataset(small_project, DATASET, fresh=True)
    assert rerun.success and rerun.manifest_cached and not rerun.reused

    # A stricter suite in the project: what was validated under the old one no longer counts.
    local_suite = small_project.root / "evaluation" / "expectations" / "fashion-mnist.json"
    local_suite.parent.mkdir(parents=True)
    local_suite.write_text(
        Path(record.suite_path).read_text().replace('"min_value": 2.0', '"min_value": 3.0')
    )
    with pytest.raises(ProdganError, match="suite for fashion-mnist changed"):
        require_validated(small_project, DATASET)
    assert validate_dataset(small_project, DATASET).suite_path == str(local_suite)
    assert require_validated(small_project, DATASET).suite_sha256 != record.suite_sha256

    # Data edited after validation: refused until it is versioned...
    victim = _first(small_project, "train", "bag")
    with Image.open(victim) as img:
        Image.fromarray(255 - np.asarray(img)).save(victim)
    with pytest.raises(ProdganError, match="prodgan data validate"):
        require_validated(small_project, DATASET)
    # ...and once versioned, refused until the new hash is validated.
    dvc.add(small_project)
    with pytest.raises(ProdganError, match=r"has not been validated; run `prodgan data validate"):
        require_validated(small_project, DATASET)
    assert validate_dataset(small_project, DATASET).success
    assert (
        require_validated(small_project, DATASET).data_hash
        == dvc.dataset_hash(small_project, DATASET)
        != pinned
    )


def test_failed_validation_of_pinned_data_refuses_training(small_project: Settings) -> None:
    _blank_image(small_project)
    dvc.add(small_project)
    assert not validate_dataset(small_project, DATASET).success
    with pytest.raises(GateFailed, match="failed validation"):
        require_validated(small_project, DATASET)


def test_cli_names_offending_file_and_exits_1(small_project: Settings) -> None:
    _, named = _truncated_png(small_project)
    proc = prodgan("data", "validate", "--dataset", DATASET, cwd=small_project.root, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert named in proc.stdout and "Data Docs:" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_cli_usage_errors_exit_2(small_project: Settings) -> None:
    proc = prodgan(
        "data", "validate", "--dataset", "no-such-set", cwd=small_project.root, check=False
    )
    assert (
        proc.returncode == 2
        and "prodgan data import" in proc.stderr
        and "Traceback" not in proc.stderr
    )


def test_suite_gx_cannot_load_is_refused(small_project: Settings) -> None:
    """GX itself would log and skip an unknown expectation; the gate must refuse instead of checking
    less."""
    local_suite = small_project.root / "evaluation" / "expectations" / "fashion-mnist.json"
    local_suite.parent.mkdir(parents=True)
    local_suite.write_text(
        '{"name": "fashion-mnist", '
        '"expectations": [{"type": "expect_images_to_be_pretty", "kwargs": {}}]}'
    )
    with pytest.raises(ProdganError, match="expect_images_to_be_pretty.*not valid for GX"):
        validate_dataset(small_project, DATASET)
    assert load_record(small_project, DATASET, dvc.dataset_hash(small_project, DATASET)) is None
