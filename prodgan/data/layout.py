"""How a product-image dataset lies on disk, and its small metadata file.

    data/<name>/dataset.json
    data/<name>/{train,test}/<category>/<id>.png

`dataset.json` declares what validation checks against (size, mode, categories), so it is
written deterministically (sorted keys, no timestamps, no absolute paths): importing the
same source twice gives the same bytes and hence the same DVC hash.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from prodgan.errors import ProdganError

SPLITS = ("train", "test")
META_FILE = "dataset.json"
# Pixels above this are refused on decode (decompression bombs).
MAX_IMAGE_PIXELS = 4096 * 4096
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS


@dataclass(frozen=True)
class DatasetMeta:
    name: str
    kind: str  # "fashion-mnist" | "folder"
    size: int  # images are size x size
    mode: str  # PIL mode: "L" (grayscale) or "RGB"
    categories: list[str]
    counts: dict[str, dict[str, int]]  # split -> category -> images
    source: dict[str, str] = field(
        default_factory=dict
    )  # content hashes of the source, never paths
    display: dict[str, str] = field(
        default_factory=dict
    )  # category key -> the name as the user wrote it
    # image path in the dataset -> the photo it came from, relative to the imported folder
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def channels(self) -> int:
        return 1 if self.mode == "L" else 3

    def total(self, split: str | None = None) -> int:
        splits = [split] if split else list(self.counts)
        return sum(sum(self.counts[s].values()) for s in splits)

    def to_json(self) -> bytes:
        """Deterministic bytes; an empty `display` or `sources` is left out.

        So datasets whose names are their keys and that record no source photos (Fashion-MNIST)
        keep the DVC hash they had before either existed.
        """
        optional = ("display", "sources")
        fields = {k: v for k, v in asdict(self).items() if k not in optional or v}
        return (json.dumps(fields, indent=2, sort_keys=True) + "\n").encode()


def dataset_dir(data_dir: Path, name: str) -> Path:
    return Path(data_dir) / name


def read_meta(path: Path) -> DatasetMeta:
    """Read `dataset.json` from a dataset folder; a clear error when it is absent."""
    meta_file = Path(path) / META_FILE
    if not meta_file.is_file():
        raise ProdganError(
            f"no dataset at {path} ({META_FILE} missing): run `prodgan data pull`, "
            "or import one with `prodgan data import fashion-mnist`"
        )
    try:
        return DatasetMeta(**json.loads(meta_file.read_text()))
    except (json.JSONDecodeError, TypeError) as exc:
        raise ProdganError(
            f"{meta_file} is not a valid dataset metadata file ({exc}); re-import the dataset"
        ) from exc


def encode_png(pixels: np.ndarray) -> bytes:
    """Deterministic PNG bytes (PIL writes no timestamps; fixed compression level)."""
    mode = "L" if pixels.ndim == 2 else "RGB"
    buf = io.BytesIO()
    Image.fromarray(pixels, mode=mode).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def image_files(root: Path, split: str) -> list[tuple[str, Path]]:
    """(category, file) for every PNG of a split, in a stable order."""
    split_dir = Path(root) / split
    if not split_dir.is_dir():
        return []
    return [
        (cat_dir.name, f)
        for cat_dir in sorted(p for p in split_dir.iterdir() if p.is_dir())
        for f in sorted(cat_dir.iterdir())
        if f.suffix == ".png"
    ]
