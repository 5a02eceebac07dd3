"""The image manifest: one row per file of a dataset, the table Great Expectations validates.

Per-file columns come from reading each file once (bytes, sha256, decode, size, mode,
intensity statistics, dHash). Cross-file columns are derived afterwards so that every
dataset-level rule (leakage, per-category balance) becomes a plain column a GX expectation
can check row by row and name the offending file:

- `sha256_in_other_split`: the same bytes also sit in another split (exact leakage).
- `near_dup_distance`: per pixel of 16x16 YCbCr thumbnails, the absolute difference of the
  brightness-centred luma plus that of the two chroma channels (0-255 levels each), to the closest
  image in another split with the same dHash (`near_dup_of` names it; NaN when no other-split image
  shares the dHash). Small = leak. Grayscale images have no chroma: the luma term alone.
- `perceptual_dup_distance`: a copy's distance that survives re-encoding, resizing, a small crop and
  a brightness change yet keeps colour, to the closest of the `_CANDIDATES` images in another split
  whose dHash is nearest (within `HAMMING_CANDIDATE` bits; `perceptual_dup_of` names it). Luma is
  z-scored (brightness and contrast drop out), chroma scaled to a fixed mean magnitude and averaged
  on a 4x4 grid (a brighter or JPEG-compressed copy keeps its hues; a red and a green shirt stay
  far apart), and each side is also compared as centre crops (`CROPS`). Measured on clothing-small
  (bench/near_duplicates.py, bench/products_import.py): JPEG q60-q90 and 3/4-resized copies mostly
  < 2, brightness x0.85-x1.15 mostly < 4 (a few up to 9), a 4% crop mostly above 4.5; the closest
  distinct pair across the split 5.3 (two T-shirts on one red bed), the same product in another
  colour >= 18 when its colour covers a fair part of the photo.
- `category_count` / `category_balance`: images in this row's (split, category), and that count
  divided by the split's mean per category (1.0 = balanced): a swamped or starved category
  shows on each of its rows.
- `category_train_count` / `category_test_count`: images of this row's category in train and
  in test: a category too small to train on, or to evaluate, shows on each of its rows.
- `source`: the photo this file was imported from (`dataset.json` `sources`), so a finding names
  the photo the user can fix; None for datasets that record none.

The manifest is cached per dataset version (the DVC hash when data/ is pinned, a stat key
otherwise), so an unchanged dataset is described in a fraction of a second.
Torch- and DVC-free: the caller supplies the key.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, fields
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from PIL import Image

from prodgan.data.layout import META_FILE  # importing layout also caps Image.MAX_IMAGE_PIXELS
from prodgan.fsutil import atomic_path

# Bump when a column's meaning changes: old cached manifests are then ignored.
SCHEMA_VERSION = 3
THUMB = 16  # side of the YCbCr thumbnails used to confirm near-duplicates
CROPS = (1.0, 0.92, 0.85)  # centre crops thumbnailed per image: a cropped copy matches one of them
_CHANNELS = 3  # Y, Cb, Cr
_LUMA_SCALE = 40.0  # z-scored luma is scaled to this standard deviation (levels)
_CHROMA_SCALE = 10.0  # chroma is scaled to this mean magnitude (levels) ...
_CHROMA_FLOOR = 8.0  # ... once it has at least this much: noise on a grey photo is not amplified
_CHROMA_CELLS = 4  # chroma is compared on a 4x4 grid (see `_copy_features`)
_CHUNK = 1000  # files per worker task
_PARALLEL_FROM = 3000  # below this many files, worker start-up costs more than it saves
_NEAR_DUP_BLOCK = 128  # rows per block when comparing thumbnails
HAMMING_CANDIDATE = 16  # dHash bits within which two images are compared by thumbnail
_CANDIDATES = 16  # nearest hashes kept per image of the smaller split
_BATCH_PIXELS = 1 << 24  # pixels per vectorised batch (bounds memory for large images)

Progress = Callable[[int, int], None]


@dataclass(slots=True)
class FileRow:
    """The per-file columns of one manifest row, in column order; None where not (yet) known."""

    path: str
    file_bytes: int | None = None
    sha256: str | None = None
    decodes_ok: bool = False
    decode_error: str | None = None
    width: int | None = None
    height: int | None = None
    mode: str | None = None
    channels: int | None = None
    mean_intensity: float | None = None
    std_intensity: float | None = None
    dhash: str | None = None

    def values(self) -> tuple:
        return tuple(getattr(self, name) for name in _FILE_COLUMNS)


_FILE_COLUMNS = [f.name for f in fields(FileRow)]


def list_files(root: Path) -> list[str]:
    """Every file under the dataset folder except `dataset.json`: sorted POSIX paths relative to it.

    Stray files are listed on purpose: the suite, not this scan, decides what is allowed.
    """
    root = Path(root)
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = Path(dirpath).relative_to(root)
        found.extend(
            (rel_dir / name).as_posix()
            for name in filenames
            if not (rel_dir == Path(".") and name == META_FILE)
        )
    return sorted(found)


def _area_matrix(src: int, dst: int) -> np.ndarray:
    """Weights that average a length-`src` axis down to `dst` cells by area (box resampling)."""
    edges = np.arange(dst + 1) * (src / dst)
    j = np.arange(src)[None, :]
    overlap = np.clip(np.minimum(edges[1:, None], j + 1) - np.maximum(edges[:-1, None], j), 0, None)
    return overlap / (src / dst)


def _resize(stack: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Area-resize a stack of grayscale images [N, H, W] to [N, rows, cols] (float64)."""
    return _area_matrix(stack.shape[1], rows) @ stack @ _area_matrix(stack.shape[2], cols).T


def _thumbnails(colour: np.ndarray) -> np.ndarray:
    """uint8 [N, len(CROPS) * 3 * THUMB * THUMB]: each image's YCbCr thumbnail per centre crop."""
    n, height, width, _ = colour.shape
    planes = colour.transpose(0, 3, 1, 2).reshape(n * _CHANNELS, height, width).astype(np.float64)
    per_crop = []
    for share in CROPS:
        rows, cols = max(1, round(height * share)), max(1, round(width * share))
        top, left = (height - rows) // 2, (width - cols) // 2
        crop = planes[:, top : top + rows, left : left + cols]
        per_crop.append(np.rint(_resize(crop, THUMB, THUMB)).reshape(n, -1))
    return np.concatenate(per_crop, axis=1).astype(np.uint8)


def _pixel_columns(
    stack: np.ndarray, colour: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    """mean, std and dHash (hex) of same-shaped grayscale images [N, H, W], and the YCbCr
    thumbnails (`_thumbnails`) of the same images [N, H, W, 3].

    dHash: is each cell of a 9x8 area-resized copy brighter than its left neighbour (64 bits).
    """
    flat = stack.reshape(len(stack), -1).astype(np.float64)
    small = _resize(stack.astype(np.float64), 8, 9)
    bits = np.packbits((small[:, :, 1:] > small[:, :, :-1]).reshape(len(stack), 64), axis=1)
    hashes = [b.tobytes().hex() for b in bits]
    return flat.mean(axis=1), flat.std(axis=1), hashes, _thumbnails(colour)


def _read_file(root: str, rel: str) -> tuple[FileRow, tuple[np.ndarray, np.ndarray] | None]:
    """The per-file columns that need no pixel maths, and the pixels: grayscale [H, W] and
    YCbCr [H, W, 3] (a grayscale image has neutral chroma).

    The pixels are None when the file does not decode.
    """
    try:
        with open(os.path.join(root, rel), "rb") as f:
            data = f.read()
    except OSError as exc:  # unreadable (permissions, a dangling link): a finding, not a crash
        return FileRow(rel, decode_error=f"unreadable: {exc.strerror}"), None
    row = FileRow(rel, file_bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    try:
        with Image.open(io.BytesIO(data)) as img:
            row.width, row.height = img.width, img.height
            row.mode, row.channels = img.mode, len(img.getbands())
            img.load()
            gray = img if img.mode == "L" else img.convert("L")
            pixels = np.frombuffer(gray.tobytes(), dtype=np.uint8).reshape(gray.height, gray.width)
            rgb = img if img.mode in ("L", "RGB") else img.convert("RGB")
            colour = np.asarray(rgb.convert("YCbCr"), dtype=np.uint8)
        row.decodes_ok = True
        return row, (pixels, colour)
    except Exception as exc:  # any decoder failure is a finding about the file, not a crash
        row.decode_error = f"{type(exc).__name__}: {exc}"[:200]
        return row, None


def _describe_chunk(root: str, rels: list[str]) -> list[tuple[tuple, bytes | None]]:
    """Rows (in `_FILE_COLUMNS` order) and thumbnails; pixel maths batched per image shape."""
    read = [_read_file(root, rel) for rel in rels]
    thumbs: list[bytes | None] = [None] * len(read)
    by_shape: dict[tuple[int, int], list[int]] = {}
    for i, (_, pixels) in enumerate(read):
        if pixels is not None:
            by_shape.setdefault(pixels[0].shape, []).append(i)
    for (height, width), members in by_shape.items():
        step = max(1, _BATCH_PIXELS // (height * width))
        for start in range(0, len(members), step):
            batch = members[start : start + step]
            means, stds, hashes, small = _pixel_columns(
                np.stack([read[i][1][0] for i in batch]), np.stack([read[i][1][1] for i in batch])
            )
            for k, i in enumerate(batch):
                row = read[i][0]
                row.mean_intensity, row.std_intensity = float(means[k]), float(stds[k])
                row.dhash = hashes[k]
                thumbs[i] = small[k].tobytes()
    return [(row.values(), thumb) for (row, _), thumb in zip(read, thumbs, strict=True)]


def _describe_all(
    root: Path, rels: list[str], workers: int, progress: Progress | None
) -> list[tuple[tuple, bytes | None]]:
    total = len(rels)
    if workers <= 1 or total < _PARALLEL_FROM:
        out = []
        for start in range(0, total, _CHUNK):
            out.extend(_describe_chunk(str(root), rels[start : start + _CHUNK]))
            if progress:
                progress(len(out), total)
        return out
    chunks = [rels[i : i + _CHUNK] for i in range(0, total, _CHUNK)]
    results: list[list] = [[] for _ in chunks]
    done = 0
    # fork: workers start in milliseconds and need no importable __main__ (scripts, notebooks).
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("fork")) as pool:
        futures = {
            pool.submit(_describe_chunk, str(root), chunk): i for i, chunk in enumerate(chunks)
        }
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            done += len(chunks[futures[future]])
            if progress:
                progress(done, total)
    return [row for chunk in results for row in chunk]


def _near_dup_distance(
    df: pd.DataFrame, thumbs: list[bytes | None]
) -> tuple[np.ndarray, list[str | None]]:
    """Per row: thumbnail distance to, and path of, the closest same-dHash image in another split.

    Only images sharing a dHash are compared, split against split, in blocks to bound memory.
    """
    distance = np.full(len(df), np.inf)
    nearest = np.full(len(df), -1)
    splits = df["split"].to_numpy()
    for idx in df.groupby("dhash", sort=False).indices.values():
        names = sorted(set(splits[idx]))
        if len(names) < 2:
            continue
        members = {name: idx[splits[idx] == name] for name in names}
        stacks = {
            name: _centred(np.stack([np.frombuffer(thumbs[i], dtype=np.uint8) for i in rows]))
            for name, rows in members.items()
        }  # per pixel and channel: the distance is their mean times the channel count
        for a_pos, a in enumerate(names):
            for b in names[a_pos + 1 :]:
                for start in range(0, len(members[a]), _NEAR_DUP_BLOCK):
                    rows_a = members[a][start : start + _NEAR_DUP_BLOCK]
                    dist = (
                        np.abs(
                            stacks[a][start : start + _NEAR_DUP_BLOCK, None, :]
                            - stacks[b][None, :, :]
                        ).mean(axis=-1)
                        * _CHANNELS
                    )
                    _keep_closest(distance, nearest, rows_a, members[b], dist)
                    _keep_closest(distance, nearest, members[b], rows_a, dist.T)
    paths = df["path"].to_numpy()
    found = np.isfinite(distance)
    nearest_paths = [paths[j] if ok else None for j, ok in zip(nearest, found, strict=True)]
    return np.where(found, distance, np.nan), nearest_paths


def _perceptual_dups(
    df: pd.DataFrame, thumbs: list[bytes | None]
) -> tuple[np.ndarray, list[str | None]]:
    """Per row: thumbnail distance to, and path of, the closest image in another split whose
    dHash is within `HAMMING_CANDIDATE` bits (NaN when none is).

    Each pair of splits is compared once: the smaller split in blocks against the whole larger one,
    each row keeping its `_CANDIDATES` nearest hashes; every candidate pair then updates both sides.
    """
    known = df["dhash"].notna().to_numpy()
    bits = np.zeros(len(df), dtype=np.uint64)
    bits[known] = [int(h, 16) for h in df.loc[known, "dhash"]]
    splits = df["split"].to_numpy()
    names = sorted(set(splits[known]))
    pairs = []
    for a_pos, a in enumerate(names):
        for b in names[a_pos + 1 :]:
            small, large = sorted(
                (np.flatnonzero(known & (splits == a)), np.flatnonzero(known & (splits == b))),
                key=len,
            )
            keep = min(_CANDIDATES, len(large))
            for start in range(0, len(small), _NEAR_DUP_BLOCK):
                block = small[start : start + _NEAR_DUP_BLOCK]
                dist = np.bitwise_count(bits[block, None] ^ bits[None, large])
                top = np.argpartition(dist, keep - 1, axis=1)[:, :keep]
                rows, cols = np.nonzero(np.take_along_axis(dist, top, axis=1) <= HAMMING_CANDIDATE)
                pairs.append(np.stack([block[rows], large[top[rows, cols]]], axis=1))
    found = np.concatenate(pairs) if pairs else np.empty((0, 2), dtype=np.int64)
    distance = np.full(len(df), np.nan)
    if len(found):
        blank = bytes(len(CROPS) * _CHANNELS * THUMB * THUMB)  # undecodable: no thumbnail
        d = np.concatenate(
            [
                _copy_distance(
                    *(
                        _copy_features(
                            np.stack([np.frombuffer(thumbs[i] or blank, np.uint8) for i in side])
                        )
                        for side in chunk.T
                    )
                )
                for chunk in np.array_split(found, max(1, len(found) // 2000))
            ]
        )
        # Every pair updates both of its sides.
        rows = np.concatenate([found[:, 0], found[:, 1]])
        others = np.concatenate([found[:, 1], found[:, 0]])
        d = np.concatenate([d, d])
        order = np.lexsort((d, rows))
        first = order[np.unique(rows[order], return_index=True)[1]]
        distance[rows[first]] = d[first]
        nearest = dict(zip(rows[first].tolist(), others[first].tolist(), strict=True))
    else:
        nearest = {}
    paths = df["path"].to_numpy()
    return distance, [paths[nearest[i]] if i in nearest else None for i in range(len(df))]


def _centred(thumbs: np.ndarray) -> np.ndarray:
    """The uncropped YCbCr thumbnails [N, 3 * THUMB * THUMB], luma minus its own mean: a copy with
    shifted brightness stays a near-duplicate, one in another colour does not."""
    flat = thumbs[:, : _CHANNELS * THUMB * THUMB].astype(np.float32)
    luma = flat[:, : THUMB * THUMB]
    luma -= luma.mean(axis=1, keepdims=True)
    return flat


def _copy_features(thumbs: np.ndarray) -> np.ndarray:
    """[N, len(CROPS), THUMB * THUMB + 2 * _CHROMA_CELLS**2] thumbnails with brightness and contrast
    taken out and colour kept (see the module docstring).

    Chroma is averaged to a `_CHROMA_CELLS`-square grid: a product's colour is coarse, while JPEG's
    chroma noise (subsampled, coarsely quantised) is fine-grained. Each chroma cell is weighted by
    the thumbnail pixels it covers, so `_copy_distance` stays a per-pixel distance.
    """
    n, crops, side = len(thumbs), len(CROPS), THUMB // _CHROMA_CELLS
    planes = thumbs.reshape(n, crops, _CHANNELS, THUMB, THUMB).astype(np.float32)
    luma = planes[:, :, 0].reshape(n, crops, -1)
    luma = luma - luma.mean(axis=-1, keepdims=True)
    luma *= _LUMA_SCALE / (luma.std(axis=-1, keepdims=True) + 1e-6)
    chroma = planes[:, :, 1:] - 128.0
    magnitude = np.abs(chroma).mean(axis=(2, 3, 4), keepdims=True)
    chroma *= _CHROMA_SCALE / np.maximum(magnitude, _CHROMA_FLOOR)
    cells = chroma.reshape(n, crops, 2, _CHROMA_CELLS, side, _CHROMA_CELLS, side).mean(axis=(4, 6))
    return np.concatenate([luma, cells.reshape(n, crops, -1) * side * side], axis=2)


def _copy_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per pair of `_copy_features` rows: the closest match of one side's whole photo to the other
    side's crops, either way (per pixel, summed over channels)."""
    best = np.full(len(a), np.inf, dtype=np.float32)
    for crop in range(len(CROPS)):
        best = np.minimum(best, np.abs(a[:, 0] - b[:, crop]).sum(axis=-1))
        best = np.minimum(best, np.abs(a[:, crop] - b[:, 0]).sum(axis=-1))
    return best / (THUMB * THUMB)


def _keep_closest(
    distance: np.ndarray, nearest: np.ndarray, rows: np.ndarray, cols: np.ndarray, dist: np.ndarray
) -> None:
    best = dist.argmin(axis=1)
    best_dist = dist[np.arange(len(rows)), best]
    better = best_dist < distance[rows]
    distance[rows[better]] = best_dist[better]
    nearest[rows[better]] = cols[best[better]]


def derive(df: pd.DataFrame, thumbs: list[bytes | None]) -> pd.DataFrame:
    """Add the cross-file columns (see the module docstring) to per-file rows."""
    parts = df["path"].str.split("/")
    df["split"] = parts.str[0].where(parts.str.len() > 1, "")
    df["category"] = parts.str[1].where(parts.str.len() > 2, "")
    df["split_category"] = df["split"] + "/" + df["category"]
    df["category_count"] = df.groupby("split_category")["path"].transform("size").astype("int64")
    by_split = df.groupby("split")
    split_size = by_split["path"].transform("size")
    categories_in_split = by_split["category"].transform("nunique")
    mean_per_category = split_size / categories_in_split
    df["category_balance"] = df["category_count"] / mean_per_category
    splits_of_sha = df.groupby("sha256")["split"].transform("nunique")
    df["sha256_in_other_split"] = splits_of_sha > 1
    df["near_dup_distance"], df["near_dup_of"] = _near_dup_distance(df, thumbs)
    df["perceptual_dup_distance"], df["perceptual_dup_of"] = _perceptual_dups(df, thumbs)
    for split in ("train", "test"):
        per_category = df[df["split"] == split].groupby("category")["path"].size()
        df[f"category_{split}_count"] = df["category"].map(per_category).fillna(0).astype("int64")
    return df


def build_manifest(
    root: Path, workers: int | None = None, progress: Progress | None = None
) -> pd.DataFrame:
    """Describe every file of the dataset at `root` (in parallel); derive the cross-file columns."""
    root = Path(root)
    rels = list_files(root)
    described = _describe_all(root, rels, workers or os.cpu_count() or 1, progress)
    df = pd.DataFrame([row for row, _ in described], columns=_FILE_COLUMNS)
    for col in ("file_bytes", "width", "height", "channels"):
        df[col] = df[col].astype("Int64")
    for col in ("mean_intensity", "std_intensity"):
        df[col] = df[col].astype("float64")
    df["decodes_ok"] = df["decodes_ok"].astype(bool)
    df["source"] = df["path"].map(_sources(root)).astype(object)
    return derive(df, [thumb for _, thumb in described])


def _sources(root: Path) -> dict[str, str]:
    """Imported path -> source photo, as `dataset.json` records it (empty when it records none or
    cannot be read: validation reports the file itself then)."""
    try:
        sources = json.loads((root / META_FILE).read_text()).get("sources")
    except (OSError, ValueError, AttributeError):
        return {}
    return sources if isinstance(sources, dict) else {}


def stat_key(root: Path) -> str:
    """A key for a dataset that has no DVC hash yet: every file's path, size and mtime."""
    h = hashlib.sha256()
    root = Path(root)
    for rel in list_files(root):
        st = (root / rel).stat()
        h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    meta = root / META_FILE
    if meta.is_file():
        h.update(meta.read_bytes())
    return f"stat-{h.hexdigest()[:32]}"


def load_manifest(
    cache_dir: Path, dataset_root: Path, key: str, progress: Progress | None = None
) -> tuple[pd.DataFrame, bool]:
    """(manifest, came_from_cache): built on the first call for `key`, read from parquet after."""
    dataset_root = Path(dataset_root)
    cache_file = Path(cache_dir) / f"v{SCHEMA_VERSION}" / key / f"{dataset_root.name}.parquet"
    if cache_file.is_file():
        return pd.read_parquet(cache_file), True
    df = build_manifest(dataset_root, progress=progress)
    with atomic_path(cache_file, suffix=".parquet") as tmp:
        df.to_parquet(tmp, index=False)
    return df, False
