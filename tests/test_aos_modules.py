"""The standard modules and globals aos processes use: .bint, .base64, .pretty, utils, debug, package."""

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tfao.sandbox.luavm import LuaVM
from test_aos import Aos

BINT_VM = LuaVM()


@pytest.fixture(scope="module")
def aos():
    return Aos()


def out(aos: Aos, code: str) -> str:
    result = aos.eval(code)
    assert "Error" not in result, result
    return result["Output"]["data"]


A = 123456789012345678901234567890
B = 10**16


@pytest.mark.parametrize("expression, expected", [
    ("a + b", A + B), ("a - b", A - B), ("a * b", A * B), ("a // b", A // B), ("a % b", A % B),
    ("-a", -A), ("bint(-7) // 2", -4), ("bint(-7) % 2", 1), ("bint.ipow(2, 255)", -(2**255)),
    ("bint.ipow(2, 256)", 0), ("bint(1) << 100", 2**100), ("(bint(1) << 100) >> 99", 2),
    ("bint.maxinteger()", 2**255 - 1), ("bint.mininteger()", -(2**255)),
    ("bint.udiv(bint.ipow(2, 128), bint('18446744073709551617'))", 2**128 // (2**64 + 1)),
    ("bint(10000 * 10 ^ 12)", 10**16), ("bint('0xff') & 0x0f", 15), ("bint.fromstring('-0b101')", -5),
    ("bint.tdiv(-7, 2)", -3), ("bint.tmod(-7, 2)", -1),
])
def test_bint_256_arithmetic_matches_python_integers(aos, expression, expected):
    code = f"local bint = require('.bint')(256); local a, b = bint('{A}'), bint('{B}'); return tostring({expression})"
    assert out(aos, code) == str(expected)


def test_bint_conversions_comparisons_and_floats(aos):
    code = """local bint = require('.bint')(256)
    local a = bint('123456789012345678901234567890')
    return table.concat({ bint.tobase(a, 16), tostring(bint.tonumber(a)), math.type(bint.tonumber(bint(42))),
      tostring(bint.__lt(0, bint('5'))), tostring(bint('5') <= bint('5')), tostring(bint(3) / 2),
      tostring(bint(5) + 0.5), tostring(bint.tobint('1.5')), tostring(bint.eq(bint(3), 3)),
      bint.tobase(bint(-1), 16):sub(1, 4), tostring(bint.isbint(a)), bint.type(a), tostring(a:iszero()),
      tostring(bint.frombe(bint.tobe(a)) == a), tostring(pcall(bint.new, 'x')),
      tostring(require('.bint')(256) == bint) }, ' ')"""
    assert out(aos, code).split(" ") == [
        hex(A)[2:], "1.2345678901235e+29", "integer", "true", "true", "1.5", "5.5", "nil", "true", "ffff",
        "true", "bint", "false", "true", "false", "true"]


def test_bint_division_by_zero_is_an_error(aos):
    result = aos.eval("local bint = require('.bint')(256); return tostring(bint(1) // bint(0))")
    assert "attempt to divide by zero" in result["Error"]


@pytest.mark.parametrize("data", [b"", b"h", b"he", b"hel", b"hello world!?", bytes(range(256))])
def test_base64_module_and_global_match_rfc_4648(aos, data):
    lua_bytes = "".join(f"\\{b}" for b in data)
    encoded = out(aos, f'return base64.encode("{lua_bytes}")')
    assert encoded == base64.b64encode(data).decode()
    assert out(aos, f'return require(".base64").decode("{encoded}") == "{lua_bytes}"') == "true"


def test_base64_url_alphabet_and_ignored_characters(aos):
    code = """local b = require('.base64'); local url = b.makeencoder('-', '_')
    return b.encode('\\251\\255', url) .. ' ' .. b.decode('aGVs\\nbG8=')"""
    assert out(aos, code) == "-_8= hello"


def test_pretty_tprint(aos):
    assert out(aos, "return require('.pretty').tprint({ a = 1, b = { c = true } })") == "a: 1\nb: \n c: true\n"


def test_utils_curry_reads_the_arity_and_compose_is_curried(aos):
    code = """local add3 = Utils.curry(function(a, b, c) return a + b + c end)
    local inc, double = function(x) return x + 1 end, function(x) return x * 2 end
    return table.concat({ add3(1)(2)(3), add3(1, 2)(3), add3(1)(2, 3), Utils.compose(inc)(double)(5),
      Utils.compose(inc, double, double)(1) }, ' ')"""
    assert out(aos, code) == "6 6 6 11 5"


def test_utils_functions_with_aos_argument_orders(aos):
    code = """local list = { 1, 2, 3 }
    return table.concat({
      Utils.reduce(function(acc, v, k) return acc + v * k end, 0, list),
      table.concat(Utils.map(function(v, k) return v * 10 + k end)(list), ','),
      table.concat(Utils.filter(function(v) return v > 1 end, list), ','),
      Utils.find(function(v) return v > 1 end, { a = 1, b = 2 }),
      tostring(Utils.includes(2)(list)), tostring(Utils.propEq('n', 'x')({ n = 'x' })),
      Utils.prop('n', { n = 'y' }), table.concat(Utils.reverse(list), ','),
      table.concat(Utils.concat({ 1 })({ 2 }), ','), table.concat(Utils.keys({ b = 1, a = 2 }), ','),
      table.concat(Utils.values({ b = 1, a = 2 }), ','), Utils.capitalize('hELLO'), Utils.normalize('x_test'),
    }, ' ')"""
    assert out(aos, code) == "14 11,22,33 2,3 2 true true y 3,2,1 1,2 a,b 2,1 Hello X-Test"


def test_utils_assertions_are_aos_messages(aos):
    result = aos.eval("Utils.map(function(v) return v end, { a = 1 })")
    assert "second argument should be an Array" in result["Error"]


def test_debug_offers_traceback_and_parameter_counts_only(aos):
    code = """local info = debug.getinfo(function(a, b, ...) end, 'u')
    return table.concat({ info.nparams, tostring(info.isvararg), debug.traceback('here'):match('^here\\nstack traceback:') and 'tb' or 'none',
      tostring(debug.sethook), tostring(debug.getlocal), tostring(debug.getregistry), tostring(package.loaded.debug) }, ' ')"""
    assert out(aos, code) == "2 true tb nil nil nil nil"


def test_collectgarbage_count_is_a_fixed_number(aos):
    assert out(aos, "return collectgarbage('count')") == "0.0"


def test_package_preload_is_a_working_searcher(aos):
    code = """package.preload['my.mod'] = function(name, extra) return { name = name, extra = extra, n = 1 } end
    local m = require('my.mod'); m.n = m.n + 1
    return m.name .. ' ' .. m.extra .. ' ' .. require('my.mod').n .. ' ' .. tostring(package.loaded['my.mod'] == m)"""
    assert out(aos, code) == "my.mod :preload: 2 true"


def test_plain_and_dotted_names_reach_the_same_module(aos):
    assert out(aos, "return tostring(require('json') == require('.json'))") == "true"


def wrap256(n: int) -> int:
    """n as a signed 256-bit two's complement value."""
    n &= (1 << 256) - 1
    return n - (1 << 256) if n >> 255 else n


@settings(max_examples=150, deadline=None)
@given(st.integers(-(2**255), 2**255 - 1), st.integers(-(2**255), 2**255 - 1))
def test_bint_256_agrees_with_python_on_random_values(a, b):
    lua = BINT_VM.execute(
        "local bint = require('.bint')(256) local a, b = bint('%d'), bint('%d') "
        "local q, r = '', '' if not b:iszero() then q, r = tostring(a // b), tostring(a %% b) end "
        "return table.concat({ tostring(a + b), tostring(a - b), tostring(a * b), q, r, tostring(a < b), "
        "tostring(a << 7), tostring(a >> 9), tostring(a & b), tostring(a | b), tostring(a ~ b), "
        "bint.tobase(a, 16) }, ' ')" % (a, b)).decode().split(" ")
    expected = [wrap256(a + b), wrap256(a - b), wrap256(a * b)]
    expected += [wrap256(a // b), a % b] if b else ["", ""]
    expected += [str(a < b).lower(), wrap256(a << 7), (a % 2**256) >> 9, a & b, a | b, a ^ b, format(a % 2**256, "x")]
    assert lua == [str(e) for e in expected]
