"""Evaluation spread over torch.distributed ranks: each rank a contiguous run of whole batches.

Whole batches, so every image is generated and featurised in exactly the batch it would be in one
process: the samples are the same images whatever the world size, and the features gathered in
rank order are the one-process features, bit for bit, so every metric is too. Rank 0 (the lead)
gathers and computes the metrics; the other ranks only extract. Cache hits are decided by the lead
and broadcast, so no rank skips a collective another one waits in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch.distributed as dist

from prodgan.metrics import stats_cache

Features = dict[str, np.ndarray]


@dataclass(frozen=True)
class Shards:
    rank: int = 0
    world: int = 1

    @classmethod
    def joined(cls) -> Shards:
        """This process's place in the current process group (one shard when there is none)."""
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size())
        return cls()

    @property
    def lead(self) -> bool:
        return self.rank == 0

    def span(self, n: int, batch: int) -> slice:
        """This rank's items of n: batches [rank*B/world, (rank+1)*B/world) of B = ceil(n/batch)."""
        batches = -(-n // batch)
        first = batches * self.rank // self.world
        last = batches * (self.rank + 1) // self.world
        return slice(min(first * batch, n), min(last * batch, n))

    def gather(self, part: Features) -> Features | None:
        """Every rank's part concatenated in rank order, on the lead; None on the other ranks.

        A rank with no items sends an empty dict (its span was empty).
        """
        if self.world == 1:
            return part
        parts: list[Features] | None = [{} for _ in range(self.world)] if self.lead else None
        dist.gather_object(part, parts, dst=0)
        if parts is None:
            return None
        filled = [p for p in parts if p]
        return {k: np.concatenate([p[k] for p in filled]) for k in filled[0]} if filled else {}

    def agree(self, flag: bool) -> bool:
        """The lead's flag, on every rank."""
        if self.world == 1:
            return flag
        box = [flag]
        dist.broadcast_object_list(box, src=0)
        return bool(box[0])

    def cached(
        self, cache_dir: Path, key: str, compute: Callable[[], Features | None]
    ) -> tuple[Features | None, bool]:
        """`stats_cache.cached` for a collective `compute`: the lead looks up and stores.

        (features on the lead, None elsewhere; hit). On a miss every rank runs `compute`.
        """
        hit = stats_cache.load(cache_dir, key) if self.lead else None
        if self.agree(hit is not None):
            return hit, True
        features = compute()
        if self.lead:
            stats_cache.save(cache_dir, key, features)
        return features, False
