"""Model calls from Lua are deterministic and bounded: the inference memo is keyed by everything that
changes the output (kernels version included), each call charges its multiply-adds to Compute-Limit,
halts end the message whatever the Lua code does, and host failures reach Lua as one fixed text."""

import logging

import numpy as np
import pytest

from conftest import OfflineContext, transformers_vm
from tfao.bridges import transformers as transformers_bridge
from tfao.kernels import ops
from tfao.sandbox.luavm import COMPUTE_LIMIT_MESSAGE, HOST_FAILURE_MESSAGE, Halt, LuaVM

pytest.importorskip("transformers")

CALL = 'return (require("transformers").bert.encode_text{model=M, tokenizer=T, config=C, prompt="hello world"%s})'


@pytest.fixture
def tiny(tiny_sentence_model):
    folder = tiny_sentence_model(modules=False)
    context = OfflineContext()
    vm = transformers_vm(context)
    g = vm.lua.globals()
    g.M, g.T, g.C = ((folder / name).read_bytes() for name in ("model.safetensors", "vocab.txt", "config.json"))
    return vm, context


def test_the_memo_key_holds_every_output_changing_input(tiny, monkeypatch):
    vm, context = tiny
    vm.execute(CALL % "")
    vm.execute(CALL % ", model_id='only echoed back'")
    assert len(context.values) == 1
    for options in (", pooling='cls'", ", normalize_embeddings=false", ", max_seq_length=3"):
        vm.execute(CALL % options)
    assert len(context.values) == 4
    context.math_mode = "fast"
    vm.execute(CALL % "")
    assert len(context.values) == 5
    monkeypatch.setattr(ops, "KERNELS_VERSION", ops.KERNELS_VERSION + 1)  # an upgraded node recomputes
    vm.execute(CALL % "")
    assert len(context.values) == 6


def test_a_model_call_charges_its_multiply_adds(tiny):
    vm, _ = tiny
    vm.set_compute_limit(None)
    vm.execute(CALL % "")
    used = vm._meter[b"used"]
    # 2 layers x (4 x 32^2 + 2 x 32 x 37) per token and 2 x 2 x 32 per token pair, for 4 tokens
    assert used >= 4 * 2 * (4 * 32 * 32 + 2 * 32 * 37) + 16 * 2 * 2 * 32
    vm.set_compute_limit(20_000)  # enough for the Lua, not for the model
    with pytest.raises(Exception, match=COMPUTE_LIMIT_MESSAGE):
        vm.execute('local ok = pcall(function() ' + CALL % "" + ' end) for i = 1, 10 do end return "swallowed"')
    assert vm.halt_message() == COMPUTE_LIMIT_MESSAGE
    vm.set_compute_limit(None)  # the next call starts afresh, and a memo hit charges the same
    vm.execute(CALL % "")
    assert vm._meter[b"used"] == used


def halting_vm(fail):
    """A VM whose global ``Probe`` calls the host function ``fail``."""
    vm = LuaVM(bridges={"probe": {"call": fail}}, sources={b"probe": b"local _, host = ... return host"})
    vm.lua.globals().Probe = vm.require("probe").call
    return vm


def test_a_halt_cannot_be_caught():
    def halt():
        raise Halt("HALT: FILE NOT FOUND: nope")

    vm = halting_vm(halt)
    vm.set_compute_limit(None)
    with pytest.raises(Exception, match="HALT: FILE NOT FOUND: nope"):
        vm.execute('local ok, err = pcall(Probe) local n = 0 for i = 1, 100000 do n = n + i end return "carried on"')
    assert vm.halt_message() == "HALT: FILE NOT FOUND: nope"
    vm.set_compute_limit(None)
    assert vm.halt_message() is None


def test_host_failures_reach_lua_as_one_fixed_text(caplog):
    def broken():
        raise OSError("/home/someone/.tfao/weave/data/x: Permission denied")

    vm = halting_vm(broken)
    vm.set_compute_limit(None)
    with caplog.at_level(logging.ERROR):
        with pytest.raises(Exception) as raised:
            vm.execute('pcall(Probe) return "carried on"')
    assert HOST_FAILURE_MESSAGE in str(raised.value) and "/home" not in str(raised.value)
    assert "Permission denied" in caplog.text  # the node logs the details


def test_input_errors_stay_catchable(tiny):
    vm, _ = tiny
    ok, err = vm.execute('return pcall(require("transformers").bert.encode_text,'
                         ' {model=M, tokenizer=T, config=C, pooling="median"})')
    assert ok is False and b"pooling must be one of" in err
    ok, err = vm.execute('return pcall(require("transformers").pipeline, "translation", {model=M})')
    assert ok is False and b"unknown task: translation (supported: feature-extraction" in err
    assert vm.halt_message() is None


def test_the_memo_format_round_trips():
    outputs = [np.arange(3, dtype=np.float32), {"text": "é", "png": b"\x89PNG", "n": 2}]
    decoded, cost = transformers_bridge.decode_result(transformers_bridge.encode_result(outputs, 42))
    assert cost == 42 and decoded[0].tobytes() == outputs[0].tobytes() and decoded[1] == outputs[1]


# ----------------------------------------------------------------------------- through a node


def test_a_caught_halt_still_ends_the_message(ao_process, wallets):
    unknown = "A" * 43
    result = ao_process.eval(f'local ok, err = pcall(require("weavedrive").getData, "{unknown}") '
                             'Swallowed = true return "swallowed"', wallet=wallets[0])
    assert result["Error"].startswith("HALT: FILE NOT FOUND")
    assert ao_process.eval("return tostring(Swallowed)", wallet=wallets[0])["Output"]["data"] == "nil"


def test_a_model_call_over_the_compute_limit_is_an_error_and_the_process_goes_on(ao_node, wallets):
    from tfao.cli.demo import import_minilm

    model = import_minilm(ao_node)
    process = ao_node.spawn(wallet=wallets[0], tags=[("Compute-Limit", "100000000")])
    call = f'return #require("transformers").bert.encode_text({{model = "{model}", prompt = "%s"}})'
    assert process.eval(call % "hi", wallet=wallets[0])["Output"]["data"] == "384"  # 3 tokens: ~32M multiply-adds
    long_text = " ".join(["word"] * 60)  # 62 tokens: ~660M
    result = process.eval(f"pcall(function() {call % long_text} end) return 'swallowed'", wallet=wallets[0])
    assert result["Error"].startswith(COMPUTE_LIMIT_MESSAGE)
    assert process.eval("return 1 + 1", wallet=wallets[0])["Output"]["data"] == "2"
    # the exact-mode weights were prepared once, into files under the node home that processes share
    assert len(list((ao_node.home / "prepared").glob("*.quantized.npy"))) == 6 * 4  # query, key, value stacked
