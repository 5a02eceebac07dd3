"""The evaluator pyfunc reads an image's size from its header
and refuses a wrong one before decoding a pixel.
"""

from __future__ import annotations

import base64
import struct
import zlib

import pytest

from prodgan.adapters.evaluator_model import _decode


def _png_header_claiming(width: int, height: int) -> str:
    """A PNG whose header claims width x height but whose pixel data is a few bytes: decoding it
    would allocate width*height bytes, then fail; reading the header costs nothing."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )
    return base64.b64encode(png).decode()


def test_an_oversized_image_is_refused_before_it_is_decoded() -> None:
    with pytest.raises(ValueError, match="image is 5000x5000, the evaluator takes 28x28"):
        _decode(_png_header_claiming(5000, 5000), channels=1, size=28)


def test_a_decompression_bomb_gets_the_evaluators_own_message() -> None:
    with pytest.raises(ValueError, match="decompression-bomb limit, the evaluator takes 28x28"):
        _decode(_png_header_claiming(20000, 20000), channels=1, size=28)


def test_edit_invert_refuses_a_bomb_from_its_header_before_any_model_loads(project, tmp_path):
    from prodgan.errors import ProdganError
    from prodgan.ops.edit import invert

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(base64.b64decode(_png_header_claiming(20000, 20000)))
    # no model is registered: a refusal naming the model would mean it was looked up first
    with pytest.raises(ProdganError, match="decompression-bomb limit"):
        invert(project, bomb, tmp_path / "out", [], model="models:/prodgan-generator/1")
