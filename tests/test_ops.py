import math
from fractions import Fraction

import numpy as np
import pytest

pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")

from tfao.kernels import gemm, ops, transcendentals
from tfao.kernels.gemm import FEW_ROWS

from conftest import run_child

rng = np.random.default_rng(1234)


def ulps(a: np.ndarray, b: np.ndarray) -> int:
    a = np.asarray(a, dtype=np.float32).view(np.int32).astype(np.int64)
    b = np.asarray(b, dtype=np.float32).view(np.int32).astype(np.int64)
    return int(np.max(np.abs(a - b))) if a.size else 0


def test_mode_plumbing(monkeypatch):
    monkeypatch.delenv("TFAO_MATH", raising=False)
    assert ops.current_mode() == "exact"
    monkeypatch.setenv("TFAO_MATH", "fast")
    assert ops.current_mode() == "fast"
    with ops.math_mode("exact"):
        assert ops.current_mode() == "exact"
    assert ops.current_mode() == "fast"
    with pytest.raises(ValueError, match="math mode"):
        ops.resolve_mode("fastest")


@pytest.mark.parametrize("m,k,n", [(5, 1, 3), (7, 33, 9), (3, 384, 17), (2, 4097, 5)])
def test_exact_matmul_is_close_to_float64(m, k, n):
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    ref = a.astype(np.float64) @ b.astype(np.float64)
    got = ops.matmul(a, b, mode="exact")
    assert got.dtype == np.float32
    scale = np.abs(a).max(axis=1, keepdims=True) * np.abs(b).max(axis=0, keepdims=True) * math.sqrt(k)
    assert np.max(np.abs(got - ref) / scale) < 2**-20


def test_exact_matmul_of_representable_inputs_is_the_correctly_rounded_product():
    # Small integers times powers of two lose nothing to quantization: the result is the true product
    # rounded once to float32.
    a = (rng.integers(-1000, 1000, (6, 50)) * 2.0 ** rng.integers(-3, 3, (6, 1))).astype(np.float32)
    b = (rng.integers(-1000, 1000, (50, 4)) * 2.0 ** rng.integers(-3, 3, (1, 4))).astype(np.float32)
    got = ops.matmul(a, b, mode="exact")
    for i in range(6):
        for j in range(4):
            exact = sum(Fraction(float(a[i, t])) * Fraction(float(b[t, j])) for t in range(50))
            assert got[i, j] == np.float32(float(exact))


def test_rows_do_not_depend_on_the_batch():
    a = rng.standard_normal((64, 384)).astype(np.float32)
    a[10] *= 1e6  # a huge neighbour must not change anyone else's scale
    layer = ops.Linear(rng.standard_normal((96, 384)).astype(np.float32), rng.standard_normal(96).astype(np.float32))
    batch = layer(a, mode="exact")
    for row in (0, 10, 63):
        assert batch[row].tobytes() == layer(a[row : row + 1], mode="exact")[0].tobytes()
    q, k = a[:4].reshape(4, 16, 24), a[4:8].reshape(4, 24, 16)
    assert ops.matmul(q, k, mode="exact")[2].tobytes() == ops.matmul(q[2], k[2], mode="exact").tobytes()


def test_linear_matches_float64_in_both_modes():
    x = rng.standard_normal((3, 5, 37)).astype(np.float32)
    w = rng.standard_normal((11, 37)).astype(np.float32)
    b = rng.standard_normal(11).astype(np.float32)
    ref = x.astype(np.float64) @ w.T.astype(np.float64) + b
    for mode in ops.MODES:
        got = ops.Linear(w, b)(x, mode=mode)
        assert got.shape == (3, 5, 11)
        assert np.max(np.abs(got - ref)) < 1e-5


@pytest.mark.parametrize("avx512", [True, False], ids=["avx512-kernels", "avx2-kernels"])
def test_fast_products_of_few_rows_take_the_form_the_kernels_prefer(tmp_path, monkeypatch, avx512):
    """Up to ``FEW_ROWS`` rows fast mode multiplies by small column blocks (2 to ``SMALL_KERNEL_ROWS`` rows, to
    ``SMALL_KERNEL_ROWS_WIDE`` for outputs wider than ``WEIGHT_LEFT_MAX_OUT``) or
    as ``weight @ x.T`` (outputs up to ``WEIGHT_LEFT_MAX_OUT`` wide), the weight in place, on OpenBLAS's
    AVX-512 kernels; by an [in, out] copy of the weight made once on its AVX2 ones, and for wider outputs,
    private memory unless a prepared store maps it; beyond, by the checkpoint's array in place. Every form
    gives the product."""
    monkeypatch.setattr(gemm, "blas_runs_avx512_kernels", lambda: avx512)
    parts = [rng.standard_normal((n, 40)).astype(np.float32) for n in (24, 8)]
    bias = rng.standard_normal(32).astype(np.float32)
    reference = np.concatenate(parts).astype(np.float64).T
    few, many = (rng.standard_normal((rows, 40)).astype(np.float32) for rows in (FEW_ROWS, FEW_ROWS + 1))
    private = ops.Linear(parts, bias)
    weight_bytes = sum(part.nbytes for part in parts)
    before = private.nbytes()
    np.testing.assert_allclose(private(many, mode="fast"), many @ reference + bias, rtol=1e-5, atol=1e-5)
    assert private.nbytes() == before  # no copy for many rows
    for rows in (1, 2, 3, 15, FEW_ROWS):  # padded to a multiple of 4 beyond 2 rows: the same product
        got = private(few[None, :rows], mode="fast")
        assert got.shape == (1, rows, 32) and got.flags.c_contiguous
        np.testing.assert_allclose(got[0], few[:rows] @ reference + bias, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ops.Linear(parts)(few, mode="fast"), few @ reference, rtol=1e-5, atol=1e-5)
    assert private.nbytes() == before + (0 if avx512 else weight_bytes)
    shared = ops.Linear(parts, bias, prepared=ops.PreparedStore(tmp_path))
    assert shared(few, mode="fast").tobytes() == private(few, mode="fast").tobytes()
    assert bool(list(tmp_path.glob("*rowmajor32.weight.npy"))) != avx512
    assert shared.nbytes() == weight_bytes + bias.nbytes
    wide = ops.Linear(rng.standard_normal((gemm.WEIGHT_LEFT_MAX_OUT + 1, 8)).astype(np.float32))
    before = wide.nbytes()
    rows = gemm.SMALL_KERNEL_ROWS_WIDE  # a wide output takes the column blocks up to here on the AVX-512 kernels
    np.testing.assert_allclose(wide(few[:rows, :8], mode="fast"), few[:rows, :8] @ wide.weight.T, rtol=1e-5, atol=1e-5)
    assert wide.nbytes() == before + (0 if avx512 else wide.weight.nbytes)
    np.testing.assert_allclose(wide(few[:, :8], mode="fast"), few[:, :8] @ wide.weight.T, rtol=1e-5, atol=1e-5)
    assert wide.nbytes() == before + wide.weight.nbytes  # the row-major copy, whatever the kernels

    # many column blocks (1024 inputs: 128 columns a block at 4 rows), across the stacked parts
    blocks = ops.Linear([rng.standard_normal((n, 1024)).astype(np.float32) for n in (200, 100)], bias[:1].repeat(300))
    before = blocks.nbytes()
    for rows in range(2, gemm.SMALL_KERNEL_ROWS + 1):
        x = rng.standard_normal((rows, 1024)).astype(np.float32)
        got = blocks(x, mode="fast")
        assert got.shape == (rows, 300) and got.flags.c_contiguous
        np.testing.assert_allclose(got, x @ blocks.weight.T + blocks.bias, rtol=1e-4, atol=1e-4)
    assert blocks.nbytes() == before + (0 if avx512 else blocks.weight.nbytes)


def test_fast_products_of_few_rows_are_padded_to_the_kernels_step():
    assert [gemm.padded_row_count(rows) for rows in (1, 2, 3, 4, 5, 15, 16, 61, FEW_ROWS)] == [1, 2, 4, 4, 8, 16, 16, 64, FEW_ROWS]


def test_fast_products_of_few_rows_follow_the_blas_kernels():
    """The AVX-512 forms are taken where OpenBLAS runs its AVX-512 kernels and never on its AVX2 ones,
    whatever the CPU (OPENBLAS_CORETYPE picks them)."""
    code = ("from tfao.kernels import gemm; from tfao.kernels.parallel import blas_architecture; "
            "print(blas_architecture(), gemm.blas_runs_avx512_kernels())")
    assert run_child(code, {"OPENBLAS_CORETYPE": "Haswell"}) == "Haswell False"
    architecture, avx512 = run_child(code, {}).split()
    assert avx512 == str(architecture in ("SkylakeX", "Cooperlake", "SapphireRapids"))


def test_special_values_in_gemm():
    a = np.array([[0.0, 0.0, 0.0], [1e-40, -3e-41, 0.0], [3e38, -3e38, 1.0], [np.nan, 1.0, 1.0], [np.inf, 0.0, 1.0]], np.float32)
    b = np.array([[1.0, -2.0], [0.5, 4.0], [0.25, 1.0]], np.float32)
    got = ops.matmul(a, b, mode="exact")
    assert np.array_equal(got[0], [0.0, 0.0])
    assert ulps(got[1], a[1].astype(np.float64) @ b.astype(np.float64)) <= 1  # subnormal results
    assert np.isinf(got[2, 1])  # -3e38*-2 + -3e38*4 overflows float32, as the true value does
    assert np.isnan(got[3]).all() and not np.isfinite(got[4]).all()


def test_transcendentals_are_float32_correct():
    x = np.concatenate([np.linspace(-9, 9, 20001), np.geomspace(1e-38, 1, 500), -np.geomspace(1e-38, 1, 500)]).astype(np.float32)
    erf_ref = np.array([math.erf(float(v)) for v in x], dtype=np.float32)
    tanh_ref = np.array([math.tanh(float(v)) for v in x], dtype=np.float32)
    assert ulps(ops.erf(x, mode="exact"), erf_ref) <= 1
    assert ulps(ops.tanh(x, mode="exact"), tanh_ref) <= 1
    assert ulps(ops.erf(x, mode="fast"), erf_ref) <= 4
    e = np.linspace(-110, 88, 20001).astype(np.float32)
    assert ulps(ops.exp(e, mode="exact"), np.array([math.exp(float(v)) for v in e], dtype=np.float32)) <= 1
    assert ops.exp(np.array([-np.inf, np.inf, 0.0]), mode="exact").tolist() == [0.0, np.inf, 1.0]
    assert np.isnan(ops.erf(np.array([np.nan]), mode="exact")).all()


@pytest.fixture(params=[True, False], ids=["exp2-simd", "exp2-scalar"])
def numpy_exp_loops(request, monkeypatch):
    """Fast mode on either kind of CPU: where numpy's float32 exp2 is vectorised (AVX-512) and where only its
    exp is (AVX2), fast mode takes the vectorised one."""
    monkeypatch.setattr(transcendentals, "_SIMD_EXP2_32", request.param)


def test_fast_exp_is_within_its_stated_error(numpy_exp_loops):
    e = np.linspace(-87, 88, 20001).astype(np.float32)
    want = np.array([math.exp(float(v)) for v in e])
    # 2**(x log2 e): the product's rounding adds up to about |x| 7e-8 of relative error to exp2's own
    assert np.all(np.abs(ops.exp(e, mode="fast") / want - 1) <= 2e-7 + 8e-8 * np.abs(e))
    assert ops.exp(np.array([-np.inf, np.inf, 0.0], np.float32), mode="fast").tolist() == [0.0, np.inf, 1.0]


def test_fast_gelu_is_within_its_stated_error(numpy_exp_loops):
    x = np.concatenate([np.linspace(-9, 9, 180001), -np.geomspace(1e-30, 9, 300), np.geomspace(1e-30, 9, 300)]).astype(np.float32)
    want = np.array([0.5 * v * math.erfc(-v / math.sqrt(2)) for v in x.astype(np.float64)])
    assert np.all(np.abs(ops.gelu(x, mode="fast") - want) <= 1e-6 * np.abs(want) + 2e-7)


@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_activations_write_into_out_with_the_same_bits(mode):
    x = rng.standard_normal((3, 70001)).astype(np.float32) * 4  # several chunks and a partial one
    for activation in (ops.gelu, ops.gelu_tanh, ops.silu, ops.quick_gelu, ops.relu):
        want = activation(x, mode=mode)
        buffer = x.copy()
        assert activation(buffer, mode=mode, out=buffer) is buffer
        assert np.array_equal(buffer, want), activation
    with pytest.raises(ValueError, match="C-contiguous float32"):
        ops.gelu(x, mode=mode, out=np.empty((70001, 3), np.float32).T)


def test_softmax_exp_is_within_two_ulps_and_never_subnormal():
    from tfao.kernels.transcendentals import exp_nonpositive32

    x = np.concatenate([np.linspace(-86, 0, 200001), -np.geomspace(1e-38, 1, 500)]).astype(np.float32)
    assert ulps(exp_nonpositive32(x), np.array([math.exp(float(v)) for v in x], dtype=np.float32)) <= 2
    floor = np.float32(math.exp(-86))
    got = exp_nonpositive32(np.array([0.0, -0.0, -87.0, -1e4, -np.inf, np.nan], np.float32))
    assert got[:2].tolist() == [1.0, 1.0] and np.isnan(got[-1])
    assert (got[2:5] >= floor * 0.999).all() and (got[2:5] <= floor * 1.001).all()


def test_exact_silu_is_within_three_ulps():
    x = np.concatenate([np.linspace(-80, 80, 40001), np.geomspace(1e-30, 1, 300), -np.geomspace(1e-30, 1, 300)]).astype(np.float32)
    want = np.array([v / (1 + math.exp(-v)) for v in x.astype(np.float64)], dtype=np.float32)
    assert ulps(ops.silu(x, mode="exact"), want) <= 3
    assert np.isnan(ops.silu(np.array([np.nan], np.float32), mode="exact")).all()


def test_exact_gelu_is_within_three_ulps_and_has_no_cancellation_below_zero():
    x = np.concatenate([np.linspace(-3, 8, 110001), np.geomspace(1e-30, 3, 300), -np.geomspace(1e-30, 3, 300)]).astype(np.float32)
    gelu = lambda v: 0.5 * v * math.erfc(-v / math.sqrt(2))  # erfc: no 1 + erf cancellation in the reference either
    assert ulps(ops.gelu(x, mode="exact"), np.array([gelu(v) for v in x.astype(np.float64)], dtype=np.float32)) <= 3
    tail = np.linspace(-6, -3, 30001).astype(np.float32)
    want = np.array([gelu(v) for v in tail.astype(np.float64)])
    assert np.all(np.abs(ops.gelu(tail, mode="exact") / want - 1) <= 5e-7)
    special = ops.gelu(np.array([-1e30, -9.0, 1e30, np.inf, np.nan], np.float32), mode="exact")
    assert special[:4].tolist() == [0.0, 0.0, np.float32(1e30), np.inf] and np.isnan(special[4])


def test_gelu_variants():
    x = np.linspace(-8, 8, 4001).astype(np.float32)
    x64 = x.astype(np.float64)
    erf64 = np.array([math.erf(v / math.sqrt(2)) for v in x64])
    tanh64 = np.tanh(math.sqrt(2 / math.pi) * (x64 + 0.044715 * x64**3))
    for mode, atol in (("exact", 1e-12), ("fast", 2e-7)):  # fast: 1 + erf cancels in float32, as in torch
        np.testing.assert_allclose(ops.gelu(x, mode=mode), 0.5 * x64 * (1 + erf64), rtol=1e-6, atol=atol)
        np.testing.assert_allclose(ops.gelu_tanh(x, mode=mode), 0.5 * x64 * (1 + tanh64), rtol=1e-6, atol=atol)
    assert ops.relu(x).min() == 0.0
    far = np.array([-1e30, -1e4, -50, 50, 1e4, 1e30], np.float32)  # fast mode's limits: 0 below, x above
    assert ops.gelu(far, mode="fast").tolist() == [0, 0, 0, 50, 1e4, np.float32(1e30)]


def test_tree_sum_order_is_fixed_and_padding_invariant():
    x = rng.standard_normal((5, 13))
    np.testing.assert_allclose(ops.tree_sum(x), x.sum(axis=1), rtol=1e-14)
    padded = np.concatenate([x, np.zeros((5, 9))], axis=1)
    assert ops.tree_sum(padded).tobytes() == ops.tree_sum(x).tobytes()
    assert ops.tree_sum(x[:, :1]).tolist() == x[:, 0].tolist()
    # the order does not depend on the other rows or on the layout
    assert ops.tree_sum(np.asfortranarray(x))[3] == ops.tree_sum(x[3:4])[0]


def halving_tree(values: list[float]) -> float:
    """The specified order: zero-pad to a power of two, then add element i to element i + half until one is left."""
    width = 1 << max(len(values) - 1, 0).bit_length()
    acc = [float(v) for v in values] + [0.0] * (width - len(values))
    while width > 1:
        width //= 2
        acc = [acc[i] + acc[i + width] for i in range(width)]
    return acc[0]


@pytest.mark.parametrize("shape,axis", [((3, 5, 7), -1), ((3, 5, 70), -1), ((2, 300), -1), ((40, 3), 0), ((3, 33, 4), 1)])
def test_tree_sum_is_the_halving_tree_along_short_and_long_axes(shape, axis):
    x = rng.standard_normal(shape) * 10.0 ** rng.integers(-8, 8, shape)  # wide exponents: the order shows
    got = ops.tree_sum(x, axis=axis)
    lines = np.moveaxis(x, axis, -1).reshape(-1, shape[axis])
    assert got.reshape(-1).tolist() == [halving_tree(line) for line in lines]
    assert ops.tree_sum(x, axis=axis, keepdims=True).shape == tuple(1 if i == axis % len(shape) else n for i, n in enumerate(shape))


def test_max_reduce_on_short_and_long_axes():
    for shape in ((6, 4, 16), (6, 4, 100)):
        x = rng.standard_normal(shape).astype(np.float32)
        x[0, 0, 3] = np.nan
        for axis in range(3):
            np.testing.assert_array_equal(ops.max_reduce(x, axis=axis, keepdims=True), np.max(x, axis=axis, keepdims=True))


def test_float32_rounding_of_activations_gives_the_float64_path_numbers():
    from tfao.kernels.gemm import quantize

    x = rng.standard_normal((6, 300)).astype(np.float32)
    x[1] = ((rng.integers(-2**21, 2**21, 300) * 2 + 1) * 2.0**-24).astype(np.float32)  # every value a tie
    x[2] *= np.float32(2.0**-90)
    x[3] *= np.float32(2.0**90)
    x[4] = 0.0
    for bits in (22, 21, 12):
        as_float32 = quantize(x, -1, bits)  # rounds in float32
        as_float64 = quantize(x.astype(np.float64), -1, bits)  # the reference path
        assert as_float32.dtype == np.float64 and as_float32.tobytes() == as_float64.tobytes()
        shift = bits - np.frexp(np.abs(x).max(axis=1, keepdims=True))[1]  # the definition: rint(x 2**shift) 2**-shift
        # as numbers: rint keeps the sign of a value that rounds to zero, the grid's sums give +0
        assert np.array_equal(as_float32, np.rint(x * 2.0**shift) * 2.0**-shift)


def test_stacked_linear_has_the_bits_of_its_parts():
    x = rng.standard_normal((7, 48)).astype(np.float32)
    parts = [ops.Linear(rng.standard_normal((n, 48)).astype(np.float32), rng.standard_normal(n).astype(np.float32))
             for n in (16, 16, 24)]
    stacked = ops.Linear.stacked(parts)
    assert (stacked.out_features, stacked.in_features) == (56, 48)
    separate = np.concatenate([part(x, mode="exact") for part in parts], axis=-1)
    assert stacked(x, mode="exact").tobytes() == separate.tobytes()
    np.testing.assert_allclose(stacked(x, mode="fast"), separate, rtol=1e-5, atol=1e-5)


def test_softmax_layer_norm_pooling_against_float64():
    scores = rng.standard_normal((2, 3, 4, 7)).astype(np.float32) * 5
    keep = np.array([[1, 1, 1, 1, 0, 0, 0], [1] * 7], bool)[:, None, None, :]
    e = np.where(keep, np.exp(scores.astype(np.float64)), 0.0)
    for mode in ops.MODES:
        p = ops.softmax(scores, where=keep, mode=mode)
        np.testing.assert_allclose(p, e / e.sum(-1, keepdims=True), rtol=2e-6, atol=1e-7)
        assert (p[0, ..., 4:] == 0).all()
    x = rng.standard_normal((4, 30)).astype(np.float32) * 3 + 1
    w, b = rng.standard_normal(30).astype(np.float32), rng.standard_normal(30).astype(np.float32)
    x64 = x.astype(np.float64)
    ln = (x64 - x64.mean(-1, keepdims=True)) / np.sqrt(x64.var(-1, keepdims=True) + 1e-12) * w + b
    h = rng.standard_normal((2, 5, 6)).astype(np.float32)
    mask = np.array([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]])
    for mode in ops.MODES:
        np.testing.assert_allclose(ops.layer_norm(x, w, b, 1e-12, mode=mode), ln, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(ops.mean_pool(h, mask, mode=mode)[0], h[0, :2].astype(np.float64).mean(0), rtol=1e-6)
        v = ops.l2_normalize(h[:, 0], mode=mode)
        np.testing.assert_allclose(np.linalg.norm(v.astype(np.float64), axis=-1), 1.0, rtol=1e-6)
    assert np.array_equal(ops.max_pool(h, mask)[0], h[0, :2].max(0))
    assert ops.l2_normalize(np.zeros((1, 3), np.float32)).tolist() == [[0.0, 0.0, 0.0]]
