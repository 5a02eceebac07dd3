"""Training checkpoints: atomic writes, newest first; a corrupt one falls back to the one before.

A checkpoint holds everything a resumed run needs to draw exactly what the uninterrupted run
would have; `check_resumable` refuses one written for other network shapes.
"""

from __future__ import annotations

import hashlib
import pickle
import re
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from prodgan.errors import ProdganError
from prodgan.fsutil import atomic_path
from prodgan.models import GeneratorSpec, unwrap
from prodgan.training.config import TrainConfig

CHECKPOINT_FORMAT = 1
CKPT_RE = re.compile(r"^ckpt_(\d{8})\.pt$")
# Keys that change the networks' shapes: a checkpoint written under other values cannot be resumed.
ARCH_KEYS = ("arch", "z_dim", "width", "d_width", "spectral_norm", "dataset")


def weights_digest(*modules: nn.Module) -> str:
    """sha256 over every parameter and buffer: equal digests mean bit-identical replicas."""
    h = hashlib.sha256()
    for module in modules:
        for name, tensor in unwrap(module).state_dict().items():
            h.update(name.encode())
            h.update(
                tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
            )
    return h.hexdigest()


def all_finite(*modules: nn.Module) -> bool:
    return bool(
        torch.stack([p.detach().isfinite().all() for m in modules for p in m.parameters()]).all()
    )


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


def load_latest_checkpoint(
    out_dir: Path, warn: Callable[[str], None]
) -> tuple[dict[str, Any], Path]:
    """The newest checkpoint that loads; a corrupt one is reported and the one before it used."""
    candidates = list_checkpoints(out_dir)
    if not candidates:
        raise ProdganError(
            f"nothing to resume in {out_dir}: no checkpoints; start the run without --resume"
        )
    for path in candidates:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            if state.get("format") == CHECKPOINT_FORMAT:
                return state, path
            warn(f"checkpoint {path.name} has an unknown format; trying the previous one")
        except (
            RuntimeError,
            EOFError,
            OSError,
            pickle.UnpicklingError,
            ValueError,
            AttributeError,
        ) as exc:
            warn(
                f"checkpoint {path.name} is unreadable ({type(exc).__name__}); "
                "falling back to the previous one"
            )
    raise ProdganError(
        f"no readable checkpoint in {checkpoint_dir(out_dir)}; start the run again without --resume"
    )


def check_resumable(
    saved_cfg: dict[str, Any],
    saved_spec: dict[str, Any],
    cfg: TrainConfig,
    spec: GeneratorSpec,
    path: Path,
) -> None:
    diffs = [
        f"{k}={saved_cfg.get(k)!r} (now {getattr(cfg, k)!r})"
        for k in ARCH_KEYS
        if saved_cfg.get(k) != getattr(cfg, k)
    ]
    if saved_spec != spec.to_dict() and not diffs:
        diffs.append(f"spec {saved_spec} (now {spec.to_dict()})")
    if diffs:
        raise ProdganError(
            f"checkpoint {path} was written for another architecture: {', '.join(diffs)}; "
            "resume with the config it was trained with, or start without --resume"
        )
