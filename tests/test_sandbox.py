"""Untrusted Lua never reaches the host: a table of escape attempts, each of which must fail harmlessly.

Each snippet returns the string "escaped" only if it got somewhere it must not; an error is a pass.
The VM has a bridged module holding a host function and a host object, as a real process does.
"""

import os

import pytest

from weavedrive.blob import Blob
from tfao.sandbox.luavm import LuaError, LuaMemoryError, LuaVM

SECRET = "host-secret"

ESCAPES = {
    "python table": "return python ~= nil and 'escaped'",
    "python via package.loaded": "return package.loaded.python ~= nil and 'escaped'",
    "python.eval": "return python.eval('1')",
    "python.builtins": "return python.builtins.open('/etc/passwd')",
    "dunder class walk": "local _, b = require('probe').blob(); return b.__class__ and 'escaped'",
    "dunder dict walk": "local _, b = require('probe').blob(); return b.__dict__ and 'escaped'",
    "plain attribute of host object": "local _, b = require('probe').blob(); return b.read and 'escaped'",
    "function globals": "return require('probe').secret.__globals__ and 'escaped'",
    "function code": "return require('probe').secret.__code__ and 'escaped'",
    "attribute assignment": "local _, b = require('probe').blob(); b.sha256 = 'x'; return 'escaped'",
    "string.dump bytecode": "return string.dump(function() end) and 'escaped'",
    "string.dump via method": "return (''):dump() and 'escaped'",
    "binary chunk load": "return load(string.char(27) .. 'LuaS', 'x', 'b') and 'escaped'",
    "binary chunk default mode": "local f = load(string.char(27) .. 'LuaS\\0'); return f and 'escaped'",
    "debug library": "return debug.getregistry() and 'escaped'",
    "debug via package.loaded": "return package.loaded.debug and 'escaped'",
    "io.popen": "return io.popen('id'):read('a')",
    "io.lines": "return io.lines('/etc/passwd')() and 'escaped'",
    "io.open on a host file": "local f = io.open('/etc/passwd'); return f and f:read('a') and 'escaped'",
    "os.execute": "return os.execute('true') and 'escaped'",
    "os.getenv": "return os.getenv('HOME') and 'escaped'",
    "os.remove": "return os.remove('/tmp/x') and 'escaped'",
    "os.exit": "os.exit(1); return 'escaped'",
    "package.loadlib": "return package.loadlib('libc.so.6', 'system') and 'escaped'",
    "C module searcher": "package.cpath = '/usr/lib/?.so'; return require('socket') and 'escaped'",
    "package.path searcher": "package.path = '/etc/?'; return require('passwd') and 'escaped'",
    "dofile": "return dofile('/etc/passwd') and 'escaped'",
    "loadfile": "return loadfile('/etc/passwd') and 'escaped'",
    "metatable of host object": "local _, b = require('probe').blob(); return getmetatable(b) and 'escaped'",
    "metatable index hijack": (
        "local _, b = require('probe').blob(); local mt = getmetatable(b);"
        " return mt and mt.__index(b, '__class__') and 'escaped'"
    ),
    "collectgarbage count leaks host state": (
        "local before = collectgarbage('count'); local t = {} for i = 1, 1e4 do t[i] = {} end;"
        " return (before ~= 0 or collectgarbage('count') ~= 0) and 'escaped'"
    ),
    "debug.getinfo reaches a stack level": "return debug.getinfo(1, 'f').func and 'escaped'",
    "debug.traceback of a level exposes the host": "return debug.traceback('', 1):find('/') and 'escaped'",
    "collectgarbage stop": "collectgarbage('stop'); return 'escaped'",
    "coroutine escapes the compute budget": (
        "local co = coroutine.wrap(function() while true do end end); co(); return 'escaped'"
    ),
    "pcall swallows the compute budget": "while true do pcall(function() while true do end end) end",
    "error object is a host exception": (
        "local ok, e = pcall(function() local _, b = require('probe').blob(); return b.x end);"
        " return e.__traceback__ and 'escaped'"
    ),
    "bridged error message leaks host details": (
        "local ok, msg = require('probe').secret(); return tostring(msg):find('Traceback') and 'escaped'"
    ),
    "require of the bootstrap internals": "return require('debug') and 'escaped'",
    "load with a custom env reaching the real one": (
        "local f = load('return python', 'x', 't', setmetatable({}, {__index = _G})); return f() and 'escaped'"
    ),
}


def _secret():
    raise RuntimeError("no access")


@pytest.fixture
def vm():
    probe = {"blob": lambda: Blob.from_bytes(SECRET.encode()), "secret": _secret}
    vm = LuaVM(memory_limit=64 * 2**20, bridges={"probe": probe},
               sources={b"probe": b"local _, host = ... return host"})
    vm.set_compute_limit(200_000)
    return vm


def test_there_are_enough_escape_attempts():
    assert len(ESCAPES) >= 30


@pytest.mark.parametrize("code", ESCAPES.values(), ids=ESCAPES.keys())
def test_escape_attempt_fails_harmlessly(vm, code):
    try:
        result = vm.execute(code)
    except (LuaError, LuaMemoryError, AttributeError):  # AttributeError: the host-object filter said no
        result = None
    assert result != b"escaped"
    # the VM is still usable afterwards
    vm.set_compute_limit(200_000)
    assert vm.execute("return 1 + 1") == 2


def test_host_is_untouched_by_os_remove_attempt(vm, tmp_path):
    target = tmp_path / "keep"
    target.write_text("x")
    with pytest.raises(LuaError):
        vm.execute(f"return os.remove('{target}')")
    assert target.exists()


def test_memory_bomb_is_bounded(vm):
    vm.set_compute_limit(None)
    with pytest.raises((LuaError, LuaMemoryError)):
        vm.execute("local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 1024) .. i end")
    assert vm.execute("return 'alive'") == b"alive"


def test_compute_budget_resets_per_call(vm):
    with pytest.raises(LuaError, match="compute limit"):
        vm.execute("while true do end")
    vm.set_compute_limit(200_000)
    assert vm.execute("local s = 0 for i = 1, 1000 do s = s + i end return s") == 500500


def test_os_date_and_clock_are_deterministic(vm):
    assert vm.execute("return os.time()") == 0
    assert vm.execute("return os.date('!%Y', 0)") == b"1970"
    first = vm.execute("return os.clock()")
    assert first == vm.execute("return os.clock()")


def test_environment_is_not_visible(vm):
    os.environ["TFAO_SANDBOX_PROBE"] = SECRET
    try:
        with pytest.raises(LuaError):
            vm.execute("return os.getenv('TFAO_SANDBOX_PROBE')")
    finally:
        del os.environ["TFAO_SANDBOX_PROBE"]


def answers_in_os_processes(lua: str, processes: int = 3) -> set[str]:
    """What a fresh VM in each of several OS processes (each with its own string hash seed) returns for ``lua``."""
    import subprocess
    import sys

    code = f"from tfao.sandbox.luavm import LuaVM; print(LuaVM().execute({lua!r}).decode())"
    return {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
            for _ in range(processes)}


def test_pairs_order_is_the_same_in_every_os_process():
    """Lua's string hash seed differs per OS process; pairs must not show it."""
    orders = answers_in_os_processes(
        "local t = {} for i = 1, 200 do t['k' .. i] = i; t[i * 1.5] = i end "
        "t[true] = 1 local out = {} for k in pairs(t) do out[#out + 1] = tostring(k) end "
        "return table.concat(out, ',')")
    assert len(orders) == 1
    keys = orders.pop().strip().split(",")
    assert keys[0] == "1.5" and keys[-1] == "true" and keys.index("k1") < keys.index("k10")


def test_next_visits_keys_in_pairs_order_in_every_os_process():
    """``for k, v in next, t`` and step-by-step ``next(t, k)`` follow pairs' order, also when the loop
    clears the field it is on; ``next(t) == nil`` tests emptiness."""
    answers = answers_in_os_processes(
        "local t = {} for i = 1, 200 do t['k' .. i] = i; t[i * 1.5] = i end "
        "local by_pairs, by_next, cleared = {}, {}, {} for k in pairs(t) do by_pairs[#by_pairs + 1] = tostring(k) end "
        "for k in next, t do by_next[#by_next + 1] = tostring(k) end "
        "local k = next(t) while k ~= nil do cleared[#cleared + 1] = tostring(k) t[k] = nil k = next(t, k) end "
        "return table.concat(by_pairs, ',') .. ' ' .. table.concat(by_next, ',') .. ' ' .. "
        "table.concat(cleared, ',') .. ' ' .. tostring(next(t)) .. ' ' .. tostring(next({}))")
    assert len(answers) == 1
    by_pairs, by_next, cleared, left, empty = answers.pop().split()
    assert by_next == by_pairs == cleared and len(by_pairs.split(",")) == 400
    assert left == empty == "nil"
