"""PNG bytes that are the same on every machine: 8-bit RGB, no filtering, and deflate's *stored* blocks,
so no compressor (whose output varies between zlib builds and versions) is involved. Only the
checksums come from zlib (CRC-32 and Adler-32 are fixed functions of the bytes)."""

from __future__ import annotations

import struct
import zlib

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_STORED_BLOCK = 65535  # the most bytes one stored deflate block holds
_ZLIB_HEADER = b"\x78\x01"  # deflate, 32 KiB window, no preset dictionary, "fastest" level hint


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _stored_zlib(data: bytes) -> bytes:
    """A zlib stream holding ``data`` in stored (uncompressed) deflate blocks."""
    blocks = [_ZLIB_HEADER]
    starts = range(0, max(len(data), 1), _STORED_BLOCK)
    for start in starts:
        piece = data[start:start + _STORED_BLOCK]
        final = 1 if start + _STORED_BLOCK >= len(data) else 0
        blocks.append(struct.pack("<BHH", final, len(piece), len(piece) ^ 0xFFFF) + piece)
    blocks.append(struct.pack(">I", zlib.adler32(data)))
    return b"".join(blocks)


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
    height, width = pixels.shape[:2]
    if not (height and width):
        raise ValueError("a PNG needs at least one pixel")
    rows = np.concatenate([np.zeros((height, 1), np.uint8), pixels.reshape(height, -1)], axis=1)  # filter byte 0 per row
    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", _stored_zlib(rows.tobytes())) + _chunk(b"IEND", b"")
