"""Images -> features through torch-fidelity's own extraction loop (no PNG round trip).

Generated and real images arrive as uint8 [N, C, H, W] arrays; `UInt8Images` is the
torch-fidelity Dataset input (grayscale repeated to three channels). `EXTRACTIONS` counts
extraction calls per side so callers and tests can see that a cache hit skipped work.
"""

from __future__ import annotations

from collections import Counter
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset
from torch_fidelity.utils import create_feature_extractor, get_featuresdict_from_dataset

from prodgan.metrics.extractors import register_extractors

EXTRACTIONS: Counter[str] = Counter()  # side ("generated", "real:test", ...) -> extraction calls
Progress = Callable[[str, int, int], None]  # (side, images done, images in all)


class UInt8Images(Dataset):
    """uint8 [N, C, H, W] (C = 1 or 3) as torch-fidelity's Dataset input: uint8 3xHxW items."""

    def __init__(self, images: np.ndarray | torch.Tensor) -> None:
        self.images = torch.as_tensor(images)
        if (
            self.images.dtype != torch.uint8
            or self.images.dim() != 4
            or self.images.shape[1] not in (1, 3)
        ):
            raise ValueError(
                f"expected uint8 [N, 1|3, H, W], got {self.images.dtype} {tuple(self.images.shape)}"
            )

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        image = self.images[i]
        return image.expand(3, -1, -1).contiguous() if image.shape[0] == 1 else image


_BUILT: dict[
    tuple, torch.nn.Module
] = {}  # Inception extractors by (name, layers, weights file, device)


def make_extractor(name: str, layers: list[str], weights: object, device: str) -> torch.nn.Module:
    """A registered torch-fidelity extractor on `device` (weights: a path, or the evaluator module).

    Built once per process and weights file: loading and folding InceptionV3 takes seconds,
    which the training loop's quick FID should not pay every time.
    """
    register_extractors()
    key = (name, tuple(layers), weights, str(device)) if isinstance(weights, str) else None
    if key in _BUILT:
        return _BUILT[key]
    extractor = create_feature_extractor(
        name,
        layers,
        cuda=str(device).startswith("cuda"),
        feature_extractor_weights_path=weights,
        verbose=False,
    )
    if key is not None:
        _BUILT[key] = extractor
    return extractor


def extract(
    images: np.ndarray | torch.Tensor,
    extractor: torch.nn.Module,
    side: str,
    batch_size: int = 64,
    progress: Progress | None = None,
) -> dict[str, np.ndarray]:
    """Features of every image, per requested layer, as float32 numpy (order preserved).

    With `progress`, the images go through torch-fidelity's loop one batch at a time (the same
    batches, so the same features) and each batch is reported.
    """
    EXTRACTIONS[side] += 1
    cuda = next(extractor.parameters()).is_cuda
    if progress is None:
        features = get_featuresdict_from_dataset(
            UInt8Images(images), extractor, batch_size, cuda, save_cpu_ram=True, verbose=False
        )
        return {k: v.numpy() for k, v in features.items()}
    parts: list[dict[str, torch.Tensor]] = []
    progress(side, 0, len(images))
    for start in range(0, len(images), batch_size):
        chunk = UInt8Images(images[start : start + batch_size])
        parts.append(
            get_featuresdict_from_dataset(
                chunk, extractor, batch_size, cuda, save_cpu_ram=True, verbose=False
            )
        )
        progress(side, min(start + batch_size, len(images)), len(images))
    return {k: torch.cat([p[k] for p in parts]).numpy() for k in parts[0]}
