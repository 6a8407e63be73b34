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
    axis = axis + x.ndim if axis < 0 else axis
    n = x.shape[axis]
    width = 1 << max(n - 1, 0).bit_length()
    if axis == x.ndim - 1 and width > _SHORT:
        width //= 2  # the first halving straight from x: beyond n the partner is padding, 0.0
        acc = np.empty((*x.shape[:-1], width), dtype=np.float64)
        np.add(x[..., :n - width], x[..., width:n], out=acc[..., :n - width], dtype=np.float64)
        np.add(x[..., n - width:width], 0.0, out=acc[..., n - width:], dtype=np.float64)  # as padding does: -0 + 0 is 0
        while width > _SHORT:  # in place: the halves never overlap
            width //= 2
            np.add(acc[..., :width], acc[..., width:2 * width], out=acc[..., :width])
        acc = acc[..., :width].transpose(axis, *range(axis)).copy()
    elif axis == 0 and width > 1:  # the first halving straight from x, as along a long last axis
        width //= 2
        acc = np.empty((width, *x.shape[1:]), dtype=np.float64)
        np.add(x[:n - width], x[width:n], out=acc[:n - width], dtype=np.float64)
        np.add(x[n - width:width], 0.0, out=acc[n - width:], dtype=np.float64)
    else:
        acc = np.empty((width, *x.shape[:axis], *x.shape[axis + 1:]), dtype=np.float64)
        acc[:n] = x.transpose(axis, *range(axis), *range(axis + 1, x.ndim))
        acc[n:] = 0.0
    while width > 1:  # the reduced axis first: each halving is one pass over a contiguous block
        width //= 2
        np.add(acc[:width], acc[width:2 * width], out=acc[:width])
    return acc[:1].reshape(x.shape[:axis] + (1,) + x.shape[axis + 1:]) if keepdims else acc[0]


def _short_axis_reduce(ufunc, x: np.ndarray, axis: int, keepdims: bool) -> np.ndarray:
    """``ufunc.reduce`` along ``axis``; a short axis is first moved to the front in one copy, where the
    reduction is elementwise over contiguous slabs (one reduction per short row costs more than the copy)."""
    x = np.asarray(x)
    axis = axis + x.ndim if axis < 0 else axis
    if x.ndim == 1 or x.shape[axis] > _SHORT:
        return ufunc.reduce(x, axis=axis, keepdims=keepdims)
    front = np.ascontiguousarray(x.transpose(axis, *range(axis), *range(axis + 1, x.ndim)))
    result = ufunc.reduce(front, axis=0)
    return result.reshape(x.shape[:axis] + (1,) + x.shape[axis + 1:]) if keepdims else result


def max_reduce(x: np.ndarray, axis: int = -1, keepdims: bool = False) -> np.ndarray:
    """Maximum (exact and order-free, so the same in every mode); NaN wins."""
    return _short_axis_reduce(np.maximum, x, axis, keepdims)


def fast_sum(x: np.ndarray, axis: int = -1, keepdims: bool = False) -> np.ndarray:
    """Sum in the input's type, in whatever order is quickest: for fast mode, not for exact bits."""
    return _short_axis_reduce(np.add, x, axis, keepdims)
