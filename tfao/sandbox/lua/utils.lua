-- Utils: small functional helpers and the message matching used by Handlers (aos-compatible).
--
-- List helpers are curried like aos's: Utils.map(fn)(list) and Utils.map(fn, list) both work.
local utils = { _version = "1.0.0" }

-- the number of fixed parameters of a Lua function (0 for a C function)
local parameter_count = debug.getinfo and function(fn) return debug.getinfo(fn, "u").nparams end

-- Calls fn once `arity` arguments (default: fn's parameter count) have been collected, over one
-- or several calls; the call that completes them passes every argument given.
function utils.curry(fn, arity)
  assert(type(fn) == "function", "function is required as first argument")
  arity = arity or parameter_count(fn)
  if arity < 2 then return fn end
  return function(...)
    local args = table.pack(...)
    if args.n >= arity then return fn(...) end
    return utils.curry(function(...)
      local all = table.move(args, 1, args.n, 1, {})
      local more = table.pack(...)
      table.move(more, 1, more.n, args.n + 1, all)
      return fn(table.unpack(all, 1, args.n + more.n))
    end, arity - args.n)
  end
end

-- a table whose keys are exactly 1..#t
local function is_array(t)
  if type(t) ~= "table" then return false end
  local count = 0
  for k in pairs(t) do
    if math.type(k) ~= "integer" or k < 1 then return false end
    count = count + 1
  end
  return count == #t
end
utils.isArray = is_array

function utils.capitalize(str)
  if type(str) ~= "string" or str == "" then return str end
  return str:sub(1, 1):upper() .. str:sub(2):lower()
end

utils.concat = utils.curry(function(a, b)
  assert(type(a) == "table", "first argument should be a table that is an array")
  assert(type(b) == "table", "second argument should be a table that is an array")
  assert(is_array(a), "first argument should be a table")
  assert(is_array(b), "second argument should be a table")
  return table.move(b, 1, #b, #a + 1, table.move(a, 1, #a, 1, {}))
end, 2)

-- fn(result, value, key) over the array; a nil `initial` starts from the first value
utils.reduce = utils.curry(function(fn, initial, t)
  assert(type(fn) == "function", "first argument should be a function that accepts (result, value, key)")
  assert(type(t) == "table" and is_array(t), "third argument should be a table that is an array")
  local result = initial
  for k, v in ipairs(t) do
    if result == nil then result = v else result = fn(result, v, k) end
  end
  return result
end, 3)

utils.map = utils.curry(function(fn, data)
  assert(type(fn) == "function", "first argument should be a unary function")
  assert(type(data) == "table" and is_array(data), "second argument should be an Array")
  local result = {}
  for k, v in ipairs(data) do result[k] = fn(v, k) end
  return result
end, 2)

utils.filter = utils.curry(function(fn, data)
  assert(type(fn) == "function", "first argument should be a unary function")
  assert(type(data) == "table" and is_array(data), "second argument should be an Array")
  local result = {}
  for _, v in ipairs(data) do
    if fn(v) then result[#result + 1] = v end
  end
  return result
end, 2)

-- the first value (in `pairs` order: an array in order, a map in key order) that fn accepts
utils.find = utils.curry(function(fn, t)
  assert(type(fn) == "function", "first argument should be a unary function")
  assert(type(t) == "table", "second argument should be a table that is an array")
  for _, v in pairs(t) do
    if fn(v) then return v end
  end
  return nil
end, 2)

utils.propEq = utils.curry(function(propName, value, object)
  assert(type(propName) == "string", "first argument should be a string")
  assert(type(value) == "string", "second argument should be a string")
  assert(type(object) == "table", "third argument should be a table<object>")
  return object[propName] == value
end, 3)

function utils.reverse(data)
  assert(type(data) == "table", "argument needs to be a table that is an array")
  local result = {}
  for i = #data, 1, -1 do result[#result + 1] = data[i] end
  return result
end

-- compose(f, g, h)(x) == f(g(h(x))); curried, so compose(f)(g) works too
utils.compose = utils.curry(function(...)
  local fns = table.pack(...)
  for i = 1, fns.n do assert(type(fns[i]) == "function", "each argument needs to be a function") end
  return function(value)
    for i = fns.n, 1, -1 do value = fns[i](value) end
    return value
  end
end, 2)

utils.prop = utils.curry(function(propName, object)
  return object[propName]
end, 2)

utils.includes = utils.curry(function(val, t)
  assert(type(t) == "table", "argument needs to be a table")
  assert(is_array(t), "argument should be a table that is an array")
  return utils.find(function(v) return v == val end, t) ~= nil
end, 2)

-- keys and values in `pairs` order (numbers, then strings, each sorted)
function utils.keys(t)
  assert(type(t) == "table", "argument needs to be a table")
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  return keys
end

function utils.values(t)
  assert(type(t) == "table", "argument needs to be a table")
  local values = {}
  for _, v in pairs(t) do values[#values + 1] = v end
  return values
end

-- Title-cases a tag or field name: `_` -> `-`, lower case, then upper case the first letter and
-- every letter after a `-` ("data_PROTOCOL" -> "Data-Protocol", "SDK" -> "Sdk").
function utils.normalize(name)
  if type(name) ~= "string" then return name end
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
