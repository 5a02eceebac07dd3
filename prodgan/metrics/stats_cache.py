"""Real-side features cached on disk, keyed by the protocol's real key (a content hash).

torch-fidelity's own cache key is only the input name + extractor name (it ignores the weights
and the data), so prodgan keeps features itself: one `.npz` per key, written atomically.
Caching is a thin wrapper around a compute function (`shards.Shards.cached`, which also decides
hits for every rank at once); the metrics never know about it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from prodgan.fsutil import atomic_path

Features = dict[str, np.ndarray]


def generated_key(fingerprint: str, generator_key: str) -> str:
    """Key of one generator's features under one protocol (generator_key: its weights sha256)."""
    return f"gen-{fingerprint}-{generator_key}"


def protocol_file(cache_dir: Path, fingerprint: str) -> Path:
    return Path(cache_dir) / "protocols" / f"{fingerprint}.json"


def cache_file(cache_dir: Path, key: str) -> Path:
    return Path(cache_dir) / "features" / f"{key}.npz"


def load(cache_dir: Path, key: str) -> Features | None:
    path = cache_file(cache_dir, key)
    if not path.is_file():
        return None
    try:
        with np.load(path) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError):
        return None  # a damaged entry is recomputed and overwritten, never trusted


def save(cache_dir: Path, key: str, features: Features) -> None:
    with atomic_path(cache_file(cache_dir, key), suffix=".npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **features)
