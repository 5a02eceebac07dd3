"""`prodgan generate` and `prodgan edit` on a tiny local generator bundle:
determinism, edits, bad input.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from prodgan import edit
from prodgan.errors import ProdganError
from prodgan.generate import category_index, parse_request
from prodgan.imaging import TITLE_HEIGHT
from prodgan.models import generate_uint8, latents, load_bundle
from tests.conftest import run
from tests.serve.helpers import EDIT_SPEC, tiny_bundle


def cli(*args: str, cwd: Path, check: bool = True):
    return run([sys.executable, "-m", "prodgan", *args], cwd=cwd, check=check)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return tiny_bundle(tmp_path_factory.mktemp("bundle") / "generator")


@pytest.fixture(scope="module")
def generator(bundle):
    return load_bundle(bundle)


def test_generate_is_deterministic_per_seed(bundle, tmp_path):
    for name in ("a", "b"):
        cli(
            "generate",
            "--bundle",
            str(bundle),
            "--category",
            "coat",
            "-n",
            "3",
            "--seed",
            "1",
            "--out-dir",
            str(tmp_path / name),
            cwd=tmp_path,
        )
    files = {d: [p.read_bytes() for p in sorted((tmp_path / d).glob("*.png"))] for d in ("a", "b")}
    assert len(files["a"]) == 3 and files["a"] == files["b"]
    record = json.loads((tmp_path / "a" / "generate.json").read_text())
    assert record["seed"] == 1 and {i["category"] for i in record["images"]} == {"coat"}

    cli(
        "generate",
        "--bundle",
        str(bundle),
        "--category",
        "coat",
        "-n",
        "3",
        "--seed",
        "2",
        "--out",
        str(tmp_path / "grid.png"),
        cwd=tmp_path,
    )
    with (
        Image.open(tmp_path / "grid.png") as grid,
        Image.open(tmp_path / "a" / "0000-coat.png") as first,
    ):
        size = EDIT_SPEC.size
        assert grid.size == (3 * (size + 2) + 2, TITLE_HEIGHT + size + 4)  # titled "coat"
        top = TITLE_HEIGHT + 2
        tile = np.asarray(grid)[top : top + size, 2 : 2 + size, 0]
        assert not np.array_equal(tile, np.asarray(first))  # another seed, other images
        assert np.asarray(grid)[:TITLE_HEIGHT].min() < 128  # the title is drawn


def test_grid_over_every_category_has_one_titled_column_each(bundle, tmp_path):
    n = 2 * len(EDIT_SPEC.categories)
    common = ("generate", "--bundle", str(bundle), "-n", str(n), "--seed", "4")
    cli(*common, "--out-dir", str(tmp_path / "each"), cwd=tmp_path)
    cli(*common, "--out", str(tmp_path / "grid.png"), "--nrow", "5", cwd=tmp_path)
    names = [p.stem.split("-", 1)[1] for p in sorted((tmp_path / "each").glob("*.png"))]
    assert names == list(EDIT_SPEC.categories) * 2  # category i % categories, in order
    size, columns = EDIT_SPEC.size, len(EDIT_SPEC.categories)
    with Image.open(tmp_path / "grid.png") as grid:
        assert grid.size == (columns * (size + 2) + 2, TITLE_HEIGHT + 2 * (size + 2) + 2)
        pixels = np.asarray(grid)
    for i, path in enumerate(sorted((tmp_path / "each").glob("*.png"))):
        row, col = divmod(i, columns)
        y, x = TITLE_HEIGHT + 2 + row * (size + 2), 2 + col * (size + 2)
        with Image.open(path) as img:
            assert np.array_equal(pixels[y : y + size, x : x + size, 0], np.asarray(img))


@pytest.mark.parametrize(
    "args, words",
    [
        (
            ["--category", "hat", "--out", "x.png"],
            ["unknown category 'hat'", "pullover, coat, sneaker"],
        ),
        (["-n", "3"], ["exactly one of --out"]),
    ],
)
def test_generate_bad_input_is_one_line(bundle, tmp_path, args, words):
    proc = cli("generate", "--bundle", str(bundle), *args, cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    for word in words:
        assert word in " ".join(proc.stderr.split()), proc.stderr
    assert not (tmp_path / "x.png").exists()


def test_request_parsing():
    assert (
        category_index(EDIT_SPEC, "Sneaker") == 2
        and category_index(EDIT_SPEC, "1") == 1
        and category_index(EDIT_SPEC, None) is None
    )
    assert parse_request(EDIT_SPEC, 4.0, 0, None).n == 1
    for bad in (
        dict(seed="x"),
        dict(seed=1, category=7),
        dict(seed=1, n=True),
        dict(seed=-1),
        dict(seed=1, n=0),
        dict(seed=1, n=10**6),
    ):
        with pytest.raises(ProdganError):
            parse_request(EDIT_SPEC, **bad)


def test_interpolate_and_transfer_keep_the_endpoints(generator):
    G, spec = generator
    z0, z1 = latents(1, spec.z_dim, 10)[0], latents(1, spec.z_dim, 11)[0]
    strip = edit.interpolate(G, spec, z0, z1, 0, 2, steps=6)
    start = generate_uint8(G, spec, 1, 10, labels=torch.tensor([0]))[0]
    end = generate_uint8(G, spec, 1, 11, labels=torch.tensor([2]))[0]
    assert (strip[0].int() - start.int()).abs().max() <= 1 and (
        strip[-1].int() - end.int()
    ).abs().max() <= 1
    step = max((strip[i + 1].float() - strip[i].float()).abs().mean() for i in range(5))
    assert (
        step < (end.float() - start.float()).abs().mean()
    )  # each step moves less than the whole way

    moved = edit.transfer(G, spec, z0, [0, 1, 2])
    assert torch.equal(moved[2], generate_uint8(G, spec, 1, 10, labels=torch.tensor([2]))[0])
    assert not torch.equal(moved[0], moved[1])


def test_invert_recovers_a_generated_product_and_its_category(generator):
    G, spec = generator
    labels = torch.tensor([1, 2])
    targets = generate_uint8(G, spec, 2, seed=21, labels=labels)
    found = edit.invert(G, spec, targets, seed=0, restarts=2, search_steps=60, refine_steps=90)
    unrelated = edit.psnr(targets[0], generate_uint8(G, spec, 1, seed=99, labels=labels[:1])[0])
    for result, label in zip(found, labels, strict=True):
        assert result.category == int(label)
        assert result.psnr > unrelated + 10 and result.psnr > 35, (result.psnr, unrelated)
        assert 0.9 < result.ssim <= 1.0
    assert edit.ssim(targets[0], targets[0]) == pytest.approx(1.0) and edit.psnr(
        targets[0], targets[0]
    ) == float("inf")


def test_edit_cli_invert_then_transfer(bundle, generator, tmp_path):
    G, spec = generator
    photo = tmp_path / "product.png"
    pixels = generate_uint8(G, spec, 1, seed=5, labels=torch.tensor([0]))[0, 0].numpy()
    Image.fromarray(pixels).convert("RGB").resize((56, 56)).save(
        photo
    )  # wrong size and mode: converted, noted
    cli(
        "edit",
        "invert",
        str(photo),
        "--bundle",
        str(bundle),
        "--out-dir",
        str(tmp_path / "inv"),
        "--to",
        "sneaker",
        "--steps",
        "80",
        "--restarts",
        "1",
        cwd=tmp_path,
    )
    record = json.loads((tmp_path / "inv" / "edit.json").read_text())
    assert (
        record["psnr_db"] > 20
        and len(record["latent"]) == spec.z_dim
        and record["transfer_to"] == ["sneaker"]
    )
    assert any("resized from 56x56" in n for n in record["input_notes"]) and any(
        "mode RGB" in n for n in record["input_notes"]
    )
    for name in ("input.png", "reconstruction.png", "transfer.png"):
        assert (tmp_path / "inv" / name).is_file()
    cli(
        "edit",
        "transfer",
        "--bundle",
        str(bundle),
        "--from-inversion",
        str(tmp_path / "inv" / "edit.json"),
        "--to",
        "coat",
        "--to",
        "2",
        "--out",
        str(tmp_path / "t.png"),
        cwd=tmp_path,
    )
    assert json.loads((tmp_path / "t.json").read_text())["to"] == ["coat", "sneaker"]
    cli(
        "edit",
        "interpolate",
        "--bundle",
        str(bundle),
        "--seed-a",
        "1",
        "--seed-b",
        "2",
        "--category-a",
        "coat",
        "--category-b",
        "sneaker",
        "--steps",
        "4",
        "--out",
        str(tmp_path / "s.png"),
        cwd=tmp_path,
    )
    assert json.loads((tmp_path / "s.json").read_text())["end"] == {
        "seed": 2,
        "category": "sneaker",
    }


def test_invert_refuses_bad_images(generator, tmp_path):
    _, spec = generator
    (tmp_path / "notes.png").write_text("not an image")
    Image.new("L", (4200, 4200)).save(
        tmp_path / "bomb.png"
    )  # tiny file, 17.6 M pixels when decoded
    for path, words in (
        (tmp_path / "notes.png", "not a readable image"),
        (tmp_path / "bomb.png", "decompression-bomb limit"),
        (tmp_path / "missing.png", "does not exist"),
        (tmp_path, "is a folder"),
    ):
        with pytest.raises(ProdganError, match=words):
            edit.load_image(path, spec)
