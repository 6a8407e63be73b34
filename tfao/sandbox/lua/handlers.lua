-- Handlers: the ordered list of (name, pattern, handle) that every message is evaluated against.
--
-- A pattern's result decides what happens: true, -1 or "break" runs the handler and stops;
-- 1 or "continue" runs it and goes on; false, 0, "skip" (or any other string) skips it. The
-- `_default` handler runs last, only when no handler stopped the evaluation.
local utils = require(".utils")

local handlers = { _version = "1.0.0" }

handlers.utils = require(".handlers-utils")
-- re-requiring the module keeps the handlers a process already has
handlers.list = Handlers and Handlers.list or {}
handlers.coroutines = Handlers and Handlers.coroutines or {}
handlers.onceNonce = Handlers and Handlers.onceNonce or 0

local function index_of(name)
  for i, entry in ipairs(handlers.list) do
    if entry.name == name then return i end
  end
  return nil
end

local function check_args(name, pattern, handle, maxRuns)
  local pattern_kind, handle_kind = type(pattern), type(handle)
  assert(type(name) == "string"
    and (pattern_kind == "function" or pattern_kind == "table" or pattern_kind == "string")
    and (handle_kind == "function" or handle_kind == "table")
    and (maxRuns == nil or maxRuns == "inf" or math.type(maxRuns) == "integer"),
    "Invalid arguments given. Expected:\n" ..
    "\tname : string,\n" ..
    "\tpattern : Action : string | MsgMatch : table | function(msg) : true | 1 | 0 | -1 | 'break' | 'continue' | 'skip',\n" ..
    "\thandle : function(msg, env) | Resolver : { [MsgMatch] = function(msg, env) },\n" ..
    "\tmaxRuns? : number | \"inf\" | nil")
end

-- the order in which a resolver's entries are tried: string specs sorted, then the others
local function resolver_order(spec)
  local named, others = {}, {}
  for key in pairs(spec) do
    if type(key) == "string" then named[#named + 1] = key else others[#others + 1] = key end
  end
  table.sort(named)
  for _, key in ipairs(others) do named[#named + 1] = key end
  return named
end

-- A handle may be a resolver: { [matchSpec] = fn, ... }; the first entry that matches runs.
function handlers.generateResolver(resolveSpec)
  if type(resolveSpec) == "function" then return resolveSpec end
  return function(msg, env)
    for _, spec in ipairs(resolver_order(resolveSpec)) do
      if utils.matchesSpec(msg, spec) then return resolveSpec[spec](msg, env) end
    end
  end
end

-- (name, pattern, handle[, maxRuns]) or (name, handle): the name is then the Action pattern
local function add_args(...)
  if select("#", ...) == 2 then
    local name, handle = ...
    return name, name, handle, nil
  end
  return ...
end

-- Adds a handler at `position`, or updates the one with the same name in place.
local function put(position, name, pattern, handle, maxRuns)
  check_args(name, pattern, handle, maxRuns)
  handle = handlers.generateResolver(handle)
  local idx = index_of(name)
  if idx then
    local entry = handlers.list[idx]
    entry.pattern, entry.handle, entry.maxRuns = pattern, handle, maxRuns
  else
    local entry = { name = name, pattern = pattern, handle = handle, maxRuns = maxRuns }
    table.insert(handlers.list, position(), entry)
  end
  return #handlers.list
end

local function at_end() return #handlers.list + 1 end
local function at_front() return 1 end

-- add returns the number of handlers; append, prepend and once return nothing, as in aos
function handlers.add(...)
  return put(at_end, add_args(...))
end

function handlers.append(...)
  put(at_end, add_args(...))
end

function handlers.prepend(...)
  put(at_front, add_args(...))
end

-- (name, pattern, handle) or (pattern, handle): runs once, ahead of the other handlers
function handlers.once(...)
  local name, pattern, handle
  if select("#", ...) == 3 then
    name, pattern, handle = ...
  else
    name = "_once_" .. tostring(handlers.onceNonce)
    handlers.onceNonce = handlers.onceNonce + 1
    pattern, handle = ...
  end
  put(at_front, name, pattern, handle, 1)
end

-- Handlers.before("name").add(...) / Handlers.after("name").add(...): place next to a handler;
-- when no handler has that name, add does nothing (as in aos)
local function relative_to(target, offset)
  assert(type(target) == "string", "Handler name MUST be a string")
  return {
    add = function(...)
      local idx = index_of(target)
      if idx then put(function() return idx + offset end, add_args(...)) end
    end,
  }
end

function handlers.before(name) return relative_to(name, 0) end
function handlers.after(name) return relative_to(name, 1) end

function handlers.remove(name)
  assert(type(name) == "string", "name MUST be string")
  local idx = index_of(name)
  if idx then table.remove(handlers.list, idx) end
end

-- Suspends the running handler until a message matching `pattern` arrives, and returns it.
-- The waiting code then runs while that later message is handled; its errors fail that message.
function handlers.receive(pattern)
  local waiting = coroutine.running()
  handlers.once(pattern, function(msg)
    local ok, err = coroutine.resume(waiting, msg)
    if not ok then error(err, 0) end
  end)
  return coroutine.yield(pattern)
end

local function match_code(match)
  local kind = type(match)
  if kind == "boolean" then return match and -1 or 0 end
  if kind == "number" then return match end
  if kind == "string" then
    if match == "break" then return -1 end
    if match == "continue" then return 1 end
    return 0
  end
  error("Pattern result is not valid, it MUST be string, number, or boolean")
end

local function is_listed(entry)
  for _, listed in ipairs(handlers.list) do
    if listed == entry then return true end
  end
  return false
end

local function count_run(entry)
  if math.type(entry.maxRuns) ~= "integer" then return end
  entry.maxRuns = entry.maxRuns - 1
  if entry.maxRuns <= 0 then
    for i, listed in ipairs(handlers.list) do
      if listed == entry then table.remove(handlers.list, i) break end
    end
  end
end

-- Runs the handlers that match `msg`, in order. Handlers added while evaluating wait for the next
-- message; handlers removed while evaluating no longer run.
function handlers.evaluate(msg, env)
  assert(type(msg) == "table", "msg is not valid")
  assert(type(env) == "table", "env is not valid")
  local stopped = false
  for _, entry in ipairs(table.move(handlers.list, 1, #handlers.list, 1, {})) do
    if entry.name ~= "_default" and is_listed(entry) then
      local code = match_code(utils.matchesSpec(msg, entry.pattern))
      if code ~= 0 then
        -- re-raised from here, a handler's error reads `[string ".handlers"]:N: <its error>` as in aos
        local ok, err = pcall(entry.handle, msg, env)
        if not ok then error(err) end
        count_run(entry)
        if code < 0 then
          stopped = true
          break
        end
      end
    end
  end
  if not stopped then
    local idx = index_of("_default")
    if idx then handlers.list[idx].handle(msg, env) end
  end
end

return handlers
