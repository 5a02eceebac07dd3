"""Training tests run one intra-op thread.

On a shared 2-core box, two spinning OpenMP threads are 2-6x slower than one.
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # subprocesses (CLI, torchrun) too
    yield
    torch.set_num_threads(before)
