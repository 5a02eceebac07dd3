"""DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training").

With a few hundred photos per category the discriminator memorises the training set within a
few thousand steps and stops teaching the generator. DiffAugment applies the same family of
random, differentiable transforms to every image the discriminator sees, real and generated,
in its own update and in the generator's: D can no longer memorise exact pixels, and since the
transforms are differentiable the generator's gradient passes through them, so G learns the
un-augmented distribution (augmenting only the reals would teach G to draw augmented images).

Policies (images in [-1, 1], [N, C, H, W]; each image draws its own parameters):
- `color`: brightness +-0.5, saturation x0-2, contrast x0.5-1.5 (the paper's values);
- `translation`: shift up to 1/8 of the side, zero (mid-grey) filled;
- `cutout`: a zeroed square of half the side at a random position.
Randomness comes from the caller's `torch.Generator`, so a resumed run draws what it would have.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

POLICIES = ("color", "translation", "cutout")


def parse_policy(text: str) -> tuple[str, ...]:
    """`"color,translation,cutout"` -> the policies, in that order; `""` -> none.

    Unknown names raise ValueError.
    """
    names = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = [p for p in names if p not in POLICIES]
    if unknown:
        raise ValueError(
            f"unknown DiffAugment policy {', '.join(unknown)}; valid: {', '.join(POLICIES)}"
        )
    return names


def _uniform(x: torch.Tensor, generator: torch.Generator | None, *shape: int) -> torch.Tensor:
    return torch.rand(x.shape[0], *shape, device=x.device, generator=generator, dtype=x.dtype)


def _color(x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
    x = x + (_uniform(x, g, 1, 1, 1) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_uniform(x, g, 1, 1, 1) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(x, g, 1, 1, 1) + 0.5) + mean


def _translation(x: torch.Tensor, g: torch.Generator | None, ratio: float = 0.125) -> torch.Tensor:
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (n, 1, 1), device=x.device, generator=g)
    dx = torch.randint(-sw, sw + 1, (n, 1, 1), device=x.device, generator=g)
    rows = torch.arange(h, device=x.device)[None, :, None] + dy + 1
    cols = torch.arange(w, device=x.device)[None, None, :] + dx + 1
    rows, cols = rows.clamp(0, h + 1).expand(n, h, w), cols.clamp(0, w + 1).expand(n, h, w)
    padded = F.pad(x, [1, 1, 1, 1])  # the border row/column of zeros is what shifted-in pixels read
    batch = torch.arange(n, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


def _cutout(x: torch.Tensor, g: torch.Generator | None, ratio: float = 0.5) -> torch.Tensor:
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device, generator=g) - ch // 2
    left = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device, generator=g) - cw // 2
    ys = torch.arange(h, device=x.device)[None, :, None]
    xs = torch.arange(w, device=x.device)[None, None, :]
    inside = (ys >= top) & (ys < top + ch) & (xs >= left) & (xs < left + cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


_OPS = {"color": _color, "translation": _translation, "cutout": _cutout}


def diff_augment(
    x: torch.Tensor, policy: tuple[str, ...], generator: torch.Generator | None = None
) -> torch.Tensor:
    """Apply `policy` to a batch; differentiable in `x`. An empty policy returns `x` itself."""
    for name in policy:
        x = _OPS[name](x, generator)
    return x
