-- Utils: small functional helpers and the message matching used by Handlers (aos-compatible).
--
-- List helpers are curried like aos's: Utils.map(fn)(list) and Utils.map(fn, list) both work.
local utils = { _version = "1.0.0" }

-- Calls fn once `arity` arguments have been collected, over one or several calls.
function utils.curry(fn, arity)
  assert(type(fn) == "function", "function is required as first argument")
  arity = arity or 2
  if arity < 2 then return fn end
  return function(...)
    local args = { ... }
    if #args >= arity then return fn(table.unpack(args, 1, arity)) end
    return utils.curry(function(...)
      local rest = { table.unpack(args) }
      for _, v in ipairs({ ... }) do rest[#rest + 1] = v end
      return fn(table.unpack(rest, 1, arity))
    end, arity - #args)
  end
end

function utils.isArray(t)
  if type(t) ~= "table" then return false end
  local count = 0
  for k in pairs(t) do
    if math.type(k) ~= "integer" or k < 1 then return false end
    count = count + 1
  end
  return count == #t
end

utils.concat = utils.curry(function(a, b)
  assert(utils.isArray(a) and utils.isArray(b), "both arguments must be arrays")
  local result = {}
  for _, v in ipairs(a) do result[#result + 1] = v end
  for _, v in ipairs(b) do result[#result + 1] = v end
  return result
end, 2)

utils.reduce = utils.curry(function(fn, initial, list)
  assert(type(fn) == "function", "first argument should be a function")
  assert(utils.isArray(list), "third argument should be an array")
  local acc = initial
  for i, v in ipairs(list) do
    if i == 1 and acc == nil then acc = v else acc = fn(acc, v, i) end
  end
  return acc
end, 3)

utils.map = utils.curry(function(fn, list)
  assert(type(fn) == "function", "first argument should be a function")
  assert(utils.isArray(list), "second argument should be an array")
  local result = {}
  for i, v in ipairs(list) do result[i] = fn(v, i) end
  return result
end, 2)

utils.filter = utils.curry(function(fn, list)
  assert(type(fn) == "function", "first argument should be a function")
  assert(utils.isArray(list), "second argument should be an array")
  local result = {}
  for _, v in ipairs(list) do
    if fn(v) then result[#result + 1] = v end
  end
  return result
end, 2)

utils.find = utils.curry(function(fn, list)
  assert(type(fn) == "function", "first argument should be a function")
  for _, v in ipairs(list) do
    if fn(v) then return v end
  end
  return nil
end, 2)

utils.includes = utils.curry(function(value, list)
  for _, v in ipairs(list) do
    if v == value then return true end
  end
  return false
end, 2)

utils.propEq = utils.curry(function(name, value, object)
  return object[name] == value
end, 3)

utils.prop = utils.curry(function(name, object)
  return object[name]
end, 2)

function utils.reverse(list)
  local result = {}
  for i = #list, 1, -1 do result[#result + 1] = list[i] end
  return result
end

-- compose(f, g, h)(x) == f(g(h(x)))
function utils.compose(...)
  local fns = { ... }
  return function(value)
    for i = #fns, 1, -1 do value = fns[i](value) end
    return value
  end
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    if type(a) == type(b) and (type(a) == "string" or type(a) == "number") then return a < b end
    return type(a) < type(b)
  end)
  return keys
end
utils.keys = sorted_keys

function utils.values(t)
  local result = {}
  for _, k in ipairs(sorted_keys(t)) do result[#result + 1] = t[k] end
  return result
end

-- Title-cases a tag or field name: `_` -> `-`, lower case, then upper case the first letter and
-- every letter after a `-` ("data_PROTOCOL" -> "Data-Protocol", "SDK" -> "Sdk").
function utils.normalize(name)
  local lowered = name:gsub("_", "-"):lower()
  return (lowered:gsub("^%l", string.upper):gsub("%-%l", string.upper))
end

-- Lua pattern magic characters: a string spec containing one is matched as a pattern.
local PATTERN_CHARS = "[%^%$%(%)%%%.%[%]%*%+%?]"

-- Lower-cases the literal letters of a Lua pattern, leaving `%a`-style classes alone.
local function lower_pattern(pattern)
  return (pattern:gsub("(%%?)(%a)", function(escape, letter)
    if escape == "" then return letter:lower() end
    return escape .. letter
  end))
end

-- Strings match case-insensitively: exactly, or as a Lua pattern when they contain one.
local function matches_string(pattern, value)
  local kind = type(value)
  if kind ~= "string" and kind ~= "number" then return false end
  value = tostring(value)
  if pattern:find(PATTERN_CHARS) then
    return value:match(pattern) ~= nil or value:lower():match(lower_pattern(pattern)) ~= nil
  end
  return value:lower() == pattern:lower()
end

-- One value against one spec entry: '_' (present), a function(value, msg), a string, or a table
-- of alternatives (any may match).
function utils.matchesPattern(pattern, value, msg)
  if pattern == nil then return false end
  if pattern == "_" then return true end
  local kind = type(pattern)
  if kind == "function" then return pattern(value, msg) and true or false end
  if kind == "string" then return matches_string(pattern, value) end
  if kind == "table" then
    for _, alternative in ipairs(utils.keys(pattern)) do
      if utils.matchesPattern(pattern[alternative], value, msg) then return true end
    end
    return false
  end
  return pattern == value
end

-- A whole message against a spec: a function(msg) (its result is returned as is), an Action
-- name, or a table whose every key must be on the message root and match.
function utils.matchesSpec(msg, spec)
  local kind = type(spec)
  if kind == "function" then return spec(msg) end
  if kind == "string" then return msg.Action ~= nil and msg.Action == spec end
  if kind == "table" then
    for key, pattern in pairs(spec) do
      if msg[key] == nil then return false end
      if not utils.matchesPattern(pattern, msg[key], msg) then return false end
    end
    return true
  end
  return false
end

return utils
