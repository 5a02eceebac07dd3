"""One request path from (seed, category, n) to images, for the CLI, the server and the editor.

Core compute: torch only (rule 1). Bad values raise `ProdganError` naming the valid choices;
the pyfunc turns those into 4xx answers, the CLI into one red line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from prodgan.errors import ProdganError
from prodgan.models.sampling import generate_uint8
from prodgan.names import category_key

# Limits on one request. Generation is cheap per image, but a request is answered as base64 PNGs
# in one JSON body, so the caps bound both compute and the response size.
MAX_IMAGES_PER_ROW = 256
MAX_IMAGES_PER_REQUEST = 1024


@dataclass(frozen=True)
class Request:
    seed: int
    category: (
        int | None
    )  # index into spec.categories; None = unconditional or balanced over categories
    n: int


def _is_missing(value: Any) -> bool:
    return (
        value is None
        or (isinstance(value, float) and math.isnan(value))
        or (isinstance(value, str) and not value.strip())
    )


def category_index(spec: Any, value: Any) -> int | None:
    """A category given by name (case-insensitive) or index -> its index; None when not given."""
    if _is_missing(value):
        return None
    names = list(spec.categories)
    if spec.num_classes == 0:
        raise ProdganError(
            f"this generator is unconditional: leave out the category (got {value!r})"
        )
    choices = f"use one of {', '.join(names)} (or an index 0..{spec.num_classes - 1})"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value < spec.num_classes:
            return value
        raise ProdganError(f"category index {value} is out of range: {choices}")
    lowered = [name.lower() for name in names]
    if isinstance(value, str) and value.strip().lower() in lowered:
        return lowered.index(value.strip().lower())
    if (
        isinstance(value, str) and category_key(value) in names
    ):  # the name as the shop wrote it: "Men's T-Shirt"
        return names.index(category_key(value))
    raise ProdganError(f"unknown category {value!r}: {choices}")


def _as_int(value: Any, field: str, default: int | None = None) -> int:
    if _is_missing(value):
        if default is None:
            raise ProdganError(f"{field} is required: give an integer")
        return default
    if isinstance(value, bool) or not (
        isinstance(value, int)
        or (isinstance(value, float) and value.is_integer())
        or (isinstance(value, str) and value.strip().lstrip("-").isdigit())
    ):
        raise ProdganError(f"{field} must be an integer, got {value!r}")
    return int(value)


def parse_request(
    spec: Any, seed: Any, category: Any = None, n: Any = None, max_images: int = MAX_IMAGES_PER_ROW
) -> Request:
    """Check one request's values against the generator and the limits."""
    seed_value = _as_int(seed, "seed")
    if not 0 <= seed_value < 2**63:
        raise ProdganError(f"seed {seed_value} is out of range: use 0..2**63-1")
    count = _as_int(n, "n", default=1)
    if count < 1:
        raise ProdganError(f"n={count} is too small: ask for at least 1 image")
    if count > max_images:
        raise ProdganError(
            f"n={count} is too large: ask for at most {max_images} images per request row"
        )
    return Request(seed=seed_value, category=category_index(spec, category), n=count)


def request_labels(spec: Any, request: Request) -> torch.Tensor | None:
    """The category of each image: the asked one, or every category in turn when none is asked
    (image i shows category i % categories: a grid with one column per category)."""
    if spec.num_classes == 0:
        return None
    if request.category is None:
        return torch.arange(request.n, dtype=torch.long) % spec.num_classes
    return torch.full((request.n,), request.category, dtype=torch.long)


def generate(
    G: torch.nn.Module, spec: Any, request: Request, device: str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """uint8 images [n,C,H,W] for a request (same request -> same images) and their labels."""
    labels = request_labels(spec, request)
    images = generate_uint8(G, spec, request.n, request.seed, labels=labels, device=device)
    return images, labels


def hwc(image: torch.Tensor) -> np.ndarray:
    """One uint8 [C,H,W] image as the [H,W] (grayscale) or [H,W,3] array a PNG is written from."""
    return image.permute(1, 2, 0).squeeze(2).cpu().numpy()
