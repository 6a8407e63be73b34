"""Fixed-order reductions: a halving tree over a zero-padded power-of-two length, so the order depends only
on the reduced length, and trailing zeros (padding) leave the result unchanged."""

from __future__ import annotations

import numpy as np


def tree_sum(x: np.ndarray, axis: int = -1, keepdims: bool = False) -> np.ndarray:
    """Float64 sum along ``axis`` by a halving tree over the length zero-padded to a power of two.

    The order depends only on the reduced length, never on SIMD width, layout or the other axes, and
    extra trailing zeros (padded tokens) do not change the result.
    """
    x = np.asarray(x)
    last = axis in (-1, x.ndim - 1)
    if not last:
        x = np.moveaxis(x, axis, -1)
    n = x.shape[-1]
    width = 1 << max(n - 1, 0).bit_length()
    acc = np.empty((*x.shape[:-1], width), dtype=np.float64)
    acc[..., :n] = x
    acc[..., n:] = 0.0
    while width > 1:  # in place: the halves never overlap
        width //= 2
        np.add(acc[..., :width], acc[..., width:2 * width], out=acc[..., :width])
    if keepdims and last:
        return acc[..., :1]
    total = acc[..., 0]
    return np.expand_dims(total, axis) if keepdims else total


def max_reduce(x: np.ndarray, axis: int = -1, keepdims: bool = False) -> np.ndarray:
    """Maximum (exact and order-free, so the same in every mode)."""
    return np.max(x, axis=axis, keepdims=keepdims)
