"""The project's random numbers: Philox 4x32-10 (Salmon et al., SC'11), a counter-based generator built
from 32-bit integer multiplies and xors only, so its stream is the same on every machine.

A ``Generator`` is a seed (the 64-bit Philox key) and a position in an endless stream of 32-bit words;
block ``i`` of the stream encrypts the counter ``(i low, i high, stream low, stream high)``. Draws
consume words in order, so drawing 3 and then 5 values gives the same values as drawing 8 at once.
Uniform floats and normals are built from those words with IEEE ``+ - * /`` and the exact ``log``,
``sin``, ``cos`` of ``transcendentals`` (Box-Muller), rounded once.
"""

from __future__ import annotations

import math

import numpy as np

from .transcendentals import cos64, log64, sin64

_MULTIPLIERS = (np.uint64(0xD2511F53), np.uint64(0xCD9E8D57))
_KEY_INCREMENTS = (0x9E3779B9, 0xBB67AE85)  # the golden ratio and sqrt(3) - 1, as 32-bit fractions
_LOW32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)
_ROUNDS = 10
_WORDS_PER_BLOCK = 4
_UINT64_LIMIT = 1 << 64


def philox4x32(counter: np.ndarray, key: tuple[int, int]) -> np.ndarray:
    """Philox 4x32-10 of each counter: ``counter`` is ``[4, n]`` uint32 words, ``key`` two 32-bit ints."""
    c0, c1, c2, c3 = (np.asarray(word, dtype=np.uint64) for word in counter)
    k0, k1 = key
    for round_index in range(_ROUNDS):
        if round_index:
            k0 = (k0 + _KEY_INCREMENTS[0]) & 0xFFFFFFFF
            k1 = (k1 + _KEY_INCREMENTS[1]) & 0xFFFFFFFF
        product0 = c0 * _MULTIPLIERS[0]  # 32 x 32 -> 64 bits: exact in uint64
        product1 = c2 * _MULTIPLIERS[1]
        c0, c1, c2, c3 = (
            (product1 >> _SHIFT32) ^ c1 ^ np.uint64(k0),
            product1 & _LOW32,
            (product0 >> _SHIFT32) ^ c3 ^ np.uint64(k1),
            product0 & _LOW32,
        )
    return np.stack([c0, c1, c2, c3]).astype(np.uint32)


def _checked_uint64(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be an integer, got {type(value).__name__}")
    value = int(value)
    if not 0 <= value < _UINT64_LIMIT:
        raise ValueError(f"{what} must be in [0, 2**64), got {value}")
    return value


class Generator:
    """A seeded stream of random words, uniform floats and standard normals, the same on every machine."""

    def __init__(self, seed: int, stream: int = 0):
        self.seed = _checked_uint64(seed, "seed")
        self.stream = _checked_uint64(stream, "stream")
        self.position = 0  # words drawn so far

    def __repr__(self) -> str:
        return f"Generator(seed={self.seed}, stream={self.stream}, position={self.position})"

    def random_raw(self, count: int) -> np.ndarray:
        """The next ``count`` 32-bit words of the stream, as uint32."""
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        first_block = self.position // _WORDS_PER_BLOCK
        end_block = -(-(self.position + count) // _WORDS_PER_BLOCK)
        blocks = np.arange(first_block, end_block, dtype=np.uint64)
        counter = [blocks & _LOW32, blocks >> _SHIFT32]
        counter += [np.full_like(blocks, word) for word in (self.stream & 0xFFFFFFFF, self.stream >> 32)]
        words = philox4x32(counter, (self.seed & 0xFFFFFFFF, self.seed >> 32)).T.reshape(-1)
        skip = self.position - first_block * _WORDS_PER_BLOCK
        self.position += count
        return words[skip:skip + count]

    def uniform(self, shape=(), dtype=np.float64) -> np.ndarray:
        """Uniform floats in [0, 1): 53 random bits (two words) per float64, 24 bits (one word) per float32."""
        size = math.prod(_shape(shape))
        if np.dtype(dtype) == np.float32:
            words = self.random_raw(size).astype(np.float64)
            values = np.floor(words * 2.0**-8) * 2.0**-24  # exact: the top 24 bits of each word
        elif np.dtype(dtype) == np.float64:
            high, low = self.random_raw(2 * size).astype(np.float64).reshape(2, size, order="F")
            values = (np.floor(high * 2.0**-5) * 2.0**26 + np.floor(low * 2.0**-6)) * 2.0**-53
        else:
            raise ValueError(f"uniform floats are float32 or float64, got {np.dtype(dtype)}")
        return values.astype(dtype).reshape(_shape(shape))

    def standard_normal(self, shape=(), dtype=np.float32) -> np.ndarray:
        """Standard normal floats by Box-Muller: each pair of words gives two normals (|z| < 6.7)."""
        shape = _shape(shape)
        size = math.prod(shape)
        pairs = -(-size // 2)
        first, second = self.random_raw(2 * pairs).astype(np.float64).reshape(2, pairs, order="F")
        radius = np.sqrt(-2.0 * log64((first + 1.0) * 2.0**-32))  # (0, 1]: log is finite
        angle = second * (2.0**-32 * 2.0 * math.pi)
        normals = np.stack([radius * cos64(angle), radius * sin64(angle)], axis=1).reshape(-1)
        # an odd count leaves the pair's second normal unused; the stream still advanced by both words
        return normals[:size].astype(dtype).reshape(shape)


def _shape(shape) -> tuple[int, ...]:
    return (shape,) if isinstance(shape, (int, np.integer)) else tuple(int(d) for d in shape)
