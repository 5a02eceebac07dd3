"""Edit product images with a trained generator: interpolate, transfer category, invert a photo.

Core compute: torch, numpy and PIL only (rule 1). Everything works on a loaded generator and
its spec (`prodgan.models.bundle.load_bundle`), so the CLI, a flow or a GPU box call the same code.

Soft categories: class-conditional generators here look their categories up through
`nn.Embedding` layers (conditional batch norm). Mixing those rows with weights gives a
category "between" two others, which is what makes interpolation across categories smooth.
An imported file keeps its category table inside its exported graph: it interpolates within one
category (a whole label) and transfers, and a blend across categories is refused.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import nn

from prodgan.data.folder import normalise
from prodgan.data.layout import MAX_IMAGE_PIXELS
from prodgan.errors import ProdganError
from prodgan.models.sampling import latents, to_uint8

MAX_FILE_BYTES = 20 * 1024 * 1024
Labels = (
    torch.Tensor | None
)  # LongTensor [N] (hard) or float [N, K] (soft weights), None when unconditional


@contextmanager
def _soft_categories(generator: nn.Module, weights: torch.Tensor) -> Iterator[torch.Tensor]:
    """Make every category embedding return `weights @ table`; yields the dummy labels to pass."""
    tables = [m for m in generator.modules() if isinstance(m, nn.Embedding)]
    if not tables:
        raise ProdganError(
            "this generator cannot blend two categories: it takes a category only as a whole "
            "label (an imported file's category table, if any, is inside its exported graph, "
            "which prodgan does not rewrite); interpolate within one category (the same "
            "--category-a and --category-b), or render one product as other categories with "
            "`prodgan edit transfer`"
        )
    hooks = [
        m.register_forward_hook(lambda mod, _inp, _out: weights.to(mod.weight.dtype) @ mod.weight)
        for m in tables
    ]
    try:
        yield torch.zeros(weights.shape[0], dtype=torch.long, device=weights.device)
    finally:
        for hook in hooks:
            hook.remove()


def render(generator: nn.Module, z: torch.Tensor, labels: Labels) -> torch.Tensor:
    """Generator output in [-1, 1] for hard labels, soft label weights, or none."""
    if labels is not None and labels.is_floating_point():
        with _soft_categories(generator, labels) as dummy:
            return generator(z, dummy)
    return generator(z, labels)


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation [T, D].

    Gaussian latents keep their norm, so every step looks like a sample.
    """
    a, b = z0.flatten(), z1.flatten()
    omega = torch.arccos(torch.clamp(F.cosine_similarity(a, b, dim=0), -1.0, 1.0))
    t = t[:, None]
    if omega.abs() < 1e-4:
        return (1 - t) * a + t * b
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


def _one_hot(spec, category: int | None, n: int) -> torch.Tensor | None:
    if spec.num_classes == 0:
        return None
    if category is None:
        raise ProdganError(
            f"this generator is class-conditional: give a category ({', '.join(spec.categories)})"
        )
    return F.one_hot(torch.full((n,), category, dtype=torch.long), spec.num_classes).float()


@torch.no_grad()
def interpolate(
    generator: nn.Module,
    spec,
    z0: torch.Tensor,
    z1: torch.Tensor,
    category0: int | None,
    category1: int | None,
    steps: int,
    device: str = "cpu",
) -> torch.Tensor:
    """uint8 strip [steps, C, H, W] from (z0, category0) to (z1, category1)."""
    if not 2 <= steps <= 64:
        raise ProdganError(f"steps={steps} is out of range: use 2..64")
    t = torch.linspace(0, 1, steps)
    z = slerp(z0, z1, t)
    labels = None
    if spec.num_classes:
        w0, w1 = _one_hot(spec, category0, 1), _one_hot(spec, category1, 1)
        if category0 == category1:  # one category: its whole label, nothing to blend
            labels = torch.full((steps,), category0, dtype=torch.long, device=device)
        else:
            labels = ((1 - t)[:, None] * w0 + t[:, None] * w1).to(device)
    return to_uint8(render(generator, z.to(device), labels)).cpu()


@torch.no_grad()
def transfer(
    generator: nn.Module, spec, z: torch.Tensor, categories: list[int], device: str = "cpu"
) -> torch.Tensor:
    """The same latent (the product's style) rendered as each category.

    uint8 [len(categories), C, H, W].
    """
    if spec.num_classes == 0:
        raise ProdganError(
            "category transfer needs a class-conditional generator; this one is unconditional"
        )
    zs = z.flatten()[None].repeat(len(categories), 1).to(device)
    return to_uint8(generator(zs, torch.tensor(categories, dtype=torch.long, device=device))).cpu()


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB of two uint8 images (inf when identical)."""
    mse = F.mse_loss(a.double(), b.double()).item()
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    """Structural similarity of two uint8 [C,H,W] images.

    Wang et al. 2004: an 11x11 Gaussian window, sigma 1.5.
    """
    x, y = a.double()[None] / 255, b.double()[None] / 255
    coords = torch.arange(11, dtype=torch.float64) - 5
    g = torch.exp(-(coords**2) / (2 * 1.5**2))
    g = g / g.sum()
    channels = x.shape[1]
    window = (g[:, None] @ g[None, :]).expand(channels, 1, 11, 11)

    def blur(v: torch.Tensor) -> torch.Tensor:
        return F.conv2d(v, window, groups=channels)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    value = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(value.mean())


@dataclass(frozen=True)
class Inversion:
    z: torch.Tensor  # [z_dim], CPU
    category: int | None
    reconstruction: torch.Tensor  # uint8 [C, H, W]
    psnr: float
    ssim: float


def _optimise(
    generator: nn.Module,
    z: torch.Tensor,
    labels: Labels,
    targets: torch.Tensor,
    steps: int,
    lr: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Adam on the latents only; returns (latents, per-image pixel MSE)."""
    z = z.clone().requires_grad_(True)
    optimiser = torch.optim.Adam([z], lr=lr)
    for _ in range(steps):
        optimiser.zero_grad(set_to_none=True)
        per_image = (render(generator, z, labels) - targets).pow(2).flatten(1).mean(1)
        prior = 1e-3 * (z.pow(2).mean(1) - 1).pow(
            2
        )  # stay near the Gaussian shell the generator was trained on
        (per_image + prior).sum().backward()
        optimiser.step()
    with torch.no_grad():
        per_image = (render(generator, z, labels) - targets).pow(2).flatten(1).mean(1)
    return z.detach(), per_image


def invert(
    generator: nn.Module,
    spec,
    images: torch.Tensor,
    *,
    seed: int = 0,
    restarts: int = 4,
    search_steps: int = 150,
    refine_steps: int = 250,
    lr: float = 0.05,
    device: str = "cpu",
) -> list[Inversion]:
    """Find (latent, category) whose image is closest to each uint8 [B,C,H,W] image.

    Every (restart, category) pair is optimised in one batch for `search_steps`; the best pair
    per image is refined for `refine_steps`. Same inputs and seed -> same result.
    """
    if images.ndim != 4 or tuple(images.shape[1:]) != (spec.channels, spec.size, spec.size):
        raise ProdganError(
            f"images must be [N, {spec.channels}, {spec.size}, {spec.size}] uint8, "
            f"got {list(images.shape)}"
        )
    classes = max(spec.num_classes, 1)
    batch = images.shape[0]
    candidates = restarts * classes  # per image
    targets = images.float().div(127.5).sub(1).to(device)
    frozen = [p for p in generator.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    was_training = generator.training
    generator.eval()
    try:
        z0 = latents(batch * candidates, spec.z_dim, seed).to(device)
        cats = torch.arange(candidates, device=device) % classes
        labels = cats.repeat(batch) if spec.num_classes else None
        z, err = _optimise(
            generator, z0, labels, targets.repeat_interleave(candidates, 0), search_steps, lr
        )
        best = (
            err.view(batch, candidates).argmin(1) + torch.arange(batch, device=device) * candidates
        )
        best_labels = labels[best] if labels is not None else None
        z, _ = _optimise(generator, z[best], best_labels, targets, refine_steps, lr / 2)
        with torch.no_grad():
            recon = to_uint8(render(generator, z, best_labels)).cpu()
    finally:
        for p in frozen:
            p.requires_grad_(True)
        generator.train(was_training)
    return [
        Inversion(
            z=z[i].cpu(),
            category=None if best_labels is None else int(best_labels[i]),
            reconstruction=recon[i],
            psnr=psnr(recon[i], images[i]),
            ssim=ssim(recon[i], images[i]),
        )
        for i in range(batch)
    ]


def check_image(path: Path) -> None:
    """Refuse a missing, oversized or decompression-bomb image from its file size and header alone,
    before a model is loaded or a pixel decoded (a bomb costs nothing to refuse)."""
    path = Path(path)
    if not path.is_file():
        problem = "is a folder" if path.is_dir() else "does not exist"
        raise ProdganError(f"{path} {problem}: pass a PNG, JPEG or WebP image file")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ProdganError(
            f"{path} is larger than {MAX_FILE_BYTES // 2**20} MiB: pass a smaller image"
        )
    too_big = (
        f"{path} has more than {MAX_IMAGE_PIXELS} pixels (decompression-bomb limit): "
        "downscale it first"
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:  # the header only
                if img.width * img.height > MAX_IMAGE_PIXELS:
                    raise ProdganError(too_big)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise ProdganError(too_big) from None
    except (UnidentifiedImageError, SyntaxError) as exc:
        raise ProdganError(
            f"{path} is not a readable image ({type(exc).__name__}): pass a PNG, JPEG or WebP file"
        ) from None


def load_image(path: Path, spec) -> tuple[torch.Tensor, list[str]]:
    """A product photo as uint8 [C,H,W] in the generator's size and mode, and notes on the changes.

    Refused with a clear message: missing file, not an image, over the size or pixel limits.
    Wrong size or mode is converted with the same policy as `prodgan data import folder`.
    """
    path = Path(path)
    check_image(path)
    mode = "L" if spec.channels == 1 else "RGB"
    try:
        with Image.open(path) as img:
            notes = []
            if img.mode != mode:
                notes.append(f"converted from mode {img.mode} to {mode}")
            if img.size != (spec.size, spec.size):
                notes.append(
                    f"resized from {img.width}x{img.height} to {spec.size}x{spec.size} "
                    "(padded to square with its border colour)"
                )
            img.load()
            pixels = normalise(img, spec.size, mode)
    except (OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ProdganError(
            f"{path} could not be decoded ({exc}): pass an intact PNG, JPEG or WebP file"
        ) from None
    array = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    return torch.from_numpy(np.array(array, dtype=np.uint8, copy=True)), notes
