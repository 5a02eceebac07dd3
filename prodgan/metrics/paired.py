"""Comparing two generators with confidence, from cached features (what the promotion gates call).

Each evaluation can leave its generated Inception features in the stats cache under
(protocol fingerprint, generator key) and its protocol beside them; a later comparison loads
both generators' features and the protocol's real features and bootstraps the FID difference.
"""

from __future__ import annotations

import json
from pathlib import Path

from prodgan.fsutil import write_json_atomic
from prodgan.metrics import stats_cache
from prodgan.metrics.confidence import Interval, fid_delta_interval
from prodgan.metrics.defaults import DEFAULTS
from prodgan.metrics.evaluate import INCEPTION, EvalResult
from prodgan.metrics.protocol import Protocol


def _generated_key(fingerprint: str, generator_key: str) -> str:
    return f"gen-{fingerprint}-{generator_key}"


def _protocol_file(cache_dir: Path, fingerprint: str) -> Path:
    return Path(cache_dir) / "protocols" / f"{fingerprint}.json"


def store_generated(cache_dir: Path, result: EvalResult, generator_key: str) -> None:
    """Keep `result`'s generated features for later comparisons (generator_key: its weights sha256)."""
    fingerprint = result.protocol.fingerprint
    write_json_atomic(_protocol_file(cache_dir, fingerprint), result.protocol.to_dict())
    stats_cache.save(cache_dir, _generated_key(fingerprint, generator_key), {INCEPTION: result.features})


def fid_delta_from_cache(cache_dir: Path, fingerprint: str, challenger_key: str, champion_key: str, *,
                         resamples: int = DEFAULTS["bootstrap"], seed: int = 0,
                         confidence: float = DEFAULTS["confidence"]) -> Interval | None:
    """Interval of FID(challenger) - FID(champion) under one protocol; None when either side's
    features (or the real side's) are not cached here, so the caller falls back to the metrics."""
    try:
        protocol = Protocol(**json.loads(_protocol_file(cache_dir, fingerprint).read_text()))
    except (OSError, ValueError, TypeError):
        return None
    sides = [stats_cache.load(cache_dir, key) for key in (_generated_key(fingerprint, challenger_key),
                                                          _generated_key(fingerprint, champion_key), protocol.real_key())]
    if any(side is None for side in sides):
        return None
    challenger, champion, real = (side[INCEPTION] for side in sides)
    return fid_delta_interval(challenger, champion, real, resamples=resamples, seed=seed, confidence=confidence)
