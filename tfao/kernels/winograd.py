"""3x3 stride-1 convolution by Winograd's minimal filtering F(2x2, 3x3) (Lavin and Gray, 2015), in both math
modes, on channels-last tensors.

A 4x4 input tile ``d`` (stride 2) gives a 2x2 output tile ``A^T [(G g G^T) * (B^T d B)] A``: per channel pair
16 products instead of 36, as 16 GEMMs [tiles, C] @ [C, out]. ``B`` and ``A`` hold only 0 and +-1, and
``2 G`` only integers, which is what makes an exact mode possible:

- exact: each tile's transformed input ``B^T d B`` is rounded to a grid set by the tile's own absmax, and
  ``4 G g G^T`` is formed from the weight's integers (per output channel, as ``ops.Linear`` quantizes), so
  every product and partial sum of the 16 GEMMs is an integer on one grid below 2**53, which dgemm sums
  exactly in any order; the output transform and the bias are fixed float64 steps, rounded once to float32.
  A pixel's result depends only on its tile's 4x4 input window, never on blocks or batch.
- fast: the same steps in float32 with the weights transformed once.
"""

from __future__ import annotations

import math
import threading

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import ops
from .gemm import round_to_grid
from .parallel import run_pieces
from .reductions import max_reduce

# 2 G for F(2x2, 3x3): integers, so 4 G g G^T of integer weights stays integer (|.| <= 9 max|g|)
_G2 = np.array([[2, 0, 0], [1, 1, 1], [1, -1, 1], [0, 0, 2]], dtype=np.float64)
_MAX_BITS = 20  # a transformed tile (|x| < 4 * 2**e) then rounds in float32 (``round_to_grid``, headroom 2)


def winograd_bits(in_channels: int) -> int:
    """Integer bits per operand: a transformed input (|.| <= 4 * 2**bits) times a transformed weight
    (|.| <= 9 * 2**bits), summed over the channels, stays below 2**53."""
    return min(_MAX_BITS, (53 - math.ceil(math.log2(36 * in_channels))) // 2)


def transform_weight(weight: np.ndarray) -> np.ndarray:
    """``4 G g G^T`` of [out, in, 3, 3] ``weight`` as [16, in, out] float64 (exact for integer weights)."""
    u = np.einsum("ai,ocij,bj->abco", _G2, np.asarray(weight, dtype=np.float64), _G2)  # [4, 4, in, out]
    return np.ascontiguousarray(u.reshape(16, *u.shape[2:]))


def _input_transform(padded: np.ndarray, tile_rows: int, tile_cols: int, out: np.ndarray) -> None:
    """``B^T d B`` of every 4x4 tile of ``padded`` [N, 2 th + 2, 2 tw + 2, C] into ``out`` [16, N, th, tw, C]."""
    d = [padded[:, k:k + 2 * tile_rows:2] for k in range(4)]  # row k of each tile: [N, th, Wp, C]
    for a, rows in enumerate((d[0] - d[2], d[1] + d[2], d[2] - d[1], d[1] - d[3])):  # B^T along y
        c = [rows[:, :, k:k + 2 * tile_cols:2] for k in range(4)]  # [N, th, tw, C]
        np.subtract(c[0], c[2], out=out[4 * a])  # B along x
        np.add(c[1], c[2], out=out[4 * a + 1])
        np.subtract(c[2], c[1], out=out[4 * a + 2])
        np.subtract(c[1], c[3], out=out[4 * a + 3])


def _output_transform(m: np.ndarray, out: np.ndarray) -> None:
    """``A^T m A`` of ``m`` [16, N, th, tw, O] into ``out`` [N, th, 2, tw, 2, O]."""
    m = m.reshape(4, 4, *m.shape[1:])
    for r, z in enumerate((m[0] + m[1] + m[2], m[1] - m[2] - m[3])):  # A^T along y: [4, N, th, tw, O]
        np.add(z[0] + z[1], z[2], out=out[:, :, r, :, 0])  # A along x
        np.subtract(z[1] - z[2], z[3], out=out[:, :, r, :, 1])


def _tile_exponents(padded: np.ndarray, tile_rows: int, tile_cols: int) -> np.ndarray:
    """The integer ``e`` with max |input| < 2**e over each tile's 4x4 window and channels: [N, th, tw]."""
    pixel = max_reduce(np.abs(padded), axis=-1)  # [N, Hp, Wp]
    window = sliding_window_view(pixel, (4, 4), axis=(1, 2))[:, ::2, ::2][:, :tile_rows, :tile_cols]
    return np.frexp(window.max(axis=(-2, -1)).astype(np.float64))[1]


class Winograd3x3:
    """The F(2x2, 3x3) form of a 3x3 stride-1 convolution whose GEMM weight and bias ``linear`` holds
    ([out, in * 9] in the checkpoint's (channel, dy, dx) order); transformed weights are prepared once per
    mode, from ``linear.prepared`` when it has a store."""

    def __init__(self, linear: ops.Linear, in_channels: int):
        self.linear, self.in_channels = linear, in_channels
        self.bits = winograd_bits(in_channels)
        self._weights: dict[str, np.ndarray] = {}
        self._preparing = threading.Lock()  # pieces of a split batch reach the first call together

    def _weight(self) -> np.ndarray:
        return self.linear.weight.reshape(self.linear.out_features, self.in_channels, 3, 3)

    def _build(self, mode: str) -> tuple[np.ndarray]:
        if mode == "fast":
            return (transform_weight(self._weight()).astype(np.float32) / np.float32(4),)
        weight = self._weight()
        exponent = np.frexp(max_reduce(np.abs(weight).reshape(len(weight), -1), axis=-1).astype(np.float64))[1]
        integers = np.rint(np.ldexp(weight.astype(np.float64), (self.bits - exponent)[:, None, None, None]))
        # 4 G g G^T on the integers, scaled back: every entry an integer times 2**(e - bits) / 4
        return (transform_weight(integers) * np.ldexp(0.25, exponent - self.bits),)

    def transformed(self, mode: str) -> np.ndarray:
        """[16, in, out]: float32 ``G g G^T`` (fast) or float64 exact-grid ``G g G^T`` (exact)."""
        if mode not in self._weights:
            with self._preparing:
                if mode not in self._weights:
                    (self._weights[mode],) = self._prepare(mode)
        return self._weights[mode]

    def _prepare(self, mode: str) -> tuple[np.ndarray]:
        store = self.linear.prepared
        if store is None:
            return self._build(mode)
        key = self.linear.prepared_key(f"winograd-{mode}{self.bits if mode == 'exact' else ''}")
        return store.arrays(key, ("transformed",), lambda: self._build(mode))

    def nbytes(self) -> int:
        """Bytes referenced: the float32 weight and bias, and the transformed forms held privately. With no
        store the exact form (32/9 of the weight, float64) is counted before it is built, as ``ops.Linear``
        counts its exact copy; forms mapped from a store are shared and not counted."""
        own = self.linear.weight.nbytes + (0 if self.linear.bias is None else self.linear.bias.nbytes)
        if self.linear.prepared is not None:
            return own
        exact = 16 * self.in_channels * self.linear.out_features * 8
        built = sum(array.nbytes for mode, array in self._weights.items() if mode != "exact")
        return own + built + exact

    def __call__(self, padded: np.ndarray, out_h: int, out_w: int, mode: str, tile_elements: int) -> np.ndarray:
        """Convolve ``padded`` [N, >= 2 th + 2, >= 2 tw + 2, C] (already zero padded) -> [N, out_h, out_w, out]."""
        batch, channels = padded.shape[0], padded.shape[-1]
        tile_rows, tile_cols = -(-out_h // 2), -(-out_w // 2)
        u = self.transformed(mode)  # [16, C, O]
        out_channels = u.shape[-1]
        out = np.empty((batch, tile_rows, 2, tile_cols, 2, out_channels), dtype=np.float32)
        block = max(1, tile_elements // (16 * batch * tile_cols * max(channels, out_channels)))

        def convolve(r0: int) -> None:  # a block of tile rows, all samples: tiles never interact
            rows = min(block, tile_rows - r0)
            window = padded[:, 2 * r0:2 * (r0 + rows) + 2, :2 * tile_cols + 2]  # [N, 2 rows + 2, 2 tw + 2, C]
            v = np.empty((16, batch, rows, tile_cols, channels), dtype=np.float32)
            _input_transform(window, rows, tile_cols, v)  # [16, N, rows, tw, C]
            if mode == "fast":
                m = np.matmul(v.reshape(16, -1, channels), u)  # [16, T, O]
                tiles = out[:, r0:r0 + rows]
                _output_transform(m.reshape(16, batch, rows, tile_cols, out_channels), tiles)
                if self.linear.bias is not None:
                    tiles += self.linear.bias
                return
            # each tile onto the grid 2**(e - bits) of its window's absmax: |B^T d B| < 4 * 2**e
            v = round_to_grid(v, _tile_exponents(window, rows, tile_cols)[..., None], self.bits, headroom=2)
            m = np.matmul(v.reshape(16, -1, channels), u)  # [16, T, O], exact
            y = np.empty((batch, rows, 2, tile_cols, 2, out_channels), dtype=np.float64)
            _output_transform(m.reshape(16, batch, rows, tile_cols, out_channels), y)
            if self.linear.bias is None:
                out[:, r0:r0 + rows] = y
            else:  # the float64 sum, rounded once into the float32 result
                np.add(y, self.linear.bias.astype(np.float64), out=out[:, r0:r0 + rows], casting="same_kind")

        # Blocks side by side put the transforms on every core, but each block's GEMM then reads the whole
        # weight on one core: with two blocks per core or more that paid (a 64 x 64 x 512 convolution 39-46 ms
        # against 51, 256 x 256 x 128 70-75 against 103), with one each (a 32 x 32 UNet level) it lost.
        run_pieces(convolve, range(0, tile_rows, block), per_thread=2)
        return out.reshape(batch, 2 * tile_rows, 2 * tile_cols, out_channels)[:, :out_h, :out_w]
