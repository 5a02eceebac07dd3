"""The GAN training loop: one readable function, device-agnostic, resumable, DDP-ready.

Reads top to bottom: setup (device, ranks, data on the device) -> models and optimizers ->
resume -> loop (D step, G step, EMA, guard, log, grid, eval, checkpoint) -> final bundle.
Torch only: tracking happens in `hooks` passed in by an adapter (`prodgan.adapters.tracking`).

Reproducible by construction: the data order comes from (seed, epoch) and the noise from
(seed, step, rank), so a resumed run draws exactly what the uninterrupted run would have.

Multi-GPU: `torchrun --nproc-per-node N -m prodgan.training --config FILE --out DIR`
(__main__.py); devices and ranks in distributed.py, checkpoints in checkpoints.py.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from prodgan.console import StepProgress
from prodgan.data.tensors import ImageSplit
from prodgan.errors import ProdganError
from prodgan.models import (
    GeneratorSpec,
    build_discriminator,
    build_generator,
    generate_uint8,
    save_bundle,
    uses_batch_stats,
)
from prodgan.models.augment import diff_augment, parse_policy
from prodgan.models.losses import LOSSES, ema_update, gradient_penalty, r1_penalty
from prodgan.training.checkpoints import (
    CHECKPOINT_FORMAT,
    all_finite,
    check_resumable,
    list_checkpoints,
    load_latest_checkpoint,
    save_checkpoint,
    weights_digest,
)
from prodgan.training.config import TrainConfig
from prodgan.training.distributed import (
    allreduce_grads,
    broadcast_state,
    cpu_threads,
    init_distributed,
    pick_device,
)
from prodgan.training.plan import check_schedule, epoch_order, make_spec

GRID_SEED = 1234
GRID_ROWS = 8

# Called on every rank at each eval step (it may be collective); rank 0's metrics are reported.
EvalHook = Callable[[nn.Module, int], dict[str, float]]


class TrainingDiverged(ProdganError):
    """Losses or weights became NaN/inf; the last good checkpoint is kept."""


class TrainHooks:
    """What the loop reports (rank 0 only).

    The MLflow adapter overrides these; the default is silent.
    """

    def on_start(self, info: dict[str, Any]) -> None: ...
    def on_metrics(self, step: int, metrics: dict[str, float]) -> None: ...
    def on_grid(self, step: int, epoch: int, image: np.ndarray) -> None: ...
    def on_checkpoint(self, step: int, path: Path) -> None: ...
    def on_message(self, message: str) -> None: ...


@dataclass
class TrainResult:
    out_dir: Path
    bundle_dir: Path
    checkpoint: Path
    step: int
    spec: GeneratorSpec
    metrics: dict[str, float] = field(default_factory=dict)
    weights_sha256: str = ""


def run_summary(metrics: dict[str, float]) -> dict[str, float]:
    """The metrics that describe the whole run (train_seconds, best_*), logged once at its end."""
    return {k: v for k, v in metrics.items() if k == "train_seconds" or k.startswith("best_")}


# ---------------------------------------------------------------- the loop


def train(cfg: TrainConfig, data: ImageSplit, out_dir: Path, **options: Any) -> TrainResult:
    """Train a GAN on `data` (uint8 images); checkpoints and the final bundle go under `out_dir`.

    options: resume, hooks, on_eval, lineage, progress (see `train_loop`). On a shared CPU,
    spinning OpenMP threads cost more than they give: `threads` limits them for this call only,
    also under torchrun (the process group is joined first, so its share of the cores does not
    override them: every rank runs the same threads however the ranks are spread over hosts).
    """
    init_distributed(cfg.device)
    with cpu_threads(cfg.threads if pick_device(cfg.device).type == "cpu" else 0):
        return train_loop(cfg, data, out_dir, **options)


def train_loop(
    cfg: TrainConfig,
    data: ImageSplit,
    out_dir: Path,
    *,
    resume: bool = False,
    hooks: TrainHooks | None = None,
    on_eval: EvalHook | None = None,
    lineage: dict[str, Any] | None = None,
    progress: bool = True,
) -> TrainResult:
    """The loop itself; `train` wraps it with the CPU thread setting."""
    t_start = time.perf_counter()
    out_dir = Path(out_dir)
    rank, world = init_distributed(cfg.device)
    is_main = rank == 0
    hooks = hooks if (hooks is not None and is_main) else TrainHooks()
    device = pick_device(cfg.device)
    check_schedule(cfg, len(data), world)
    spec = make_spec(cfg, data)
    loss_d_fn, loss_g_fn = LOSSES[cfg.loss]
    on_cuda = device.type == "cuda"
    use_bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and on_cuda)
    autocast = (
        (lambda: torch.autocast(device.type, dtype=torch.bfloat16))
        if use_bf16
        else contextlib.nullcontext
    )
    # NHWC: cuDNN's fast path on CUDA, and oneDNN's on x86 CPUs
    # (fmnist.yaml on 2 cores: 61 -> ~110 images/s, exact fp32).
    nhwc = device.type in ("cuda", "cpu")
    memory_format = torch.channels_last if nhwc else torch.contiguous_format

    # Data: the whole split resident on the device as uint8 (60k 28x28 images = 47 MB).
    images = torch.from_numpy(data.images).to(device)
    labels = torch.from_numpy(data.labels).to(device)
    n_images, local_batch = len(images), cfg.batch_size // world
    steps_per_epoch = n_images // cfg.batch_size

    # Noise: one generator, reseeded from (seed, step, rank) every step; flips, z and DiffAugment
    # all draw from it. What D sees goes through DiffAugment (a no-op for the empty policy).
    noise = torch.Generator(device).manual_seed(cfg.seed)
    augment_policy = parse_policy(cfg.diffaugment)

    def seen(x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, augment_policy, noise)

    # Models: same seed on every rank, then rank 0's state broadcast to be sure.
    torch.manual_seed(cfg.seed)
    G = build_generator(spec).to(device, memory_format=memory_format)
    D = build_discriminator(spec, width=cfg.d_width, spectral_norm=cfg.spectral_norm)
    D = D.to(device, memory_format=memory_format)
    G_ema = build_generator(spec).to(device, memory_format=memory_format)
    G_ema.eval().requires_grad_(False)
    G_ema.load_state_dict(G.state_dict())
    adam = {"fused": True} if on_cuda else {}
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, cfg.beta2), **adam)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, cfg.beta2), **adam)

    step, best = 0, {"value": math.inf, "step": -1}
    if resume:
        state, path = load_latest_checkpoint(out_dir, hooks.on_message)
        check_resumable(state["config"], state["spec"], cfg, spec, path)
        G.load_state_dict(state["G"])
        D.load_state_dict(state["D"])
        G_ema.load_state_dict(state["G_ema"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        # The config, not the checkpoint, sets the schedule.
        for opt, lr in ((opt_g, cfg.lr_g), (opt_d, cfg.lr_d)):
            for group in opt.param_groups:
                group.update(lr=lr, betas=(cfg.beta1, cfg.beta2))
        step, best = int(state["step"]), dict(state["best"])
        hooks.on_message(f"resuming from {path.name} at step {step}")
    broadcast_state(world, G, D, G_ema)
    G_train, D_train = (torch.compile(G), torch.compile(D)) if cfg.compile else (G, D)
    # A discriminator with batch norm sees real and fake as separate batches (as DCGAN trains it):
    # a mixed batch would hide the batch-level difference its statistics carry. Without batch
    # norm, one forward over both is cheaper.
    split_d = uses_batch_stats(D)

    def checkpoint_state() -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "step": step,
            "config": cfg.to_dict(),
            "spec": spec.to_dict(),
            "G": G.state_dict(),
            "D": D.state_dict(),
            "G_ema": G_ema.state_dict(),
            "opt_g": opt_g.state_dict(),
            "opt_d": opt_d.state_dict(),
            "best": best,
        }

    grid_labels = torch.arange(spec.num_classes).repeat(GRID_ROWS) if spec.num_classes else None
    grid_n = GRID_ROWS * spec.num_classes if spec.num_classes else GRID_ROWS * GRID_ROWS
    grid_cols = spec.num_classes or GRID_ROWS
    grid_every = cfg.grid_every or steps_per_epoch
    order, order_epoch = None, -1
    last_good = list_checkpoints(out_dir)[0] if resume and is_main else None
    hooks.on_start(
        {
            "device": str(device),
            "world_size": world,
            "start_step": step,
            "steps": cfg.steps,
            "precision": "bf16" if use_bf16 else "fp32",
            "steps_per_epoch": steps_per_epoch,
            "spec": spec.to_dict(),
            "images": n_images,
        }
    )

    def make_grid() -> np.ndarray:
        from prodgan.imaging import grid

        return grid(
            generate_uint8(G_ema, spec, grid_n, GRID_SEED, labels=grid_labels, device=device),
            nrow=grid_cols,
        )

    def evaluate() -> None:
        # Every rank evaluates (a sharded quick FID is collective); rank 0 reports and keeps.
        broadcast_state(world, G_ema)
        if on_eval is None:
            return
        metrics = {k: float(v) for k, v in on_eval(G_ema, step).items()}
        if not is_main:
            return
        hooks.on_metrics(step, metrics)
        value = metrics.get(cfg.eval_metric)
        if value is not None and value < best["value"]:
            best.update(value=value, step=step)
            save_bundle(
                out_dir / "best",
                G_ema,
                spec,
                {**(lineage or {}), "step": step, cfg.eval_metric: value},
            )

    bar = StepProgress(progress and is_main, step, cfg.steps)
    window_t, window_step, losses = time.perf_counter(), step, None
    deadline = window_t + cfg.max_seconds if cfg.max_seconds else math.inf
    metrics: dict[str, float] = {}
    last = step >= cfg.steps
    with bar:
        while not last:
            # Batch: this rank's slice of the epoch's global batch.
            epoch, i = divmod(step, steps_per_epoch)
            if epoch != order_epoch:
                balance_by = labels.cpu() if cfg.class_balanced else None
                order = epoch_order(n_images, cfg.seed, epoch, balance_by).to(device)
                order_epoch = epoch
            first = i * cfg.batch_size + rank * local_batch
            idx = order[first : first + local_batch]
            real = images[idx].float().div_(127.5).sub_(1).contiguous(memory_format=memory_format)
            y = labels[idx] if spec.num_classes else None
            noise.manual_seed(cfg.seed * 1_000_003 + step * 1009 + rank + 1)
            if cfg.hflip:
                flip = torch.rand(local_batch, 1, 1, 1, device=device, generator=noise) < 0.5
                real = torch.where(flip, real.flip(3), real)

            # Discriminator: real and fake in one forward, or two when D has batch statistics.
            D.requires_grad_(True)
            for _ in range(cfg.d_steps):
                z = torch.randn(local_batch, spec.z_dim, device=device, generator=noise)
                with autocast():
                    fake = G_train(z, y)
                    if split_d:
                        logits_real = D_train(seen(real), y).float()
                        logits_fake = D_train(seen(fake.detach()), y).float()
                        loss_d = loss_d_fn(logits_real, logits_fake)
                    else:
                        both = torch.cat([real, fake.detach()])
                        y_both = torch.cat([y, y]) if y is not None else None
                        logits = D_train(seen(both), y_both).float()
                        loss_d = loss_d_fn(*logits.split(local_batch))
                if cfg.loss == "wgan-gp":
                    with autocast():
                        loss_d = loss_d + cfg.gp_weight * gradient_penalty(D_train, real, fake, y)
                if cfg.r1_gamma and step % cfg.r1_every == 0:
                    r1_weight = cfg.r1_gamma / 2 * cfg.r1_every  # lazy R1: scaled by its interval
                    with autocast():
                        loss_d = loss_d + r1_weight * r1_penalty(D_train, real, y)
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                allreduce_grads(D, world)
                opt_d.step()

            # Generator: reuses the last fake batch, through the updated discriminator.
            D.requires_grad_(False)
            with autocast():
                loss_g = loss_g_fn(D_train(seen(fake), y).float())
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            allreduce_grads(G, world)
            opt_g.step()
            ema_update(G_ema, G, cfg.ema_decay if step >= cfg.ema_start else 0.0)
            step += 1
            last = step >= cfg.steps or time.perf_counter() >= deadline

            # Guard, log, pictures, evaluation, checkpoint.
            if step % cfg.log_every == 0 or last or step % cfg.checkpoint_every == 0:
                losses = torch.stack([loss_d.detach(), loss_g.detach()]).float()
                if world > 1:  # every rank must take the same decision
                    dist.all_reduce(losses)
                    losses /= world
                losses = losses.cpu()
                if not torch.isfinite(losses).all():
                    raise TrainingDiverged(_diverged_message(step, losses, last_good))
                now = time.perf_counter()
                images_seen = (step - window_step) * cfg.batch_size
                metrics = {
                    "loss_d": float(losses[0]),
                    "loss_g": float(losses[1]),
                    "images_per_s": images_seen / max(now - window_t, 1e-9),
                    "epoch": step / steps_per_epoch,
                }
                window_t, window_step = now, step
                hooks.on_metrics(step, metrics)
                bar.update(step, metrics)
            if is_main and (step % grid_every == 0 or last):
                hooks.on_grid(step, step // steps_per_epoch, make_grid())
            if cfg.eval_every and on_eval and step % cfg.eval_every == 0:
                evaluate()
            if step % cfg.checkpoint_every == 0 or last:
                if not all_finite(G, D):
                    raise TrainingDiverged(_diverged_message(step, losses, last_good))
                broadcast_state(world, G, G_ema)
                if is_main:
                    last_good = save_checkpoint(out_dir, checkpoint_state(), cfg.keep_checkpoints)
                    hooks.on_checkpoint(step, last_good)

    if on_eval and (not cfg.eval_every or step % cfg.eval_every):
        evaluate()
    broadcast_state(world, G, D, G_ema)
    digest = weights_digest(G_ema, D)
    if world > 1:
        digests: list[str | None] = [None] * world
        dist.all_gather_object(digests, digest)
        if len(set(digests)) != 1:
            raise ProdganError(
                f"DDP replicas disagree after training ({digests}); report this as a bug"
            )

    bundle_dir = out_dir / "bundle"
    if is_main:
        if best["step"] >= 0 and (out_dir / "best").is_dir():
            _copy_bundle(out_dir / "best", bundle_dir)
        else:
            extra = {**(lineage or {}), "step": step, "config": cfg.to_dict()}
            save_bundle(bundle_dir, G_ema, spec, extra)
    metrics = {**metrics, "train_seconds": time.perf_counter() - t_start}
    if best["step"] >= 0:
        metrics.update({f"best_{cfg.eval_metric}": best["value"], "best_step": float(best["step"])})
    return TrainResult(out_dir, bundle_dir, last_good or Path(), step, spec, metrics, digest)


def _diverged_message(step: int, losses: torch.Tensor | None, last_good: Path | None) -> str:
    if last_good:
        keep = f"the last good checkpoint {last_good} is kept"
    else:
        keep = "no checkpoint had been written yet"
    shown = ""
    if losses is not None:
        shown = f" (loss_d={float(losses[0]):.4g}, loss_g={float(losses[1]):.4g})"
    return (
        f"training diverged at step {step}: NaN/inf losses or weights{shown}; {keep}; "
        "lower lr_g/lr_d or enable spectral_norm, then --resume"
    )


def _copy_bundle(src: Path, dst: Path) -> None:
    import shutil

    from prodgan.fsutil import atomic_dir

    with atomic_dir(dst) as tmp:
        for f in src.iterdir():
            shutil.copy2(f, tmp / f.name)
