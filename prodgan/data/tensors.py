"""Decoded-tensor cache: decode a split's PNGs once per dataset version, then load in milliseconds.

The cache key is the dataset's DVC hash, so a changed dataset can never be served stale
tensors; the caller (an adapter that knows DVC) supplies the hash. Torch-free on purpose:
training, validation and evaluation all read from here.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from prodgan.data.layout import DatasetMeta, image_files, read_meta
from prodgan.errors import ProdganError
from prodgan.fsutil import atomic_path


@dataclass(frozen=True)
class ImageSplit:
    images: np.ndarray  # uint8 [N, C, H, W]
    labels: np.ndarray  # int64 [N], index into categories
    categories: tuple[str, ...]
    dataset: str
    split: str
    data_hash: str

    def __len__(self) -> int:
        return len(self.labels)


def decode_split(root: Path, meta: DatasetMeta, split: str) -> tuple[np.ndarray, np.ndarray]:
    files = image_files(root, split)
    if not files:
        raise ProdganError(
            f"{root}/{split} holds no images; run `prodgan data pull` or re-import the dataset"
        )
    index = {c: i for i, c in enumerate(meta.categories)}

    def decode(item: tuple[str, Path]) -> np.ndarray:
        with Image.open(item[1]) as img:
            pixels = np.asarray(img.convert(meta.mode))
        if pixels.shape[:2] != (meta.size, meta.size):
            raise ProdganError(
                f"{item[1]} is {pixels.shape[1]}x{pixels.shape[0]}, "
                f"the dataset declares {meta.size}x{meta.size}; run `prodgan data validate`"
            )
        return pixels

    with ThreadPoolExecutor(max_workers=4) as pool:
        arrays = list(pool.map(decode, files))
    images = np.stack(arrays)
    images = images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)
    try:
        labels = np.array([index[c] for c, _ in files], dtype=np.int64)
    except KeyError as exc:
        raise ProdganError(
            f"{root}/{split} has a category folder {exc.args[0]!r} not declared in dataset.json; "
            "run `prodgan data validate`"
        ) from exc
    return np.ascontiguousarray(images), labels


def load_split(cache_dir: Path, dataset_root: Path, split: str, data_hash: str) -> ImageSplit:
    """Tensors of one split, decoded on the first call for this `data_hash`, from cache after."""
    dataset_root = Path(dataset_root)
    meta = read_meta(dataset_root)
    cache_file = Path(cache_dir) / data_hash / meta.name / f"{split}.npz"
    if cache_file.is_file():
        with np.load(cache_file) as cached:
            images, labels = cached["images"], cached["labels"]
    else:
        images, labels = decode_split(dataset_root, meta, split)
        with atomic_path(cache_file, suffix=".npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, images=images, labels=labels)
    return ImageSplit(images, labels, tuple(meta.categories), meta.name, split, data_hash)


def hold_out(split: ImageSplit, n: int, seed: int) -> tuple[ImageSplit, ImageSplit]:
    """(the rest, `n` held-out images): a seeded validation split carved out of `split`.

    Training picks its best checkpoint on this, never on the split the promotion gates evaluate.
    """
    if not 2 <= n <= len(split) // 2:
        raise ProdganError(
            f"cannot hold out {n} of the {len(split)} {split.split} images for validation: "
            f"use 2..{len(split) // 2} (eval_samples)"
        )
    order = np.random.RandomState(seed).permutation(len(split))
    held, rest = np.sort(order[:n]), np.sort(order[n:])

    def keep(idx: np.ndarray, name: str) -> ImageSplit:
        return ImageSplit(
            split.images[idx],
            split.labels[idx],
            split.categories,
            split.dataset,
            name,
            split.data_hash,
        )

    # the seed picks the images, so it is in the name (a cached real side is keyed by split name)
    return keep(rest, split.split), keep(held, f"validation-seed{seed}")
