"""The numeric primitives every model is built from, in two math modes.

``exact`` (the default) gives the same bits on every CPU, SIMD level, BLAS kernel, thread count and batch
composition:

* GEMM quantizes each activation row and each weight column to signed integers with a power-of-two
  scale, with few enough bits that every product and partial sum is an integer below 2**53, multiplies
  the integer-valued float64 matrices with dgemm (any summation order gives the exact integer), rescales
  by the powers of two (exact) and rounds once to float32. A row's result depends on that row only.
* Transcendentals are built from ``+ - * /`` and exact power-of-two scaling in float64 (range reduction
  plus fixed polynomials whose coefficients are computed from IEEE arithmetic alone), rounded once to
  float32.
* Reductions use a fixed halving tree over a zero-padded power-of-two length, so the order depends only
  on the reduced length; trailing zeros (padding) leave it unchanged.

``fast`` is plain float32 numpy/BLAS: quicker, but its last bits vary between machines.

Non-finite inputs: NaN and inf propagate (a NaN or inf in a GEMM row makes that output row non-finite);
they never affect other rows.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import os

import numpy as np

MODES = ("exact", "fast")
_mode_override: contextvars.ContextVar[str | None] = contextvars.ContextVar("tfao_math_mode", default=None)


def _checked(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"math mode must be one of {MODES}, got {mode!r}")
    return mode


def current_mode() -> str:
    """The active math mode: the innermost ``math_mode`` block, else env ``TFAO_MATH``, else ``exact``."""
    return _mode_override.get() or _checked(os.environ.get("TFAO_MATH", "exact"))


@contextlib.contextmanager
def math_mode(mode: str):
    token = _mode_override.set(_checked(mode))
    try:
        yield
    finally:
        _mode_override.reset(token)


def resolve_mode(mode: str | None) -> str:
    return _checked(mode) if mode is not None else current_mode()


# ---------------------------------------------------------------------------------------------------------
# Exact GEMM

def gemm_bits(k: int) -> int:
    """Integer bits per operand so that a K-long dot product of them stays below 2**53."""
    return (53 - math.ceil(math.log2(max(k, 1)))) // 2


def _quantize(x: np.ndarray, axis: int, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer-valued float64 ``x * 2**shift`` (|values| <= 2**bits) and ``2**-shift``, one scale per slice along ``axis``."""
    absmax = np.max(np.abs(x), axis=axis, keepdims=True)
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


class Linear:
    """``x @ weight.T + bias`` with the weight prepared once per mode (float32 for fast, integers for exact).

    ``weight`` is [out, in] as checkpoints store it.
    """

    def __init__(self, weight: np.ndarray, bias: np.ndarray | None = None):
        self.in_features = weight.shape[1]
        self.out_features = weight.shape[0]
        self.weight_t = np.ascontiguousarray(weight.T, dtype=np.float32)  # [in, out]
        self.bias = None if bias is None else np.asarray(bias, dtype=np.float32)
        self._exact = None

    def _exact_weight(self):
        if self._exact is None:
            bits = gemm_bits(self.in_features)
            weight_int, weight_scale = _quantize(self.weight_t, 0, bits)  # per output unit
            bias = None if self.bias is None else self.bias.astype(np.float64)
            self._exact = (bits, weight_int, weight_scale, bias)
        return self._exact

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
        if bias is not None:
            out += bias
        return out.astype(np.float32).reshape(*lead, self.out_features)


# ---------------------------------------------------------------------------------------------------------
# Fixed-order reductions

def tree_sum(x: np.ndarray, axis: int = -1, keepdims: bool = False) -> np.ndarray:
    """Float64 sum along ``axis`` by a halving tree over the length zero-padded to a power of two.

    The order depends only on the reduced length, never on SIMD width, layout or the other axes, and
    extra trailing zeros (padded tokens) do not change the result.
    """
    x = np.moveaxis(np.asarray(x), axis, -1)
    n = x.shape[-1]
    width = 1 << max(n - 1, 0).bit_length()
    acc = np.zeros((*x.shape[:-1], width), dtype=np.float64)
    acc[..., :n] = x
    while width > 1:
        width //= 2
        acc = acc[..., :width] + acc[..., width:]
    total = acc[..., 0]
    return np.expand_dims(total, axis) if keepdims else total


def max_reduce(x: np.ndarray, axis: int = -1, keepdims: bool = False) -> np.ndarray:
    """Maximum (exact and order-free, so the same in every mode)."""
    return np.max(x, axis=axis, keepdims=keepdims)


# ---------------------------------------------------------------------------------------------------------
# Exact transcendentals (float64 inside, float32 out)

_ROUND_MAGIC = 6755399441055744.0  # 1.5 * 2**52: adding it rounds a float64 below 2**51 to an integer
_ROUND_MAGIC_BITS = np.array(_ROUND_MAGIC).view(np.int64)
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # ln 2 split so that n * _LN2_HI is exact for |n| < 2**20
_LN2_LO = 1.90821492927058770002e-10
_EXPM1_COEFFS = [1.0 / math.factorial(k) for k in range(13, 1, -1)]  # r**k / k!, k = 13 .. 2


def _round_to_int(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``rint(x)`` as float64 and as int64, for |x| < 2**51."""
    shifted = x + _ROUND_MAGIC
    as_int = shifted.view(np.int64) - _ROUND_MAGIC_BITS
    return shifted - _ROUND_MAGIC, as_int


def _exp_parts(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(2**n, expm1(r))`` with ``exp(x) = 2**n * (1 + expm1(r))``, |r| <= ln2/2, for float64 ``x``."""
    x = np.clip(x, -1000.0, 1000.0)  # beyond, float32 results are 0 or inf anyway; keeps 2**n normal
    n_float, n_int = _round_to_int(x * _LOG2E)
    n_int = np.clip(n_int, -1022, 1023)
    r = (x - n_float * _LN2_HI) - n_float * _LN2_LO
    poly = np.full_like(r, _EXPM1_COEFFS[0])
    for coeff in _EXPM1_COEFFS[1:]:
        poly *= r
        poly += coeff
    expm1_r = (poly * r + 1.0) * r
    power = ((n_int + 1023) << 52).view(np.float64)
    return power, expm1_r


def _exp64(x: np.ndarray) -> np.ndarray:
    power, expm1_r = _exp_parts(x)
    return power + power * expm1_r


def _expm1_64(x: np.ndarray) -> np.ndarray:
    power, expm1_r = _exp_parts(x)
    return power * expm1_r + (power - 1.0)


def _erf_table(step: float, last: float, degree: int) -> np.ndarray:
    """Taylor coefficients of erf around each centre ``k * step`` in the scaled variable ``t = (z - c) / step``.

    Built by stepping erf and g = erf' = 2/sqrt(pi) exp(-z^2) along the grid with their Taylor series
    (g' = -2 z g gives the recurrence), so only IEEE + - * / are used: the same table on every machine.
    """
    terms = 40
    erf_c, g_c = 0.0, 1.1283791670955126  # erf(0), 2/sqrt(pi)
    rows = []
    for k in range(int(round(last / step)) + 1):
        c = k * step
        g = [g_c, -2.0 * c * g_c]  # Taylor coefficients of g around c
        for n in range(1, terms):
            g.append((-2.0 * c * g[n] - 2.0 * g[n - 1]) / (n + 1))
        f = [erf_c] + [g[n] / (n + 1) for n in range(terms)]
        rows.append([f[n] * step**n for n in range(degree + 1)])
        erf_c = sum(f[n] * step**n for n in range(terms, -1, -1))
        g_c = sum(g[n] * step**n for n in range(terms - 1, -1, -1))
    return np.array(rows).T.copy()  # [degree + 1, centres]


_ERF_STEP_INV = 16.0
_ERF_LAST = 6.0  # erf(z) rounds to 1 in float64 from here on
_ERF_COEFFS = _erf_table(1.0 / _ERF_STEP_INV, _ERF_LAST, degree=6)


def _erf_eval(z: np.ndarray, dtype) -> np.ndarray:
    """erf by table lookup and a Horner polynomial, computed in ``dtype``."""
    coeffs = _ERF_COEFFS.astype(dtype)
    u = np.minimum(np.abs(z), _ERF_LAST) * dtype(_ERF_STEP_INV)
    u64 = u.astype(np.float64)
    centre, index = _round_to_int(u64)
    t = (u64 - centre).astype(dtype)
    index = index.astype(np.intp)
    result = np.take(coeffs[-1], index, mode="clip")
    for row in coeffs[-2::-1]:
        result *= t
        result += np.take(row, index, mode="clip")
    return np.copysign(result, z)


def _as64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


_CHUNK = 65536  # elements per slice: temporaries stay in cache and out of fresh pages


def _map_chunks(function, x, dtype) -> np.ndarray:
    """``function`` applied to flat slices of ``x`` converted to ``dtype``, results stored as float32."""
    x = np.asarray(x)
    flat = x.reshape(-1)
    out = np.empty(flat.shape, dtype=np.float32)
    for start in range(0, flat.size, _CHUNK):
        out[start:start + _CHUNK] = function(flat[start:start + _CHUNK].astype(dtype))
    return out.reshape(x.shape)


def _exact_or_fast(exact64, fast32):
    """An elementwise function: float64 ``exact64`` rounded once in exact mode, float32 ``fast32`` in fast mode."""
    def apply(x, mode: str | None = None) -> np.ndarray:
        if resolve_mode(mode) == "fast":
            return _map_chunks(fast32, x, np.float32)
        return _map_chunks(exact64, x, np.float64)
    return apply


def _tanh64(x: np.ndarray) -> np.ndarray:
    e = _expm1_64(-2.0 * np.abs(x))  # in (-1, 0]: no cancellation near 0
    return np.copysign(-e / (e + 2.0), x)


_SQRT_HALF = 0.7071067811865476
_SQRT_2_OVER_PI = 0.7978845608028654


def _gelu_any(x: np.ndarray) -> np.ndarray:
    y = _erf_eval(x * x.dtype.type(_SQRT_HALF), x.dtype.type)
    y += 1.0
    y *= x
    y *= 0.5
    return y


def _gelu_tanh_any(x: np.ndarray, tanh_fn) -> np.ndarray:
    inner = x * x
    inner *= 0.044715
    inner += 1.0
    inner *= x
    inner *= _SQRT_2_OVER_PI
    y = tanh_fn(inner)
    y += 1.0
    y *= x
    y *= 0.5
    return y


exp = _exact_or_fast(_exp64, np.exp)
exp.__doc__ = "e**x."
erf = _exact_or_fast(lambda x: _erf_eval(x, np.float64), lambda x: _erf_eval(x, np.float32))
erf.__doc__ = "The error function."
tanh = _exact_or_fast(_tanh64, np.tanh)
tanh.__doc__ = "Hyperbolic tangent."
gelu = _exact_or_fast(_gelu_any, _gelu_any)
gelu.__doc__ = "0.5 x (1 + erf(x / sqrt 2)), the exact GELU."
gelu_tanh = _exact_or_fast(lambda x: _gelu_tanh_any(x, _tanh64), lambda x: _gelu_tanh_any(x, np.tanh))
gelu_tanh.__doc__ = "0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (``gelu_new`` / ``gelu_pytorch_tanh``)."


def relu(x, mode: str | None = None) -> np.ndarray:
    return np.maximum(x, np.float32(0.0))


ACTIVATIONS = {"gelu": gelu, "gelu_new": gelu_tanh, "gelu_pytorch_tanh": gelu_tanh, "relu": relu}


# ---------------------------------------------------------------------------------------------------------
# Normalisations and pooling

def softmax(x: np.ndarray, axis: int = -1, where: np.ndarray | None = None, mode: str | None = None) -> np.ndarray:
    """Softmax along ``axis``; entries where ``where`` is False get probability exactly 0."""
    if resolve_mode(mode) == "fast":
        x = np.asarray(x, dtype=np.float32)
        if where is not None:
            x = np.where(where, x, np.float32(-np.inf))
        e = np.exp(x - np.max(x, axis=axis, keepdims=True))
        return e / np.sum(e, axis=axis, keepdims=True)
    x64 = _as64(x)
    if where is not None:
        x64 = np.where(where, x64, -np.inf)
    peak = np.max(x64, axis=axis, keepdims=True)
    peak[~np.isfinite(peak)] = 0.0  # a fully masked row stays finite (all zeros)
    e = _exp64(x64 - peak)
    if where is not None:
        e = np.where(where, e, 0.0)
    total = tree_sum(e, axis=axis, keepdims=True)
    return (e / total).astype(np.float32)


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float, mode: str | None = None) -> np.ndarray:
    """LayerNorm over the last axis (biased variance, as torch)."""
    if resolve_mode(mode) == "fast":
        mean = x.mean(axis=-1, keepdims=True)
        centred = x - mean
        var = np.mean(centred * centred, axis=-1, keepdims=True)
        return centred / np.sqrt(var + np.float32(eps)) * weight + bias
    x64 = _as64(x)
    n = x.shape[-1]
    centred = x64 - tree_sum(x64, keepdims=True) / n
    var = tree_sum(centred * centred, keepdims=True) / n
    centred /= np.sqrt(var + eps)
    centred *= weight
    centred += bias
    return centred.astype(np.float32)


def mean_pool(hidden: np.ndarray, mask: np.ndarray, mode: str | None = None) -> np.ndarray:
    """Mean of ``hidden`` [B, T, H] over tokens where ``mask`` [B, T] is set -> [B, H]."""
    keep = (np.asarray(mask) != 0)[..., None]  # [B, T, 1]
    count = np.maximum(keep.sum(axis=1), 1)  # [B, 1], an exact integer count
    if resolve_mode(mode) == "fast":
        return (np.where(keep, hidden, np.float32(0.0)).sum(axis=1) / count.astype(np.float32)).astype(np.float32)
    total = tree_sum(np.where(keep, _as64(hidden), 0.0), axis=1)  # [B, H]
    return (total / count).astype(np.float32)


def max_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Max over tokens where ``mask`` is set (sentence-transformers sets the rest to -1e9) -> [B, H]."""
    keep = (np.asarray(mask) != 0)[..., None]
    return np.max(np.where(keep, hidden, np.float32(-1e9)), axis=1)


def l2_normalize(x: np.ndarray, eps: float = 1e-12, mode: str | None = None) -> np.ndarray:
    """``x / max(||x||, eps)`` along the last axis (torch's F.normalize)."""
    if resolve_mode(mode) == "fast":
        norm = np.sqrt(np.sum(x * x, axis=-1, keepdims=True))
        return (x / np.maximum(norm, np.float32(eps))).astype(np.float32)
    x64 = _as64(x)
    norm = np.sqrt(tree_sum(x64 * x64, keepdims=True))
    return (x64 / np.maximum(norm, eps)).astype(np.float32)
