"""The PNG encoder: valid PNG that decoders read back pixel for pixel, each row under one of the five PNG
filters, compressed by a pinned libdeflate (so no zlib build can change the bytes), with golden bytes."""

import hashlib
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from tfao.models.png import PNG_SIGNATURE, encode_png, filter_rows

GOLDEN_4x3_SHA256 = "57f9312cc9bb6ad9a943ea6a356d27aa1718df31a3e0befccb0f4dca4261ceef"
GOLDEN_WALK_SHA256 = "f4fcb32036ef3a4b084e728524efea6ba003e358964e6e2ff34b88becc2a7470"


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


def random_walk(seed=2, height=24, width=20, noise_rows=True):
    """A smooth image, with a noise row every fifth row: its rows then choose all five filter types."""
    rng = np.random.default_rng(seed)
    pixels = (np.cumsum(np.cumsum(rng.integers(-3, 4, (height, width, 3)), 0), 1) % 256).astype(np.uint8)
    if noise_rows:
        pixels[::5] = rng.integers(0, 256, pixels[::5].shape)
    return pixels


def unfilter(filtered: np.ndarray, channels: int) -> np.ndarray:
    """The PNG specification's reconstruction, byte by byte."""
    height, width = filtered.shape[0], filtered.shape[1] - 1
    out = np.zeros((height, width), np.int64)
    for y in range(height):
        kind = filtered[y, 0]
        for x in range(width):
            a = out[y, x - channels] if x >= channels else 0
            b = out[y - 1, x] if y else 0
            c = out[y - 1, x - channels] if y and x >= channels else 0
            p = a + b - c
            paeth = a if abs(p - a) <= abs(p - b) and abs(p - a) <= abs(p - c) else b if abs(p - b) <= abs(p - c) else c
            out[y, x] = (int(filtered[y, x + 1]) + [0, a, b, (a + b) // 2, paeth][kind]) % 256
    return out.astype(np.uint8)


def test_each_row_takes_the_filter_with_the_smallest_residuals_and_reconstructs():
    rows = random_walk().reshape(24, -1)
    filtered = filter_rows(rows, 3)
    assert set(filtered[:, 0]) == {0, 1, 2, 3, 4}
    assert np.array_equal(unfilter(filtered, 3), rows)
    for y in range(len(rows)):  # no filter gives the row a smaller sum of |residual| (as signed bytes)
        costs = [cost((rows[y] - prediction(rows, y, kind, 3)) % 256) for kind in range(5)]
        assert filtered[y, 0] == costs.index(min(costs)), (y, costs)


def prediction(rows, y, kind, channels):
    x = rows.astype(np.int64)
    a = np.concatenate([np.zeros(channels, np.int64), x[y, :-channels]])
    b = x[y - 1] if y else np.zeros_like(x[y])
    c = np.concatenate([np.zeros(channels, np.int64), b[:-channels]])
    p = a + b - c
    paeth = np.where((abs(p - a) <= abs(p - b)) & (abs(p - a) <= abs(p - c)), a, np.where(abs(p - b) <= abs(p - c), b, c))
    return [0 * a, a, b, (a + b) // 2, paeth][kind]


def cost(residuals):
    residuals = np.asarray(residuals, np.int64)
    return int(np.minimum(residuals, 256 - residuals).sum())


def test_idat_is_a_zlib_stream_of_the_filtered_rows_smaller_than_the_pixels():
    pixels = random_walk(height=300, width=257, noise_rows=False)
    idat = dict(chunks(encode_png(pixels)))[b"IDAT"]
    assert zlib.decompress(idat) == filter_rows(pixels.reshape(300, -1), 3).tobytes()
    assert len(idat) < 0.75 * pixels.nbytes  # its residuals hold under 3 bits a byte: deflate gets near that


def test_golden_bytes():
    pixels = np.arange(36, dtype=np.uint8).reshape(3, 4, 3) * 7
    assert hashlib.sha256(encode_png(pixels)).hexdigest() == GOLDEN_4x3_SHA256
    assert hashlib.sha256(encode_png(random_walk(height=300, width=257))).hexdigest() == GOLDEN_WALK_SHA256


@pytest.mark.parametrize("pixels,message", [
    (np.zeros((2, 2, 3), np.float32), "uint8"), (np.zeros((2, 2, 4), np.uint8), "shape"), (np.zeros((0, 2, 3), np.uint8), "pixel"),
])
def test_bad_pixels_are_clear_errors(pixels, message):
    with pytest.raises(ValueError, match=message):
        encode_png(pixels)
