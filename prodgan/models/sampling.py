"""Deterministic sampling: the same seed gives the same latents and labels on any device.

Noise is drawn on the CPU from a seeded `torch.Generator` and then moved, because CUDA, MPS
and CPU random streams differ; evaluation, grids and serving all rely on this.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch
from torch import nn

from prodgan.models.bundle import GeneratorSpec


def latents(n: int, z_dim: int, seed: int) -> torch.Tensor:
    return torch.randn(n, z_dim, generator=torch.Generator().manual_seed(seed))


def sample_labels(n: int, num_classes: int, seed: int) -> torch.Tensor | None:
    """Balanced labels (categories cycled, then shuffled by `seed`); None when unconditional."""
    if not num_classes:
        return None
    cycled = torch.arange(n, dtype=torch.long) % num_classes
    return cycled[torch.randperm(n, generator=torch.Generator().manual_seed(seed + 1))]


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats -> uint8 [0, 255] (rounded, clamped)."""
    return ((images.float() + 1) * 127.5).round_().clamp_(0, 255).to(torch.uint8)


@torch.no_grad()
def generate_uint8(
    generator: nn.Module,
    spec: GeneratorSpec,
    n: int,
    seed: int,
    labels: torch.Tensor | None = None,
    device: str | torch.device = "cpu",
    batch: int = 256,
    span: slice = slice(None),
) -> torch.Tensor:
    """n images as a CPU uint8 tensor [N, C, H, W], generated in eval mode in fp32.

    `span` keeps only those images of the n (a rank's share of a sharded evaluation): each image
    has the latent and label of its index whatever the span, so the shares add up to the n.
    """
    z = latents(n, spec.z_dim, seed)[span]
    if labels is None:
        labels = sample_labels(n, spec.num_classes, seed)
    elif spec.num_classes == 0:
        labels = None
    labels = labels[span] if labels is not None else None
    was_training = generator.training
    generator.eval()
    try:
        chunks = []
        for i in range(0, len(z), batch):
            y = labels[i : i + batch].to(device) if labels is not None else None
            chunks.append(to_uint8(generator(z[i : i + batch].to(device), y)).cpu())
    finally:
        generator.train(was_training)
    return (
        torch.cat(chunks)
        if chunks
        else torch.zeros(0, spec.channels, spec.size, spec.size, dtype=torch.uint8)
    )


def labels_like(real_labels: np.ndarray, n: int, num_classes: int, seed: int) -> torch.Tensor:
    """n category labels in the proportions of the real split (largest remainder).

    Shuffled by `seed`.
    """
    counts = np.bincount(real_labels, minlength=num_classes).astype(np.float64)
    quota = counts / counts.sum() * n
    take = np.floor(quota).astype(np.int64)
    take[np.argsort(-(quota - take), kind="stable")[: n - take.sum()]] += 1
    labels = np.repeat(np.arange(num_classes), take)
    return torch.from_numpy(labels[np.random.RandomState(seed).permutation(n)])


@contextmanager
def exact_fp32() -> Iterator[None]:
    """TF32 off for the duration (PyTorch enables it for cuDNN convolutions by default)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
