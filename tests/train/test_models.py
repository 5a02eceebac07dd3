"""Bundle, sampling and imaging contracts other areas code against."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prodgan.errors import ProdganError
from prodgan.imaging import grid, labelled_sheet, png_bytes, save_png
from prodgan.models import (
    GeneratorSpec,
    build_discriminator,
    build_generator,
    generate_uint8,
    load_bundle,
    sample_labels,
    save_bundle,
)


@pytest.mark.parametrize(
    "arch, classes, channels, size",
    [("dcgan", 0, 1, 28), ("cdcgan", 4, 3, 32), ("cdcgan", 2, 3, 64)],
)
def test_shapes_and_range(arch, classes, channels, size):
    spec = GeneratorSpec(
        arch, 16, classes, channels, size, 4, tuple(f"c{i}" for i in range(classes))
    )
    G, D = build_generator(spec), build_discriminator(spec, spectral_norm=True)
    y = sample_labels(6, classes, seed=0)
    x = G(torch.randn(6, 16), y)
    assert x.shape == (6, channels, size, size) and x.abs().max() <= 1
    assert D(x, y).shape == (6,)


def test_bundle_round_trip_and_tamper_refusal(tmp_path):
    spec = GeneratorSpec("cdcgan", 16, 3, 1, 28, 4, ("a", "b", "c"))
    G = build_generator(spec)
    save_bundle(tmp_path, G, spec, {"train_run_id": "r1"})
    loaded, spec2 = load_bundle(tmp_path)
    assert spec2 == spec and not loaded.training
    assert torch.equal(
        generate_uint8(loaded, spec, 9, seed=3, batch=4), generate_uint8(loaded, spec, 9, seed=3)
    )
    assert not torch.equal(
        generate_uint8(loaded, spec, 9, seed=3), generate_uint8(loaded, spec, 9, seed=4)
    )
    weights = tmp_path / "generator.pt"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ProdganError, match="sha256"):
        load_bundle(tmp_path)
    with pytest.raises(ProdganError, match="not a generator bundle"):
        load_bundle(tmp_path / "nowhere")


def test_sample_labels_are_balanced():
    labels = sample_labels(30, 3, seed=1)
    assert torch.bincount(labels).tolist() == [10, 10, 10] and sample_labels(5, 0, seed=1) is None


def test_unknown_arch_is_a_user_error():
    with pytest.raises(ProdganError, match="valid: dcgan, cdcgan"):
        build_generator(GeneratorSpec("biggan", 16, 0, 1, 28, 4))


def test_grid_png_and_sheet(tmp_path):
    images = np.random.default_rng(0).integers(0, 255, (5, 1, 28, 28), dtype=np.uint8)
    tiled = grid(images, nrow=3)
    assert tiled.shape == (2 * 30 + 2, 3 * 30 + 2, 3) and tiled.dtype == np.uint8
    assert png_bytes(tiled).startswith(b"\x89PNG")
    sheet = labelled_sheet([("champion", images), ("challenger", torch.from_numpy(images[:2]))])
    assert sheet.shape[1] == 5 * 30 + 2 and sheet.shape[0] > 2 * tiled.shape[0] // 2
    assert save_png(tmp_path / "s.png", sheet).read_bytes() == png_bytes(sheet)
