"""Generator and discriminator networks: DCGAN-style, optionally class-conditional.

Conditioning follows the two standard tricks: conditional batch norm in the generator
(each class owns a gain and a bias) and a projection discriminator (Miyato & Koyama 2018:
the class embedding is dotted with the features). Sizes 28 (grayscale product shots such
as Fashion-MNIST), 32 and 64 are built from the same blocks: start small, upsample x2.
Two discriminators: `Discriminator` (a full-resolution 3x3 input conv, made for spectral norm)
and `ClassicDiscriminator` (DCGAN's own, with batch norm: the CPU recipe, configs/cpu.yaml).
"""

from __future__ import annotations

from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _sn

# image side -> (side of the first feature map, number of x2 up/down-sampling stages)
LEVELS = {28: (7, 2), 32: (4, 3), 64: (4, 4)}
MAX_WIDTH_MULT = 8


def _widths(width: int, stages: int) -> list[int]:
    """Channels per resolution, widest at the smallest resolution (capped like DCGAN's ngf*8)."""
    return [width * min(2 ** (stages - i), MAX_WIDTH_MULT) for i in range(stages + 1)]


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm whose gain and bias come from the class; plain affine BN when unconditional."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=num_classes == 0)
        self.gain = nn.Embedding(num_classes, channels) if num_classes else None
        self.bias = nn.Embedding(num_classes, channels) if num_classes else None
        if self.gain is not None:
            nn.init.zeros_(self.gain.weight)
            nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        h = self.bn(x)
        if self.gain is None:
            return h
        return h * (1 + self.gain(labels)[:, :, None, None]) + self.bias(labels)[:, :, None, None]


class Generator(nn.Module):
    """z [N, z_dim] (+ labels [N]) -> images in [-1, 1], [N, channels, size, size]."""

    def __init__(self, z_dim: int, num_classes: int, channels: int, size: int, width: int) -> None:
        super().__init__()
        self.start, stages = LEVELS[size]
        chans = _widths(width, stages)
        self.num_classes = num_classes
        self.fc = nn.Linear(z_dim, chans[0] * self.start * self.start)
        self.norms = nn.ModuleList(ConditionalBatchNorm2d(c, num_classes) for c in chans)
        self.ups = nn.ModuleList(
            nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False) for a, b in pairwise(chans)
        )
        self.out = nn.Conv2d(chans[-1], channels, 3, 1, 1)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes and labels is None:
            raise ValueError("this generator is class-conditional: pass labels")
        h = self.fc(z).view(z.shape[0], -1, self.start, self.start)
        h = F.relu(self.norms[0](h, labels))
        for up, norm in zip(self.ups, self.norms[1:], strict=True):
            h = F.relu(norm(up(h), labels))
        return torch.tanh(self.out(h))


class Discriminator(nn.Module):
    """images (+ labels) -> one logit per image; projection term when conditional."""

    def __init__(
        self, num_classes: int, channels: int, size: int, width: int, spectral_norm: bool = False
    ) -> None:
        super().__init__()
        sn = _sn if spectral_norm else (lambda m: m)
        side, stages = LEVELS[size]
        chans = _widths(width, stages)[::-1]
        self.inp = sn(nn.Conv2d(channels, chans[0], 3, 1, 1))
        self.downs = nn.ModuleList(sn(nn.Conv2d(a, b, 4, 2, 1)) for a, b in pairwise(chans))
        features = chans[-1] * side * side
        self.head = sn(nn.Linear(features, 1))
        self.embed = sn(nn.Embedding(num_classes, features)) if num_classes else None

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = F.leaky_relu(self.inp(x), 0.2)
        for down in self.downs:
            h = F.leaky_relu(down(h), 0.2)
        h = h.flatten(1)
        out = self.head(h).squeeze(1)
        if self.embed is not None:
            out = out + (self.embed(labels) * h).sum(1)
        return out


class ClassicDiscriminator(nn.Module):
    """DCGAN's discriminator (Radford et al. 2016) plus the projection term when conditional.

    Stride-2 4x4 convs straight from the pixels, batch norm on all but the first, one linear
    logit: about 1/8 of `Discriminator`'s multiply-adds at the same width. Its batch norm makes a
    logit depend on the batch it came in, so the trainer shows it real and fake batches separately
    (`uses_batch_stats`); that batch-level view is what kept samples varied inside each category
    (configs/cpu.yaml).
    """

    def __init__(
        self, num_classes: int, channels: int, size: int, width: int, spectral_norm: bool = False
    ) -> None:
        super().__init__()
        sn = _sn if spectral_norm else (lambda m: m)
        side, stages = LEVELS[size]
        chans = [channels] + [width * min(2**i, MAX_WIDTH_MULT) for i in range(stages)]
        self.downs = nn.ModuleList(
            sn(nn.Conv2d(a, b, 4, 2, 1, bias=i == 0)) for i, (a, b) in enumerate(pairwise(chans))
        )
        self.norms = nn.ModuleList(
            nn.BatchNorm2d(c) if i else nn.Identity() for i, c in enumerate(chans[1:])
        )
        features = chans[-1] * side * side
        self.head = sn(nn.Linear(features, 1))
        self.embed = sn(nn.Embedding(num_classes, features)) if num_classes else None
        # N(0, 1) rows over thousands of features would swamp the head's logit at the start.
        if self.embed is not None:
            nn.init.normal_(self.embed.weight, 0.0, 0.02)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = x
        for down, norm in zip(self.downs, self.norms, strict=True):
            h = F.leaky_relu(norm(down(h)), 0.2)
        h = h.flatten(1)
        out = self.head(h).squeeze(1)
        if self.embed is not None:
            out = out + (self.embed(labels) * h).sum(1)
        return out


def uses_batch_stats(module: nn.Module) -> bool:
    """True when a module's outputs depend on the rest of its batch (training-mode batch norm)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())
