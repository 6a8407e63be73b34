"""Fixed-order reductions: a halving tree over a zero-padded power-of-two length, so the order depends only
on the reduced length, and trailing zeros (padding) leave the result unchanged."""

from __future__ import annotations

import numpy as np

# Halvings along a last axis cost one numpy inner loop per row: once a row is this short, the partial sums
# move to the front, where each remaining halving is a single contiguous pass.
_SHORT = 32


def tree_sum(x: np.ndarray, axis: int = -1, keepdims: bool = False) -> np.ndarray:
    """Float64 sum along ``axis`` by a halving tree over the length zero-padded to a power of two.

    The order depends only on the reduced length, never on SIMD width, layout or the other axes, and
    extra trailing zeros (padded tokens) do not change the result.
    """
    x = np.asarray(x)
    n = x.shape[axis]
    width = 1 << max(n - 1, 0).bit_length()
    if axis in (-1, x.ndim - 1) and width > _SHORT:
        acc = np.empty((*x.shape[:-1], width), dtype=np.float64)
        acc[..., :n] = x
        acc[..., n:] = 0.0
        while width > _SHORT:  # in place: the halves never overlap
            width //= 2
            np.add(acc[..., :width], acc[..., width:2 * width], out=acc[..., :width])
        acc = np.moveaxis(acc[..., :width], -1, 0).copy()
    else:
        front = np.moveaxis(x, axis, 0)
        acc = np.empty((width, *front.shape[1:]), dtype=np.float64)
        acc[:n] = front
        acc[n:] = 0.0
    while width > 1:  # the reduced axis first: each halving is one pass over a contiguous block
        width //= 2
        np.add(acc[:width], acc[width:2 * width], out=acc[:width])
    return np.expand_dims(acc[0], axis) if keepdims else acc[0]


def max_reduce(x: np.ndarray, axis: int = -1, keepdims: bool = False) -> np.ndarray:
    """Maximum (exact and order-free, so the same in every mode)."""
    return np.max(x, axis=axis, keepdims=keepdims)
