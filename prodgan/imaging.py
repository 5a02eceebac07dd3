"""Pictures for people: image grids (titled per category), PNG bytes, titled comparison sheets.

Torch-free (numpy + PIL) so any area can draw without importing a framework; tensors are
accepted through `np.asarray` (call `.cpu()` first on a GPU tensor).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from prodgan.fsutil import write_bytes_atomic

PAD = 2
BACKGROUND = 255
TITLE_HEIGHT = 18
FONT_SIZE = 14


def _as_nchw_uint8(images: Any) -> np.ndarray:
    if hasattr(images, "detach"):
        images = images.detach().cpu().numpy()
    arr = np.asarray(images)
    if arr.ndim != 4 or arr.shape[1] not in (1, 3):
        raise ValueError(f"expected uint8 images [N, 1|3, H, W], got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"expected uint8 images, got {arr.dtype}")
    return arr


def grid(images: Any, nrow: int = 8, pad: int = PAD) -> np.ndarray:
    """Tile uint8 images [N,C,H,W] into an RGB array [H', W', 3], `nrow` images per row."""
    arr = _as_nchw_uint8(images)
    n, c, h, w = arr.shape
    if c == 1:
        arr = np.repeat(arr, 3, axis=1)
    cols = max(1, min(nrow, n))
    rows = max(1, -(-n // cols))
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), BACKGROUND, dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        out[y : y + h, x : x + w] = arr[i].transpose(1, 2, 0)
    return out


def png_bytes(array: np.ndarray) -> bytes:
    """PNG of an [H,W] or [H,W,3] uint8 array (deterministic: no timestamps, fixed compression)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def save_png(path: Path, array: np.ndarray) -> Path:
    """Write a PNG atomically: a reader never sees half a picture."""
    write_bytes_atomic(Path(path), png_bytes(array))
    return Path(path)


def labelled_sheet(rows: Sequence[tuple[str, Any]], nrow: int | None = None) -> np.ndarray:
    """One titled grid per row (e.g. champion vs challenger), stacked top to bottom.

    Rows are left-aligned.
    """
    if not rows:
        raise ValueError("labelled_sheet needs at least one row")
    tiles = [grid(images, nrow=nrow or len(_as_nchw_uint8(images))) for _, images in rows]
    width = max(t.shape[1] for t in tiles)
    font = ImageFont.load_default(size=FONT_SIZE)
    parts = []
    for (title, _), tile in zip(rows, tiles, strict=True):
        banner = Image.new("RGB", (width, TITLE_HEIGHT), (BACKGROUND,) * 3)
        ImageDraw.Draw(banner).text((PAD, 1), title, fill=(0, 0, 0), font=font)
        body = np.full((tile.shape[0], width, 3), BACKGROUND, dtype=np.uint8)
        body[:, : tile.shape[1]] = tile
        parts += [np.asarray(banner), body]
    return np.concatenate(parts, axis=0)


def _fitted(draw: ImageDraw.ImageDraw, text: str, width: int, font: Any) -> str:
    """`text`, shortened with a trailing '.' until it fits `width` pixels."""
    while text and draw.textlength(text, font=font) > width:
        text = text[:-2] + "." if len(text) > 1 else ""
    return text


def column_titled_grid(images: Any, titles: Sequence[str]) -> np.ndarray:
    """One column per title (image i in column i % len(titles)), each title above its column:
    a grid over every category names the category of each column."""
    arr = _as_nchw_uint8(images)
    tile = grid(arr, nrow=len(titles))
    cols, width = min(len(titles), len(arr)), arr.shape[3]
    banner = Image.new("RGB", (tile.shape[1], TITLE_HEIGHT), (BACKGROUND,) * 3)
    draw, font = ImageDraw.Draw(banner), ImageFont.load_default(size=FONT_SIZE)
    for col, title in enumerate(titles[:cols]):
        draw.text(
            (PAD + col * (width + PAD), 1),
            _fitted(draw, title, width, font),
            fill=(0, 0, 0),
            font=font,
        )
    return np.concatenate([np.asarray(banner), tile], axis=0)


def upscale(images: Any, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement of uint8 images [N,C,H,W]: 28x28 products become visible."""
    arr = _as_nchw_uint8(images)
    return arr.repeat(factor, axis=2).repeat(factor, axis=3) if factor > 1 else arr


def comparison_sheet(
    models: Sequence[tuple[str, Any, Any]],
    categories: Sequence[str],
    per_category: int = 8,
    scale: int = 4,
) -> np.ndarray:
    """Per category, one titled row of `per_category` samples from each model, upscaled `scale`x.

    `models`: (title, uint8 images [N,C,H,W], category index per image or None); a person judges
    two generators side by side, category by category, at a size where the products are visible.
    """
    rows = []
    for index, name in enumerate(categories or [""]):
        for title, images, labels in models:
            arr = _as_nchw_uint8(images)
            picked = arr if labels is None else arr[np.asarray(labels) == index]
            rows.append(
                (f"{name}  |  {title}" if name else title, upscale(picked[:per_category], scale))
            )
    return labelled_sheet(rows, nrow=per_category)
