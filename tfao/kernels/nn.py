"""Network layers on the primitives: activations, softmax, normalisations and pooling, in both math modes."""

from __future__ import annotations

import numpy as np

from .gemm import gemm_bits, quantize
from .modes import resolve_mode
from .reductions import fast_sum, max_reduce, tree_sum
from .transcendentals import LOG2E, as64, elementwise, exp64, exp_fast32, fast_exp_is_base2, exp_nonpositive32, log64, normal_cdf32, tanh64

_SQRT_2_OVER_PI = 0.7978845608028654


def _gelu_exact32(x: np.ndarray) -> np.ndarray:
    """x Phi(x) with Phi from its table in fixed float32 steps: no 1 + erf cancellation, and no float64 pass."""
    y = normal_cdf32(x)
    y *= x
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


# Fast mode's GELU as x sigmoid(y) with y = logit(Phi(x)), an odd function: y = x Q(x^2), Q of degree 6 fitted
# by least squares iterated towards minimax on |x| <= 6, weighted by how much an error in y moves x Phi(x)
# (evaluated in float32, GELU's error stays below 0.41 of 1e-6 |GELU| + 2e-7). Beyond |x| = 6 the argument of Q
# is held at 36, so y keeps growing linearly: x Phi(x) goes to x above and to 0 below, never to x * 0.
# Stored times -log2(e) for exp2, or times -1 for exp, whichever fast mode's exponential is here (see
# ``exp_fast32``), so the polynomial gives its argument directly. 18 passes, no gathers, no cancellation.
_LOGIT_PHI_COEFFS = (1.5957667675482194, 0.07267180915081971, -6.816137443527566e-05, -0.00011000880286896533,
                     7.88339534218061e-06, -2.639685210933004e-07, 3.55410924365779e-09)
_LOGIT_PHI_NEG_COEFFS = {base2: [np.float32(-c * (LOG2E if base2 else 1.0)) for c in _LOGIT_PHI_COEFFS]
                         for base2 in (True, False)}


def _gelu_fast32(x: np.ndarray) -> np.ndarray:
    base2 = fast_exp_is_base2()
    coeffs = _LOGIT_PHI_NEG_COEFFS[base2]
    with np.errstate(over="ignore"):  # a huge |x| squares to inf (held at 36) and exp(-y) to inf (x / inf = 0)
        square = x * x
        np.minimum(square, np.float32(36.0), out=square)
        neg_logit = square * coeffs[-1]
        for coeff in coeffs[-2:0:-1]:
            neg_logit += coeff
            neg_logit *= square
        neg_logit += coeffs[0]
        neg_logit *= x  # -y, times log2(e) for exp2
        (np.exp2 if base2 else np.exp)(neg_logit, out=neg_logit)
    neg_logit += np.float32(1.0)
    return np.divide(x, neg_logit, out=neg_logit)  # x / (1 + exp(-y)) = x Phi(x)


gelu = elementwise(_gelu_exact32, _gelu_fast32, exact_dtype=np.float32)
gelu.__doc__ = "0.5 x (1 + erf(x / sqrt 2)), the exact GELU."
gelu_tanh = elementwise(lambda x: _gelu_tanh_any(x, tanh64), lambda x: _gelu_tanh_any(x, np.tanh))
gelu_tanh.__doc__ = "0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (``gelu_new`` / ``gelu_pytorch_tanh``)."


def relu(x, mode: str | None = None, out: np.ndarray | None = None) -> np.ndarray:
    return np.maximum(x, np.float32(0.0), out=out)


def _silu_exact32(x: np.ndarray) -> np.ndarray:
    """x sigmoid(x) in float32 steps of fixed bits: sigmoid from e = exp(-|x|) <= 1, 1 / (1 + e) or e / (1 + e)."""
    e = exp_nonpositive32(-np.abs(x))
    # 1 where x >= 0 (e <= 1 there), else e (> 0, or NaN): np.where's loop branches on each sign, 4x the time
    sigmoid = np.maximum(e, (x >= 0).astype(np.float32))
    sigmoid /= np.float32(1.0) + e
    sigmoid *= x
    return sigmoid


def _silu32(x: np.ndarray) -> np.ndarray:
    return x / (np.float32(1.0) + exp_fast32(-x))


silu = elementwise(_silu_exact32, _silu32, exact_dtype=np.float32)
silu.__doc__ = "x * sigmoid(x) (SiLU / swish)."
quick_gelu = elementwise(lambda x: x / (1.0 + exp64(-1.702 * x)), lambda x: x / (np.float32(1.0) + exp_fast32(np.float32(-1.702) * x)))
quick_gelu.__doc__ = "x * sigmoid(1.702 x), CLIP's GELU approximation."

ACTIVATIONS = {"gelu": gelu, "gelu_new": gelu_tanh, "gelu_pytorch_tanh": gelu_tanh, "relu": relu, "silu": silu,
               "swish": silu, "quick_gelu": quick_gelu}


_SOFTMAX_BLOCK_ELEMENTS = 1 << 14  # exact softmax works on blocks of rows whose temporaries stay in cache


def _softmax_rows_exact(rows: np.ndarray, keep: np.ndarray | None) -> np.ndarray:
    """Exact softmax of float32 ``rows`` [R, n] along the last axis: float32 steps with a fixed-bits ``exp``,
    a float64 sum in a fixed order, one rounding of each quotient."""
    x = rows if keep is None else np.where(keep, rows, np.float32(-np.inf))
    peak = max_reduce(x, axis=-1, keepdims=True)
    peak[~np.isfinite(peak)] = 0.0  # a fully masked row stays finite
    e = exp_nonpositive32(x - peak)
    if keep is not None:
        e = np.where(keep, e, np.float32(0.0))
    total = tree_sum(e, axis=-1, keepdims=True)  # float64
    return np.divide(e, total, out=np.empty(e.shape, dtype=np.float32), casting="same_kind")


def softmax(x: np.ndarray, axis: int = -1, where: np.ndarray | None = None, mode: str | None = None) -> np.ndarray:
    """Softmax along ``axis``; entries where ``where`` is False get probability exactly 0."""
    if resolve_mode(mode) == "fast":
        x = np.asarray(x, dtype=np.float32)
        if where is not None:
            x = np.where(where, x, np.float32(-np.inf))
        e = x - max_reduce(x, axis=axis, keepdims=True)
        exp_fast32(e, out=e)
        e /= fast_sum(e, axis=axis, keepdims=True)
        return e
    x = np.asarray(x, dtype=np.float32)
    keep = None if where is None else np.moveaxis(np.broadcast_to(where, x.shape), axis, -1)
    x = np.moveaxis(x, axis, -1)
    length = x.shape[-1]
    rows = x.reshape(-1, length)  # [R, n]
    if keep is not None:
        keep = keep.reshape(-1, length)
    out = np.empty(rows.shape, dtype=np.float32)
    block = max(1, _SOFTMAX_BLOCK_ELEMENTS // max(length, 1))
    for start in range(0, rows.shape[0], block):  # each row on its own: blocks never change the bits
        out[start:start + block] = _softmax_rows_exact(rows[start:start + block], None if keep is None else keep[start:start + block])
    return np.moveaxis(out.reshape(x.shape), -1, axis)


_WEIGHT_BITS = 22  # the most bits whose rounding (and the sum of a weight and its rounding) float32 does exactly


class SoftmaxProduct:
    """``softmax(scores) @ values`` along the last axis of ``scores`` [M, K], for ``values`` [K, N] prepared
    once and met by one block of score rows after another (attention over many queries).

    Both modes normalise after the product, by totals that a column of ones beside the values gives in the
    same product (fast mode then needs no pass for the sums). Exact mode takes ``w = exp(scores - max)`` by the
    fixed-bits ``exp`` (each row's largest weight is exactly 1) and splits it exactly into ``high``, rounded
    to multiples of 2**-bits, and the remainder ``low``. ``high`` times the quantized values and the ones
    gives every numerator and high's total exactly in one dgemm, in any summation order: the weights lie in
    [0, 1], so their integers sum below K * 2**bits. ``low``, rounded to multiples of 2**-(bits + 23), adds
    to the total exactly in any order too, so the total is the weights' sum to about 1e-10 and dropping the
    small weights does not bias the quotient (as normalising by high's total would).
    Each float64 quotient is rounded to float32. A result row depends on its score row alone.
    """

    def __init__(self, values: np.ndarray, mode: str | None = None):
        self.mode, keys = resolve_mode(mode), values.shape[0]
        bits = gemm_bits(keys)
        weight_bits = min(bits, _WEIGHT_BITS)
        self.weight_step = np.float32(1.5 * 2.0 ** (23 - weight_bits))  # adding it rounds [0, 1] to the grid
        self.low_step = np.float32(1.5 * 2.0 ** -weight_bits)  # and this |low| <= 2**-(weight_bits + 1) to its own
        if self.mode == "fast":  # a column of ones: the weights' totals come out of the product too
            self.values = np.concatenate([values, np.ones((keys, 1), np.float32)], axis=1)  # [K, N + 1]
        else:
            self.values = np.concatenate([quantize(values, -2, bits), np.ones((keys, 1))], axis=1)  # [K, N + 1]

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        """float32 [M, K] -> [M, N]; ``scores`` is overwritten."""
        scores -= max_reduce(scores, axis=-1, keepdims=True)
        if self.mode == "fast":
            exp_fast32(scores, out=scores)
            mixed = scores @ self.values  # [M, N + 1]: numerators, then the total
            return np.divide(mixed[:, :-1], mixed[:, -1:])
        low = exp_nonpositive32(scores)  # [M, K], the weights, in (0, 1]
        high = low + self.weight_step
        high -= self.weight_step  # [M, K]: the weights on the grid
        low -= high  # exact
        low += self.low_step
        low -= self.low_step
        sums = high.astype(np.float64) @ self.values  # [M, N + 1]: numerators, then high's total
        total = sums[:, -1:] + low.sum(axis=-1, keepdims=True, dtype=np.float64)  # [M, 1]
        return np.divide(sums[:, :-1], total, out=np.empty((len(scores), sums.shape[1] - 1), np.float32),
                         casting="same_kind")


def log_softmax(x: np.ndarray, mode: str | None = None) -> np.ndarray:
    """``x - max - log(sum(exp(x - max)))`` along the last axis (torch's log_softmax); -inf stays -inf."""
    if resolve_mode(mode) == "fast":
        x = np.asarray(x, dtype=np.float32)
        shifted = x - np.max(x, axis=-1, keepdims=True)
        return shifted - np.log(np.sum(exp_fast32(shifted), axis=-1, keepdims=True))
    shifted = as64(x) - np.max(x, axis=-1, keepdims=True)
    return (shifted - log64(tree_sum(exp64(shifted), keepdims=True))).astype(np.float32)


def _row_dots(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Fast mode's sum of a * b over the last axis, kept: einsum needs no temporary for the product, and made
    a fast layer norm at [512, 384] 3.7x faster than reducing the product did."""
    return np.einsum("...i,...i->...", a, b)[..., None]


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float, mode: str | None = None) -> np.ndarray:
    """LayerNorm over the last axis (biased variance, as torch)."""
    if resolve_mode(mode) == "fast":
        n = np.float32(x.shape[-1])
        centred = x - np.add.reduce(x, axis=-1, keepdims=True) / n
        scale = _row_dots(centred, centred)  # n * variance
        scale /= n
        scale += np.float32(eps)
        np.sqrt(scale, out=scale)
        centred /= scale
        centred *= weight
        centred += bias
        return centred
    n = x.shape[-1]
    centred = as64(x)  # float32 x widens exactly; the parameters too, so no step casts on the fly
    centred -= tree_sum(centred, keepdims=True) / n
    var = tree_sum(np.square(centred), keepdims=True) / n
    centred /= np.sqrt(var + eps)
    centred *= as64(weight)
    centred += as64(bias)
    return centred.astype(np.float32)


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float, mode: str | None = None) -> np.ndarray:
    """``weight * x / sqrt(mean(x**2) + eps)`` over the last axis (T5's and LLaMA's RMSNorm, no centring)."""
    if resolve_mode(mode) == "fast":
        scale = _row_dots(x, x)  # n * mean square
        scale /= np.float32(x.shape[-1])
        scale += np.float32(eps)
        np.sqrt(scale, out=scale)
        out = np.divide(x, scale, dtype=np.float32)
        out *= weight
        return out
    x64 = as64(x)
    var = tree_sum(x64 * x64, keepdims=True) / x.shape[-1]
    x64 /= np.sqrt(var + eps)
    x64 *= weight
    return x64.astype(np.float32)


def mean_pool(hidden: np.ndarray, mask: np.ndarray, mode: str | None = None) -> np.ndarray:
    """Mean of ``hidden`` [B, T, H] over tokens where ``mask`` [B, T] is set -> [B, H]."""
    keep = (np.asarray(mask) != 0)[..., None]  # [B, T, 1]
    count = np.maximum(keep.sum(axis=1), 1)  # [B, 1], an exact integer count
    if resolve_mode(mode) == "fast":
        return (np.where(keep, hidden, np.float32(0.0)).sum(axis=1) / count.astype(np.float32)).astype(np.float32)
    total = tree_sum(np.where(keep, as64(hidden), 0.0), axis=1)  # [B, H]
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
    x64 = as64(x)
    norm = np.sqrt(tree_sum(x64 * x64, keepdims=True))
    return (x64 / np.maximum(norm, eps)).astype(np.float32)
