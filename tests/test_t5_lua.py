"""require("transformers").t5.generate and the T5 pipelines from Lua: the Python pipelines' results, the seed
project's option names, seeds from the message, results memoised."""

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sentencepiece")

from conftest import OfflineContext, transformers_vm  # noqa: E402
from test_t5_pipelines import PROMPTS, t5_folder, t5_saved  # noqa: E402,F401 (fixtures)
from tfao.models.pipelines import pipeline  # noqa: E402
from tfao.models.t5 import T5Text  # noqa: E402


@pytest.fixture
def lua(t5_saved):
    context = OfflineContext()
    context.message = {"Id": "message-1"}
    vm = transformers_vm(context)
    g = vm.lua.globals()
    g.M, g.T, g.C = ((t5_saved / name).read_bytes() for name in ("model.safetensors", "tokenizer.json", "config.json"))
    g.P1, g.P2 = PROMPTS
    return vm, context


def texts(table):
    return [value.decode() for value in table.values()]


def test_generate_equals_the_python_pipeline(lua, t5_saved):
    vm, context = lua
    expected = [entry["generated_text"] for entry in pipeline("text2text-generation", t5_saved)(PROMPTS, max_new_tokens=8)]
    one, many = vm.execute('local t5 = require("transformers").t5'
                           ' return (t5.generate{model=M, tokenizer=T, config=C, prompt=P1, max_new_tokens=8}),'
                           ' (t5.generate{model=M, tokenizer=T, config=C, prompt={P1, P2}, max_new_tokens=8})')
    assert one.decode() == expected[0] and texts(many) == expected
    assert len(context.values) == 2
    vm.execute('require("transformers").t5.generate{model=M, tokenizer=T, config=C, prompt=P1, max_new_tokens=8}')
    assert len(context.values) == 2  # served from the memo


def test_return_ids_and_returned_sequences(lua, t5_saved):
    vm, _ = lua
    ids = T5Text.from_pretrained(t5_saved).generate_ids(PROMPTS[:1], max_new_tokens=6, num_beams=3,
                                                      num_return_sequences=2)
    beams, meta = vm.execute('return require("transformers").t5.generate{model=M, tokenizer=T, config=C, prompt=P1,'
                             ' max_new_tokens=6, num_beams=3, num_return_sequences=2, return_ids=true}')
    assert len(texts(beams)) == 2
    assert [list(row.values()) for row in meta.ids.values()] == ids.tolist()


def test_sampling_seeds_come_from_the_message(lua):
    vm, context = lua
    call = ('return (require("transformers").t5.generate{model=M, tokenizer=T, config=C, prompt=P1,'
            ' max_new_tokens=10, temperature=3.0, top_p=0.95%s})')
    first = vm.execute(call % "")
    assert vm.execute(call % "") == first
    context.message = {"Id": "message-2"}
    second = vm.execute(call % "")
    assert second != first
    assert vm.execute(call % ", seed=5") == vm.execute(call % ", seed=5")
    context.message = {"Id": "message-1"}
    assert vm.execute(call % "") == first
    greedy = vm.execute(call.replace("temperature=3.0, top_p=0.95", "temperature=0") % "")
    assert greedy == vm.execute(call.replace(", temperature=3.0, top_p=0.95", "") % "")


def test_seed_project_aliases(lua, t5_saved):
    vm, _ = lua
    text_model = T5Text.from_pretrained(t5_saved)
    expected = text_model.decode(text_model.generate_ids(PROMPTS[:1], max_new_tokens=8, repetition_penalty=1.8,
                                                         repetition_window=3))
    got = vm.execute('return (require("transformers").t5.generate{model=M, tokenizer=T, config=C, prompt=P1,'
                     ' max_new_tokens=8, repeat_penalty=1.8, repeat_last_n=3})')
    assert got.decode() == expected[0]
    continued = vm.execute('return (require("transformers").t5.generate{model=M, tokenizer=T, config=C, prompt=P1,'
                           ' max_new_tokens=4, decoder_prompt="the dog"})')
    assert continued.decode().startswith("the dog")
    vectors = vm.execute('return (require("transformers").t5.generate{model=M, tokenizer=T, config=C,'
                         ' prompt={P1, P2}, decode=false})')
    expected = text_model.embed(PROMPTS, normalize=True)
    assert np.array([list(row.values()) for row in vectors.values()], np.float32).tobytes() == expected.tobytes()


def test_pipelines_from_lua(lua, t5_saved):
    vm, _ = lua
    summary = pipeline("summarization", t5_saved)(PROMPTS[1])[0]["summary_text"]
    translation = pipeline("translation_en_to_de", t5_saved)(PROMPTS[1])[0]["translation_text"]
    got = vm.execute('local tr = require("transformers")'
                     ' local files = {model=M, tokenizer=T, config=C}'
                     ' return tr.pipeline("summarization", files)(P2), tr.pipeline("translation_en_to_de", files)(P2)')
    assert [value.decode() for value in got] == [summary, translation]


@pytest.mark.parametrize("opts, message", [
    ("prompt=P1, task='poetry'", "task must be one of"),
    ("prompt=P1, seed=-1", "seed must be an integer"),
    ("prompt=P1, num_beams=2, num_return_sequences=3", "num_return_sequences"),
    ("prompt=P1, beams=2, max_new_tokens=0", "max_new_tokens must be >= 1"),
    ("prompt=P1, decode='no'", "decode must be a boolean"),
    ("prompt=P1, num_beams='3'", "num_beams must be an integer"),
    ("prompt=P1, temperature=true", "temperature must be a number"),
])
def test_bad_options_are_clean_lua_errors(lua, opts, message):
    vm, _ = lua
    ok, err = vm.execute(f'return pcall(require("transformers").t5.generate, {{model=M, tokenizer=T, config=C, {opts}}})')
    assert ok is False and message.encode() in err, err


def test_runaway_sizes_are_refused_before_any_work(lua):
    vm, _ = lua
    for opts, message in [("max_new_tokens=1000000", "exceeds T5's attention length bound"),
                          ("num_beams=100000", "num_beams and num_return_sequences must be between 1 and 64")]:
        ok, err = vm.execute(f'return pcall(require("transformers").t5.generate, {{model=M, tokenizer=T, config=C,'
                             f' prompt=P1, {opts}}})')
        assert ok is False and message.encode() in err, err
