"""math.random as aos draws it: MT19937 seeded from the first message, one 32-bit output per draw
(aos's own vector, math.random(10) == 2, is in test_aos_suite.py)."""

import math

from test_aos import Aos


def mt19937(seed: int):
    """The reference generator (init_genrand, genrand_int32), written out as a test oracle."""
    state = [seed & 0xFFFFFFFF]
    for i in range(1, 624):
        state.append((1812433253 * (state[-1] ^ (state[-1] >> 30)) + i) & 0xFFFFFFFF)
    index = 624
    while True:
        if index == 624:
            for i in range(624):
                y = (state[i] & 0x80000000) | (state[(i + 1) % 624] & 0x7FFFFFFF)
                state[i] = state[(i + 397) % 624] ^ (y >> 1) ^ (0x9908B0DF if y & 1 else 0)
            index = 0
        y = state[index]
        index += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C5680
        y ^= (y << 15) & 0xEFC60000
        yield y ^ (y >> 18)


def test_draws_follow_the_reference_generator_and_aos_formulas():
    session = Aos()
    boot = session.env["Process"]
    identity = boot["Owner"] + session.env["Module"]["Id"] + boot["Id"]
    seed = int(f"{session.block_height}{sum(identity.encode())}")
    outputs = mt19937(seed)
    code = ("local r = {} for i = 1, 3 do r[#r + 1] = string.format('%.17g', math.random()) end "
            "r[#r + 1] = math.random(10); r[#r + 1] = math.random(5, 7); r[#r + 1] = math.random(1000000) "
            "return table.concat(r, ' ')")
    drawn = session.eval(code)["Output"]["data"].split(" ")
    floats = [next(outputs) / 2**32 for _ in range(3)]
    assert [float(x) for x in drawn[:3]] == floats
    expected = [math.floor(next(outputs) / 2**32 * (hi - lo + 1) + lo) for lo, hi in [(1, 10), (5, 7), (1, 1000000)]]
    assert [int(x) for x in drawn[3:]] == expected


def test_random_range_must_be_ordered():
    assert "max must bigger than min" in Aos().eval("math.random(5, 1)")["Error"]
