"""Philox 4x32-10: the published known answers, golden streams of words, uniforms and normals, the same
bits under every numpy SIMD level, and the statistics a sampler relies on."""

import hashlib

import numpy as np
import pytest

from conftest import determinism_variants, run_child
from tfao.kernels.random import Generator, philox4x32

# Random123's kat_vectors: counter (4 words), key (2 words) -> output (4 words)
KNOWN_ANSWERS = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0), (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]

GOLDEN_WORDS_SEED_42 = [2632642643, 2012563771, 314527917, 1463989207, 4242219303, 1404726525]
GOLDEN_STREAMS = {  # sha256 of the values STREAMS_CHILD draws from fresh Generator(7)s
    "words": "7ee4b3142edf2e73e9eff8c74811355224eae4ac5ef3609769d34642458ba0cd",
    "uniform64": "71f695941aa413539257198b624b478d1002003b2accfbf63fe342860723c02c",
    "uniform32": "b53993533d41c22b31731d5ee44672408d1a5c6db10e0632d6215dbb53095db6",
    "normal32": "4b9507e8a3822e55720290a7f4178e7f25c05a97599266bca902261b4eaccc9e",
}

STREAMS_CHILD = r"""
import hashlib
import numpy as np
from tfao.kernels.random import Generator
draws = {
    "words": Generator(7).random_raw(4099),
    "uniform64": Generator(7).uniform(4099),
    "uniform32": Generator(7).uniform(4099, np.float32),
    "normal32": Generator(7).standard_normal((3, 4, 11, 31)),
}
print(" ".join(f"{name}={hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest()}" for name, v in draws.items()))
"""


@pytest.mark.parametrize("counter,key,expected", KNOWN_ANSWERS)
def test_philox_matches_the_published_known_answers(counter, key, expected):
    got = philox4x32(np.array(counter, dtype=np.uint32)[:, None], key)
    assert tuple(int(w) for w in got[:, 0]) == expected


def test_the_stream_is_the_counter_sequence_under_the_seed():
    seed = 0x0123456789ABCDEF
    blocks = np.arange(3, dtype=np.uint32)
    counter = [blocks, 0 * blocks, 0 * blocks + 5, 0 * blocks]
    expected = philox4x32(counter, (seed & 0xFFFFFFFF, seed >> 32)).T.reshape(-1)
    assert Generator(seed, stream=5).random_raw(12).tolist() == expected.tolist()
    assert Generator(42).random_raw(6).tolist() == GOLDEN_WORDS_SEED_42


def test_draws_continue_the_stream_whatever_their_sizes():
    whole = Generator(9).random_raw(23)
    g = Generator(9)
    parts = [g.random_raw(n) for n in (1, 0, 5, 3, 14)]
    assert np.concatenate(parts).tolist() == whole.tolist()
    assert g.position == 23
    g = Generator(9)
    g.standard_normal(5)  # three pairs of words: the sixth normal is dropped, its words are spent
    assert g.position == 6
    assert Generator(9).standard_normal((2, 3)).reshape(-1)[:5].tolist() == Generator(9).standard_normal(5).tolist()


def test_golden_streams():
    line = run_child(STREAMS_CHILD, {})
    assert dict(item.split("=") for item in line.split()) == GOLDEN_STREAMS


def test_streams_have_the_same_bits_under_every_numpy_simd_level(determinism_matrix):
    variants = {name: env for name, env in determinism_variants().items() if name == "default" or "numpy" in name}
    lines = determinism_matrix(STREAMS_CHILD, variants)
    assert len(set(lines.values())) == 1, lines


def test_uniform_and_normal_statistics():
    u64 = Generator(1).uniform(200_000)
    u32 = Generator(1).uniform((400, 500), np.float32)
    z = Generator(2).standard_normal(200_000, np.float64)
    assert u64.dtype == np.float64 and u32.dtype == np.float32 and u32.shape == (400, 500)
    for u in (u64, u32.reshape(-1)):
        assert 0.0 <= u.min() and u.max() < 1.0
        assert abs(u.mean() - 0.5) < 0.005 and abs(u.var() - 1 / 12) < 0.002
    assert abs(z.mean()) < 0.01 and abs(z.var() - 1.0) < 0.015
    assert abs(np.mean(z**3)) < 0.03 and abs(np.mean(z**4) - 3.0) < 0.08  # skew 0, kurtosis 3
    assert np.mean(np.abs(z) < 1.0) == pytest.approx(0.6827, abs=0.005)


def test_seeds_and_streams_give_different_numbers():
    draws = [Generator(0).random_raw(8), Generator(1).random_raw(8), Generator(0, stream=1).random_raw(8)]
    assert len({d.tobytes() for d in draws}) == 3
    assert Generator(2**64 - 1).uniform(2).shape == (2,)


@pytest.mark.parametrize("seed,error", [(-1, ValueError), (2**64, ValueError), (1.5, TypeError), ("1", TypeError), (True, TypeError)])
def test_bad_seeds_are_clear_errors(seed, error):
    with pytest.raises(error, match="seed"):
        Generator(seed)


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="count"):
        Generator(0).random_raw(-1)
    with pytest.raises(ValueError, match="float32 or float64"):
        Generator(0).uniform(3, np.int32)
