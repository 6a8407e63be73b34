"""Matrix products. Exact mode quantizes each activation row and each weight column to signed integers with
a power-of-two scale, with few enough bits that every product and partial sum is an integer below 2**53,
multiplies the integer-valued float64 matrices with dgemm (any summation order gives the exact integer),
rescales by the powers of two (exact) and rounds once to float32. A row's result depends on that row only.

Non-finite inputs: a NaN or inf in a GEMM row makes that output row non-finite; other rows are unaffected.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .modes import KERNELS_VERSION, resolve_mode


def gemm_bits(k: int) -> int:
    """Integer bits per operand so that a K-long dot product of them stays below 2**53."""
    return (53 - math.ceil(math.log2(max(k, 1)))) // 2


def _quantize(x: np.ndarray, axis: int, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer-valued float64 ``x * 2**shift`` (|values| <= 2**bits) and ``2**-shift``, one scale per slice along ``axis``."""
    absmax = np.maximum.reduce(np.abs(x), axis=axis, keepdims=True)  # the ufunc itself: no Python wrapper
    _, exponent = np.frexp(absmax.astype(np.float64))  # absmax < 2**exponent
    shift = bits - exponent
    scaled = np.multiply(x, np.ldexp(1.0, shift), dtype=np.float64)
    np.rint(scaled, out=scaled)
    return scaled, np.ldexp(1.0, -shift)


def _exact_matmul(a: np.ndarray, b: np.ndarray, max_k: int | None) -> np.ndarray:
    k = a.shape[-1]
    if max_k is not None and k > max_k:
        raise ValueError(f"contraction length {k} exceeds max_k {max_k}")
    bits = gemm_bits(max_k or k)
    a_int, a_scale = _quantize(a, -1, bits)  # per row
    b_int, b_scale = _quantize(b, -2, bits)  # per column
    product = np.matmul(a_int, b_int)
    product *= a_scale
    product *= b_scale
    return product.astype(np.float32)


def matmul(a: np.ndarray, b: np.ndarray, mode: str | None = None, max_k: int | None = None) -> np.ndarray:
    """``a @ b`` for float32 ``a`` [..., M, K] and ``b`` [..., K, N] (batched for attention).

    Exact mode picks its bits from K; when K is a padded length (attention over keys), pass the fixed
    bound ``max_k`` so the bits, and so the result, do not depend on how much padding a batch has.
    """
    if resolve_mode(mode) == "fast":
        return np.matmul(a, b)
    return _exact_matmul(a, b, max_k)


class PreparedStore:
    """Prepared exact-mode weights in ``.npy`` files under ``folder``, keyed by the weight's content and the
    kernels version, memory-mapped read-only: processes that use the same model share one copy through
    the page cache instead of each holding a private one."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def arrays(self, key: str, names: tuple[str, ...], build: Callable[[], tuple[np.ndarray, ...]]) -> tuple[np.ndarray, ...]:
        paths = [self.folder / f"{key}.{name}.npy" for name in names]
        if not all(path.exists() for path in paths):
            self.folder.mkdir(parents=True, exist_ok=True)
            for path, array in zip(paths, build()):
                partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
                with open(partial, "wb") as handle:
                    np.save(handle, np.ascontiguousarray(array), allow_pickle=False)
                os.replace(partial, path)  # atomic: a reader sees the whole file or none
        return tuple(np.load(path, mmap_mode="r", allow_pickle=False) for path in paths)


def weighted_rows(weights: np.ndarray, rows: np.ndarray, mode: str | None = None,
                  max_k: int | None = None) -> np.ndarray:
    """``weights @ rows`` for weights [..., M, K] and rows [..., K, N] (attention probabilities times values),
    where an output row depends only on the rows its weights touch.

    Exact mode scales ``rows`` per row (not per column as ``matmul`` does) and folds those powers of two into
    the weights, so rows with weight 0 (masked or future keys) never change the bits: a query gives the same
    result with or without padded or not-yet-generated keys beside it. ``max_k`` bounds K as in ``matmul``.
    """
    if resolve_mode(mode) == "fast":
        return np.matmul(weights, rows)
    k = weights.shape[-1]
    if max_k is not None and k > max_k:
        raise ValueError(f"contraction length {k} exceeds max_k {max_k}")
    bits = gemm_bits(max_k or k)
    rows_int, rows_scale = _quantize(rows, -1, bits)  # per row of ``rows``: [..., K, 1]
    folded = np.multiply(weights, np.swapaxes(rows_scale, -1, -2), dtype=np.float64)  # exact: powers of two
    weights_int, weights_scale = _quantize(folded, -1, bits)
    product = np.matmul(weights_int, rows_int)
    product *= weights_scale
    return product.astype(np.float32)


class Linear:
    """``x @ weight.T + bias`` with the weight prepared once per mode (float32 for fast, integers for exact).

    ``weight`` is [out, in] as checkpoints store it; it is used in place (a memory-mapped checkpoint stays
    shared). With a ``PreparedStore`` the exact-mode integers are memory-mapped from it too.
    """

    def __init__(self, weight: np.ndarray, bias: np.ndarray | None = None, prepared: PreparedStore | None = None):
        self.in_features = weight.shape[1]
        self.out_features = weight.shape[0]
        self.weight = np.asarray(weight, dtype=np.float32)
        self.weight_t = self.weight.T  # [in, out], a view: BLAS reads the transpose in place
        self.bias = None if bias is None else np.asarray(bias, dtype=np.float32)
        self.prepared = prepared
        self._exact = None

    @classmethod
    def load(cls, weights, shape: tuple[int, int], prepared: PreparedStore | None = None) -> "Linear":
        """From a ``Weights`` scope holding ``weight`` [out, in] and ``bias`` [out]."""
        return cls(weights.get("weight", shape), weights.get("bias", shape[:1]), prepared)

    def _quantized_weight(self, bits: int) -> tuple[np.ndarray, np.ndarray]:
        weight_int, weight_scale = _quantize(self.weight_t, 0, bits)  # per output unit
        return np.ascontiguousarray(weight_int), weight_scale

    def _exact_weight(self):
        if self._exact is None:
            bits = gemm_bits(self.in_features)
            if self.prepared is None:
                weight_int, weight_scale = self._quantized_weight(bits)
            else:
                content = hashlib.sha256(np.ascontiguousarray(self.weight).data).hexdigest()
                key = f"v{KERNELS_VERSION}-{content}-{self.out_features}x{self.in_features}-{bits}"
                weight_int, weight_scale = self.prepared.arrays(key, ("int", "scale"), lambda: self._quantized_weight(bits))
            bias = None if self.bias is None else self.bias.astype(np.float64)
            self._exact = (bits, weight_int, weight_scale, bias)
        return self._exact

    def nbytes(self) -> int:
        """Bytes referenced: the float32 weight and bias, and the exact-mode copy (float64) once prepared."""
        exact = self.weight.size * 8 if self._exact is not None or self.prepared is None else 0
        return self.weight.nbytes + (0 if self.bias is None else self.bias.nbytes) + exact

    def __call__(self, x: np.ndarray, mode: str | None = None) -> np.ndarray:
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features)  # [M, in]
        if resolve_mode(mode) == "fast":
            out = x2 @ self.weight_t  # [M, out]
            if self.bias is not None:
                out += self.bias
            return out.reshape(*lead, self.out_features)
        bits, weight_int, weight_scale, bias = self._exact_weight()
        x_int, x_scale = _quantize(x2, -1, bits)
        out = x_int @ weight_int  # [M, out], exact integers
        out *= weight_scale
        out *= x_scale
        if bias is None:
            return out.astype(np.float32).reshape(*lead, self.out_features)
        # the sum in float64, rounded once into the float32 result: no float64 temporary
        return np.add(out, bias, out=np.empty(out.shape, dtype=np.float32)).reshape(*lead, self.out_features)
