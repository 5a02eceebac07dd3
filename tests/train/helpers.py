"""Tiny synthetic data and configs for fast training tests (real loop, real files, no mocks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from prodgan.data.tensors import ImageSplit
from prodgan.training.config import TrainConfig, make_config

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "configs" / "smoke.yaml"
CATEGORIES = ("tshirt", "trouser", "bag")


def tiny_split(n: int = 24, size: int = 28, channels: int = 1, seed: int = 0) -> ImageSplit:
    """Blobs whose brightness depends on the category.

    Enough structure for a GAN step to mean something.
    """
    rng = np.random.default_rng(seed)
    labels = np.arange(n, dtype=np.int64) % len(CATEGORIES)
    images = rng.integers(0, 60, size=(n, channels, size, size), dtype=np.uint8)
    images[:, :, size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] += (
        80 * (labels + 1)
    ).astype(np.uint8)[:, None, None, None]
    return ImageSplit(images, labels, CATEGORIES, "synthetic", "train", "synthetic-hash")


def tiny_config(**overrides) -> TrainConfig:
    values = dict(
        z_dim=8,
        width=4,
        d_width=4,
        batch_size=8,
        steps=6,
        checkpoint_every=2,
        log_every=1,
        grid_every=3,
        ema_decay=0.9,
        device="cpu",
    )
    return make_config({**values, **overrides})


def write_config(path: Path, **values) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(tiny_config(**values).to_dict()))
    return path


def write_dataset(root: Path, split=None) -> Path:
    """A dataset folder in the prodgan layout (dataset.json + train/<category>/<id>.png)."""
    from prodgan.data.layout import DatasetMeta, encode_png

    split = split or tiny_split()
    counts = {c: 0 for c in split.categories}
    for i, (pixels, label) in enumerate(zip(split.images, split.labels, strict=True)):
        category = split.categories[label]
        counts[category] += 1
        path = root / "train" / category / f"{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(
            encode_png(pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0))
        )
    meta = DatasetMeta(
        "synthetic",
        "folder",
        split.images.shape[-1],
        "L" if split.images.shape[1] == 1 else "RGB",
        list(split.categories),
        {"train": counts},
    )
    (root / "dataset.json").write_bytes(meta.to_json())
    return root
