"""Devices and ranks for the training loop: the device, the process group, shared grads and state.

torchrun's contract (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE) is read through
`prodgan.settings.env`. Gradients are all-reduced by hand after each backward (as in
StyleGAN2-ADA) instead of wrapping in DistributedDataParallel, because GAN steps run the
discriminator several times per update and differentiate through it for penalties.
"""

from __future__ import annotations

import contextlib
import os

import torch
import torch.distributed as dist
from torch import nn

from prodgan.errors import ProdganError
from prodgan.models import unwrap
from prodgan.settings import env


def rank_env(name: str, default: int) -> int:
    """One of torchrun's variables (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE)."""
    return int(env(name) or default)


def pick_device(name: str = "auto") -> torch.device:
    """cuda > mps > cpu for "auto"; an explicit device that is not there is a user error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", rank_env("LOCAL_RANK", 0))
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and rank_env("WORLD_SIZE", 1) > 1:
        name = f"cuda:{rank_env('LOCAL_RANK', 0)}"
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ProdganError(f"unknown device {name!r}; use auto, cuda, cuda:N, mps or cpu") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ProdganError(
            f"device {name!r} requested but CUDA is not available; use device=auto or device=cpu"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ProdganError(
            f"device {name!r} requested but MPS is not available; use device=auto or device=cpu"
        )
    return device


def init_distributed(device_name: str) -> tuple[int, int]:
    """(rank, world size); joins the process group torchrun describes (NCCL on GPU, gloo on CPU)."""
    world = rank_env("WORLD_SIZE", 1)
    if world == 1:
        return 0, 1
    if not dist.is_initialized():
        use_nccl = (
            torch.cuda.is_available()
            and device_name in ("auto", "cuda")
            or device_name.startswith("cuda")
        )
        if use_nccl:
            torch.cuda.set_device(rank_env("LOCAL_RANK", 0))
        dist.init_process_group("nccl" if use_nccl else "gloo")
        # the host's cores shared among its ranks; once, so a later call (the training loop's,
        # inside `cpu_threads(cfg.threads)`) keeps what the caller chose
        if not torch.cuda.is_available():
            local = rank_env("LOCAL_WORLD_SIZE", world)
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))
    return dist.get_rank(), dist.get_world_size()


def allreduce_grads(module: nn.Module, world: int) -> None:
    """Average gradients over ranks with one flat all-reduce."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if world == 1 or not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    for g, chunk in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
        g.copy_(chunk.view_as(g))


def broadcast_state(world: int, *modules: nn.Module) -> None:
    """Make every rank hold rank 0's parameters and buffers.

    At the start, and for batch-norm statistics before saving.
    """
    if world == 1:
        return
    for module in modules:
        for tensor in unwrap(module).state_dict().values():
            dist.broadcast(tensor, 0)


@contextlib.contextmanager
def cpu_threads(n: int):
    """Use n intra-op threads inside the block (0: leave torch's setting); restored after."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def rank_process():
    """One process of a torchrun job: a ProdganError ends it as one line (exit 1), and the process
    group is always torn down, so the other ranks are not left waiting on this one."""
    try:
        yield
    except ProdganError as exc:
        raise SystemExit(f"error: {exc}") from None
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
