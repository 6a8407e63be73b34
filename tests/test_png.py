"""The PNG encoder: valid PNG that decoders read back pixel for pixel, made of stored deflate blocks (so no
compressor's version can change the bytes), with golden bytes."""

import hashlib
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from tfao.models.png import PNG_SIGNATURE, encode_png

GOLDEN_4x3_SHA256 = "5d2c34f7d5d8ae89a0934946f89c090ca7a2cdd08a818795451a5f58594e42e9"


def chunks(png: bytes):
    assert png.startswith(PNG_SIGNATURE)
    at, found = len(PNG_SIGNATURE), []
    while at < len(png):
        (length,) = struct.unpack(">I", png[at:at + 4])
        kind, data = png[at + 4:at + 8], png[at + 8:at + 8 + length]
        assert struct.unpack(">I", png[at + 8 + length:at + 12 + length])[0] == zlib.crc32(kind + data)
        found.append((kind, data))
        at += 12 + length
    return found


def read_back(png: bytes) -> np.ndarray:
    import io

    return np.asarray(Image.open(io.BytesIO(png)))


@pytest.mark.parametrize("shape", [(1, 1, 3), (3, 4, 3), (24, 32, 3), (300, 257, 3), (5, 7)])
def test_decoders_read_the_pixels_back(shape):
    pixels = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    png = encode_png(pixels)
    assert np.array_equal(read_back(png), pixels)
    kinds = [kind for kind, _ in chunks(png)]
    assert kinds == [b"IHDR", b"IDAT", b"IEND"]


def test_idat_is_stored_blocks_of_the_unfiltered_rows():
    pixels = np.random.default_rng(1).integers(0, 256, (300, 257, 3), dtype=np.uint8)  # > 65535 bytes: two blocks
    idat = dict(chunks(encode_png(pixels)))[b"IDAT"]
    rows = np.concatenate([np.zeros((300, 1), np.uint8), pixels.reshape(300, -1)], axis=1).tobytes()
    assert zlib.decompress(idat) == rows
    assert idat[:2] == b"\x78\x01" and idat[2] == 0  # zlib header, then a stored block that is not the last
    assert len(idat) == 2 + len(rows) + 5 * -(-len(rows) // 65535) + 4


def test_golden_bytes():
    pixels = np.arange(36, dtype=np.uint8).reshape(3, 4, 3) * 7
    assert hashlib.sha256(encode_png(pixels)).hexdigest() == GOLDEN_4x3_SHA256


@pytest.mark.parametrize("pixels,message", [
    (np.zeros((2, 2, 3), np.float32), "uint8"), (np.zeros((2, 2, 4), np.uint8), "shape"), (np.zeros((0, 2, 3), np.uint8), "pixel"),
])
def test_bad_pixels_are_clear_errors(pixels, message):
    with pytest.raises(ValueError, match=message):
        encode_png(pixels)
