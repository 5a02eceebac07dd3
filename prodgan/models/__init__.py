"""Generators, discriminators, the generator bundle and deterministic sampling (torch only)."""

from prodgan.models.bundle import (
    ARCHS,
    GeneratorSpec,
    build_discriminator,
    load_bundle,
    read_bundle_record,
    save_bundle,
    unwrap,
)
from prodgan.models.formats import build_generator
from prodgan.models.nets import uses_batch_stats
from prodgan.models.sampling import generate_uint8, latents, sample_labels, to_uint8

__all__ = [
    "ARCHS",
    "GeneratorSpec",
    "build_discriminator",
    "build_generator",
    "generate_uint8",
    "latents",
    "load_bundle",
    "read_bundle_record",
    "sample_labels",
    "save_bundle",
    "to_uint8",
    "unwrap",
    "uses_batch_stats",
]
