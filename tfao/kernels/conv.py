"""Image-network primitives on channels-last tensors [N, H, W, C], in both math modes: 2-D convolution on the
exact GEMM, group norm, nearest upsampling and multi-head attention with query chunking.

Tiles and chunks only bound memory; they never change bits. A 3x3 stride-1 convolution runs by Winograd's
F(2x2, 3x3) (``winograd``), where a pixel's result depends on its 2x2 output tile's 4x4 input window alone;
other convolutions are GEMMs whose row is one output pixel's patch, quantized on its own (``ops.Linear``).
An attention chunk is a set of whole query rows, and the keys and values are quantized per key and per
channel over all keys, so a query's result does not depend on which chunk holds it.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import ops
from .parallel import over_batch, run_pieces
from .reductions import tree_sum
from .transcendentals import as64
from .winograd import Winograd3x3

_TILE_ELEMENTS = 1 << 22  # patch-matrix entries per convolution tile (32 MiB as float64)
_WINOGRAD_ELEMENTS = 1 << 21  # transformed-input entries per Winograd block (16 MiB as float64)
_SCORE_ELEMENTS = 1 << 19  # attention scores per query chunk (2 MiB as float32)
_PARALLEL_SCORES = 1 << 16  # heads with this many scores each run on all cores, one head per core
_NORM_BLOCK_ELEMENTS = 1 << 15  # values per block of an exact group norm's elementwise steps (256 KiB as float64)
_PARALLEL_NORM_ELEMENTS = 1 << 19  # from this size an exact group norm runs its groups on all cores (below, no gain)


class Conv2d:
    """``conv2d(x, weight) + bias`` for channels-last ``x`` [N, H, W, C]; ``weight`` is [out, in, kh, kw] as
    checkpoints store it. ``padding`` is one int or (top, bottom, left, right) zero padding."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray | None = None, stride: int = 1,
                 padding: int | tuple[int, int, int, int] = 0):
        out_channels, in_channels, kh, kw = weight.shape
        self.in_channels, self.out_channels, self.kernel = in_channels, out_channels, (kh, kw)
        self.stride = stride
        self.padding = (padding,) * 4 if isinstance(padding, int) else tuple(padding)
        # GEMM columns in the checkpoint's (channel, dy, dx) order: the weight stays a view of the mapped file
        self.linear = ops.Linear(np.asarray(weight).reshape(out_channels, in_channels * kh * kw), bias)
        self.winograd = Winograd3x3(self.linear, in_channels) if (kh, kw, stride) == (3, 3, 1) else None

    def _pointwise(self) -> bool:
        return self.kernel == (1, 1) and self.stride == 1 and self.padding == (0, 0, 0, 0)

    def __call__(self, x: np.ndarray, mode: str | None = None, tile_elements: int | None = None) -> np.ndarray:
        if x.shape[-1] != self.in_channels:
            raise ValueError(f"conv2d expects {self.in_channels} input channels, got {x.shape[-1]}")
        if self._pointwise():
            return self.linear(x, mode=mode)
        top, bottom, left, right = self.padding
        (kh, kw), stride = self.kernel, self.stride
        if self.winograd is not None:
            out_h, out_w = x.shape[1] + top + bottom - 2, x.shape[2] + left + right - 2
            # zero rows and columns up to whole 4x4 tiles: [N, 2 ceil(H'/2) + 2, 2 ceil(W'/2) + 2, C]
            padded = np.pad(x, ((0, 0), (top, bottom + out_h % 2), (left, right + out_w % 2), (0, 0)))
            return self.winograd(padded, out_h, out_w, ops.resolve_mode(mode), tile_elements or _WINOGRAD_ELEMENTS)
        padded = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))  # [N, H + pads, W + pads, C]
        tile_elements = tile_elements or _TILE_ELEMENTS
        windows = sliding_window_view(padded, (kh, kw), axis=(1, 2))[:, ::stride, ::stride]  # [N, H', W', C, kh, kw], a view
        batch, out_h, out_w = windows.shape[:3]
        out = np.empty((batch, out_h, out_w, self.out_channels), dtype=np.float32)
        rows = max(1, tile_elements // (out_w * self.linear.in_features))
        for n in range(batch):
            for y0 in range(0, out_h, rows):
                patches = windows[n, y0:y0 + rows].reshape(-1, out_w, self.linear.in_features)  # [rows, W', C kh kw], a copy
                out[n, y0:y0 + rows] = self.linear(patches, mode=mode)  # [rows, W', out]
        return out


def group_norm(x: np.ndarray, groups: int, weight: np.ndarray, bias: np.ndarray, eps: float,
               mode: str | None = None, activation=None) -> np.ndarray:
    """GroupNorm of channels-last ``x`` [N, H, W, C] (biased variance over each group's pixels and channels),
    then ``activation(y, mode=mode, out=y)`` if given (an elementwise function such as ``ops.silu``)."""
    batch, height, width, channels = x.shape
    if channels % groups:
        raise ValueError(f"{channels} channels do not split into {groups} groups")
    per_group = channels // groups
    count = height * width * per_group
    if ops.resolve_mode(mode) == "fast":  # per-channel sums over the pixels (a contiguous reduction), then per group
        pixels = x.reshape(batch, height * width, channels)
        mean = pixels.mean(axis=1).reshape(batch, groups, -1).mean(axis=-1)  # [N, G]
        centred = pixels - np.repeat(mean, per_group, axis=1)[:, None, :]  # [N, HW, C]
        var = np.square(centred).mean(axis=1).reshape(batch, groups, -1).mean(axis=-1)  # [N, G]
        scale = np.repeat(1 / np.sqrt(var + np.float32(eps)), per_group, axis=1) * np.asarray(weight)  # [N, C]
        centred *= scale[:, None, :]
        centred += np.asarray(bias)
        y = centred.reshape(x.shape)
        return y if activation is None else activation(y, mode=mode, out=y)

    def group_sums(pixels):  # [HW, C] -> [G]: each channel over the pixels, then each group, in a fixed order
        return tree_sum(tree_sum(pixels, axis=0).reshape(groups, -1), axis=-1)

    # The elementwise steps run on blocks of pixels that stay in cache; each value takes the same steps
    # as over the whole image, so the blocks never change the bits.
    step = max(1, _NORM_BLOCK_ELEMENTS // channels)
    blocks = [slice(start, start + step) for start in range(0, height * width, step)]
    weight, bias = as64(weight), as64(bias)
    out = np.empty(x.shape, dtype=np.float32)
    for n in range(batch):  # one sample at a time: float64 temporaries stay one image large
        pixels = x[n].reshape(height * width, channels)  # [HW, C]
        mean = np.repeat(group_sums(pixels) / count, per_group)  # [C]
        squares = np.empty(pixels.shape)  # [HW, C] float64
        for rows in blocks:
            np.square(np.subtract(pixels[rows], mean, out=squares[rows]), out=squares[rows])
        scale = np.repeat(np.sqrt(group_sums(squares) / count + eps), per_group)  # [C]
        result, centred = out[n].reshape(height * width, channels), np.empty((min(step, height * width), channels))
        for rows in blocks:
            part = pixels[rows]
            block = np.subtract(part, mean, out=centred[:len(part)])  # as in the squares' pass
            block /= scale
            block *= weight
            np.add(block, bias, out=result[rows], casting="same_kind")  # rounded once to float32
            if activation is not None:
                activation(result[rows], mode=mode, out=result[rows])
    return out


def upsample_nearest2x(x: np.ndarray) -> np.ndarray:
    """Nearest-neighbour upsampling by 2 of channels-last ``x``: [N, H, W, C] -> [N, 2H, 2W, C]."""
    return x.repeat(2, axis=1).repeat(2, axis=2)


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, heads: int, mode: str | None = None,
              score_elements: int = _SCORE_ELEMENTS) -> np.ndarray:
    """Multi-head scaled dot-product attention, no mask: ``q`` [N, Tq, D], ``k``/``v`` [N, Tk, D] -> [N, Tq, D].

    One sample and head at a time, queries in chunks whose scores hold about ``score_elements`` entries
    (in cache, and GEMMs of a good shape); each head's keys and values are prepared once for all chunks,
    and ``ops.SoftmaxProduct`` normalises after the product with the values (a [rows, d] division instead
    of [rows, Tk]). Large heads run side by side on the cores (``parallel``), each writing its own columns.
    """
    mode = ops.resolve_mode(mode)
    batch, queries, dim = q.shape
    keys = k.shape[1]
    if dim % heads:
        raise ValueError(f"width {dim} does not split into {heads} heads")
    head_dim = dim // heads
    scale = np.float32(1.0 / math.sqrt(head_dim))
    out = np.empty((batch, queries, dim), dtype=np.float32)
    rows = max(1, score_elements // keys)

    def one_head(piece):
        n, h = piece
        keys_t = ops.RightFactor(k[n, :, h:h + head_dim].T, mode)  # [d, Tk]
        mix = ops.SoftmaxProduct(v[n, :, h:h + head_dim], mode)  # values [Tk, d]
        for start in range(0, queries, rows):
            query = q[n, start:start + rows, h:h + head_dim]  # [rows, d]
            if mode == "fast":
                scores = keys_t(query * scale)  # [rows, Tk]
            else:
                scores = keys_t(query)  # [rows, Tk]
                scores *= scale
            out[n, start:start + rows, h:h + head_dim] = mix(scores)  # [rows, d]

    pieces = [(n, h) for n in range(batch) for h in range(0, dim, head_dim)]
    if queries * keys >= _PARALLEL_SCORES:
        run_pieces(one_head, pieces)
    else:  # threads would cost more than they save
        for piece in pieces:
            one_head(piece)
    return out


def to_channels_last(x: np.ndarray) -> np.ndarray:
    """[N, C, H, W] -> [N, H, W, C] float32."""
    return np.ascontiguousarray(np.asarray(x, dtype=np.float32).transpose(0, 2, 3, 1))


def to_channels_first(x: np.ndarray) -> np.ndarray:
    """[N, H, W, C] -> [N, C, H, W]."""
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


_GEGLU_BLOCK_ELEMENTS = 1 << 16  # gate elements per block: its GELU and the product stay in cache


def geglu(x: np.ndarray, mode: str | None = None) -> np.ndarray:
    """GEGLU's gate: the first half of the last axis times the exact GELU of the second half: [..., 2I] -> [..., I].

    Block by block of rows, straight from the two halves of ``x``: no contiguous copy of the gate, and
    each block's GELU is still in cache for the product (elementwise: blocks never change the bits)."""
    width = x.shape[-1] // 2
    pairs = np.ascontiguousarray(x).reshape(-1, 2, width)  # [R, 2, I], a view: hidden, then gate
    out = np.empty((len(pairs), width), dtype=np.float32)  # [R, I]
    rows = max(1, _GEGLU_BLOCK_ELEMENTS // width)
    for start in range(0, len(pairs), rows):
        block = pairs[start:start + rows]
        np.multiply(block[:, 0], ops.gelu(block[:, 1], mode=mode), out=out[start:start + rows])
    return out.reshape(*x.shape[:-1], width)


class GroupNorm:
    """A GroupNorm layer with its affine parameters; ``silu=True`` applies SiLU after it (ResNet blocks do).

    In exact mode a large input's groups are split over the cores, each piece a run of whole groups (a
    group's statistics and every pixel's result depend on its own channels alone, so the bits are those of
    one piece): a 64 x 64 x 512 norm with SiLU took 23 ms against 34, 256 x 256 x 128 110 against 158. Fast
    mode's passes are bound by memory: split, they lost up to 2**21 values and came out even above."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray, groups: int, eps: float):
        self.weight, self.bias, self.groups, self.eps = weight, bias, groups, eps

    def _normalize(self, x: np.ndarray, mode: str | None, silu: bool, channels: slice = slice(None)) -> np.ndarray:
        """The norm of the whole groups in ``channels`` (all of them by default)."""
        weight, bias = self.weight[channels], self.bias[channels]
        return group_norm(x[..., channels], self.groups * len(weight) // len(self.weight), weight, bias, self.eps,
                          mode=mode, activation=ops.silu if silu else None)

    def __call__(self, x: np.ndarray, mode: str | None = None, silu: bool = False) -> np.ndarray:
        if ops.resolve_mode(mode) == "fast" or x.size < _PARALLEL_NORM_ELEMENTS or x.shape[-1] != len(self.weight):
            return self._normalize(x, mode, silu)
        per_group = len(self.weight) // self.groups
        return over_batch(lambda groups: self._normalize(x, mode, silu, slice(groups.start * per_group, groups.stop * per_group)),
                          self.groups, axis=-1)
