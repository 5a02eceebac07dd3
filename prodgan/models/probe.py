"""The category judge: a linear probe (multinomial logistic regression) on Inception features.

The evaluation already computes every image's 2048-d Inception features for FID; a linear
classifier fitted on the train split's features tells categories apart far better than a CNN
trained from scratch on a few hundred photos, costs one matrix product per evaluation and adds
no new weights to download. Saved like the generator bundle: a plain state dict plus a JSON
record naming its sha256 (refused on mismatch) and the Inception weights its features came
from (a probe fitted on other features is refused where it is used).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from prodgan.errors import ProdganError
from prodgan.models.hashed_state import load_hashed, read_record, save_hashed

WEIGHTS_FILE = "probe.pt"
RECORD_FILE = "probe.json"
KIND = "inception-linear-probe"
# L2 penalty on standardised features: with a few hundred photos and 2,048 features the fit is
# separable, so without it the weights grow without bound and the probe is overconfident.
L2 = 1e-2
LBFGS_STEPS = 200


@dataclass(frozen=True)
class ProbeSpec:
    categories: tuple[str, ...]
    features: int  # the Inception layer's width (2048)
    extractor: str  # torch-fidelity extractor the features came from
    inception_sha256: str  # its weights: features of other weights are another space

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ProbeSpec":
        return cls(
            tuple(d["categories"]), int(d["features"]), str(d["extractor"]), d["inception_sha256"]
        )


class LinearProbe(nn.Module):
    """Input: Inception features [N, features]; output: category logits [N, categories].

    The standardisation fitted on the train split is part of the module (buffers), so the
    weights file holds everything the logits depend on.
    """

    reads_features = True  # the evaluation hands it features, not pixels (see metrics/judge.py)

    def __init__(self, spec: ProbeSpec) -> None:
        super().__init__()
        self.spec = spec
        self.categories = spec.categories
        self.register_buffer("mean", torch.zeros(spec.features))
        self.register_buffer("scale", torch.ones(spec.features))
        self.linear = nn.Linear(spec.features, len(spec.categories))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear((features - self.mean) / self.scale)

    @torch.no_grad()
    def logits(self, features: np.ndarray) -> np.ndarray:
        return self(torch.from_numpy(np.asarray(features, dtype=np.float32))).numpy()

    def accuracy(self, features: np.ndarray, labels: np.ndarray) -> float:
        return float((self.logits(features).argmax(1) == labels).mean()) if len(labels) else 0.0


def fit_probe(
    spec: ProbeSpec, features: np.ndarray, labels: np.ndarray, *, l2: float = L2
) -> LinearProbe:
    """Multinomial logistic regression by full-batch L-BFGS in float64 (deterministic on a CPU).

    The loss is the mean cross-entropy plus `l2` times the squared weights (bias unpenalised).
    """
    if len(labels) < 2 or len(np.unique(labels)) < 2:
        raise ProdganError(
            "the train split needs images of at least 2 categories to fit the category judge; "
            "import more photos (`prodgan data import`)"
        )
    x = torch.from_numpy(np.asarray(features, dtype=np.float64))
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    mean, scale = x.mean(0), x.std(0).clamp_min(1e-6)
    x = (x - mean) / scale
    weight = torch.zeros(len(spec.categories), x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(len(spec.categories), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weight, bias], max_iter=LBFGS_STEPS, line_search_fn="strong_wolfe"
    )

    def loss() -> torch.Tensor:
        optimizer.zero_grad()
        value = nn.functional.cross_entropy(x @ weight.T + bias, y) + l2 * weight.square().sum()
        value.backward()
        return value

    optimizer.step(loss)
    probe = LinearProbe(spec)
    with torch.no_grad():
        probe.mean.copy_(mean)
        probe.scale.copy_(scale)
        probe.linear.weight.copy_(weight)
        probe.linear.bias.copy_(bias)
    return probe.eval()


FIX = "fit the judge again with `prodgan evaluator train`"


def save_probe(directory: Path, probe: LinearProbe, extra: dict[str, Any] | None = None) -> Path:
    """probe.pt (plain state dict), then probe.json (kind, spec, its sha256, lineage)."""
    record = {"kind": KIND, "spec": asdict(probe.spec), "extra": extra or {}}
    save_hashed(directory, WEIGHTS_FILE, RECORD_FILE, probe, record)
    return Path(directory)


def load_probe(directory: Path) -> tuple[LinearProbe, dict[str, Any]]:
    """(probe in eval mode, its record). Refuses weights whose sha256 is not the recorded one."""
    record = read_record(directory, RECORD_FILE, FIX)
    try:
        spec = ProbeSpec.from_dict(record["spec"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ProdganError(f"{Path(directory) / RECORD_FILE} is corrupt ({exc}); {FIX}") from exc
    return load_hashed(directory, WEIGHTS_FILE, record, LinearProbe(spec), FIX), record
