"""The processes' json module (tfao/sandbox/lua/json.lua): aos's encoder and decoder, checked
against their behaviour and against Python's json."""

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


def encode_error(value_lua_source: str) -> str:
    with pytest.raises(LuaError) as info:
        encode(value_lua_source)
    return str(info.value)


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
    assert encode("42") == "42" and encode("-7") == "-7"


@pytest.mark.parametrize("lua, text", [
    ("0.1", "0.1"), ("1/3", "0.33333333333333"), ("3.0", "3"), ("1e300", "1e+300"), ("-0.0", "-0"),
    ("0.1 + 0.2", "0.3"), ("math.maxinteger", "9.2233720368548e+18"), ("2^53", "9.007199254741e+15"),
    ("123456789012345", "1.2345678901234e+14"), ("12345678901234", "12345678901234"),
])
def test_numbers_have_14_significant_digits(lua, text):
    assert encode(lua) == text


@pytest.mark.parametrize("value", ["0/0", "math.huge", "-math.huge"])
def test_nan_and_infinity_cannot_be_encoded(value):
    assert "unexpected number value" in encode_error(value)


def test_tables():
    assert encode("{}") == "[]"
    assert encode("{ 1, 'two', { 3 } }") == '[1,"two",[3]]'
    assert encode("{ b = 1, a = { c = true } }") == '{"a":{"c":true},"b":1}'


def test_functions_and_other_host_values_in_objects_are_skipped():
    assert encode("{ f = print, co = coroutine.create(print), n = 1 }") == '{"n":1}'
    assert encode("{ reply = function() end }") == "{}"


def test_a_message_with_its_reply_function_encodes():
    msg = "{ Action = 'X', Tags = { Action = 'X' }, reply = function() end, forward = function() end }"
    assert encode(msg) == '{"Action":"X","Tags":{"Action":"X"}}'


@pytest.mark.parametrize("lua, message", [
    ("{ [1] = 'a', [3] = 'c' }", "invalid table: sparse array"),
    ("{ 1, 2, x = 3 }", "invalid table: mixed or invalid key types"),
    ("{ b = 1, [3] = 'x' }", "invalid table: mixed or invalid key types"),
    ("{ [true] = 1 }", "invalid table: mixed or invalid key types"),
    ("{ print }", "unexpected type 'function'"),
    ("print", "unexpected type 'function'"),
])
def test_tables_aos_cannot_encode_raise_its_errors(lua, message):
    assert message in encode_error(lua)


def test_self_containing_table_is_an_error():
    with pytest.raises(LuaError, match="circular reference"):
        VM.execute("local t = {}; t.me = t; return require('json').encode(t)")


def test_string_escapes():
    assert encode(r"'quote \" backslash \\ slash /'") == r'"quote \" backslash \\ slash /"'
    assert encode(r"'\n\r\t\b\f\0\1\31\127'") == '"\\n\\r\\t\\b\\f\\u0000\\u0001\\u001f\x7f"'


def test_bytes_pass_through_unchanged():
    text = "héllo → 世界 🎉"
    assert LUA_JSON.encode(text.encode()).decode() == '"' + text + '"'
    assert LUA_JSON.encode(b"a\xffb\xc0") == b'"a\xffb\xc0"'


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


def test_decoder_leniency():
    assert list(LUA_JSON.decode(b"[1, 2,]").values()) == [1, 2]
    assert dict(LUA_JSON.decode(b'{"a": 1,}')) == {b"a": 1}
    assert LUA_JSON.decode(b"0x10") == 16 and LUA_JSON.decode(b"01") == 1
    assert LUA_JSON.decode(b'"raw \xff bytes"') == b"raw \xff bytes"


def test_arrays_keep_positions_around_nulls():
    value = LUA_JSON.decode(b"[1, null, 3]")
    assert value[1] == 1 and value[2] is None and value[3] == 3


@pytest.mark.parametrize("text, message", [
    ("", "unexpected character '' at line 1 col 1"),
    ('{"a" 1}', "expected ':' after key at line 1 col 6"),
    ("[1, 2", "expected ']' or ','"),
    ('{"a": 1 "b"}', "expected '}' or ','"),
    ("{1: 2}", "expected string for key at line 1 col 2"),
    ('"open', "expected closing quote for string"),
    ('"tab\there"', "control character in string"),
    ('"\\x"', "invalid escape char 'x' in string"),
    ('"\\u12G4"', "invalid unicode escape in string"),
    ("nul", "invalid literal 'nul'"),
    ("1.2.3", "invalid number '1.2.3'"),
    ("[1]\n x", "trailing garbage at line 2 col 2"),
])
def test_bad_json_is_reported_with_its_position(text, message):
    assert message in decode_error(text)


def test_decode_needs_a_string():
    with pytest.raises(LuaError, match="expected argument of type string, got nil"):
        LUA_JSON.decode(None)


# --------------------------------------------------------------------------- against Python


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**14) + 1, 10**14 - 1) | st.text(),
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
    return value


@settings(max_examples=300, deadline=None)
@given(json_values, st.booleans())
def test_roundtrip_matches_python(value, ascii_only):
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert json.loads(roundtrip(text)) == normalised(value)


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_encode_as_c_printf_14g(x):
    assert LUA_JSON.encode(float(x)).decode() == "%.14g" % x


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
