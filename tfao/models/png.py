"""PNG bytes that are the same on every machine: 8-bit RGB or grey, each row under the PNG filter with the
smallest sum of absolute residuals (the heuristic the PNG specification recommends), compressed by
libdeflate at a fixed level.

libdeflate's compressor uses integer arithmetic only and its CPU-specific code merely initialises tables,
so its output depends on nothing but its version and level; the dependency is pinned exactly for that.
zlib's output is not fixed that way: it differs between zlib builds (zlib-ng, Chromium's, patched ones).
Only the CRC-32 checksums come from zlib (a fixed function of the bytes)."""

from __future__ import annotations

import struct
import zlib

import deflate
import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DEFLATE_LEVEL = 12  # libdeflate's strongest: about 60 ms for a 512 px image, small beside making the image
NONE, SUB, UP, AVERAGE, PAETH = range(5)  # the PNG filter types, in the order a tie is broken


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _paeth(left: np.ndarray, up: np.ndarray, up_left: np.ndarray) -> np.ndarray:
    estimate = left + up - up_left
    to_left, to_up, to_up_left = np.abs(estimate - left), np.abs(estimate - up), np.abs(estimate - up_left)
    return np.where((to_left <= to_up) & (to_left <= to_up_left), left, np.where(to_up <= to_up_left, up, up_left))


def filter_rows(rows: np.ndarray, channels: int) -> np.ndarray:
    """[H, W * channels] uint8 -> [H, 1 + W * channels]: each row's filter type, then its residuals."""
    x = rows.astype(np.int16)                                                        # [H, B]
    left = np.pad(x, ((0, 0), (channels, 0)))[:, :-channels]                         # [H, B]
    up = np.pad(x, ((1, 0), (0, 0)))[:-1]                                            # [H, B]
    up_left = np.pad(up, ((0, 0), (channels, 0)))[:, :-channels]                     # [H, B]
    predictions = np.stack([np.zeros_like(x), left, up, (left + up) >> 1, _paeth(left, up, up_left)])  # [5, H, B]
    residuals = ((x - predictions) & 0xFF).astype(np.uint8)                          # [5, H, B]
    cost = np.minimum(residuals, 256 - residuals.astype(np.int32)).sum(axis=2)       # [5, H]: |residual| as a signed byte
    chosen = np.argmin(cost, axis=0)                                                 # [H]: the first of equal costs
    filtered = np.take_along_axis(residuals, chosen[None, :, None], axis=0)[0]       # [H, B]
    return np.concatenate([chosen.astype(np.uint8)[:, None], filtered], axis=1)      # [H, 1 + B]


def encode_png(pixels: np.ndarray) -> bytes:
    """PNG bytes of a uint8 image [H, W, 3] (RGB) or [H, W] (grey)."""
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8:
        raise ValueError(f"PNG pixels must be uint8, got {pixels.dtype}")
    if pixels.ndim == 2:
        color_type = 0
        pixels = pixels[:, :, None]
    elif pixels.ndim == 3 and pixels.shape[2] == 3:
        color_type = 2
    else:
        raise ValueError(f"PNG pixels must be [H, W, 3] or [H, W], got shape {pixels.shape}")
    height, width, channels = pixels.shape
    if not (height and width):
        raise ValueError("a PNG needs at least one pixel")
    rows = filter_rows(pixels.reshape(height, width * channels), channels)
    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    idat = deflate.zlib_compress(rows.tobytes(), DEFLATE_LEVEL)
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
