"""Fashion-MNIST from its four idx files into the dataset layout (`layout.py`)."""

from __future__ import annotations

import gzip
import hashlib
import struct
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np

from prodgan.data.layout import DatasetMeta, encode_png
from prodgan.errors import ProdganError

DEBIAN_SOURCE = Path("/usr/share/datasets/fashion-mnist")
CATEGORIES = [
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle-boot",
]
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_DTYPE_UBYTE = 0x08


def _open_idx(source: Path, stem: str) -> tuple[bytes, str]:
    """Raw bytes of `stem` or `stem.gz` in `source`, and the sha256 of the file as stored."""
    for path, opener in ((source / f"{stem}.gz", gzip.open), (source / stem, open)):
        if path.is_file():
            try:
                with opener(path, "rb") as f:
                    raw = f.read()
            except (OSError, EOFError) as exc:
                raise ProdganError(
                    f"{path} is unreadable or truncated ({exc}); "
                    "reinstall it: apt-get install --reinstall dataset-fashion-mnist"
                ) from exc
            return raw, hashlib.sha256(path.read_bytes()).hexdigest()
    raise ProdganError(
        f"{stem}(.gz) not found in {source}; "
        "install the dataset with `apt-get install dataset-fashion-mnist` "
        "or pass --source DIR holding the four idx files"
    )


def parse_idx(raw: bytes, name: str) -> np.ndarray:
    """Decode an idx file (big-endian header: magic, then one uint32 per dimension)."""
    if len(raw) < 4:
        raise ProdganError(f"{name} is truncated (no idx header); re-download or reinstall it")
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != _IDX_DTYPE_UBYTE or ndim not in (1, 3):
        raise ProdganError(f"{name} is not an unsigned-byte idx file (magic {raw[:4].hex()})")
    header = 4 + 4 * ndim
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(dims))
    if len(raw) - header != expected:
        raise ProdganError(
            f"{name} is truncated: header says {expected} bytes of data, "
            f"file has {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def read_split(source: Path, split: str) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
    images_stem, labels_stem = FILES[split]
    images_raw, images_sha = _open_idx(source, images_stem)
    labels_raw, labels_sha = _open_idx(source, labels_stem)
    images = parse_idx(images_raw, images_stem)
    labels = parse_idx(labels_raw, labels_stem)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ProdganError(
            f"{images_stem} and {labels_stem} disagree: "
            f"{images.shape} images vs {labels.shape} labels"
        )
    if labels.max(initial=0) >= len(CATEGORIES):
        raise ProdganError(
            f"{labels_stem} holds label {labels.max()} "
            f"(Fashion-MNIST has {len(CATEGORIES)} categories)"
        )
    return images, labels, {images_stem: images_sha, labels_stem: labels_sha}


def write_fashion_mnist(
    source: Path,
    out_dir: Path,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> DatasetMeta:
    """Write every image as PNG under `out_dir` (a fresh folder) and return its metadata.

    `limit` keeps the first N images of each split: tiny datasets for tests and smoke runs.
    `progress(done, total)` is called as files are written.
    """
    splits = {split: read_split(Path(source), split) for split in FILES}
    counts: dict[str, dict[str, int]] = {}
    source_hashes: dict[str, str] = {}
    jobs: list[tuple[Path, np.ndarray]] = []
    for split, (images, labels, hashes) in splits.items():
        source_hashes.update(hashes)
        n = len(images) if limit is None else min(limit, len(images))
        counts[split] = {c: 0 for c in CATEGORIES}
        for cat in CATEGORIES:
            (out_dir / split / cat).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            cat = CATEGORIES[labels[i]]
            counts[split][cat] += 1
            jobs.append((out_dir / split / cat / f"{i:05d}.png", images[i]))

    def write(job: tuple[Path, np.ndarray]) -> None:
        job[0].write_bytes(encode_png(job[1]))

    with ThreadPoolExecutor(max_workers=4) as pool:
        for done, _ in enumerate(pool.map(write, jobs), start=1):
            if progress and (done % 500 == 0 or done == len(jobs)):
                progress(done, len(jobs))
    if limit is not None:
        source_hashes["limit"] = str(limit)
    return DatasetMeta(
        name="fashion-mnist",
        kind="fashion-mnist",
        size=28,
        mode="L",
        categories=list(CATEGORIES),
        counts=counts,
        source=source_hashes,
    )
