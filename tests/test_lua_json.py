"""The processes' json module (tfao/sandbox/lua/json.lua), checked against Python's json."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tfao.sandbox.luavm import LuaError, LuaVM

VM = LuaVM()
LUA_JSON = VM.require("json")
MATH_TYPE = VM.execute("return math.type")


def encode(value_lua_source: str) -> str:
    """json.encode of a Lua expression, as text."""
    return VM.execute(f"return require('json').encode({value_lua_source})").decode()


def roundtrip(text: str) -> str:
    """decode then encode in Lua."""
    return LUA_JSON.encode(LUA_JSON.decode(text.encode())).decode()


def decode_error(text: str) -> str:
    with pytest.raises(LuaError) as info:
        LUA_JSON.decode(text.encode())
    return str(info.value)


# ----------------------------------------------------------------------------------- encoding


def test_scalars():
    assert encode("'a'") == '"a"'
    assert encode("true") == "true" and encode("false") == "false" and encode("nil") == "null"
    assert encode("42") == "42" and encode("-7") == "-7" and encode("math.maxinteger") == str(2**63 - 1)


def test_floats_use_the_shortest_exact_form():
    assert encode("0.1") == "0.1"
    assert encode("1/3") == repr(1 / 3)
    assert encode("3.0") == "3"
    assert encode("1e300") == "1e+300"
    assert encode("-0.0") == "-0"


@pytest.mark.parametrize("value", ["0/0", "math.huge", "-math.huge"])
def test_nan_and_infinity_cannot_be_encoded(value):
    with pytest.raises(LuaError, match="json: cannot encode"):
        encode(value)


def test_tables():
    assert encode("{}") == "[]"
    assert encode("{ 1, 'two', { 3 } }") == '[1,"two",[3]]'
    assert encode("{ b = 1, a = { c = true }, [3] = 'x' }") == '{"3":"x","a":{"c":true},"b":1}'
    assert encode("{ [1] = 'a', [3] = 'c' }") == '{"1":"a","3":"c"}'


def test_self_containing_table_is_an_error():
    with pytest.raises(LuaError, match="contains itself"):
        VM.execute("local t = {}; t.me = t; return require('json').encode(t)")


def test_functions_cannot_be_encoded():
    with pytest.raises(LuaError, match="type function"):
        encode("{ f = print }")


def test_string_escapes():
    assert encode(r"'quote \" backslash \\ slash /'") == r'"quote \" backslash \\ slash /"'
    assert encode(r"'\n\r\t\b\f\0\1\31\127'") == r'"\n\r\t\b\f\u0000\u0001\u001f\u007f"'


def test_utf8_passes_through():
    text = "héllo → 世界 🎉"
    assert LUA_JSON.encode(text.encode()).decode() == '"' + text + '"'


def test_bytes_that_are_not_utf8_become_replacement_characters():
    assert json.loads(encode(r"'a\255b\192\128c'")) == "a\ufffdb\ufffd\ufffdc"
    assert json.loads(encode(r"'surrogate \237\160\128!'")) == "surrogate \ufffd!"


# ----------------------------------------------------------------------------------- decoding


def test_decode_types():
    value = LUA_JSON.decode(b' {"i": 3, "f": 3.0, "e": 1e2, "neg": -0.5, "t": true, "n": null, "s": "x"} ')
    assert MATH_TYPE(value[b"i"]) == b"integer" and value[b"i"] == 3
    assert MATH_TYPE(value[b"f"]) == b"float" and MATH_TYPE(value[b"e"]) == b"float"
    assert value[b"neg"] == -0.5 and value[b"t"] is True and value[b"n"] is None and value[b"s"] == b"x"


def test_decode_big_integers_become_floats():
    assert LUA_JSON.decode(b"9223372036854775807") == 2**63 - 1
    assert MATH_TYPE(LUA_JSON.decode(b"9223372036854775808")) == b"float"


def test_decode_unicode_escapes():
    assert LUA_JSON.decode(rb'"caf\u00e9 \u4e16 \ud83c\udf89 \/"').decode() == "café 世 🎉 /"


def test_lone_surrogates_become_replacement_characters():
    assert LUA_JSON.decode(rb'"a\ud800b\udc00"').decode() == "a\ufffdb\ufffd"


def test_arrays_keep_positions_around_nulls():
    value = LUA_JSON.decode(b"[1, null, 3]")
    assert value[1] == 1 and value[2] is None and value[3] == 3


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "unexpected end of input at line 1 column 1"),
        ('{"a" 1}', "expected ':' after object key at line 1 column 6"),
        ("[1, 2", "expected ',' or ']' in array"),
        ("[1,]", "unexpected character"),
        ('{"a": 1,}', "expected a string key in object"),
        ('"open', "unterminated string"),
        ('"tab\there"', "control character in string"),
        ('"\\x"', "invalid escape"),
        ('"\\u12G4"', "invalid \\u escape"),
        ("01", "leading zero"),
        ("nul", "unexpected word 'nul'"),
        ("[1]\n x", "trailing characters after the value at line 2 column 2"),
    ],
)
def test_bad_json_is_reported_with_its_position(text, message):
    error = decode_error(text)
    assert error.startswith("json: ") and message in error


def test_decode_needs_a_string():
    with pytest.raises(LuaError, match="expected a string to decode, got nil"):
        LUA_JSON.decode(None)


# --------------------------------------------------------------------------- against Python


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    # null has no place in a Lua sequence (it is nil), so lists are generated without it
    lambda children: st.lists(children.filter(lambda v: v is not None), max_size=5)
    | st.dictionaries(st.text(), children, max_size=5),
    max_leaves=20,
)


def normalised(value):
    """What survives a Lua round trip: null object members vanish, empty objects become []."""
    if isinstance(value, dict):
        kept = {k: normalised(v) for k, v in value.items() if v is not None}
        return kept if kept else []
    if isinstance(value, list):
        return [normalised(v) for v in value]
    if isinstance(value, float) and value == int(value) and abs(value) < 2**53:
        return int(value)
    return value


@settings(max_examples=300, deadline=None)
@given(json_values, st.booleans())
def test_roundtrip_matches_python(value, ascii_only):
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert json.loads(roundtrip(text)) == normalised(value)


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_roundtrip_exactly(x):
    encoded = LUA_JSON.encode(float(x)).decode()
    assert float(json.loads(encoded)) == x
    assert LUA_JSON.decode(encoded.encode()) == x


def test_one_megabyte_payloads_decode_quickly():
    numbers = json.dumps([{"id": i, "score": i / 7, "name": f"item {i}"} for i in range(20_000)])
    blob = json.dumps({"data": "x" * 1_000_000, "escaped": "line\\n" * 50_000})
    assert len(numbers) > 1_000_000
    start = time.perf_counter()
    decoded = LUA_JSON.decode(numbers.encode())
    LUA_JSON.decode(blob.encode())
    elapsed = time.perf_counter() - start
    assert decoded[20_000][b"name"] == b"item 19999"
    assert elapsed < 2.0, f"decoding 2 MB took {elapsed:.2f}s"
