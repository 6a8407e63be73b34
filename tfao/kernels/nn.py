"""Network layers on the primitives: activations, softmax, normalisations and pooling, in both math modes."""

from __future__ import annotations

import numpy as np

from .modes import resolve_mode
from .reductions import tree_sum
from .transcendentals import as64, elementwise, erf_eval, exp64, tanh64

_SQRT_HALF = 0.7071067811865476
_SQRT_2_OVER_PI = 0.7978845608028654


def _gelu_any(x: np.ndarray) -> np.ndarray:
    y = erf_eval(x * x.dtype.type(_SQRT_HALF), x.dtype.type)
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


gelu = elementwise(_gelu_any, _gelu_any)
gelu.__doc__ = "0.5 x (1 + erf(x / sqrt 2)), the exact GELU."
gelu_tanh = elementwise(lambda x: _gelu_tanh_any(x, tanh64), lambda x: _gelu_tanh_any(x, np.tanh))
gelu_tanh.__doc__ = "0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (``gelu_new`` / ``gelu_pytorch_tanh``)."


def relu(x, mode: str | None = None) -> np.ndarray:
    return np.maximum(x, np.float32(0.0))


ACTIVATIONS = {"gelu": gelu, "gelu_new": gelu_tanh, "gelu_pytorch_tanh": gelu_tanh, "relu": relu}


def softmax(x: np.ndarray, axis: int = -1, where: np.ndarray | None = None, mode: str | None = None) -> np.ndarray:
    """Softmax along ``axis``; entries where ``where`` is False get probability exactly 0."""
    if resolve_mode(mode) == "fast":
        x = np.asarray(x, dtype=np.float32)
        if where is not None:
            x = np.where(where, x, np.float32(-np.inf))
        e = np.exp(x - np.max(x, axis=axis, keepdims=True))
        return e / np.sum(e, axis=axis, keepdims=True)
    x64 = as64(x)
    if where is not None:
        x64 = np.where(where, x64, -np.inf)
    peak = np.max(x64, axis=axis, keepdims=True)
    peak[~np.isfinite(peak)] = 0.0  # a fully masked row stays finite (all zeros)
    e = exp64(x64 - peak)
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
    x64 = as64(x)
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
