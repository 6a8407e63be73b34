"""The sandboxed Lua 5.3 VM a process runs in.

One lupa runtime per process. Untrusted code sees the aos globals and nothing of the host: no
``python`` table, no attribute access on host objects, no C modules, text chunks only in ``load``,
an ``os`` and ``io`` without host access, and of ``debug`` only ``traceback`` and a ``getinfo``
that describes a function argument. Objects print with per-process sequence numbers, never heap
addresses, and ``pairs`` visits keys in an order no address decides. Bridged Python modules reach
Lua as plain functions that take and return plain values (see ``to_python``/``to_lua``).

Limits: ``max_memory`` bounds the Lua heap; an instruction budget per call (a count hook installed
on every coroutine, xpcall message handlers and ``__gc`` finalizers) bounds compute; what one bridge
call may pass to the host is bounded too (``HostAllowance``). All surface as Lua errors; the caller
decides what they mean. Work no instruction count sees (a backtracking pattern) is left to the
host's wall-clock limit (see ``tfao.sandbox.host``).

Host functions fail in three ways: a ``ValueError`` or ``TypeError`` (input validation, with fixed
wording) becomes an ordinary Lua error; a ``Halt`` ends the evaluation whatever the Lua code does (a
``pcall`` cannot swallow it), as a compute-limit overrun does; any other exception is logged on the host
and halts with the fixed ``HOST_FAILURE_MESSAGE``, so nothing machine-specific reaches Lua. A host
function returning ``Metered(value, cost)`` charges ``cost`` to the instruction budget.
"""

from __future__ import annotations

import importlib.resources
import logging
import numbers
from typing import Any, Callable, Mapping, NamedTuple

import lupa.lua53 as lupa
import numpy as np

from weavedrive.blob import Blob

LuaError = lupa.LuaError
LuaMemoryError = lupa.LuaMemoryError

# Instructions between two compute-budget checks: the hook costs one Lua call per step.
HOOK_STEP = 10_000
MAX_TABLE_DEPTH = 64
# What one bridge call may pass to the host (see HostAllowance).
MAX_HOST_VALUES = 200_000
MAX_HOST_BYTES = 2**30
SHARED_STRING_BYTES = 2**16
# Instructions one ``__gc`` finalizer may run (they run at collections, outside any handler).
FINALIZER_BUDGET = 1_000_000

COMPUTE_LIMIT_MESSAGE = "compute limit exceeded"
HOST_FAILURE_MESSAGE = "HALT: the host failed to complete a call (the node's log has the details)"

log = logging.getLogger(__name__)


class Halt(Exception):
    """Raised by a host function: ends the message with this text, whatever the Lua code does."""


class Metered(NamedTuple):
    """A host function's result and its deterministic cost, charged to the instruction budget."""

    value: Any
    cost: int

# Runs once with full privileges, then removes what untrusted code must not reach. It returns the
# functions the host keeps: the budget setter and the module loader.
SANDBOX_BOOTSTRAP = r"""
local sources, bridges, compute_message, hook_step, finalizer_budget = ...
local sethook, gethook, raw_debug_getmetatable = debug.sethook, debug.gethook, debug.getmetatable
local raw_load, raw_type, raw_error, raw_getmetatable = load, type, error, getmetatable
local co_create, co_wrap = coroutine.create, coroutine.wrap

-- compute budget: every coroutine gets the same count hook, all charge one counter. The host
-- resets `meter` directly (no Lua runs), so a tripped budget never blocks the next call.
-- `meter.halt` is the text that ends the evaluation once it is set (a tripped budget, or a host halt).
local meter = { budget = math.maxinteger, used = 0 }
local function over_budget()
  if meter.halt ~= nil then raw_error(meter.halt, 0) end
end
local function trip(message)
  meter.halt = message
  -- keep firing so a pcall cannot swallow the error and keep looping
  sethook(coroutine.running(), over_budget, "", 1)
  raw_error(message, 0)
end
local function on_count()
  meter.used = meter.used + hook_step
  if meter.halt ~= nil then trip(meter.halt) end
  if meter.used >= meter.budget then trip(compute_message) end
end
local function arm(thread) sethook(thread, on_count, "", hook_step) end
local function rearm()
  sethook()
  arm(coroutine.running())
end

-- A hook that raises the budget error suspends hooks until the error is caught (ldo.c), and Lua
-- runs the message handler of an xpcall and every __gc finalizer before that (finalizers always
-- run unhooked, lgc.c): neither may then run user code unmetered.
local raw_xpcall = xpcall
xpcall = function(f, handler, ...)
  if raw_type(handler) ~= "function" then return raw_xpcall(f, handler, ...) end
  return raw_xpcall(f, function(e)
    if meter.halt ~= nil then return e end  -- a halt (the budget error): the handler is skipped
    return handler(e)
  end, ...)
end

-- A finalizer runs in an armed coroutine with a budget of its own; one that fails or overruns it is
-- stopped there (in Lua an error in a finalizer is only a warning), so the message goes on and the
-- object, finalized once, cannot stall every later collection.
local raw_setmetatable, raw_rawget, raw_rawset, co_resume = setmetatable, rawget, rawset, coroutine.resume
local finalizers = raw_setmetatable({}, { __mode = "k" })
local function metered_finalizer(gc)
  local wrapped = function(object)
    local budget, halt = meter.budget, meter.halt
    meter.budget = math.min(budget, meter.used + finalizer_budget)
    local co = co_create(gc)
    arm(co)
    co_resume(co, object)
    meter.budget = budget
    -- the finalizer's own budget ran out, not the message's: the message goes on
    if meter.halt == compute_message and meter.used < budget then meter.halt = halt end
  end
  finalizers[wrapped] = true
  return wrapped
end
setmetatable = function(t, mt)
  if raw_type(mt) == "table" then
    local gc = raw_rawget(mt, "__gc")
    if raw_type(gc) == "function" and not finalizers[gc] then raw_rawset(mt, "__gc", metered_finalizer(gc)) end
  end
  return raw_setmetatable(t, mt)
end

coroutine.create = function(f)
  local co = co_create(f)
  arm(co)
  return co
end
coroutine.wrap = function(f)
  local co = coroutine.create(f)
  return function(...)
    local res = table.pack(coroutine.resume(co, ...))
    if not res[1] then raw_error(res[2], 0) end
    return table.unpack(res, 2, res.n)
  end
end

-- bridged host functions return ok, value[, cost[, halts]]: charge the cost, trip on a halt
local function guarded(fn)
  return function(...)
    local ok, value, cost, halts = fn(...)
    if halts then trip(value) end
    if cost ~= nil then
      meter.used = meter.used + cost
      if meter.used >= meter.budget then trip(compute_message) end
    end
    return ok, value
  end
end
local guarded_bridges = {}
for name, functions in next, bridges do
  local wrapped = {}
  for fname, fn in next, functions do wrapped[fname] = guarded(fn) end
  guarded_bridges[name] = wrapped
end
bridges = guarded_bridges

-- modules: package.preload first, then the bundled Lua sources (by name and by ".name"; a
-- trailing ".init" names the module itself) and the bridged host tables. A bundled module is
-- compiled under the chunk name ".name", so its errors read `[string ".name"]:LINE:` as in aos.
local loaded, preload = package.loaded, {}
local function find_source(name)
  local plain = name:gsub("^%.", ""):gsub("%.init$", "")
  return sources[plain], plain
end
function require(name)
  if raw_type(name) ~= "string" then raw_error("bad argument #1 to 'require' (string expected)", 2) end
  if loaded[name] ~= nil then return loaded[name] end
  local loader = preload[name]
  if loader ~= nil then
    local result = loader(name, ":preload:")
    if result == nil then result = true end
    if loaded[name] == nil then loaded[name] = result end
    return loaded[name]
  end
  local src, plain = find_source(name)
  if src == nil then raw_error("module '" .. name .. "' not found", 2) end
  if loaded[plain] ~= nil then loaded[name] = loaded[plain]; return loaded[plain] end
  local chunk = assert(raw_load(src, "." .. plain, "t", _G))
  local result = chunk(plain, bridges[plain])
  if result == nil then result = true end
  loaded[plain], loaded["." .. plain] = result, result
  return result
end

-- strip the host
python = nil
loaded.python = nil
-- of debug only what reads the caller's own code: tracebacks, and a function's parameter counts
local raw_traceback, raw_getinfo = debug.traceback, debug.getinfo
loaded.debug = nil
debug = {
  traceback = function(...)
    local first = ...
    if raw_type(first) == "thread" then return raw_traceback(...) end
    return raw_traceback(first, (select(2, ...) or 1) + 1)
  end,
  getinfo = function(fn, what)
    if raw_type(fn) ~= "function" then raw_error("bad argument #1 to 'getinfo' (function expected)", 2) end
    local info = raw_getinfo(fn, "Su")
    return { nparams = info.nparams, isvararg = info.isvararg, nups = info.nups, what = info.what,
             source = info.source, short_src = info.short_src,
             linedefined = info.linedefined, lastlinedefined = info.lastlinedefined }
  end,
}
io = nil; loaded.io = nil
dofile, loadfile = nil, nil
package.loadlib, package.cpath, package.path = nil, "", ""
package.searchers = {}
package.preload = preload
string.dump = nil
-- the heap size would tell one run from another, so "count" reports a fixed 0 KB
collectgarbage = function(opt)
  opt = opt or "collect"
  if opt == "collect" or opt == "step" then return 0 end
  if opt == "count" then return 0.0 end
  raw_error("collectgarbage('" .. tostring(opt) .. "') is not available in a process", 2)
end
load = function(chunk, name, mode, env)
  if mode ~= nil and mode ~= "t" then raw_error("only text chunks can be loaded", 2) end
  if env == nil then return raw_load(chunk, name, "t") end
  return raw_load(chunk, name, "t", env)
end
getmetatable = function(v)
  if raw_type(v) == "userdata" then return nil end
  return raw_getmetatable(v)
end

-- Objects print without their heap address: the first time a table, function, coroutine or host
-- object is shown (tostring, string.format's %s) or met as a `pairs` key, it gets the next number of
-- a per-process sequence, and prints as "table: 0x0000002a". The sequence lives in the process's
-- own state, so the same message log numbers the same objects the same way on every node.
local raw_tostring, raw_format, raw_next, raw_rawget = tostring, string.format, next, rawget
local sort, concat = table.sort, table.concat
local object_ids = setmetatable({}, { __mode = "k" })
local last_object_id = 0
local function object_id(v)
  local id = object_ids[v]
  if id == nil then
    last_object_id = last_object_id + 1
    id = last_object_id
    object_ids[v] = id
  end
  return id
end
local ADDRESSED = { table = true, ["function"] = true, thread = true, userdata = true }
tostring = function(v)
  local kind = raw_type(v)
  -- C's printf writes "-nan" or "nan" depending on the NaN's sign bit, which differs between CPUs
  if v ~= v then return "nan" end
  if not ADDRESSED[kind] then return raw_tostring(v) end
  local name = kind
  -- a table's own __tostring and __name count; a host object's metatable is the host's, never called
  local mt = kind == "table" and raw_debug_getmetatable(v) or nil
  if mt ~= nil then
    local to_string = raw_rawget(mt, "__tostring")
    if to_string ~= nil then
      local text = to_string(v)
      if raw_type(text) ~= "string" then raw_error("'__tostring' must return a string", 2) end
      return text
    end
    if raw_type(raw_rawget(mt, "__name")) == "string" then name = raw_rawget(mt, "__name") end
  end
  return raw_format("%s: 0x%08x", name, object_id(v))
end
local function printable_args(...)
  local args = table.pack(...)
  for i = 1, args.n do
    if ADDRESSED[raw_type(args[i])] then args[i] = tostring(args[i]) end
  end
  return table.unpack(args, 1, args.n)
end
string.format = function(fmt, ...)
  for i = 1, select("#", ...) do
    if ADDRESSED[raw_type((select(i, ...)))] then return raw_format(fmt, printable_args(...)) end
  end
  return raw_format(fmt, ...)
end

-- pairs in a fixed order: Lua seeds its string hashes from addresses and the clock, and places
-- table and function keys by address, so the raw traversal order differs between OS processes.
-- Numbers, then strings, then booleans, each sorted; then tables, functions, coroutines and host
-- objects, each in the order of their sequence numbers. Keys a traversal meets unnumbered are
-- numbered first, ordered by what they hold (a table's plain keys and values, a function's
-- definition), so only unnumbered keys that are alike in that are met in an unspecified order.
local type_rank = { number = 1, string = 2, boolean = 3, table = 4, ["function"] = 5, thread = 6, userdata = 7 }
local PLAIN = { number = true, string = true, boolean = true }
local function key_less(a, b)
  local ta, tb = raw_type(a), raw_type(b)
  if ta ~= tb then return type_rank[ta] < type_rank[tb] end
  if ta == "number" or ta == "string" then return a < b end
  if ta == "boolean" then return (not a) and b end
  return object_ids[a] < object_ids[b]
end
local function content_signature(v)
  local kind = raw_type(v)
  if kind == "function" then
    local info = raw_getinfo(v, "S")
    return info.source .. ":" .. info.linedefined
  end
  if kind ~= "table" then return "" end
  local parts = {}
  for k, x in raw_next, v do
    if PLAIN[raw_type(k)] then
      local shown = PLAIN[raw_type(x)] and raw_tostring(x) or raw_type(x)
      parts[#parts + 1] = raw_type(k) .. ":" .. raw_tostring(k) .. "=" .. raw_type(x) .. ":" .. shown
    end
  end
  sort(parts)
  return concat(parts, "\0")
end
local function number_new_keys(keys)
  local fresh, signatures = {}, {}
  for _, k in ipairs(keys) do
    if not PLAIN[raw_type(k)] and object_ids[k] == nil then
      fresh[#fresh + 1] = k
      signatures[k] = raw_type(k) .. "\0" .. content_signature(k)
    end
  end
  if #fresh == 0 then return end
  sort(fresh, function(a, b) return signatures[a] < signatures[b] end)
  for _, k in ipairs(fresh) do object_id(k) end
end
local function sorted_keys(t)
  local keys, n, plain = {}, 0, true
  for k in raw_next, t do
    n = n + 1; keys[n] = k
    if plain and not PLAIN[raw_type(k)] then plain = false end
  end
  if not plain then number_new_keys(keys) end
  sort(keys, key_less)
  return keys
end
pairs = function(t)
  local mt = raw_getmetatable(t)
  if mt ~= nil and raw_type(mt) == "table" and mt.__pairs then return mt.__pairs(t) end
  local keys = sorted_keys(t)
  local i = 0
  return function(tbl)
    while true do
      i = i + 1
      local k = keys[i]
      if k == nil then return nil end
      local v = raw_rawget(tbl, k)
      if v ~= nil then return k, v end  -- fields cleared during the traversal are skipped
    end
  end, t, nil
end

-- next visits keys in pairs' order too. Its first step finds the first key in one pass (so an emptiness
-- test, next(t) == nil, sorts nothing); the second sorts the keys and keeps the order, weakly, for the
-- steps after it
local next_orders = setmetatable({}, { __mode = "k" })
local function first_key(t)
  local first, plain = raw_next(t), true
  for k in raw_next, t do
    if not PLAIN[raw_type(k)] then plain = false break end
  end
  if not plain then return sorted_keys(t)[1] end  -- numbers the keys first, as pairs does
  for k in raw_next, t do
    if key_less(k, first) then first = k end
  end
  return first
end
local function after(keys, k)  -- the position of the first of the sorted keys that comes after k
  local low, high = 1, #keys + 1
  while low < high do
    local middle = (low + high) // 2
    if key_less(k, keys[middle]) then high = middle else low = middle + 1 end
  end
  return low
end
next = function(t, k)
  if raw_type(t) ~= "table" then error("bad argument #1 to 'next' (table expected, got " .. raw_type(t) .. ")", 2) end
  if k == nil then
    next_orders[t] = nil
    local first = first_key(t)
    if first == nil then return nil end
    return first, raw_rawget(t, first)
  end
  local order = next_orders[t]
  local at = order and order.index[k]
  if at == nil then  -- the second step, or a key from another traversal
    local keys, index = sorted_keys(t), {}
    for i = 1, #keys do index[keys[i]] = i end
    order = { keys = keys, index = index }
    next_orders[t] = order
    at = index[k] or after(keys, k) - 1  -- k may have been cleared since the step that returned it
  end
  local keys = order.keys
  for i = at + 1, #keys do
    local key = keys[i]
    local v = raw_rawget(t, key)
    if v ~= nil then return key, v end  -- fields cleared during the traversal are skipped
  end
  return nil
end

local safe_os = {}
local raw_time, raw_date = os.time, os.date
safe_os.difftime = os.difftime
-- the process library replaces os.time with the message's timestamp; a table argument converts in UTC
safe_os.time = function(t) if t == nil then return 0 end return raw_time(t) end
-- os.time() is the message timestamp in milliseconds, as in aos
safe_os.date = function(fmt, t) return raw_date(fmt, t or os.time() // 1000) end
safe_os.clock = function() return meter.used / 1e9 end
os = safe_os; loaded.os = safe_os

-- WeaveDrive's virtual files: io.open("/data/ID"), "/tx/ID", "/block/H"
io = {
  open = function(path, mode)
    return require("weavedrive").io_open(path, mode)
  end,
}

return meter, rearm
"""


def _deny_attribute(obj, name, is_setting):
    raise AttributeError("host objects have no accessible attributes")


def lua_sources(package: str) -> dict[bytes, bytes]:
    """The Lua modules in a package's ``lua/`` folder: module name -> source."""
    root = importlib.resources.files(package) / "lua"
    return {
        entry.name[: -len(".lua")].encode(): entry.read_bytes()
        for entry in root.iterdir()
        if entry.name.endswith(".lua")
    }


def bundled_sources() -> dict[bytes, bytes]:
    """The aos process library shipped with the sandbox."""
    return lua_sources("tfao.sandbox")


class LuaVM:
    """A sandboxed Lua 5.3 runtime with bundled modules, bridged host modules and limits."""

    def __init__(
        self,
        *,
        memory_limit: int | None = None,
        bridges: Mapping[str, Mapping[str, Callable]] | None = None,
        sources: Mapping[bytes, bytes] | None = None,
    ):
        self.lua = lupa.LuaRuntime(
            encoding=None,
            unpack_returned_tuples=True,
            register_eval=False,
            register_builtins=False,
            attribute_filter=_deny_attribute,
            max_memory=memory_limit,
        )
        bridge_tables = self.lua.table_from(
            {name.encode(): self._bridge_table(functions) for name, functions in (bridges or {}).items()}
        )
        source_table = self.lua.table_from(dict(sources if sources is not None else bundled_sources()))
        # named, so that tracebacks through the sandbox's wrappers show a name, not the source
        bootstrap = self.lua.globals()[b"load"](SANDBOX_BOOTSTRAP.encode(), b"=sandbox")
        self._meter, self._rearm = bootstrap(
            source_table, bridge_tables, COMPUTE_LIMIT_MESSAGE.encode(), HOOK_STEP, FINALIZER_BUDGET
        )

    def _bridge_table(self, functions: Mapping[str, Callable]):
        return self.lua.table_from({name.encode(): self._bridge(fn) for name, fn in functions.items()})

    def _bridge(self, fn: Callable) -> Callable:
        """Wrap a host function: plain values in, ``(true, value)`` or ``(false, message)`` out."""

        def call(*args):
            try:
                allowance = HostAllowance()
                result = fn(*(to_python(a, allowance=allowance) for a in args))
            except Halt as exc:
                return False, str(exc).encode(), None, True
            except (ValueError, TypeError) as exc:  # input validation: fixed wording, the same on every node
                return False, str(exc).encode()
            except Exception:  # OS, memory, bugs: their text varies by machine, so it stays in the log
                log.exception("host function %s failed", getattr(fn, "__name__", "?"))
                return False, HOST_FAILURE_MESSAGE.encode(), None, True
            if isinstance(result, Metered):
                return True, to_lua(self.lua, result.value), int(result.cost)
            return True, to_lua(self.lua, result)

        return call

    def require(self, name: str):
        return self.lua.globals()[b"require"](name.encode())

    def execute(self, code: str):
        return self.lua.execute(code.encode())

    def set_compute_limit(self, instructions: int | None) -> None:
        """Start a fresh instruction budget for the next call (None: unlimited)."""
        self._meter[b"used"] = 0
        self._meter[b"budget"] = instructions if instructions is not None else 2**63 - 1
        self._meter[b"halt"] = None
        self._rearm()

    def halt_message(self) -> str | None:
        """The text that ended the last call, if a halt or the budget ended it (even if Lua caught it)."""
        halt = self._meter[b"halt"]
        return None if halt is None else halt.decode("utf-8", "replace")


class HostAllowance:
    """What one bridge call may still pass to the host: shared sub-tables are copied each time they
    appear, so a table nested in itself 22 times would expand to millions of values. A large string
    met again (the same model bytes under two keys) is passed once and charged once."""

    def __init__(self, values: int = MAX_HOST_VALUES, size: int = MAX_HOST_BYTES):
        self.values, self.size = values, size
        self.large: dict[bytes, bytes] = {}

    def charge(self, value: Any) -> Any:
        """The value to pass (one copy of each large string), once it fits what is left."""
        self.values -= 1
        if isinstance(value, bytes):
            if len(value) >= SHARED_STRING_BYTES:
                first = self.large.setdefault(value, value)
                if first is not value:
                    value, self.size = first, self.size + len(value)
            self.size -= len(value)
        if self.values < 0 or self.size < 0:
            raise ValueError(f"the value is too large to pass to the host "
                             f"(at most {MAX_HOST_VALUES} values and {MAX_HOST_BYTES} bytes of strings)")
        return value


def to_python(value: Any, depth: int = 0, allowance: HostAllowance | None = None) -> Any:
    """Lua value -> plain Python: sequence tables -> list, other tables -> dict with str keys."""
    allowance = allowance or HostAllowance()
    value = allowance.charge(value)
    if lupa.lua_type(value) == "table":
        if depth > MAX_TABLE_DEPTH:
            raise ValueError("table nesting too deep (or cyclic)")
        items = [(to_python(k, depth + 1, allowance), to_python(v, depth + 1, allowance)) for k, v in value.items()]
        keys = [k for k, _ in items]
        if keys and all(isinstance(k, int) for k in keys) and sorted(keys) == list(range(1, len(keys) + 1)):
            return [v for _, v in sorted(items, key=lambda kv: kv[0])]
        return {(k.decode("utf-8", "replace") if isinstance(k, bytes) else k): v for k, v in items}
    if lupa.lua_type(value) is not None:
        raise ValueError(f"a Lua {lupa.lua_type(value)} cannot be passed to the host")
    return value


def to_lua(lua: lupa.LuaRuntime, value: Any) -> Any:
    """Plain Python -> Lua: dict/list -> tables, str -> bytes, numpy -> numbers; Blob stays opaque."""
    if value is None or isinstance(value, (bool, bytes, Blob)):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, np.ndarray):
        return to_lua(lua, value.astype(np.float64).tolist() if value.dtype.kind == "f" else value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, numbers.Number):
        return value
    if isinstance(value, Mapping):
        return lua.table_from({to_lua(lua, k): to_lua(lua, v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return lua.table_from([to_lua(lua, v) for v in value])
    raise TypeError(f"cannot pass a {type(value).__name__} to Lua")
