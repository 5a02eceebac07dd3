"""A user's own product photos (one subfolder per category) into the dataset layout.

Normalisation policy, applied to every image in the same way (deterministic bytes: the same
photos give the same PNGs, hence the same DVC hash, from any folder on any machine):
1. EXIF orientation is applied; every mode becomes RGB (or L) by one fixed rule: palette and
   transparency are flattened onto white, CMYK goes through PIL's conversion, 16-bit
   grayscale keeps its high byte, 1-bit becomes 0/255.
2. Aspect ratio by `fit`: `pad` centres the photo on a square filled with the median colour of
   its one-pixel border (a photo on grey cloth is padded grey, not framed in white); `crop`
   keeps the centred square. Then a Lanczos resize to `size` x `size`.
Layout: a source with `train/` (and optionally `validation/`, `test/`) at the top keeps its
split (validation photos join train: training carves its own held-out set); otherwise each
category's photos are ordered by content hash and the first `test_fraction` of them (at least
`min_test`, at most half) go to test. With `product_pattern`, photos whose paths (below their
category folder) give the same product key stay together in one split: a red and a green shirt of
one product never sit on both sides, where the test photo would be a near-copy of a train photo.
Every imported image records the photo it came from (`dataset.json` `sources`, a path relative to
the imported folder), so validation can name the photo to fix.
Categories are stored under a safe key (`names.category_keys`), their names as written
kept in `dataset.json` for display.
Problems are per file: unreadable, too small, a decompression bomb, a duplicate, or the same
photo under two categories (an ambiguous label, handled by `ambiguous`) are listed and skipped.
"""

from __future__ import annotations

import hashlib
import os
import re
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from prodgan.data.layout import MAX_IMAGE_PIXELS, DatasetMeta, encode_png
from prodgan.errors import ProdganError
from prodgan.names import category_keys

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
MAX_FILE_BYTES = 50 * 1024 * 1024
SOURCE_SPLITS = ("train", "validation", "test")  # a source with train/ at the top keeps this layout
FITS = ("pad", "crop")
# The same photo under two categories: drop every copy, or keep the first category's.
AMBIGUOUS = ("skip", "first")
_CHUNK = 250  # files per worker task
_PARALLEL_FROM = 500  # below this many files, worker start-up costs more than it saves


@dataclass
class FolderReport:
    meta: DatasetMeta
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (relative path, reason)


@dataclass(frozen=True)
class _Photo:
    rel: str  # as listed to the user: [split/]category/file
    split: str | None  # from the source layout, None when the importer chooses
    category: str  # display name
    png: bytes
    digest: str

    @property
    def below_category(self) -> str:
        """The photo's path below its category folder: what `product_pattern` reads."""
        return self.rel.split("/", 2 if self.split else 1)[-1]


def _to_mode(img: Image.Image, mode: str) -> Image.Image:
    """Any PIL mode -> RGB or L by one fixed rule (see the module docstring)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        wide = np.asarray(img, dtype=np.int64)
        if wide.max() > 255:  # 16-bit grayscale keeps its high byte
            wide = np.clip(wide, 0, 65535) >> 8
        img = Image.fromarray(wide.astype(np.uint8), "L")
    elif img.mode == "F":
        img = Image.fromarray(np.clip(np.asarray(img), 0, 255).astype(np.uint8), "L")
    if img.mode == "P" or img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return img.convert(mode)


def _border_colour(pixels: np.ndarray) -> tuple[int, ...] | int:
    """Median of the one-pixel border: the background a product photo was shot on."""
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    ring = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    ring = ring.reshape(-1, channels)
    median = np.median(ring, axis=0).astype(np.uint8)
    return int(median[0]) if pixels.ndim == 2 else tuple(int(v) for v in median)


def normalise(img: Image.Image, size: int, mode: str, fit: str = "pad") -> np.ndarray:
    img = _to_mode(ImageOps.exif_transpose(img), mode)
    w, h = img.size
    if fit == "crop":
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        square = img.crop((left, top, left + side, top + side))
    else:
        side = max(w, h)
        square = Image.new(mode, (side, side), _border_colour(np.asarray(img)))
        square.paste(img, ((side - w) // 2, (side - h) // 2))
    return np.asarray(square.resize((size, size), Image.Resampling.LANCZOS))


@contextmanager
def open_checked(path: Path) -> Iterator[Image.Image]:
    """One image file opened for decoding, refused (ValueError, the reason) before any pixel is
    decoded when it is empty, over the byte limit, not an image, or over the pixel limit
    (a decompression bomb)."""
    size_bytes = path.stat().st_size
    if size_bytes == 0:
        raise ValueError("empty file (0 bytes)")
    if size_bytes > MAX_FILE_BYTES:
        raise ValueError(f"file larger than {MAX_FILE_BYTES // 2**20} MiB")
    try:
        opened = Image.open(path)  # reads the header only; PIL refuses > 2x MAX_IMAGE_PIXELS here
    except Image.DecompressionBombError as exc:
        raise ValueError(f"decompression bomb refused: {exc}") from None
    except UnidentifiedImageError:
        raise ValueError(
            "not an image (no JPEG, PNG or WebP header), whatever its name says"
        ) from None
    with opened as img:
        if img.width * img.height > MAX_IMAGE_PIXELS:
            raise ValueError(
                f"decompression bomb refused: {img.width}x{img.height} exceeds "
                f"the {MAX_IMAGE_PIXELS}-pixel limit"
            )
        yield img


def _load(path: Path, size: int, mode: str, fit: str, min_side: int) -> np.ndarray:
    """Decode and normalise one file; the pixel and byte limits are checked before decoding."""
    with open_checked(path) as img:
        if min(img.width, img.height) < min_side:
            raise ValueError(
                f"too small: {img.width}x{img.height}, "
                f"the short side must be >= {min_side} px (--min-side)"
            )
        img.load()
        return normalise(img, size, mode, fit)


def _inside(path: Path, root: Path) -> bool:
    return os.path.realpath(path).startswith(os.path.realpath(root) + os.sep)


def _scan_categories(
    folder: Path, prefix: str, src: Path, refused: list[tuple[str, str]]
) -> list[tuple[str, Path]]:
    """(category, file) under one folder of category subfolders; links and non-images refused."""
    files: list[tuple[str, Path]] = []
    for entry in sorted(folder.iterdir()):
        if entry.is_symlink():
            refused.append((prefix + entry.name, "symlink refused"))
        elif entry.is_dir():
            for f in sorted(entry.iterdir()):
                rel = f"{prefix}{entry.name}/{f.name}"
                if f.is_symlink() or not _inside(f, src):
                    refused.append((rel, "symlink refused"))
                elif f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES:
                    files.append((entry.name, f))
                elif f.is_file():
                    refused.append(
                        (rel, f"not an image file (expected {', '.join(sorted(IMAGE_SUFFIXES))})")
                    )
    return files


def scan_source(
    src: Path,
) -> tuple[bool, list[str], list[tuple[str | None, str, Path]], list[tuple[str, str]]]:
    """What a source folder holds, before anything is decoded.

    (split layout kept?, categories, (split, category, file) candidates, entries refused).
    """
    src = Path(src)
    if not src.is_dir():
        raise ProdganError(
            f"{src} is not a folder; pass a folder holding one subfolder per category"
        )
    if src.is_symlink():
        raise ProdganError(f"{src} is a symlink; pass the real folder")
    refused: list[tuple[str, str]] = []
    top = {p.name for p in src.iterdir() if p.is_dir() and not p.is_symlink()}
    split_layout = "train" in top and top <= set(SOURCE_SPLITS)
    if split_layout:
        files = [
            (split, cat, f)
            for split in SOURCE_SPLITS
            if split in top
            for cat, f in _scan_categories(src / split, f"{split}/", src, refused)
        ]
    else:
        files = [(None, cat, f) for cat, f in _scan_categories(src, "", src, refused)]
    categories = sorted(
        {cat for _, cat, _ in files}
        | (
            {p.name for s in top for p in (src / s).iterdir() if p.is_dir()}
            if split_layout
            else top
        )
    )
    if not categories:
        raise ProdganError(
            f"{src} has no category subfolders; put each category's images in its own subfolder"
        )
    if not files:
        raise ProdganError(
            f"{src} holds no readable image files (JPEG, PNG or WebP) in its category subfolders"
        )
    return split_layout, categories, files, refused


def _decode_chunk(
    files: list[tuple[str | None, str, Path]], size: int, mode: str, fit: str, min_side: int
) -> list[_Photo | tuple[str, str]]:
    """Each file as a `_Photo`, or (path as listed, reason) when it cannot be used."""
    out: list[_Photo | tuple[str, str]] = []
    for split, cat, path in files:
        split_dir = f"{split}/" if split else ""
        rel = f"{split_dir}{cat}/{path.name}"
        try:
            png = encode_png(_load(path, size, mode, fit, min_side))
            out.append(_Photo(rel, split, cat, png, hashlib.sha256(png).hexdigest()))
        # Any decoder failure (truncated, not an image, a bomb) is a finding about the file.
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}" if not isinstance(exc, ValueError) else str(exc)
            out.append((rel, f"unreadable: {reason}".splitlines()[0][:200]))
    return out


def _decode_all(
    files: list[tuple[str | None, str, Path]],
    size: int,
    mode: str,
    fit: str,
    min_side: int,
    skipped: list[tuple[str, str]],
    progress: Callable[[int, int], None] | None,
) -> list[_Photo]:
    """Decode every file, on every core for large folders; results in input order."""
    chunks = [files[i : i + _CHUNK] for i in range(0, len(files), _CHUNK)]
    decode = partial(_decode_chunk, size=size, mode=mode, fit=fit, min_side=min_side)
    workers = min(os.cpu_count() or 1, len(chunks))
    parallel = workers > 1 and len(files) >= _PARALLEL_FROM
    results: list[_Photo | tuple[str, str]] = []
    # fork: workers start in milliseconds and need no importable __main__ (scripts, notebooks)
    with (
        ProcessPoolExecutor(workers, mp_context=get_context("fork"))
        if parallel
        else nullcontext() as pool
    ):
        for chunk in pool.map(decode, chunks) if parallel else map(decode, chunks):
            results += chunk
            if progress:
                progress(len(results), len(files))
    skipped.extend(r for r in results if isinstance(r, tuple))
    return [r for r in results if isinstance(r, _Photo)]


def _resolve_labels(
    photos: list[_Photo], ambiguous: str, skipped: list[tuple[str, str]]
) -> list[_Photo]:
    """Drop duplicates; a photo under two categories is an ambiguous label, handled by policy."""
    by_digest: dict[str, list[_Photo]] = {}
    for photo in photos:
        by_digest.setdefault(photo.digest, []).append(photo)
    kept = []
    for copies in by_digest.values():
        cats = sorted({p.category for p in copies})
        if len(cats) > 1:
            if ambiguous == "skip":
                skipped.extend(
                    (
                        p.rel,
                        f"ambiguous label: the same photo is filed under {', '.join(cats)} "
                        "(--ambiguous skip)",
                    )
                    for p in copies
                )
                continue
            copies = [p for p in copies if p.category == cats[0]]
            skipped.extend(
                (p.rel, f"ambiguous label: also under {cats[0]}, kept there (--ambiguous first)")
                for p in photos
                if p.digest == copies[0].digest and p.category != cats[0]
            )
        # One copy per photo; a train copy wins over validation/test
        # (a photo in two splits would leak).
        order = sorted(
            copies, key=lambda p: (SOURCE_SPLITS.index(p.split) if p.split else 0, p.rel)
        )
        kept.append(order[0])
        skipped.extend((p.rel, f"duplicate of {order[0].rel}") for p in order[1:])
    return kept


def test_share(photos: int, test_fraction: float, min_test: int) -> int:
    """How many of a category's photos the importer sends to test (see the module docstring)."""
    return min(max(min_test, round(photos * test_fraction)), photos // 2)


def _product_key(photo: _Photo, pattern: re.Pattern[str] | None) -> str:
    """The product a photo shows: the pattern's first group (or whole match) on its path below
    the category folder; a photo the pattern does not match is a product of its own."""
    found = pattern.search(photo.below_category) if pattern else None
    if found is None:
        return f"photo:{photo.digest}"
    return f"product:{found.group(1) if pattern.groups else found.group(0)}"


def _assign_splits(
    photos: list[_Photo], test_fraction: float, min_test: int, pattern: re.Pattern[str] | None
) -> dict[str, str]:
    """digest -> split: the source's (validation joins train), else stratified per category:
    whole products in an order given by their photos' content hashes go to test until the
    category's test share is reached.
    """
    splits: dict[str, str] = {}
    by_cat: dict[str, dict[str, list[str]]] = {}
    for photo in photos:
        if photo.split:
            splits[photo.digest] = "test" if photo.split == "test" else "train"
        else:
            products = by_cat.setdefault(photo.category, {})
            products.setdefault(_product_key(photo, pattern), []).append(photo.digest)
    for products in by_cat.values():
        wanted = test_share(sum(map(len, products.values())), test_fraction, min_test)
        in_test = 0
        for digests in sorted(products.values(), key=lambda group: min(group)):
            split = "test" if in_test < wanted else "train"
            in_test += len(digests) if split == "test" else 0
            splits.update(dict.fromkeys(digests, split))
    return splits


def _compile_pattern(product_pattern: str | None) -> re.Pattern[str] | None:
    if not product_pattern:
        return None
    try:
        return re.compile(product_pattern)
    except re.error as exc:
        raise ProdganError(
            f"--product-pattern {product_pattern!r} is not a regular expression ({exc}); "
            "e.g. '^([^_]+)_' takes the product from 'SKU123_red.jpg'"
        ) from None


def write_folder(
    src: Path,
    out_dir: Path,
    name: str,
    size: int = 64,
    mode: str = "RGB",
    fit: str = "pad",
    test_fraction: float = 0.1,
    min_test: int = 10,
    min_side: int | None = None,
    ambiguous: str = "skip",
    product_pattern: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> FolderReport:
    """Import `src` into `out_dir` (see the module docstring).

    `min_side` defaults to half of `size`; `product_pattern` is a regular expression whose first
    group (or whole match) names a photo's product.
    """
    pattern = _compile_pattern(product_pattern)
    if mode not in ("RGB", "L"):
        raise ProdganError(f"unknown mode {mode!r}: use RGB or L")
    if fit not in FITS:
        raise ProdganError(
            f"unknown --fit {fit!r}: use pad (keep the whole product) or crop (fill the square)"
        )
    if ambiguous not in AMBIGUOUS:
        raise ProdganError(
            f"unknown --ambiguous {ambiguous!r}: "
            "use skip (drop every copy) or first (keep one category)"
        )
    if not 8 <= size <= 512:
        raise ProdganError(f"--size {size} is out of range: use 8..512 pixels")
    if not 0 < test_fraction < 0.5:
        raise ProdganError(
            f"test fraction {test_fraction} is out of range: use a value between 0 and 0.5"
        )
    split_layout, categories, files, skipped = scan_source(src)
    photos = _decode_all(
        files, size, mode, fit, size // 2 if min_side is None else min_side, skipped, progress
    )
    photos = _resolve_labels(photos, ambiguous, skipped)
    if not photos:
        raise ProdganError(
            f"none of the {len(files)} images in {src} could be read: "
            f"{skipped[0][0]}: {skipped[0][1]}"
        )
    splits = _assign_splits(photos, test_fraction, min_test, pattern)
    keys = category_keys(categories)
    counts = {s: {keys[c]: 0 for c in categories} for s in ("train", "test")}
    sources: dict[str, str] = {}
    for photo in photos:
        split, key = splits[photo.digest], keys[photo.category]
        imported = f"{split}/{key}/{photo.digest[:16]}.png"
        target = out_dir / imported
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(photo.png)
        counts[split][key] += 1
        sources[imported] = photo.rel
    for split in counts:
        for key in keys.values():
            (out_dir / split / key).mkdir(parents=True, exist_ok=True)
    source = {
        "layout": "kept (validation joined train)"
        if split_layout
        else f"stratified: {test_fraction:g} to test, at least {min_test} per category",
        "fit": fit,
        "ambiguous": ambiguous,
    }
    if not split_layout:
        source["test_fraction"] = f"{test_fraction:g}"
    if pattern:
        source["product_pattern"] = pattern.pattern
    meta = DatasetMeta(
        name=name,
        kind="folder",
        size=size,
        mode=mode,
        categories=sorted(keys.values()),
        counts=counts,
        source=source,
        display={k: c for c, k in keys.items()},
        sources=dict(sorted(sources.items())),
    )
    return FolderReport(meta=meta, skipped=sorted(skipped))
