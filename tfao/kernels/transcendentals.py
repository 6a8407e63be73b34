"""Exact transcendentals: built from ``+ - * /`` and exact power-of-two scaling in float64 (range reduction
plus fixed polynomials whose coefficients come from IEEE arithmetic alone), rounded once to float32.
Fast mode uses numpy's float32 functions, whose last bits vary with the SIMD level."""

from __future__ import annotations

import math

import numpy as np

from .modes import resolve_mode

_ROUND_MAGIC = 6755399441055744.0  # 1.5 * 2**52: adding it rounds a float64 below 2**51 to an integer
_ROUND_MAGIC_BITS = np.array(_ROUND_MAGIC).view(np.int64)
LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # ln 2 split so that n * _LN2_HI is exact for |n| < 2**20
_LN2_LO = 1.90821492927058770002e-10
_EXPM1_COEFFS = [1.0 / math.factorial(k) for k in range(13, 1, -1)]  # r**k / k!, k = 13 .. 2


def round_to_int(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``rint(x)`` as float64 and as int64, for |x| < 2**51."""
    shifted = x + _ROUND_MAGIC
    as_int = shifted.view(np.int64) - _ROUND_MAGIC_BITS
    return shifted - _ROUND_MAGIC, as_int


def _exp_parts(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(2**n, expm1(r))`` with ``exp(x) = 2**n * (1 + expm1(r))``, |r| <= ln2/2, for float64 ``x``."""
    x = np.clip(x, -1000.0, 1000.0)  # beyond, float32 results are 0 or inf anyway; keeps 2**n normal
    n_float, n_int = round_to_int(x * LOG2E)
    n_int = np.clip(n_int, -1022, 1023)
    r = (x - n_float * _LN2_HI) - n_float * _LN2_LO
    poly = np.full_like(r, _EXPM1_COEFFS[0])
    for coeff in _EXPM1_COEFFS[1:]:
        poly *= r
        poly += coeff
    expm1_r = (poly * r + 1.0) * r
    power = ((n_int + 1023) << 52).view(np.float64)
    return power, expm1_r


def exp64(x: np.ndarray) -> np.ndarray:
    power, expm1_r = _exp_parts(x)
    return power + power * expm1_r


def expm1_64(x: np.ndarray) -> np.ndarray:
    power, expm1_r = _exp_parts(x)
    return power * expm1_r + (power - 1.0)


_EXP32_LOG2E = np.float32(LOG2E)
_EXP32_LN2_HI = np.float32(45426 / 65536)  # ln 2 to 16 bits: n * hi is exact in float32 for |n| < 2**8
_EXP32_LN2_LO = np.float32(math.log(2) - 45426 / 65536)
_EXP32_MAGIC = np.float32(1.5 * 2**23)  # adding it rounds a float32 below 2**22 to an integer
_EXP32_COEFFS = [np.float32(1.0 / math.factorial(k)) for k in range(7, -1, -1)]  # r**k / k!, k = 7 .. 0
_EXP32_BIASED_MAGIC_BITS = _EXP32_MAGIC.view(np.int32) - np.int32(127)
_EXP32_FLOOR = np.float32(-86.0)  # exp(-86) is still a normal float32: no subnormal step (FTZ-proof)


def exp_nonpositive32(x: np.ndarray) -> np.ndarray:
    """e**x for float32 ``x`` <= 0 (softmax's shifted scores) in float32 ``+ - *`` alone, so the same bits
    on every machine: ``x = n ln2 + r`` (Cody-Waite), a degree-7 polynomial in r, times ``2**n``. Below
    -86 the result is exp(-86) (4e-38) rather than smaller; NaN stays NaN. About 2 ulp."""
    r = np.maximum(x, _EXP32_FLOOR)  # NaN propagates; becomes r in place (fewer fresh pages)
    shifted = r * _EXP32_LOG2E
    shifted += _EXP32_MAGIC
    n_int = shifted.view(np.int32) - _EXP32_BIASED_MAGIC_BITS  # n + 127, float32's exponent bias
    shifted -= _EXP32_MAGIC  # n as a float32
    poly = shifted * _EXP32_LN2_HI
    r -= poly
    r -= np.multiply(shifted, _EXP32_LN2_LO, out=poly)
    poly = np.multiply(r, _EXP32_COEFFS[0], out=poly)
    poly += _EXP32_COEFFS[1]
    for coeff in _EXP32_COEFFS[2:]:
        poly *= r
        poly += coeff
    n_int <<= 23
    poly *= n_int.view(np.float32)  # 2**n, exact scaling
    return poly


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
_ERF_ROUNDING = {np.float64: (np.float64(_ROUND_MAGIC), np.int64), np.float32: (np.float32(1.5 * 2**23), np.int32)}
# One contiguous table per coefficient, highest degree first: each gather and each Horner step reads
# and writes contiguous memory.
_ERF_TABLES = {dtype: [np.ascontiguousarray(row.astype(dtype)) for row in _ERF_COEFFS[::-1]] for dtype in (np.float64, np.float32)}


def erf_eval(z: np.ndarray, dtype, scale: float = 1.0) -> np.ndarray:
    """erf(scale * z) by table lookup and a Horner polynomial, computed in ``dtype``.

    ``scale`` (> 0) multiplies in with the table step, a power of two: the same numbers as scaling ``z`` first,
    in one pass fewer.
    """
    u = np.abs(z)
    u *= dtype(scale * _ERF_STEP_INV)
    np.minimum(u, dtype(_ERF_LAST * _ERF_STEP_INV), out=u)
    magic, int_type = _ERF_ROUNDING[dtype]  # u <= 96: adding the magic number rounds it in either type
    shifted = u + magic
    index = shifted.view(int_type) - magic.view(int_type)
    shifted -= magic
    u -= shifted  # exact: the offset from the centre
    highest, *tables = _ERF_TABLES[dtype]
    result = highest.take(index, mode="clip")
    result *= u
    coeff = shifted  # reused: its values are no longer needed
    for k, table in enumerate(tables):
        if k:
            result *= u
        result += table.take(index, out=coeff, mode="clip")
    return np.copysign(result, z, out=result)


_PHI_STEP_INV = 256
_PHI_LOW = -8  # below, x Phi(x) is under 1e-14 in magnitude: Phi counts as 0
_PHI_HIGH = 6  # from here on Phi(x) rounds to 1 in float32
_PHI_FIRST = _PHI_LOW * _PHI_STEP_INV - 1  # the centre index of the zero row that takes everything below


def _normal_cdf_tables() -> list[np.ndarray]:
    """Degree-2 Taylor coefficients of Phi around each centre ``c = k / 256``, in ``t = 256 x - k`` (|t| <= 1/2,
    so the next term is below 2e-10 of Phi's scale), highest degree first, as float32. Phi(c) comes from the
    float64 erf above and phi(c) from exp64: the same table on every machine."""
    centres = np.arange(_PHI_FIRST + 1, _PHI_HIGH * _PHI_STEP_INV + 1) / _PHI_STEP_INV  # exact: k / 2**8
    density = exp64(-0.5 * centres * centres) * (1.0 / math.sqrt(2.0 * math.pi))  # phi(c)
    rows = [0.5 + 0.5 * erf_eval(centres, np.float64, scale=math.sqrt(0.5)),  # Phi(c)
            density / _PHI_STEP_INV,  # Phi'(c) dx/dt
            -centres * density / (2 * _PHI_STEP_INV**2)]  # Phi''(c) / 2 (dx/dt)**2, Phi'' = -x phi
    return [np.concatenate([[0.0], row]).astype(np.float32) for row in rows[::-1]]


_PHI_TABLES = _normal_cdf_tables()
_PHI_MAGIC = np.float32(1.5 * 2**23)  # adding it rounds a float32 below 2**22 to an integer
_PHI_INDEX_BIAS = _PHI_MAGIC.view(np.int32) + np.int32(_PHI_FIRST)


def normal_cdf32(x: np.ndarray) -> np.ndarray:
    """Phi(x), the standard normal CDF, for float32 ``x`` in float32 ``+ - *`` alone (a table lookup and a
    quadratic), so the same bits on every machine; three gathers, no float64 pass. As GELU's x Phi(x): within
    2.5 ulp for x > -3, 5e-7 relative down to -6, and 2e-15 absolute below."""
    u = x * np.float32(_PHI_STEP_INV)
    np.clip(u, np.float32(_PHI_FIRST), np.float32(_PHI_HIGH * _PHI_STEP_INV), out=u)  # NaN stays NaN
    shifted = u + _PHI_MAGIC
    index = shifted.view(np.int32) - _PHI_INDEX_BIAS
    shifted -= _PHI_MAGIC
    u -= shifted  # exact: the offset from the centre, in [-1/2, 1/2]
    quadratic, linear, constant = _PHI_TABLES
    result = quadratic.take(index, mode="clip")
    result *= u
    result += linear.take(index, out=shifted, mode="clip")  # shifted reused: its values are no longer needed
    result *= u
    result += constant.take(index, out=shifted, mode="clip")
    return result


def as64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


_CHUNK = 65536  # elements per slice: temporaries stay in cache and out of fresh pages


def _map_chunks(function, x, dtype, out=None) -> np.ndarray:
    """``function`` applied to flat slices of ``x`` converted to ``dtype``, results stored as float32 in ``out``
    (new, or a C-contiguous float32 array of x's shape: x itself works, each slice is read before written)."""
    x = np.asarray(x)
    flat = x.reshape(-1)
    if out is None:
        if 0 < flat.size <= _CHUNK:  # one slice: no float32 buffer to copy through
            return function(flat.astype(dtype, copy=False)).astype(np.float32, copy=False).reshape(x.shape)
        out = np.empty(x.shape, dtype=np.float32)
    elif out.shape != x.shape or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError("out must be a C-contiguous float32 array of the input's shape")
    flat_out = out.reshape(-1)  # a view
    for start in range(0, flat.size, _CHUNK):
        flat_out[start:start + _CHUNK] = function(flat[start:start + _CHUNK].astype(dtype, copy=False))
    return out


def elementwise(exact, fast32, exact_dtype=np.float64):
    """An elementwise function: ``exact`` in exact mode (on float64, rounded once, unless ``exact_dtype`` says
    it works in fixed float32 steps), float32 ``fast32`` in fast mode. ``out=x`` overwrites a temporary
    instead of filling fresh pages, which costs more than the function itself on large activations."""
    def apply(x, mode: str | None = None, out: np.ndarray | None = None) -> np.ndarray:
        if resolve_mode(mode) == "fast":
            return _map_chunks(fast32, x, np.float32, out)
        return _map_chunks(exact, x, exact_dtype, out)
    return apply


def tanh64(x: np.ndarray) -> np.ndarray:
    e = expm1_64(-2.0 * np.abs(x))  # in (-1, 0]: no cancellation near 0
    return np.copysign(-e / (e + 2.0), x)


_ONE_BITS = int(np.array(1.0).view(np.int64))
_SQRT_HALF_BITS = int(np.array(math.sqrt(0.5)).view(np.int64))
_FRACTION_MASK = (1 << 52) - 1
_ATANH_COEFFS = [1.0 / (2 * k + 1) for k in range(13, -1, -1)]  # s**(2k+1) / (2k+1), k = 13 .. 0
_SMALLEST_NORMAL = 2.0**-1022


def log64(x: np.ndarray) -> np.ndarray:
    """Natural logarithm: ``x = 2**e * m`` with m in [sqrt(1/2), sqrt(2)), ``log m = 2 atanh((m-1)/(m+1))``."""
    x = as64(x)
    subnormal = (x > 0) & (x < _SMALLEST_NORMAL)
    bits = (x * np.where(subnormal, 2.0**54, 1.0)).view(np.int64)  # exact scaling into the normal range
    # shifting by (1 - sqrt(1/2)) in the bit pattern carries into the exponent exactly when m >= sqrt(2)
    shifted = bits + (_ONE_BITS - _SQRT_HALF_BITS)
    e = ((shifted >> 52) - 1023 - np.where(subnormal, 54, 0)).astype(np.float64)
    m = ((shifted & _FRACTION_MASK) + _SQRT_HALF_BITS).view(np.float64)
    s = (m - 1.0) / (m + 1.0)  # |s| <= 0.1716
    s2 = s * s
    poly = np.full_like(s, _ATANH_COEFFS[0])
    for coeff in _ATANH_COEFFS[1:]:
        poly *= s2
        poly += coeff
    result = e * _LN2_HI + (e * _LN2_LO + 2.0 * s * poly)
    result = np.where(x == np.inf, np.inf, result)
    result = np.where(x == 0.0, -np.inf, result)
    return np.where((x < 0) | np.isnan(x), np.nan, result)


# pi/2 in three 33-bit parts: n * part is exact for |n| < 2**20, so the reduction loses nothing there
_PIO2_1 = 1.57079632673412561417e+00
_PIO2_2 = 6.07710050630396597660e-11
_PIO2_3 = 2.02226624871116645580e-21
_TWO_OVER_PI = 0.63661977236758134308
_SIN_COEFFS = [(-1.0) ** k / math.factorial(2 * k + 1) for k in range(9, 0, -1)]  # r**(2k+1), k = 9 .. 1
_COS_COEFFS = [(-1.0) ** k / math.factorial(2 * k) for k in range(9, 0, -1)]  # r**2k, k = 9 .. 1


def _quadrant_and_remainder(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``x = n * pi/2 + r`` with |r| <= pi/4 (Cody-Waite), and n mod 4."""
    bounded = np.clip(x, -2.0**50, 2.0**50)  # keeps rint exact; inaccurate, but deterministic, that far out
    n_float, n_int = round_to_int(bounded * _TWO_OVER_PI)
    r = ((bounded - n_float * _PIO2_1) - n_float * _PIO2_2) - n_float * _PIO2_3
    return n_int & 3, r


def _sin_cos_poly(r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r2 = r * r
    sin_poly = np.full_like(r, _SIN_COEFFS[0])
    cos_poly = np.full_like(r, _COS_COEFFS[0])
    for sin_coeff, cos_coeff in zip(_SIN_COEFFS[1:], _COS_COEFFS[1:]):
        sin_poly *= r2
        sin_poly += sin_coeff
        cos_poly *= r2
        cos_poly += cos_coeff
    return r + r * (r2 * sin_poly), 1.0 + r2 * cos_poly


def _sin_or_cos(x, phase: int) -> np.ndarray:
    """sin(x + phase * pi/2): the quadrant picks the polynomial and the sign."""
    x = as64(x)
    quadrant, r = _quadrant_and_remainder(x)
    quadrant = (quadrant + phase) & 3
    sin_r, cos_r = _sin_cos_poly(r)
    result = np.where(quadrant & 1, cos_r, sin_r)
    result = np.where(quadrant & 2, -result, result)
    return np.where(np.isfinite(x), result, np.nan)


def sin64(x: np.ndarray) -> np.ndarray:
    return _sin_or_cos(x, 0)


def cos64(x: np.ndarray) -> np.ndarray:
    return _sin_or_cos(x, 1)


def _has_simd_exp2_32() -> bool:
    """Whether numpy runs float32 ``exp2`` in a SIMD loop on this CPU: numpy 2 has one for AVX-512 only,
    and its scalar loop takes about twice as long as the SIMD ``exp`` that AVX2 gets."""
    try:
        from numpy.lib.introspect import opt_func_info
        return not opt_func_info("^exp2$", "float32")["exp2"]["ff"]["current"].startswith("baseline")
    except (ImportError, KeyError):
        return False


_SIMD_EXP2_32 = _has_simd_exp2_32()


def fast_exp_is_base2() -> bool:
    """Whether fast mode's exponentials go through numpy's float32 exp2 (vectorised here) rather than its exp."""
    return _SIMD_EXP2_32


def exp_fast32(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Fast mode's e**x: as 2**(x log2 e) where numpy's float32 exp2 is vectorised (it takes half the time of
    its exp there, even with the multiply; relative error up to about |x| 7e-8 more, from rounding the
    product), else numpy's exp. ``out=x`` works."""
    if not fast_exp_is_base2():
        return np.exp(x, out=out)
    scaled = np.multiply(x, _EXP32_LOG2E, out=out)
    return np.exp2(scaled, out=scaled)


exp = elementwise(exp64, exp_fast32)
exp.__doc__ = "e**x."
erf = elementwise(lambda x: erf_eval(x, np.float64), lambda x: erf_eval(x, np.float32))
erf.__doc__ = "The error function."
tanh = elementwise(tanh64, np.tanh)
tanh.__doc__ = "Hyperbolic tangent."
log = elementwise(log64, np.log)
log.__doc__ = "Natural logarithm (-inf at 0, nan below)."
sin = elementwise(sin64, np.sin)
sin.__doc__ = "Sine of radians; accurate to float32 for |x| < 1.6e6, deterministic everywhere."
cos = elementwise(cos64, np.cos)
cos.__doc__ = "Cosine of radians; accurate to float32 for |x| < 1.6e6, deterministic everywhere."
