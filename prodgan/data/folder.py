"""A user's own product photos (one subfolder per category) into the dataset layout.

Normalisation policy, applied to every image in the same way:
1. EXIF orientation is applied, then the image is converted to the target mode
   (RGB, or L for `--mode L`); transparency is flattened onto white.
2. It is padded to a square with white (product shots sit on white backgrounds), centred,
   so no part of the product is cropped away.
3. It is resized to `size` x `size` with Lanczos filtering.
The split is a pure function of the file's content (sha256 -> 1 in `test_every` go to test),
so re-importing is deterministic and identical files can never straddle train and test.
Files are renamed to a content hash: source file names are treated as data, never as paths.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageOps

from prodgan.data.layout import MAX_IMAGE_PIXELS, DatasetMeta, encode_png
from prodgan.errors import ProdganError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
MAX_FILE_BYTES = 50 * 1024 * 1024


@dataclass
class FolderReport:
    meta: DatasetMeta
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (relative path, reason)


def normalise(img: Image.Image, size: int, mode: str) -> np.ndarray:
    img = ImageOps.exif_transpose(img)
    if img.mode in ("RGBA", "LA", "P"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    img = img.convert(mode)
    side = max(img.size)
    fill = 255 if mode == "L" else (255, 255, 255)
    square = Image.new(mode, (side, side), fill)
    square.paste(img, ((side - img.width) // 2, (side - img.height) // 2))
    return np.asarray(square.resize((size, size), Image.Resampling.LANCZOS))


def _load(path: Path, size: int, mode: str) -> np.ndarray:
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ValueError(f"file larger than {MAX_FILE_BYTES // 2**20} MiB")
    with Image.open(path) as img:
        if img.width * img.height > MAX_IMAGE_PIXELS:
            raise ValueError(f"{img.width}x{img.height} exceeds the {MAX_IMAGE_PIXELS}-pixel limit")
        img.load()
        return normalise(img, size, mode)


def _inside(path: Path, root: Path) -> bool:
    return os.path.realpath(path).startswith(os.path.realpath(root) + os.sep)


def scan_source(src: Path) -> tuple[list[str], list[tuple[str, Path]], list[tuple[str, str]]]:
    """Categories, (category, file) candidates, and entries refused before decoding."""
    src = Path(src)
    if not src.is_dir():
        raise ProdganError(f"{src} is not a folder; pass a folder holding one subfolder per category")
    if src.is_symlink():
        raise ProdganError(f"{src} is a symlink; pass the real folder")
    refused: list[tuple[str, str]] = []
    files: list[tuple[str, Path]] = []
    categories: list[str] = []
    for entry in sorted(src.iterdir()):
        if entry.is_symlink():
            refused.append((entry.name, "symlink refused"))
        elif entry.is_dir():
            categories.append(entry.name)
            for f in sorted(entry.iterdir()):
                rel = f"{entry.name}/{f.name}"
                if f.is_symlink() or not _inside(f, src):
                    refused.append((rel, "symlink refused"))
                elif f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES:
                    files.append((entry.name, f))
                elif f.is_file():
                    refused.append((rel, f"not an image file (expected {', '.join(sorted(IMAGE_SUFFIXES))})"))
    if not categories:
        raise ProdganError(f"{src} has no category subfolders; put each category's images in its own subfolder")
    if not files:
        raise ProdganError(f"{src} holds no readable image files (JPEG, PNG or WebP) in its category subfolders")
    return categories, files, refused


def write_folder(
    src: Path,
    out_dir: Path,
    name: str,
    size: int = 64,
    mode: str = "RGB",
    test_every: int = 10,
    progress: Callable[[int, int], None] | None = None,
) -> FolderReport:
    if mode not in ("RGB", "L"):
        raise ProdganError(f"unknown mode {mode!r}: use RGB or L")
    if not 8 <= size <= 512:
        raise ProdganError(f"--size {size} is out of range: use 8..512 pixels")
    categories, files, skipped = scan_source(src)
    counts = {s: {c: 0 for c in categories} for s in ("train", "test")}
    seen: set[tuple[str, str]] = set()
    for done, (cat, path) in enumerate(files, start=1):
        rel = f"{cat}/{path.name}"
        try:
            pixels = _load(path, size, mode)
        except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as exc:
            skipped.append((rel, f"unreadable: {exc}".splitlines()[0]))
            continue
        png = encode_png(pixels)
        digest = hashlib.sha256(png).hexdigest()
        if (cat, digest) in seen:
            skipped.append((rel, "duplicate of another file in the same category"))
            continue
        seen.add((cat, digest))
        split = "test" if int(digest[:8], 16) % test_every == 0 else "train"
        target = out_dir / split / cat / f"{digest[:16]}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(png)
        counts[split][cat] += 1
        if progress:
            progress(done, len(files))
    if not any(counts["train"].values()):
        raise ProdganError(f"none of the {len(files)} images in {src} could be read: {skipped[0][0]}: {skipped[0][1]}")
    for split in counts:
        for cat in categories:
            (out_dir / split / cat).mkdir(parents=True, exist_ok=True)
    meta = DatasetMeta(name=name, kind="folder", size=size, mode=mode, categories=categories, counts=counts)
    return FolderReport(meta=meta, skipped=skipped)
