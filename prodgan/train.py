"""The GAN training loop: one readable function, device-agnostic, resumable, DDP-ready.

Reads top to bottom: setup (device, ranks, data on the device) -> models and optimizers ->
resume -> loop (D step, G step, EMA, guard, log, grid, eval, checkpoint) -> final bundle.
Torch only: tracking happens in `hooks` passed in by an adapter (`prodgan.training_run`).

Reproducible by construction: the data order comes from (seed, epoch) and the noise from
(seed, step, rank), so a resumed run draws exactly what the uninterrupted run would have.

Multi-GPU: `torchrun --nproc-per-node N -m prodgan.train --config FILE --out DIR`.
Gradients are all-reduced by hand after each backward (as in StyleGAN2-ADA) instead of
wrapping in DistributedDataParallel, because GAN steps run the discriminator several
times per update and differentiate through it for penalties.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import math
import os
import pickle
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from prodgan.data.tensors import ImageSplit
from prodgan.errors import ProdganError
from prodgan.fsutil import atomic_path
from prodgan.models import GeneratorSpec, build_discriminator, build_generator, generate_uint8, save_bundle, unwrap, uses_batch_stats
from prodgan.models.losses import LOSSES, ema_update, gradient_penalty, r1_penalty
from prodgan.train_config import TrainConfig, load_config

CHECKPOINT_FORMAT = 1
GRID_SEED = 1234
GRID_ROWS = 8
CKPT_RE = re.compile(r"^ckpt_(\d{8})\.pt$")
# Keys that change the networks' shapes: a checkpoint written under other values cannot be resumed.
ARCH_KEYS = ("arch", "z_dim", "width", "d_width", "spectral_norm", "dataset")

EvalHook = Callable[[nn.Module, int], dict[str, float]]


class TrainingDiverged(ProdganError):
    """Losses or weights became NaN/inf; the last good checkpoint is kept."""


class TrainHooks:
    """What the loop reports (rank 0 only). The MLflow adapter overrides these; the default is silent."""

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


# ---------------------------------------------------------------- setup helpers

def pick_device(name: str = "auto") -> torch.device:
    """cuda > mps > cpu for "auto"; an explicit device that is not there is a user error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        name = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ProdganError(f"unknown device {name!r}; use auto, cuda, cuda:N, mps or cpu") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ProdganError(f"device {name!r} requested but CUDA is not available; use device=auto or device=cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ProdganError(f"device {name!r} requested but MPS is not available; use device=auto or device=cpu")
    return device


def init_distributed(device_name: str) -> tuple[int, int]:
    """(rank, world size); joins the process group torchrun describes (NCCL on GPU, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    if not dist.is_initialized():
        use_nccl = torch.cuda.is_available() and device_name in ("auto", "cuda") or device_name.startswith("cuda")
        if use_nccl:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group("nccl" if use_nccl else "gloo")
    if not torch.cuda.is_available():
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", world))))
    return dist.get_rank(), dist.get_world_size()


def make_spec(cfg: TrainConfig, data: ImageSplit) -> GeneratorSpec:
    """The generator spec for this config and dataset; bad arch/loss/sizes are user errors."""
    if cfg.loss not in LOSSES:
        raise ProdganError(f"unknown loss {cfg.loss!r}; valid: {', '.join(LOSSES)}")
    from prodgan.models import ARCHS

    if cfg.arch not in ARCHS:
        raise ProdganError(f"unknown architecture {cfg.arch!r}; valid: {', '.join(ARCHS)}")
    _, channels, height, width = data.images.shape
    if height != width:
        raise ProdganError(f"images must be square, got {height}x{width}; re-import the dataset with `--size`")
    conditional = ARCHS[cfg.arch]
    return GeneratorSpec(
        arch=cfg.arch, z_dim=cfg.z_dim, num_classes=len(data.categories) if conditional else 0,
        channels=channels, size=height, width=cfg.width, categories=tuple(data.categories),
    ).check()


def check_schedule(cfg: TrainConfig, n_images: int, world: int) -> None:
    if cfg.batch_size > n_images:
        raise ProdganError(f"batch_size {cfg.batch_size} is larger than the dataset ({n_images} images); use --set batch_size=<= {n_images}")
    if cfg.batch_size % world:
        raise ProdganError(f"batch_size {cfg.batch_size} does not split evenly over {world} processes; use a multiple of {world}")
    for key in ("steps", "batch_size", "checkpoint_every", "log_every", "keep_checkpoints", "d_steps", "r1_every"):
        if getattr(cfg, key) < 1:
            raise ProdganError(f"{key} must be >= 1, got {getattr(cfg, key)}")
    if not 0 <= cfg.ema_decay < 1:
        raise ProdganError(f"ema_decay must be in [0, 1), got {cfg.ema_decay}")
    if cfg.precision not in ("auto", "bf16", "fp32"):
        raise ProdganError(f"unknown precision {cfg.precision!r}; valid: auto, bf16, fp32")
    if cfg.max_seconds < 0:
        raise ProdganError(f"max_seconds must be >= 0 (0: no time limit), got {cfg.max_seconds}")
    if cfg.max_seconds and world > 1:
        raise ProdganError("max_seconds stops on one process's clock: use it for single-process runs, or set steps for DDP")


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled image order of one epoch: a pure function of (seed, epoch), same on every rank."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))


def weights_digest(*modules: nn.Module) -> str:
    """sha256 over every parameter and buffer: equal digests mean bit-identical replicas."""
    h = hashlib.sha256()
    for module in modules:
        for name, tensor in unwrap(module).state_dict().items():
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def allreduce_grads(module: nn.Module, world: int) -> None:
    """Average gradients over ranks with one flat all-reduce."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if world == 1 or not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    for g, chunk in zip(grads, flat.split([g.numel() for g in grads])):
        g.copy_(chunk.view_as(g))


def broadcast_state(world: int, *modules: nn.Module) -> None:
    """Make every rank hold rank 0's parameters and buffers (start, and BN statistics before saving)."""
    if world == 1:
        return
    for module in modules:
        for tensor in unwrap(module).state_dict().values():
            dist.broadcast(tensor, 0)


def all_finite(*modules: nn.Module) -> bool:
    return bool(torch.stack([p.detach().isfinite().all() for m in modules for p in m.parameters()]).all())


# ---------------------------------------------------------------- checkpoints

def checkpoint_dir(out_dir: Path) -> Path:
    return Path(out_dir) / "checkpoints"


def list_checkpoints(out_dir: Path) -> list[Path]:
    """Checkpoints newest first."""
    folder = checkpoint_dir(out_dir)
    found = [p for p in folder.iterdir() if CKPT_RE.match(p.name)] if folder.is_dir() else []
    return sorted(found, key=lambda p: p.name, reverse=True)


def save_checkpoint(out_dir: Path, state: dict[str, Any], keep: int) -> Path:
    """Atomic write (temp + rename), then drop all but the newest `keep`."""
    path = checkpoint_dir(out_dir) / f"ckpt_{state['step']:08d}.pt"
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    for old in list_checkpoints(out_dir)[keep:]:
        old.unlink(missing_ok=True)
    return path


def load_latest_checkpoint(out_dir: Path, warn: Callable[[str], None]) -> tuple[dict[str, Any], Path]:
    """The newest checkpoint that loads; a corrupt one is reported and the one before it used."""
    candidates = list_checkpoints(out_dir)
    if not candidates:
        raise ProdganError(f"nothing to resume in {out_dir}: no checkpoints; start the run without --resume")
    for path in candidates:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            if state.get("format") == CHECKPOINT_FORMAT:
                return state, path
            warn(f"checkpoint {path.name} has an unknown format; trying the previous one")
        except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, ValueError, AttributeError) as exc:
            warn(f"checkpoint {path.name} is unreadable ({type(exc).__name__}); falling back to the previous one")
    raise ProdganError(f"no readable checkpoint in {checkpoint_dir(out_dir)}; start the run again without --resume")


def check_resumable(saved_cfg: dict[str, Any], saved_spec: dict[str, Any], cfg: TrainConfig, spec: GeneratorSpec, path: Path) -> None:
    diffs = [f"{k}={saved_cfg.get(k)!r} (now {getattr(cfg, k)!r})" for k in ARCH_KEYS if saved_cfg.get(k) != getattr(cfg, k)]
    if saved_spec != spec.to_dict() and not diffs:
        diffs.append(f"spec {saved_spec} (now {spec.to_dict()})")
    if diffs:
        raise ProdganError(f"checkpoint {path} was written for another architecture: {', '.join(diffs)}; resume with the config it was trained with, or start without --resume")


# ---------------------------------------------------------------- the loop

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


def train(cfg: TrainConfig, data: ImageSplit, out_dir: Path, **options: Any) -> TrainResult:
    """Train a GAN on `data` (uint8 images), writing checkpoints and the final bundle under `out_dir`.

    options: resume, hooks, on_eval, lineage, progress (see `train_loop`). On a shared CPU,
    spinning OpenMP threads cost more than they give: `threads` limits them for this call only.
    """
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
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if use_bf16 else contextlib.nullcontext
    # NHWC: cuDNN's fast path on CUDA, and oneDNN's on x86 CPUs (fmnist.yaml on 2 cores: 61 -> ~110 images/s, exact fp32).
    memory_format = torch.channels_last if device.type in ("cuda", "cpu") else torch.contiguous_format

    # Data: the whole split resident on the device as uint8 (60k 28x28 images = 47 MB).
    images = torch.from_numpy(data.images).to(device)
    labels = torch.from_numpy(data.labels).to(device)
    n_images, local_batch = len(images), cfg.batch_size // world
    steps_per_epoch = n_images // cfg.batch_size

    # Models: same seed on every rank, then rank 0's state broadcast to be sure.
    torch.manual_seed(cfg.seed)
    G = build_generator(spec).to(device, memory_format=memory_format)
    D = build_discriminator(spec, width=cfg.d_width, spectral_norm=cfg.spectral_norm).to(device, memory_format=memory_format)
    G_ema = build_generator(spec).to(device, memory_format=memory_format).eval().requires_grad_(False)
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
        for opt, lr in ((opt_g, cfg.lr_g), (opt_d, cfg.lr_d)):  # the config, not the checkpoint, sets the schedule
            for group in opt.param_groups:
                group.update(lr=lr, betas=(cfg.beta1, cfg.beta2))
        step, best = int(state["step"]), dict(state["best"])
        hooks.on_message(f"resuming from {path.name} at step {step}")
    broadcast_state(world, G, D, G_ema)
    G_train, D_train = (torch.compile(G), torch.compile(D)) if cfg.compile else (G, D)
    # A discriminator with batch norm sees real and fake as separate batches (as DCGAN trains it): a mixed
    # batch would hide the batch-level difference its statistics carry. Without it, one forward is cheaper.
    split_d = uses_batch_stats(D)

    def checkpoint_state() -> dict[str, Any]:
        return {"format": CHECKPOINT_FORMAT, "step": step, "config": cfg.to_dict(), "spec": spec.to_dict(),
                "G": G.state_dict(), "D": D.state_dict(), "G_ema": G_ema.state_dict(),
                "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(), "best": best}

    grid_labels = torch.arange(spec.num_classes).repeat(GRID_ROWS) if spec.num_classes else None
    grid_n = GRID_ROWS * spec.num_classes if spec.num_classes else GRID_ROWS * GRID_ROWS
    grid_cols = spec.num_classes or GRID_ROWS
    grid_every = cfg.grid_every or steps_per_epoch
    noise = torch.Generator(device).manual_seed(cfg.seed)
    order, order_epoch = None, -1
    last_good = list_checkpoints(out_dir)[0] if resume and is_main else None
    hooks.on_start({"device": str(device), "world_size": world, "start_step": step, "steps": cfg.steps,
                    "precision": "bf16" if use_bf16 else "fp32", "steps_per_epoch": steps_per_epoch,
                    "spec": spec.to_dict(), "images": n_images})

    def make_grid() -> np.ndarray:
        from prodgan.imaging import grid

        return grid(generate_uint8(G_ema, spec, grid_n, GRID_SEED, labels=grid_labels, device=device), nrow=grid_cols)

    def evaluate() -> None:
        broadcast_state(world, G_ema)
        if not (is_main and on_eval):
            return
        metrics = {k: float(v) for k, v in on_eval(G_ema, step).items()}
        hooks.on_metrics(step, metrics)
        value = metrics.get(cfg.eval_metric)
        if value is not None and value < best["value"]:
            best.update(value=value, step=step)
            save_bundle(out_dir / "best", G_ema, spec, {**(lineage or {}), "step": step, cfg.eval_metric: value})

    bar = _progress_bar(progress and is_main, step, cfg.steps)
    window_t, window_step, losses = time.perf_counter(), step, None
    deadline = window_t + cfg.max_seconds if cfg.max_seconds else math.inf
    metrics: dict[str, float] = {}
    last = step >= cfg.steps
    with bar:
        while not last:
            # Batch: this rank's slice of the epoch's global batch.
            epoch, i = divmod(step, steps_per_epoch)
            if epoch != order_epoch:
                order, order_epoch = epoch_order(n_images, cfg.seed, epoch).to(device), epoch
            idx = order[i * cfg.batch_size + rank * local_batch:i * cfg.batch_size + (rank + 1) * local_batch]
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
                        loss_d = loss_d_fn(D_train(real, y).float(), D_train(fake.detach(), y).float())
                    else:
                        logits = D_train(torch.cat([real, fake.detach()]), torch.cat([y, y]) if y is not None else None).float()
                        loss_d = loss_d_fn(*logits.split(local_batch))
                if cfg.loss == "wgan-gp":
                    with autocast():
                        loss_d = loss_d + cfg.gp_weight * gradient_penalty(D_train, real, fake, y)
                if cfg.r1_gamma and step % cfg.r1_every == 0:
                    with autocast():
                        loss_d = loss_d + (cfg.r1_gamma / 2 * cfg.r1_every) * r1_penalty(D_train, real, y)
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                allreduce_grads(D, world)
                opt_d.step()

            # Generator: reuses the last fake batch, through the updated discriminator.
            D.requires_grad_(False)
            with autocast():
                loss_g = loss_g_fn(D_train(fake, y).float())
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
                metrics = {"loss_d": float(losses[0]), "loss_g": float(losses[1]),
                           "images_per_s": (step - window_step) * cfg.batch_size / max(now - window_t, 1e-9),
                           "epoch": step / steps_per_epoch}
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
            raise ProdganError(f"DDP replicas disagree after training ({digests}); report this as a bug")

    bundle_dir = out_dir / "bundle"
    if is_main:
        if best["step"] >= 0 and (out_dir / "best").is_dir():
            _copy_bundle(out_dir / "best", bundle_dir)
        else:
            save_bundle(bundle_dir, G_ema, spec, {**(lineage or {}), "step": step, "config": cfg.to_dict()})
    metrics = {**metrics, "train_seconds": time.perf_counter() - t_start}
    if best["step"] >= 0:
        metrics.update({f"best_{cfg.eval_metric}": best["value"], "best_step": float(best["step"])})
    return TrainResult(out_dir, bundle_dir, last_good or Path(), step, spec, metrics, digest)


def _diverged_message(step: int, losses: torch.Tensor | None, last_good: Path | None) -> str:
    keep = f"the last good checkpoint {last_good} is kept" if last_good else "no checkpoint had been written yet"
    shown = f" (loss_d={float(losses[0]):.4g}, loss_g={float(losses[1]):.4g})" if losses is not None else ""
    return f"training diverged at step {step}: NaN/inf losses or weights{shown}; {keep}; lower lr_g/lr_d or enable spectral_norm, then --resume"


def _copy_bundle(src: Path, dst: Path) -> None:
    from prodgan.fsutil import atomic_dir
    import shutil

    with atomic_dir(dst) as tmp:
        for f in src.iterdir():
            shutil.copy2(f, tmp / f.name)


class _progress_bar:
    """A rich progress bar with images/s and losses; a no-op when disabled (other ranks, quiet runs)."""

    def __init__(self, enabled: bool, start: int, total: int) -> None:
        self.enabled, self.start, self.total = enabled, start, total

    def __enter__(self) -> "_progress_bar":
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self.progress = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                     TimeRemainingColumn(), TextColumn("{task.fields[info]}"), transient=False)
            self.progress.__enter__()
            self.task = self.progress.add_task("train", total=self.total, completed=self.start, info="")
        return self

    def update(self, step: int, metrics: dict[str, float]) -> None:
        if self.enabled:
            info = f"{metrics['images_per_s']:,.0f} img/s  D {metrics['loss_d']:.3f}  G {metrics['loss_g']:.3f}"
            self.progress.update(self.task, completed=step, info=info)

    def __exit__(self, *exc: Any) -> None:
        if self.enabled:
            self.progress.__exit__(*exc)


# ---------------------------------------------------------------- torchrun / bare entry point

TRAIN_LOG = "train_log.jsonl"  # what rank 0 of a bare run reported, one JSON object per line
GRIDS_DIR = "samples"


class FileHooks(TrainHooks):
    """Rank 0 of a bare (torchrun) run appends its reports to files, so a tracking parent can log them."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)

    def _append(self, record: dict[str, Any]) -> None:
        import json

        with open(self.out_dir / TRAIN_LOG, "a") as log:
            log.write(json.dumps(record) + "\n")

    def on_start(self, info: dict[str, Any]) -> None:
        self._append({"start": info})

    def on_metrics(self, step: int, metrics: dict[str, float]) -> None:
        self._append({"step": step, "metrics": metrics})

    def on_grid(self, step: int, epoch: int, image: np.ndarray) -> None:
        relative = f"{GRIDS_DIR}/step_{step:07d}.npy"
        (self.out_dir / GRIDS_DIR).mkdir(exist_ok=True)
        with atomic_path(self.out_dir / relative, suffix=".npy") as tmp:
            np.save(tmp, image)
        self._append({"step": step, "grid": relative, "epoch": epoch})


def replay_file_log(out_dir: Path, offset: int, hooks: TrainHooks) -> dict[str, float]:
    """Feed what a bare run wrote after byte `offset` of its log to `hooks`; returns the last metrics."""
    import json

    last: dict[str, float] = {}
    path = Path(out_dir) / TRAIN_LOG
    if not path.is_file():
        return last
    with open(path) as log:
        log.seek(offset)
        for line in log:
            record = json.loads(line)
            if "start" in record:
                hooks.on_start(record["start"])
            elif "metrics" in record:
                hooks.on_metrics(record["step"], record["metrics"])
                last = record["metrics"]
            elif "grid" in record:
                hooks.on_grid(record["step"], record["epoch"], np.load(Path(out_dir) / record["grid"]))
    return last


def main(argv: list[str] | None = None) -> None:
    """Train without tracking (a bare GPU box, or `torchrun`): checkpoints, bundle, train_log.jsonl and grids land in --out."""
    from prodgan.data.layout import read_meta
    from prodgan.data.tensors import decode_split, load_split
    from prodgan.settings import Settings

    parser = argparse.ArgumentParser(prog="python -m prodgan.train", description=main.__doc__)
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", required=True, type=Path, help="run folder (checkpoints/, bundle/)")
    parser.add_argument("--data-dir", type=Path, help="dataset folder [default: <project>/data/<dataset>]")
    parser.add_argument("--data-hash", help="DVC hash of the data: enables the decoded-tensor cache")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
        settings = Settings.load()
        root = args.data_dir or settings.data_dir / cfg.dataset
        if args.data_hash:
            data = load_split(settings.tensor_cache_dir, root, "train", args.data_hash)
        else:
            meta = read_meta(root)
            images, labels = decode_split(root, meta, "train")
            data = ImageSplit(images, labels, tuple(meta.categories), meta.name, "train", "unpinned")
        result = train(cfg, data, args.out, resume=args.resume, hooks=FileHooks(args.out),
                       progress=int(os.environ.get("RANK", "0")) == 0)
        print(f"rank {int(os.environ.get('RANK', '0'))} step {result.step} weights sha256 {result.weights_sha256}", flush=True)
        if int(os.environ.get("RANK", "0")) == 0:
            print(f"bundle: {result.bundle_dir}", flush=True)
    except ProdganError as exc:
        raise SystemExit(f"error: {exc}") from None
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    main()
