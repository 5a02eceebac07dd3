"""Shared pieces for the metrics tests:
real Fashion-MNIST images (tens, not thousands) and a tiny generator.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import numpy as np

from prodgan.data.fashion_mnist import CATEGORIES as FMNIST_CATEGORIES
from prodgan.data.fashion_mnist import DEBIAN_SOURCE, read_split
from prodgan.data.tensors import ImageSplit

CATEGORIES = tuple(FMNIST_CATEGORIES)


@lru_cache(maxsize=None)
def _split(split: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels, _ = read_split(DEBIAN_SOURCE, split)
    return images, labels.astype(np.int64)


def real_split(split: str, n: int, offset: int = 0) -> ImageSplit:
    """n real Fashion-MNIST images of `split` as an ImageSplit; the data hash is a content hash."""
    images, labels = _split(split)
    images, labels = (
        np.array(images[offset : offset + n, None]),
        np.array(labels[offset : offset + n]),
    )
    digest = hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest()[:16]
    return ImageSplit(images, labels, CATEGORIES, "fashion-mnist", split, f"test-{digest}")


def tiny_generator(conditional: bool = True, channels: int = 1, seed: int = 0):
    import torch

    from prodgan.models import GeneratorSpec, build_generator

    torch.manual_seed(seed)
    spec = GeneratorSpec(
        "cdcgan" if conditional else "dcgan",
        8,
        len(CATEGORIES) if conditional else 0,
        channels,
        28,
        4,
        CATEGORIES if conditional else (),
    )
    return build_generator(spec), spec
