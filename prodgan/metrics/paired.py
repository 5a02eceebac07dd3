"""Comparing two generators with confidence, from cached features (what the promotion gates call).

`evaluate_generator(..., generator_key=<weights sha256>)` leaves each generator's Inception
features in the stats cache under (protocol fingerprint, key), with the protocol beside them; a
comparison loads both and the protocol's real features and bootstraps the FID difference.
"""

from __future__ import annotations

import json
from pathlib import Path

from prodgan.metrics import stats_cache
from prodgan.metrics.confidence import Interval, fid_delta_interval
from prodgan.metrics.defaults import DEFAULTS
from prodgan.metrics.evaluate import INCEPTION
from prodgan.metrics.protocol import Protocol


def fid_delta_from_cache(
    cache_dir: Path,
    fingerprint: str,
    challenger_key: str,
    champion_key: str,
    *,
    resamples: int = DEFAULTS["bootstrap"],
    seed: int = 0,
    confidence: float = DEFAULTS["confidence"],
) -> Interval | None:
    """Interval of FID(challenger) - FID(champion) under one protocol (negative: challenger better);
    None when either side's features (or the real side's) are not cached here, so the caller falls
    back to comparing the logged metrics and their intervals."""
    try:
        protocol = Protocol(
            **json.loads(stats_cache.protocol_file(cache_dir, fingerprint).read_text())
        )
    except (OSError, ValueError, TypeError):
        return None
    keys = (
        stats_cache.generated_key(fingerprint, challenger_key),
        stats_cache.generated_key(fingerprint, champion_key),
        protocol.real_key(),
    )
    sides = [stats_cache.load(cache_dir, key) for key in keys]
    if any(side is None for side in sides):
        return None
    challenger, champion, real = (side[INCEPTION] for side in sides)
    return fid_delta_interval(
        challenger, champion, real, resamples=resamples, seed=seed, confidence=confidence
    )
