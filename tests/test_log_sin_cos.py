"""Exact log, sin and cos: within one float32 ulp of a 120-bit reference, with the special values IEEE
gives, and the same bits under every numpy SIMD level."""

import mpmath
import numpy as np
import pytest

from conftest import determinism_variants
from tfao.kernels import ops
from tfao.kernels.transcendentals import cos64, log64, sin64

pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")

rng = np.random.default_rng(5)
mpmath.mp.prec = 120

SIN_COS_ARGS = np.concatenate([
    np.linspace(-7, 7, 4001), rng.uniform(-5000, 5000, 4000), np.geomspace(1e-30, 1, 200),
    np.arange(-20, 21) * (np.pi / 2), [0.0, 1000.0, 2.0**19, 1.5e6],
]).astype(np.float32)
LOG_ARGS = np.concatenate([
    np.geomspace(1.5e-45, 3e38, 4000), rng.uniform(0.5, 2.0, 4000), [1.0, 2.0, 0.5, 10000.0, np.float32(1) - 2**-24],
]).astype(np.float32)

GOLDEN_SHA256 = "58d43d81140d44049e686692412af1baacc5fce5e31da4e3ea64bac14af19c9e"
CHILD = r"""
import hashlib
import numpy as np
from tfao.kernels import ops
x = np.linspace(-3000, 3000, 100003).astype(np.float32)
y = np.geomspace(1e-40, 1e38, 100003).astype(np.float32)
out = np.concatenate([ops.sin(x), ops.cos(x), ops.log(y)])
print(hashlib.sha256(out.tobytes()).hexdigest())
"""


def reference(function, x):
    return np.array([float(function(mpmath.mpf(float(v)))) for v in x])


def float32_ulps(got, ref):
    """Distance in float32 ulps of the reference's magnitude (absolute near sin/cos zeros)."""
    ulp = np.spacing(np.maximum(np.abs(ref), 2.0**-126).astype(np.float32)).astype(np.float64)
    return np.abs(got.astype(np.float64) - ref) / ulp


@pytest.mark.parametrize("name,exact,function,args", [
    ("sin", ops.sin, mpmath.sin, SIN_COS_ARGS), ("cos", ops.cos, mpmath.cos, SIN_COS_ARGS), ("log", ops.log, mpmath.log, LOG_ARGS),
])
def test_exact_is_within_one_ulp_of_a_high_precision_reference(name, exact, function, args):
    ref = reference(function, args)
    got = exact(args, mode="exact")
    assert got.dtype == np.float32 and got.shape == args.shape
    assert float32_ulps(got, ref).max() <= 1.0
    fast = exact(args, mode="fast")
    assert np.max(np.abs(fast - ref) / np.maximum(np.abs(ref), 1.0)) < 1e-6  # numpy's float32, for comparison


def test_float64_versions_are_float64_accurate():
    x = rng.uniform(-2000, 2000, 2000)
    assert np.max(np.abs(sin64(x) - reference(mpmath.sin, x))) < 3e-16
    assert np.max(np.abs(cos64(x) - reference(mpmath.cos, x))) < 3e-16
    y = np.concatenate([rng.uniform(1e-300, 1e-290, 500), rng.uniform(0.0, 1e300, 1500), [5e-324]])
    assert np.max(np.abs(log64(y) / reference(mpmath.log, y) - 1)) < 5e-16


def test_special_values():
    assert ops.log(np.array([0.0, -0.0, 1.0, np.inf]), mode="exact").tolist() == [-np.inf, -np.inf, 0.0, np.inf]
    assert np.isnan(ops.log(np.array([-1.0, -np.inf, np.nan]), mode="exact")).all()
    assert ops.sin(np.array([0.0, -0.0]), mode="exact").tolist() == [0.0, 0.0]
    assert ops.cos(np.array([0.0]), mode="exact").tolist() == [1.0]
    assert np.isnan(ops.sin(np.array([np.inf, -np.inf, np.nan]), mode="exact")).all()
    assert np.isnan(ops.cos(np.array([np.inf, np.nan]), mode="exact")).all()
    huge = ops.sin(np.array([3e38], np.float32), mode="exact")  # past the accurate range: still a sine value
    assert np.abs(huge).max() <= 1.0


def test_timestep_embedding_shape_of_arguments():
    # the UNet's sinusoidal embedding: t * exp(-log(10000) * i / half) for t up to 1000
    half = 160
    freqs = ops.exp(-np.log(10000.0) * np.arange(half) / half, mode="exact")
    args = (np.array([1.0, 999.0], np.float32)[:, None] * freqs[None]).astype(np.float32)
    ref_sin, ref_cos = reference(mpmath.sin, args.ravel()), reference(mpmath.cos, args.ravel())
    assert float32_ulps(ops.sin(args, mode="exact").ravel(), ref_sin).max() <= 1.0
    assert float32_ulps(ops.cos(args, mode="exact").ravel(), ref_cos).max() <= 1.0


def test_same_bits_under_every_numpy_simd_level(determinism_matrix):
    # numpy's own float32 sin/cos/log give other bits without AVX2 on this kind of CPU
    variants = {name: env for name, env in determinism_variants().items() if name == "default" or "numpy" in name}
    hashes = determinism_matrix(CHILD, variants)
    assert set(hashes.values()) == {GOLDEN_SHA256}, hashes
