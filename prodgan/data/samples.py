"""A generator's samples handed in as files (a folder of images or one `.npz` array), read safely
into uint8 `[N, C, H, W]` and hashed by their pixels.

For a generator that cannot be exported (a diffusion pipeline), its samples are what prodgan can
measure. They are data from outside: every file is opened through the importer's checks
(`folder.open_checked`: byte and pixel limits before decoding, decompression bombs refused), an
`.npz` is read without unpickling and its array header is checked before the array is read, and
nothing is converted: samples of the wrong size or channels are refused, not resized, because a
resize would change what is measured. The hash covers the decoded pixels in file-name order, so
the same samples as PNGs or as an array hash the same.
"""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from prodgan.data.folder import IMAGE_SUFFIXES, MAX_FILE_BYTES, open_checked
from prodgan.errors import ProdganError

NPZ_KEY = "images"  # the array to read when an .npz holds more than one
MODES = {1: "L", 3: "RGB"}
_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


@dataclass(frozen=True)
class Samples:
    images: np.ndarray  # uint8 [N, C, H, W]
    sha256: str  # of the decoded pixels (`pixels_sha256`)
    source: str  # what was read, for the run's params: "folder of 500 PNG/JPEG/WebP files"


def pixels_sha256(images: np.ndarray) -> str:
    """sha256 of uint8 `[N, C, H, W]` pixels, shape included (so a reshape changes it)."""
    digest = hashlib.sha256(f"uint8{list(images.shape)}".encode())
    digest.update(np.ascontiguousarray(images).tobytes())
    return digest.hexdigest()


def read_samples(
    path: Path, *, channels: int, size: int, min_count: int, max_count: int
) -> Samples:
    """The samples at `path` (a folder of images or an `.npz`), checked against the dataset's
    `channels` and `size` and the protocol's sample-count range; bad input is one ProdganError."""
    path = Path(path)
    if path.is_dir():
        images, source = _read_folder(path, channels, size, max_count)
    elif path.is_file() and path.suffix.lower() == ".npz":
        images, source = _read_npz(path, channels, size, max_count), f"{path.name} (npz)"
    else:
        problem = "does not exist" if not path.exists() else "is neither a folder nor an .npz file"
        raise ProdganError(
            f"--images {path} {problem}: pass a folder of PNG/JPEG/WebP samples or an .npz of "
            "uint8 images"
        )
    if len(images) < min_count:
        raise ProdganError(
            f"--images {path} holds {len(images)} sample(s); FID needs at least {min_count}: "
            "generate more"
        )
    return Samples(images, pixels_sha256(images), source)


def _read_folder(folder: Path, channels: int, size: int, max_count: int) -> tuple[np.ndarray, str]:
    files = sorted(f for f in folder.iterdir() if not f.name.startswith("."))
    if not files:
        raise ProdganError(f"--images {folder} is empty: put the generator's samples there")
    if len(files) > max_count:
        raise ProdganError(
            f"--images {folder} holds {len(files)} files, over the {max_count} a protocol allows; "
            "evaluate a subset"
        )
    stray = next((f for f in files if not f.is_file() or f.is_symlink()), None)
    if stray is not None:
        raise ProdganError(
            f"{stray} is not a plain file: --images takes a flat folder of image files"
        )
    return np.stack([_read_image(f, channels, size) for f in files]), (
        f"folder of {len(files)} image files"
    )


def _read_image(path: Path, channels: int, size: int) -> np.ndarray:
    mode = MODES[channels]
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise ProdganError(
            f"{path} is not an image file ({path.suffix or 'no suffix'}): the samples folder may "
            f"hold only {', '.join(sorted(IMAGE_SUFFIXES))} files"
        )
    try:
        with open_checked(path) as img:
            if img.mode != mode or img.size != (size, size):
                raise ProdganError(
                    f"{path} is {img.width}x{img.height} {img.mode}, but the dataset's images "
                    f"are {size}x{size} {mode}: save the samples at the dataset's size and mode"
                )
            img.load()
            pixels = np.asarray(img, dtype=np.uint8)
    except ValueError as exc:
        raise ProdganError(f"{path}: {exc}; pass intact PNG, JPEG or WebP samples") from None
    except (OSError, SyntaxError) as exc:
        raise ProdganError(
            f"{path} could not be decoded ({type(exc).__name__}): pass intact image files"
        ) from None
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def _read_npz(path: Path, channels: int, size: int, max_count: int) -> np.ndarray:
    """One uint8 array from an `.npz`, its header checked before a byte of it is read."""
    if path.stat().st_size > max_count * channels * size * size + MAX_FILE_BYTES:
        raise ProdganError(f"{path} is larger than {max_count} samples can be: evaluate a subset")
    try:
        with zipfile.ZipFile(path) as archive:
            member = _npz_member(path, archive.namelist())
            with archive.open(member) as stream:
                read_header = _HEADER_READERS.get(np.lib.format.read_magic(stream))
                if read_header is None:
                    raise ValueError("unsupported .npy format version")
                shape, fortran, dtype = read_header(stream)
                layout = _layout(path, shape, dtype, channels, size, max_count)
                count = int(np.prod(shape))
                data = stream.read(count)
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise ProdganError(
            f"{path} is not a readable .npz ({exc}); save it with numpy.savez(path, images=...)"
        ) from None
    if len(data) != count:
        raise ProdganError(f"{path} is truncated: its array holds fewer bytes than its header says")
    array = np.frombuffer(data, np.uint8).reshape(shape, order="F" if fortran else "C")
    if layout == "NHWC":
        array = array.transpose(0, 3, 1, 2)
    elif layout == "NHW":
        array = array[:, None]
    return np.array(array, order="C", copy=True)  # writable, like a decoded folder


def _npz_member(path: Path, names: list[str]) -> str:
    arrays = [n for n in names if n.endswith(".npy")]
    if f"{NPZ_KEY}.npy" in arrays:
        return f"{NPZ_KEY}.npy"
    if len(arrays) == 1:
        return arrays[0]
    raise ProdganError(
        f"{path} holds {len(arrays)} arrays ({', '.join(n[:-4] for n in arrays) or 'none'}): "
        f"name the samples {NPZ_KEY!r} (numpy.savez(path, {NPZ_KEY}=...))"
    )


def _layout(
    path: Path, shape: tuple[int, ...], dtype: np.dtype, channels: int, size: int, max_count: int
) -> str:
    """NCHW, NHWC or NHW (grayscale), or a one-line refusal naming what the array is instead."""
    want = f"(N, {channels}, {size}, {size}) or (N, {size}, {size}, {channels})"
    if dtype != np.uint8:
        raise ProdganError(
            f"{path} holds {dtype} pixels: save uint8 "
            "(e.g. np.clip(x * 255, 0, 255).round().astype(np.uint8) for [0, 1] floats)"
        )
    if len(shape) == 4 and shape[1:] == (channels, size, size):
        layout = "NCHW"
    elif len(shape) == 4 and shape[1:] == (size, size, channels):
        layout = "NHWC"
    elif channels == 1 and len(shape) == 3 and shape[1:] == (size, size):
        layout = "NHW"
    else:
        raise ProdganError(
            f"{path} holds an array of shape {tuple(shape)}, but the dataset's images need {want}: "
            "save the samples at the dataset's size and channels"
        )
    if shape[0] > max_count:
        raise ProdganError(
            f"{path} holds {shape[0]} samples, over the {max_count} a protocol allows; "
            "evaluate a subset"
        )
    return layout
