"""Subsets of clothing-small (shared, never copied into the repo)
laid out as a shop would hand them over, and the photo edits that test the copy checks.
"""

from __future__ import annotations

import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from prodgan.data.tensors import ImageSplit
from prodgan.settings import shared_dataset

CLOTHING = shared_dataset("clothing-small")


def clothing_subset(
    dst: Path,
    counts: dict[str, tuple[int, int]],
    rename: dict[str, str] | None = None,
    split_layout: bool = True,
) -> Path:
    """The first (train, test) photos per category under `dst`: `<split>/<category>/` or flat
    `<category>/`."""
    if not CLOTHING.is_dir():
        pytest.fail(
            f"{CLOTHING} missing: clothing-small lives in ../shared/datasets "
            "(or set PRODGAN_SHARED_DATA)"
        )
    for category, per_split in counts.items():
        shown = (rename or {}).get(category, category)
        for split, n in zip(("train", "test"), per_split, strict=True):
            target = dst / split / shown if split_layout else dst / shown
            target.mkdir(parents=True, exist_ok=True)
            for photo in sorted((CLOTHING / split / category).iterdir())[:n]:
                shutil.copyfile(photo, target / photo.name)
    return dst


def clothing_split(split: str, categories: list[str], per_category: int | None) -> ImageSplit:
    """The first `per_category` photos (by name) of each category of one clothing-small split,
    read in place as 64x64 RGB the way `prodgan data import --size 64 --fit pad` normalises them;
    the data hash is a content hash."""
    import hashlib

    import numpy as np
    from PIL import Image

    from prodgan.data.folder import normalise

    images, labels = [], []
    for label, category in enumerate(categories):
        for photo in sorted((CLOTHING / split / category).iterdir())[:per_category]:
            with Image.open(photo) as img:
                images.append(normalise(img, 64, "RGB").transpose(2, 0, 1))
            labels.append(label)
    pixels, label_array = np.stack(images), np.array(labels, dtype=np.int64)
    digest = hashlib.sha256(pixels.tobytes() + label_array.tobytes()).hexdigest()[:16]
    return ImageSplit(
        pixels, label_array, tuple(categories), "clothing-small", split, f"clothing-{digest}"
    )


def png_header_only(path: Path, width: int, height: int) -> None:
    """A valid PNG header declaring width x height over a few bytes of data (a decompression
    bomb's shape)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def colour_variant(img: Image.Image, degrees: float = 120.0) -> Image.Image:
    """The same photo with every coloured pixel's hue turned (luma kept): another colourway, whose
    greyscale picture is the original's."""
    ycc = np.asarray(img.convert("RGB").convert("YCbCr"), dtype=np.float64)
    u, v = ycc[..., 1] - 128.0, ycc[..., 2] - 128.0
    a = np.deg2rad(degrees)
    coloured = np.hypot(u, v) > 12
    ycc[..., 1] = np.where(coloured, u * np.cos(a) - v * np.sin(a), u) + 128.0
    ycc[..., 2] = np.where(coloured, u * np.sin(a) + v * np.cos(a), v) + 128.0
    return Image.fromarray(np.clip(np.rint(ycc), 0, 255).astype(np.uint8), "YCbCr").convert("RGB")
