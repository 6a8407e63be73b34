"""Matrix products. Exact mode quantizes each activation row and each weight column to signed integers times
a power-of-two scale, with few enough bits that every product and partial sum is such an integer below 2**53
times the two scales, so float64 holds each exactly: dgemm (any summation order) gives the exact sum, which
is rounded once to float32. A row's result depends on that row only.

Non-finite inputs: a NaN or inf in a GEMM row makes that output row non-finite; other rows are unaffected.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
import threading
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np

from .modes import KERNELS_VERSION, resolve_mode
from .parallel import blas_architecture
from .reductions import max_reduce

# Up to this many rows, fast mode's products are cheaper in another form than ``x @ weight.T`` with the
# checkpoint's [out, in] array read transposed; from about 77 rows on the forms are within a few percent, so
# large products keep that one. Which form is cheaper depends on OpenBLAS's kernels: its AVX-512 (SkylakeX)
# sgemm takes ``weight @ x.T`` with the weight as it is, 0.66 to 0.86 of the time of the next best for 8 to
# 48 rows (MiniLM's 24 products one after another, out of cache), but 1.8 times as long as the row-major
# [in, out] copy for a wide output at 32 rows (t5's 32,128-word head); its AVX2 (Haswell) one takes that
# copy, 0.75 to 0.87 of the time of the transposed read and of ``weight @ x.T`` on one thread.
FEW_ROWS = 64
WEIGHT_LEFT_MAX_OUT = 2048
_AVX512_KERNELS = {"SkylakeX", "Cooperlake", "SapphireRapids"}
# OpenBLAS's sgemm kernels take such products in steps of 4 or 8 rows and are slow on the remainder: MiniLM's
# 24 products at 15 rows took 7.1 ms against 4.2 at 16 (SkylakeX, weight @ x.T, one thread) and 6.1 against
# 4.8 (Haswell, row-major copy). So fast mode pads few rows with zero rows to a multiple of 4: over 1 to 64
# rows that took 0.90 to 0.96 of the time on average (both kernels, one and two threads). One or two rows
# (a decoder's step) stay as they are, and float64 products gain nothing from it.
FEW_ROWS_STEP = 4
# From 2 to 6 rows (a beam search's or a small batch's decoding step) the AVX-512 kernels do better still on
# column blocks small enough for OpenBLAS's small-matrix path (M N K up to 1e6), which reads the weight
# where it lies instead of packing a copy of it first: t5-small's 32,128-word head at 4 rows took 2.8-4.2 ms
# against 4.7-5.1 for its best packed form on two threads, and a whole decoding step's products 0.75
# to 0.91 of the time (2 to 6 rows; about half on one thread; at 8 rows 1.1, so more rows keep the forms above).
# Outputs wider than WEIGHT_LEFT_MAX_OUT (a vocabulary head, whose other form is a row-major copy) take the
# blocks up to 8 rows: t5-small greedy batch 8 took 682-696 ms against 750-792 (two alternating runs).
SMALL_KERNEL_ROWS = 6
SMALL_KERNEL_ROWS_WIDE = 8
SMALL_KERNEL_SIZE = 1 << 19  # M N K of one block


def padded_row_count(rows: int) -> int:
    """The rows fast mode multiplies for ``rows`` rows of a product of few rows."""
    return rows if rows <= 2 else -(-rows // FEW_ROWS_STEP) * FEW_ROWS_STEP


@cache
def blas_runs_avx512_kernels() -> bool:
    """Whether OpenBLAS runs its AVX-512 kernels here: fast mode then multiplies few rows by small column
    blocks or as ``weight @ x.T`` (outputs up to ``WEIGHT_LEFT_MAX_OUT`` wide) rather than by a row-major copy
    of the weight."""
    return blas_architecture() in _AVX512_KERNELS


def gemm_bits(k: int) -> int:
    """Integer bits per operand so that a K-long dot product of them stays below 2**53."""
    return (53 - math.ceil(math.log2(max(k, 1)))) // 2


def _row_exponents(x: np.ndarray, axis: int) -> np.ndarray:
    """The integer ``e`` with absmax < 2**e for each slice along ``axis`` (0 for all-zero slices)."""
    absmax = max_reduce(np.abs(x), axis=axis, keepdims=True)
    return np.frexp(absmax.astype(np.float64))[1]


def round_to_grid(x: np.ndarray, exponent: np.ndarray, bits: int, headroom: int = 0) -> np.ndarray:
    """``x`` rounded (half to even) to multiples of ``2**(exponent - bits)`` (``exponent`` broadcast against
    ``x``), as float64, for |x| < ``2**(exponent + headroom)``.

    Adding and subtracting ``1.5 * 2**52`` times the grid step rounds to its multiples in two passes; float32
    inputs round in float32 (half the memory), exactly the same numbers, wherever the magic constant is a
    normal float32 and ``bits + headroom <= 22`` keeps |x| below its rounding range.
    """
    if (x.dtype == np.float32 and bits + headroom <= 22 and exponent.size
            and -100 < exponent.min() and exponent.max() < 100):
        magic = np.ldexp(np.float32(1.5), 23 - bits + exponent)  # float32: frexp's exponents are int32
        rounded = x + magic
        return np.subtract(rounded, magic, out=np.empty(x.shape, dtype=np.float64))  # exact in either type
    magic = np.ldexp(1.5, 52 - bits + exponent)
    rounded = x.astype(np.float64)  # a copy: widening first, then in place, beats mixed-type arithmetic
    rounded += magic
    rounded -= magic
    return rounded


def quantize(x: np.ndarray, axis: int, bits: int) -> np.ndarray:
    """``x`` rounded to ``bits``-bit integers times a power of two per slice along ``axis``, as float64.

    The power of two is ``2**(e - bits)`` with absmax < 2**e: the values are the integers ``rint(x * 2**shift)``
    scaled back by ``2**-shift``, which float64 holds exactly, and a product of two such operands summed over
    K stays a multiple of the scales' product below 2**53 of it, so dgemm still sums exactly in any order.
    """
    return round_to_grid(x, _row_exponents(x, axis), bits)


def matmul(a: np.ndarray, b: np.ndarray, mode: str | None = None, max_k: int | None = None) -> np.ndarray:
    """``a @ b`` for float32 ``a`` [..., M, K] and ``b`` [..., K, N] (batched for attention).

    Exact mode picks its bits from K; when K is a padded length (attention over keys), pass the fixed
    bound ``max_k`` so the bits, and so the result, do not depend on how much padding a batch has.
    """
    if resolve_mode(mode) == "fast":
        return np.matmul(a, b)
    return RightFactor(b, mode, max_k)(a)


class RightFactor:
    """``b`` [..., K, N] prepared once as the right factor of several products ``a @ b`` (the keys or values of
    attention, met by one chunk of queries after another): the same bits as ``matmul(a, b)``."""

    def __init__(self, b: np.ndarray, mode: str | None = None, max_k: int | None = None):
        self.mode, k = resolve_mode(mode), b.shape[-2]
        if max_k is not None and k > max_k:
            raise ValueError(f"contraction length {k} exceeds max_k {max_k}")
        self.bits = gemm_bits(max_k or k)
        self.b = b if self.mode == "fast" else quantize(b, -2, self.bits)  # per column of b

    def __call__(self, a: np.ndarray) -> np.ndarray:
        if self.mode == "fast":
            return np.matmul(a, self.b)
        return np.matmul(quantize(a, -1, self.bits), self.b).astype(np.float32)  # per row of a


class PreparedStore:
    """Prepared exact-mode weights in ``.npy`` files under ``folder``, keyed by the weight's content and the
    kernels version, memory-mapped read-only: processes that use the same model share one copy through
    the page cache instead of each holding a private one. Writers (processes or threads) may race: each
    writes its own temporary file and renames it into place, so a reader sees one whole file."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def arrays(self, key: str, names: tuple[str, ...], build: Callable[[], tuple[np.ndarray, ...]]) -> tuple[np.ndarray, ...]:
        paths = [self.folder / f"{key}.{name}.npy" for name in names]
        if not all(path.exists() for path in paths):
            self.folder.mkdir(parents=True, exist_ok=True)
            for path, array in zip(paths, build()):
                handle, partial = tempfile.mkstemp(dir=self.folder, prefix=f"{path.name}.", suffix=".partial")
                with os.fdopen(handle, "wb") as file:
                    np.save(file, np.ascontiguousarray(array), allow_pickle=False)
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
    shift = bits - _row_exponents(rows, -1)  # per row of ``rows``: [..., K, 1]
    rows_int = np.rint(np.multiply(rows, np.ldexp(1.0, shift), dtype=np.float64))
    folded = np.multiply(weights, np.swapaxes(np.ldexp(1.0, -shift), -1, -2), dtype=np.float64)  # exact: powers of two
    product = np.matmul(quantize(folded, -1, bits), rows_int)
    return product.astype(np.float32)


class Linear:
    """``x @ weight.T + bias`` with the weight prepared once per mode (float32 for fast, quantized for exact).

    ``weight`` is [out, in] as checkpoints store it, or a list of such blocks whose outputs sit side by side
    (``stacked``); each is used in place (a memory-mapped checkpoint stays shared). With a ``PreparedStore``
    the exact-mode weights are memory-mapped from it too.
    """

    def __init__(self, weight: np.ndarray | list[np.ndarray], bias: np.ndarray | None = None,
                 prepared: PreparedStore | None = None):
        self.blocks = [np.asarray(block, dtype=np.float32) for block in (weight if isinstance(weight, list) else [weight])]
        self.in_features = self.blocks[0].shape[1]
        self.out_features = sum(block.shape[0] for block in self.blocks)
        self.bias = None if bias is None else np.asarray(bias, dtype=np.float32)
        self.prepared = prepared
        self._exact = None
        self._row_major = None  # fast mode's [in, out] float32 copy, for products of few rows
        self._digest = None
        self._preparing = threading.Lock()  # pieces of a split batch reach a layer's first exact call together

    @classmethod
    def load(cls, weights, shape: tuple[int, int], prepared: PreparedStore | None = None) -> "Linear":
        """From a ``Weights`` scope holding ``weight`` [out, in] and ``bias`` [out]."""
        return cls(weights.get("weight", shape), weights.get("bias", shape[:1]), prepared)

    @classmethod
    def stacked(cls, parts: list["Linear"], prepared: PreparedStore | None = None) -> "Linear":
        """One layer computing ``parts`` side by side (their outputs concatenated), e.g. attention's query, key
        and value: in exact mode one GEMM instead of three, the same bits (each output column is its own dot
        product); the float32 weights stay where they are (no concatenated copy per process)."""
        biases = [part.bias for part in parts]
        bias = None if any(b is None for b in biases) else np.concatenate(biases)
        return cls([block for part in parts for block in part.blocks], bias, prepared)

    @property
    def weight(self) -> np.ndarray:
        """[out, in]: the checkpoint's array, or the blocks concatenated (a copy)."""
        return self.blocks[0] if len(self.blocks) == 1 else np.concatenate(self.blocks)

    @property
    def weight_t(self) -> np.ndarray:
        return self.weight.T  # [in, out], a view: BLAS reads the transpose in place

    def prepared_key(self, form: str) -> str:
        """The ``PreparedStore`` key of this weight in a prepared ``form``: the kernels version, the weight's
        content (hashed once) and its shape."""
        if self._digest is None:
            content = hashlib.sha256()  # of the [out, in] bytes, block after block
            for block in self.blocks:
                content.update(np.ascontiguousarray(block).data)
            self._digest = content.hexdigest()
        return f"v{KERNELS_VERSION}-{self._digest}-{self.out_features}x{self.in_features}-{form}"

    def _quantized_weight(self, bits: int) -> tuple[np.ndarray]:
        return (np.ascontiguousarray(quantize(self.weight_t, 0, bits)),)  # per output unit

    def _prepared_once(self, name: str, prepare: Callable[[], object]):
        """The form of the weight held in attribute ``name``, prepared on first use, once even when the pieces
        of a split batch ask for it together."""
        if getattr(self, name) is None:
            with self._preparing:
                if getattr(self, name) is None:
                    setattr(self, name, prepare())
        return getattr(self, name)

    def _exact_weight(self):
        return self._prepared_once("_exact", self._prepare_exact)

    def _prepare_exact(self):
        bits = gemm_bits(self.in_features)
        if self.prepared is None:
            (weight_q,) = self._quantized_weight(bits)
        else:
            (weight_q,) = self.prepared.arrays(self.prepared_key(f"gemm{bits}"), ("quantized",),
                                               lambda: self._quantized_weight(bits))
        bias = None if self.bias is None else self.bias.astype(np.float64)
        return bits, weight_q, bias

    def _row_major_copy(self) -> tuple[np.ndarray]:
        return (np.ascontiguousarray(self.weight_t),)  # [in, out]

    def _row_major_weight(self) -> np.ndarray:
        return self._prepared_once("_row_major", self._prepare_row_major)

    def _prepare_row_major(self) -> np.ndarray:
        if self.prepared is None:
            (weight,) = self._row_major_copy()
        else:
            (weight,) = self.prepared.arrays(self.prepared_key("rowmajor32"), ("weight",), self._row_major_copy)
        return weight

    def _weight_left(self, x2: np.ndarray, rows: int) -> np.ndarray:
        """Fast mode's ``x2 @ weight.T + bias`` for the first ``rows`` rows of ``x2``, as ``weight @ x2.T``, each
        block into its rows of the result, then transposed back in the pass that adds the bias."""
        out_t = np.empty((self.out_features, x2.shape[0]), dtype=np.float32)  # [out, M']
        start = 0
        for block in self.blocks:
            np.matmul(block, x2.T, out=out_t[start:start + block.shape[0]])
            start += block.shape[0]
        if self.bias is None:
            return np.ascontiguousarray(out_t[:, :rows].T)  # [M, out]
        return np.add(out_t[:, :rows].T, self.bias, out=np.empty((rows, self.out_features), dtype=np.float32))  # [M, out]

    def _into_columns(self, x2: np.ndarray, width: int | None = None) -> np.ndarray:
        """Fast mode's ``x2 @ weight.T``, each block's product straight into its columns of the result, in
        slices of ``width`` of the weight's rows (whole blocks when None), the checkpoint's arrays in place."""
        out = np.empty((x2.shape[0], self.out_features), dtype=np.float32)  # [M, out]
        start = 0
        for block in self.blocks:
            step = width or block.shape[0]
            for first in range(0, block.shape[0], step):
                part = block[first:first + step]  # [n, in]
                np.matmul(x2, part.T, out=out[:, start + first:start + first + part.shape[0]])
            start += block.shape[0]
        return out

    def _few_rows(self, x2: np.ndarray) -> np.ndarray:
        """Fast mode's ``x2 @ weight.T + bias`` for up to ``FEW_ROWS`` rows, in the form the kernels prefer."""
        rows, avx512 = x2.shape[0], blas_runs_avx512_kernels()
        most_rows = SMALL_KERNEL_ROWS_WIDE if self.out_features > WEIGHT_LEFT_MAX_OUT else SMALL_KERNEL_ROWS
        if avx512 and 2 <= rows <= most_rows and 16 * rows * self.in_features <= SMALL_KERNEL_SIZE:
            out = self._into_columns(x2, SMALL_KERNEL_SIZE // (rows * self.in_features) // 16 * 16)  # [M, out]
        else:
            padded = padded_row_count(rows)
            if padded != rows:
                x2 = np.concatenate([x2, np.zeros((padded - rows, self.in_features), dtype=x2.dtype)])  # [M', in]
            if avx512 and self.out_features <= WEIGHT_LEFT_MAX_OUT:
                return self._weight_left(x2, rows)  # the bias added in its transposing pass
            out = np.matmul(x2, self._row_major_weight())[:rows]  # [M, out]: leading rows, still contiguous
        if self.bias is not None:
            out += self.bias
        return out

    def nbytes(self) -> int:
        """Bytes referenced: the float32 weight and bias, the exact-mode copy (float64) once prepared, and fast
        mode's row-major copy once made outside a prepared store."""
        weight = sum(block.nbytes for block in self.blocks)
        exact = 2 * weight if self._exact is not None or self.prepared is None else 0
        row_major = weight if self._row_major is not None and self.prepared is None else 0
        return weight + (0 if self.bias is None else self.bias.nbytes) + exact + row_major

    def __call__(self, x: np.ndarray, mode: str | None = None) -> np.ndarray:
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features)  # [M, in]
        if resolve_mode(mode) == "fast":
            if x2.shape[0] <= FEW_ROWS:
                return self._few_rows(x2).reshape(*lead, self.out_features)
            out = x2 @ self.blocks[0].T if len(self.blocks) == 1 else self._into_columns(x2)  # [M, out]
            if self.bias is not None:
                out += self.bias
            return out.reshape(*lead, self.out_features)
        bits, weight_q, bias = self._exact_weight()
        out = quantize(x2, -1, bits) @ weight_q  # [M, out], exact: no rounding before the bias
        if bias is None:
            return out.astype(np.float32).reshape(*lead, self.out_features)
        # the sum in float64, rounded once into the float32 result: no float64 temporary
        return np.add(out, bias, out=np.empty(out.shape, dtype=np.float32)).reshape(*lead, self.out_features)
