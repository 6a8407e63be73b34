"""Image-network primitives against torch in both math modes; exact bits do not depend on tiles, chunks or
batch composition."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from threadpoolctl import threadpool_limits

from tfao.kernels import networks, ops, parallel
from tfao.kernels.conv import Conv2d, GroupNorm, attention, group_norm, to_channels_first, to_channels_last, upsample_nearest2x

MODES = ["exact", "fast"]


def rel_err(got, want):
    want = np.asarray(want, dtype=np.float64)
    return float(np.max(np.abs(np.asarray(got, dtype=np.float64) - want)) / np.max(np.abs(want)))


def rng_array(seed, *shape, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kernel,stride,padding", [(3, 1, 1), (3, 2, 1), (3, 2, (0, 1, 0, 1)), (1, 1, 0)])
def test_conv2d_matches_torch(mode, kernel, stride, padding):
    x, weight, bias = rng_array(0, 2, 6, 9, 11), rng_array(1, 5, 6, kernel, kernel), rng_array(2, 5)
    conv = Conv2d(weight, bias, stride=stride, padding=padding)
    got = to_channels_first(conv(to_channels_last(x), mode=mode))
    xt = torch.from_numpy(x)
    if isinstance(padding, tuple):  # (top, bottom, left, right) -> F.pad's (left, right, top, bottom)
        xt, padding = F.pad(xt, (padding[2], padding[3], padding[0], padding[1])), 0
    want = F.conv2d(xt, torch.from_numpy(weight), torch.from_numpy(bias), stride=stride, padding=padding).numpy()
    assert got.shape == want.shape
    assert rel_err(got, want) <= 1e-5


def test_exact_conv2d_bits_do_not_depend_on_tiles_or_batch(monkeypatch):
    x, weight, bias = rng_array(3, 3, 17, 13, 8), rng_array(4, 16, 8, 3, 3), rng_array(5, 16)
    conv = Conv2d(weight, bias, padding=1)
    monkeypatch.setattr(parallel, "blas_threads", lambda: 1)
    whole = conv(x, mode="exact")
    monkeypatch.setattr(parallel, "blas_threads", lambda: 3)  # blocks of tile rows side by side
    tiny_tiles = conv(x, mode="exact", tile_elements=1)
    alone = np.concatenate([conv(x[i:i + 1], mode="exact", tile_elements=700) for i in range(3)])
    assert whole.tobytes() == tiny_tiles.tobytes() == alone.tobytes()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("height,width,padding", [(7, 10, (0, 1, 1, 0)), (5, 3, (2, 1, 0, 2)), (1, 1, 1)])
def test_winograd_3x3_with_odd_sizes_and_uneven_padding_matches_torch(mode, height, width, padding):
    x, weight, bias = rng_array(20, 2, 9, height, width), rng_array(21, 7, 9, 3, 3), rng_array(22, 7)
    conv = Conv2d(weight, bias, padding=padding)
    assert conv.winograd is not None
    top, bottom, left, right = (padding,) * 4 if isinstance(padding, int) else padding
    want = F.conv2d(F.pad(torch.from_numpy(x), (left, right, top, bottom)), torch.from_numpy(weight), torch.from_numpy(bias))
    got = to_channels_first(conv(to_channels_last(x), mode=mode))
    assert got.shape == want.shape
    assert rel_err(got, want.numpy()) <= 1e-5


@pytest.mark.parametrize("scale", [1e-36, 1e30])
def test_exact_winograd_keeps_its_accuracy_at_extreme_magnitudes(scale):
    x, weight = rng_array(23, 1, 4, 6, 6, scale=scale), rng_array(24, 3, 4, 3, 3)
    want = F.conv2d(torch.from_numpy(x).double(), torch.from_numpy(weight).double(), padding=1).numpy()
    got = to_channels_first(Conv2d(weight, padding=1)(to_channels_last(x), mode="exact"))
    assert rel_err(got, want) <= 1e-5


def test_a_non_finite_pixel_spoils_only_the_tiles_that_see_it():
    x = to_channels_last(rng_array(25, 1, 3, 12, 12))
    x[0, 5, 6, 1] = np.nan
    out = Conv2d(rng_array(26, 2, 3, 3, 3), padding=1)(x, mode="exact")
    bad = ~np.isfinite(out).all(axis=(0, 3))
    assert bad[4:7, 5:8].all()  # every pixel whose 3x3 patch holds it
    assert bad.sum() <= 6 * 6 and np.isfinite(out[0, :2]).all() and np.isfinite(out[0, 9:]).all()


def test_a_winograd_convolution_counts_the_memory_it_will_hold(tmp_path):
    weight, bias = rng_array(27, 6, 5, 3, 3), rng_array(28, 6)
    x = to_channels_last(rng_array(29, 1, 5, 6, 6))
    private = Conv2d(weight, bias, padding=1)
    predicted = networks.nbytes(private)
    assert predicted == weight.nbytes + bias.nbytes + 16 * 5 * 6 * 8  # the exact form, counted before it exists
    private(x, mode="exact")
    assert networks.nbytes(private) == predicted
    private(x, mode="fast")
    assert networks.nbytes(private) == predicted + 16 * 5 * 6 * 4
    shared = Conv2d(weight, bias, padding=1)
    networks.share_prepared(shared, ops.PreparedStore(tmp_path))
    shared(x, mode="exact")
    assert networks.nbytes(shared) == weight.nbytes + bias.nbytes  # mapped from the store, shared


@pytest.mark.parametrize("mode", MODES)
def test_group_norm_matches_torch(mode):
    x = rng_array(6, 2, 12, 5, 7, scale=3.0) + 2.0
    weight, bias = rng_array(7, 12), rng_array(8, 12)
    got = to_channels_first(group_norm(to_channels_last(x), 4, weight, bias, 1e-6, mode=mode))
    want = F.group_norm(torch.from_numpy(x), 4, torch.from_numpy(weight), torch.from_numpy(bias), 1e-6).numpy()
    assert rel_err(got, want) <= 1e-5


@pytest.mark.parametrize("silu", [False, True])
def test_a_large_exact_group_norm_runs_its_groups_side_by_side_with_the_same_bits(monkeypatch, silu):
    x = to_channels_last(rng_array(30, 1, 64, 128, 64, scale=3.0)) + np.float32(1.0)  # 2**19 values: split
    weight, bias = rng_array(31, 64), rng_array(32, 64)
    norm, groups_seen = GroupNorm(weight, bias, 32, 1e-6), []
    monkeypatch.setattr("tfao.kernels.conv.group_norm", lambda x, groups, *rest, **kw: groups_seen.append(groups) or group_norm(x, groups, *rest, **kw))
    want = F.group_norm(torch.from_numpy(to_channels_first(x)), 32, torch.from_numpy(weight), torch.from_numpy(bias), 1e-6)
    want = (F.silu(want) if silu else want).numpy()
    monkeypatch.setattr(parallel, "blas_threads", lambda: 1)
    alone = norm(x, "exact", silu=silu)
    monkeypatch.setattr(parallel, "blas_threads", lambda: 3)
    groups_seen.clear()
    assert norm(x, "exact", silu=silu).tobytes() == alone.tobytes()
    assert sorted(groups_seen) == [10, 11, 11]
    groups_seen.clear()
    fast = norm(x, "fast", silu=silu)  # bound by memory: whole
    assert groups_seen == [32]
    assert rel_err(to_channels_first(alone), want) <= 1e-5 and rel_err(to_channels_first(fast), want) <= 1e-5


def test_exact_group_norm_bits_do_not_depend_on_its_blocks(monkeypatch):
    x = to_channels_last(rng_array(33, 2, 12, 9, 7, scale=5.0)) + np.float32(3.0)
    weight, bias = rng_array(34, 12), rng_array(35, 12)
    whole = group_norm(x, 4, weight, bias, 1e-6, mode="exact", activation=ops.silu)
    monkeypatch.setattr("tfao.kernels.conv._NORM_BLOCK_ELEMENTS", 25)  # two pixels a block, the last one short
    assert group_norm(x, 4, weight, bias, 1e-6, mode="exact", activation=ops.silu).tobytes() == whole.tobytes()
    assert whole.tobytes() == ops.silu(group_norm(x, 4, weight, bias, 1e-6, mode="exact"), mode="exact").tobytes()


def test_exact_group_norm_is_per_sample():
    x = to_channels_last(rng_array(9, 3, 8, 4, 4))
    weight, bias = np.ones(8, np.float32), np.zeros(8, np.float32)
    batch = group_norm(x, 2, weight, bias, 1e-5, mode="exact")
    alone = np.concatenate([group_norm(x[i:i + 1], 2, weight, bias, 1e-5, mode="exact") for i in range(3)])
    assert batch.tobytes() == alone.tobytes()


@pytest.mark.parametrize("mode", MODES)
def test_silu_and_quick_gelu_match_torch(mode):
    x = rng_array(10, 1000, scale=6.0)
    assert rel_err(ops.silu(x, mode=mode), F.silu(torch.from_numpy(x)).numpy()) <= 1e-6
    xt = torch.from_numpy(x)
    assert rel_err(ops.quick_gelu(x, mode=mode), (xt * torch.sigmoid(1.702 * xt)).numpy()) <= 1e-6


def test_upsample_nearest2x_matches_torch():
    x = rng_array(11, 2, 3, 4, 5)
    want = F.interpolate(torch.from_numpy(x), scale_factor=2.0, mode="nearest").numpy()
    assert np.array_equal(to_channels_first(upsample_nearest2x(to_channels_last(x))), want)


@pytest.mark.parametrize("mode", MODES)
def test_attention_matches_torch(mode):
    q, k, v = rng_array(12, 2, 37, 24), rng_array(13, 2, 11, 24), rng_array(14, 2, 11, 24)

    def heads(t):
        return torch.from_numpy(t).reshape(2, -1, 3, 8).transpose(1, 2)

    want = F.scaled_dot_product_attention(heads(q), heads(k), heads(v)).transpose(1, 2).reshape(2, 37, 24).numpy()
    assert rel_err(attention(q, k, v, 3, mode=mode), want) <= 1e-5


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("spread", [0.1, 8.0])  # diffuse and peaked weights
def test_attention_over_thousands_of_keys_matches_torch(mode, spread):
    q, k, v = rng_array(18, 1, 5, 16) * spread, rng_array(19, 1, 4099, 16), rng_array(20, 1, 4099, 16)
    heads = lambda t: torch.from_numpy(t).reshape(1, -1, 2, 8).transpose(1, 2)  # noqa: E731
    want = F.scaled_dot_product_attention(heads(q), heads(k), heads(v)).transpose(1, 2).reshape(1, 5, 16).numpy()
    assert rel_err(attention(q, k, v, 2, mode=mode), want) <= 1e-5


def test_heads_run_side_by_side_with_the_same_bits(monkeypatch):
    q, k, v = rng_array(24, 2, 300, 16), rng_array(25, 2, 300, 16), rng_array(26, 2, 300, 16)  # 90,000 scores a head
    for mode in MODES:
        monkeypatch.setattr(parallel, "blas_threads", lambda: 1)
        with threadpool_limits(1, user_api="blas"):  # as each piece runs: fast sgemm's bits may vary with its threads
            alone = attention(q, k, v, 2, mode=mode)
        monkeypatch.setattr(parallel, "blas_threads", lambda: 3)
        assert attention(q, k, v, 2, mode=mode).tobytes() == alone.tobytes()


def test_a_non_finite_query_spoils_its_own_row_only():
    q, k, v = rng_array(21, 1, 4, 8), rng_array(22, 1, 9, 8), rng_array(23, 1, 9, 8)
    clean = attention(q, k, v, 1, mode="exact")
    q[0, 2, 3] = np.nan
    spoiled = attention(q, k, v, 1, mode="exact")
    assert np.isnan(spoiled[0, 2]).all() and np.array_equal(np.delete(spoiled, 2, axis=1), np.delete(clean, 2, axis=1))


def test_exact_attention_bits_do_not_depend_on_chunks_or_batch():
    q, k, v = rng_array(15, 2, 64, 16), rng_array(16, 2, 64, 16), rng_array(17, 2, 64, 16)
    whole = attention(q, k, v, 2, mode="exact")
    chunked = attention(q, k, v, 2, mode="exact", score_elements=1)
    alone = np.concatenate([attention(q[i:i + 1], k[i:i + 1], v[i:i + 1], 2, mode="exact", score_elements=900)
                            for i in range(2)])
    assert whole.tobytes() == chunked.tobytes() == alone.tobytes()
