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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from prodgan.metrics.fid import RealReference, fid_to
from prodgan.metrics.kid import kid

NOISE_SEED = 0  # the untrained generator's initialisation: fixed, so its features can be cached
# An imported generator with no untrained export of its own is measured against prodgan's DCGAN
# generator at its size, channels and categories, at this width (the CPU recipe's). Samples whose
# generator is not at hand at all get the same DCGAN with prodgan's default latent size.
REFERENCE_WIDTH = 64
REFERENCE_Z_DIM = 128


@dataclass(frozen=True)
class NoiseReference:
    """The untrained generator a challenger's gap is measured to, and what it was."""

    generator: torch.nn.Module
    spec: Any  # what its samples are drawn with (latent size, categories, image size)
    key: str  # cache key of its samples' features
    name: str  # recorded with the evaluation and the decision


def untrained_like(spec: Any) -> torch.nn.Module:
    """A freshly initialised generator of `spec`'s architecture (same seed every time)."""
    from prodgan.models import build_generator

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(NOISE_SEED)
        return build_generator(spec).eval()


def noise_key(spec: Any) -> str:
    """Cache key of the untrained generator's samples: its architecture and initialisation."""
    return (
        "untrained-"
        + hashlib.sha256(
            json.dumps({**spec.to_dict(), "init_seed": NOISE_SEED}, sort_keys=True).encode()
        ).hexdigest()
    )


def untrained_reference(spec: Any) -> NoiseReference:
    """An untrained generator of `spec`'s own architecture (prodgan's, so it can be built)."""
    return NoiseReference(
        untrained_like(spec),
        spec,
        noise_key(spec),
        f"untrained {spec.arch} (init seed {NOISE_SEED})",
    )


def bundle_noise_reference(bundle_dir: Path) -> NoiseReference:
    """The noise reference for the bundle at `bundle_dir`, whatever its kind.

    A native bundle: an untrained generator of its architecture. An imported one: the untrained
    export of the same network its spec named, else prodgan's DCGAN at its size (REFERENCE_WIDTH).
    """
    from prodgan.models import load_bundle, read_bundle_record
    from prodgan.models.bundle import GeneratorSpec, bundle_kind
    from prodgan.models.formats import IMPORTED, NATIVE

    record = read_bundle_record(bundle_dir)
    spec = GeneratorSpec.from_dict(record["spec"])
    if bundle_kind(record) == NATIVE or spec.arch != IMPORTED:
        return untrained_reference(spec)
    noise_file = record.get("noise_file")
    if noise_file:
        generator, _ = load_bundle(bundle_dir, role="noise")
        digest = record["files"][noise_file]
        return NoiseReference(
            generator,
            spec,
            f"untrained-file-{digest}",
            f"untrained export {noise_file} (sha256 {digest[:12]})",
        )
    arch = "cdcgan" if spec.num_classes else "dcgan"
    reference = untrained_reference(replace(spec, arch=arch, width=REFERENCE_WIDTH))
    return replace(
        reference, name=f"prodgan {arch} width {REFERENCE_WIDTH} (init seed {NOISE_SEED})"
    )


def samples_reference(channels: int, size: int) -> NoiseReference:
    """The noise reference for samples handed in without their generator: prodgan's untrained
    DCGAN at their size and channels, unconditional (samples carry no labels)."""
    from prodgan.models import GeneratorSpec

    spec = GeneratorSpec("dcgan", REFERENCE_Z_DIM, 0, channels, size, REFERENCE_WIDTH).check()
    return replace(
        untrained_reference(spec),
        name=f"prodgan dcgan width {REFERENCE_WIDTH} z {REFERENCE_Z_DIM} (init seed {NOISE_SEED})",
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
