"""Samples-only evaluation (`prodgan evaluate --images`): the same protocol and calibration as a
model's evaluation, logged under the samples' pixel hash, never promotable; bad samples refused.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from prodgan import names
from prodgan.adapters import registry
from prodgan.data.samples import read_samples
from prodgan.errors import ProdganError
from prodgan.settings import Settings
from tests.conftest import prodgan
from tests.security.test_pixel_limits import _png_header_claiming

COUNT = 30


def _train_images(settings: Settings, count: int = COUNT) -> list[Path]:
    return sorted((settings.data_dir / "fashion-mnist" / "train").rglob("*.png"))[:count]


def _read(path: Path, channels: int = 1, size: int = 28):
    return read_samples(path, channels=channels, size=size, min_count=2, max_count=1000)


# ~40 s of CPU: 30 samples + 30 real + 30 floor + 30 noise images through InceptionV3, MLflow,
# then the same samples again as an array (features cached) in-process and through the CLI
@pytest.mark.slow
def test_samples_evaluate_like_a_model_and_cannot_be_promoted(small_project: Settings) -> None:
    from prodgan.ops import production
    from prodgan.ops.evaluate import evaluate_samples
    from prodgan.ops.promote import promote

    folder = small_project.root / "samples"
    folder.mkdir()
    pixels = []
    for index, source in enumerate(_train_images(small_project)):
        (folder / f"{index:03d}.png").write_bytes(source.read_bytes())
        pixels.append(np.asarray(Image.open(source)))
    array = small_project.root / "samples.npz"
    np.savez_compressed(array, images=np.stack(pixels))  # NHW, as a grayscale pipeline writes

    run = evaluate_samples(small_project, folder, "fashion-mnist", use_evaluator=False)
    again = evaluate_samples(small_project, array, "fashion-mnist", use_evaluator=False)

    assert run.samples_sha256 == again.samples_sha256, "the hash is of pixels, not of files"
    assert run.protocol == again.protocol and run.metrics == again.metrics
    client = registry.client_for(small_project)
    logged = client.get_run(run.run_id)
    tags = logged.data.tags
    assert tags[names.KIND] == names.SAMPLES_KIND
    assert tags[names.SAMPLES_SHA] == run.samples_sha256
    assert names.WEIGHTS not in tags and names.TRAIN_RUN not in tags
    assert tags[names.NOISE_REFERENCE].startswith("prodgan dcgan width 64 z 128")
    assert tags[names.PROTOCOL] == run.protocol
    # the model protocol's calibration: floor and noise beside the metrics, each on its side
    n = f"{COUNT}"
    assert logged.data.metrics[f"fid_{n}_floor"] < logged.data.metrics[f"fid_{n}_noise"]
    assert {f"fid_{n}", f"kid_{n}", f"precision_{n}", f"memorization_{n}"} <= set(
        logged.data.metrics
    )
    assert f"cond_acc_{n}" not in logged.data.metrics, "samples carry no labels"

    shown = prodgan(
        "evaluate",
        "--images",
        str(array),
        "--dataset",
        "fashion-mnist",
        "--no-evaluator",
        cwd=small_project.root,
    )
    assert run.samples_sha256[:16] in shown.stdout and "cannot be promoted" in shown.stdout

    evaluation = registry.read_eval_run(client, run.run_id)
    with pytest.raises(ProdganError, match="samples-only evaluation") as refused:
        promote(small_project, f"runs:/{run.run_id}")
    assert "\n" not in str(refused.value)
    with pytest.raises(ProdganError, match="samples-only evaluation"):
        production.trusted(small_project, evaluation, None, "v1 of prodgan-generator")
    with pytest.raises(ProdganError, match="samples-only evaluation"):
        registry.attach_evaluation(small_project, small_project.model_name, "1", evaluation)


def test_bad_samples_are_refused_in_one_line(tmp_path: Path) -> None:
    rng = np.random.RandomState(0)
    gray = rng.randint(0, 256, (4, 28, 28), dtype=np.uint8)

    def folder(name: str, files: dict[str, bytes | Image.Image]) -> Path:
        where = tmp_path / name
        where.mkdir()
        for file_name, content in files.items():
            if isinstance(content, Image.Image):
                content.save(where / file_name)
            else:
                (where / file_name).write_bytes(content)
        return where

    ok = {f"{i}.png": Image.fromarray(a, "L") for i, a in enumerate(gray)}
    cases = {
        "is empty": folder("empty", {}),
        "is 32x32 L": folder("size", {**ok, "9.png": Image.fromarray(gray[0]).resize((32, 32))}),
        "is 28x28 RGB": folder("mode", {**ok, "9.png": Image.fromarray(gray[0]).convert("RGB")}),
        "not an image": folder("text", {**ok, "9.png": b"a caption, not pixels"}),
        "decompression bomb": folder(
            "bomb", {**ok, "9.png": base64.b64decode(_png_header_claiming(20000, 20000))}
        ),
        "is not an image file": folder("notes", {**ok, "notes.txt": b"seed 1"}),
        "holds float32 pixels": tmp_path / "float.npz",
        "need (N, 1, 28, 28)": tmp_path / "rgb.npz",
        "holds 1 sample(s)": tmp_path / "one.npz",
        "does not exist": tmp_path / "missing",
    }
    np.savez(tmp_path / "float.npz", images=gray.astype(np.float32) / 255)
    np.savez(tmp_path / "rgb.npz", images=np.stack([gray] * 3, axis=-1))
    np.savez(tmp_path / "one.npz", images=gray[:1])
    for reason, path in cases.items():
        with pytest.raises(ProdganError, match=re.escape(reason)) as refused:
            _read(path)
        assert "\n" not in str(refused.value), reason

    good = _read(folder("good", ok))
    assert good.images.shape == (4, 1, 28, 28) and good.images.dtype == np.uint8
    assert np.array_equal(good.images[:, 0], gray)


def test_cli_refuses_bad_samples_with_one_line(small_project: Settings) -> None:
    empty = small_project.root / "nothing-yet"
    empty.mkdir()
    proc = prodgan(
        "evaluate",
        "--images",
        str(empty),
        "--dataset",
        "fashion-mnist",
        cwd=small_project.root,
        check=False,
    )
    assert proc.returncode == 2 and "is empty" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
