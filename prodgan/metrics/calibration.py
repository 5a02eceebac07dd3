"""Floor and noise: what a perfect and an untrained generator score under the same protocol.

Absolute FID/KID values do not transfer between datasets or sample counts; these references do
the calibration. Floor: real training images against the evaluation split (what a generator that
samples the data distribution perfectly would score). Noise: an untrained generator of the
challenger's own architecture, same latents and categories. A gate written as a fraction of the
gap between them (`max_fraction_of_noise_gap`) means the same on every dataset and protocol.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import torch

from prodgan.metrics.fid import RealReference, fid_to
from prodgan.metrics.kid import kid

NOISE_SEED = 0  # the untrained generator's initialisation: fixed, so its features can be cached
# The noise reference for samples from a generator prodgan cannot rebuild: an untrained DCGAN of
# prodgan's default training width and latent size, at the samples' size and channels.
REFERENCE_Z_DIM, REFERENCE_WIDTH = 128, 64


def untrained_like(spec: Any) -> torch.nn.Module:
    """A freshly initialised generator of `spec`'s architecture (same seed every time)."""
    from prodgan.models import build_generator

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(NOISE_SEED)
        return build_generator(spec).eval()


def reference_spec(channels: int, size: int) -> Any:
    """The fixed untrained reference for samples whose generator is not at hand (its noise
    reference): unconditional, so every sample is compared with the same unlabelled noise."""
    from prodgan.models import GeneratorSpec

    return GeneratorSpec("dcgan", REFERENCE_Z_DIM, 0, channels, size, REFERENCE_WIDTH).check()


def describe_noise(spec: Any) -> str:
    """The noise reference in words, recorded with each evaluation."""
    return (
        f"untrained {spec.arch} (z {spec.z_dim}, width {spec.width}, {spec.channels}x{spec.size}"
        f"x{spec.size}, init seed {NOISE_SEED})"
    )


def noise_key(spec: Any) -> str:
    """Cache key of the untrained generator's samples: its architecture and initialisation."""
    return (
        "untrained-"
        + hashlib.sha256(
            json.dumps({**spec.to_dict(), "init_seed": NOISE_SEED}, sort_keys=True).encode()
        ).hexdigest()
    )


def references(
    real: np.ndarray,
    floor: np.ndarray,
    noise: np.ndarray,
    *,
    kid_subset_size: int,
    kid_subsets: int,
    seed: int,
) -> dict[str, float]:
    """`fid_floor`, `fid_noise`, `kid_floor`, `kid_noise` from features under one protocol."""
    ref = RealReference(real)
    out = {"fid_floor": fid_to(floor, ref), "fid_noise": fid_to(noise, ref)}
    size = min(kid_subset_size, len(floor), len(noise), len(real))
    out["kid_floor"] = kid(floor, real, subset_size=size, subsets=kid_subsets, seed=seed)[0]
    out["kid_noise"] = kid(noise, real, subset_size=size, subsets=kid_subsets, seed=seed)[0]
    return out
