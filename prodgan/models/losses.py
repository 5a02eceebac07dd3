"""GAN objectives, penalties and the generator EMA, as small pure functions over logits.

Discriminator losses take the logits of a real and a fake batch; generator losses the logits
of a fake batch. Penalties need the discriminator itself (they differentiate through it).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn


def _ns_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def _ns_g(fake: torch.Tensor) -> torch.Tensor:
    return F.softplus(-fake).mean()


def _hinge_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


def _wasserstein_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return fake.mean() - real.mean()


def _mean_neg_g(fake: torch.Tensor) -> torch.Tensor:
    return -fake.mean()


# name -> (discriminator loss, generator loss); "wgan-gp" adds the gradient penalty in the loop
LOSSES: dict[str, tuple[Callable[..., torch.Tensor], Callable[..., torch.Tensor]]] = {
    "ns": (_ns_d, _ns_g),
    "hinge": (_hinge_d, _mean_neg_g),
    "wgan-gp": (_wasserstein_d, _mean_neg_g),
}


def gradient_penalty(
    D: nn.Module, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor | None
) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): (||grad D(x_hat)|| - 1)^2 on random interpolates."""
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    x_hat = torch.lerp(real.detach(), fake.detach().to(real.dtype), alpha).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x_hat, labels).float().sum(), x_hat, create_graph=True)
    return (grad.float().flatten(1).norm(dim=1) - 1).square().mean()


def r1_penalty(D: nn.Module, real: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): squared gradient norm of D on real images.

    The caller weights it by gamma / 2.
    """
    x = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x, labels).float().sum(), x, create_graph=True)
    return grad.float().square().flatten(1).sum(1).mean()


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model for parameters; buffers (BN statistics) copied."""
    torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1.0 - decay)
    for b_ema, b in zip(ema.buffers(), model.buffers(), strict=True):
        b_ema.copy_(b)
