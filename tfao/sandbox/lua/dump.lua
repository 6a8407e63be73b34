-- Dump(value): a plain (uncoloured) Lua-syntax rendering of a value, keys sorted, used for the
-- `test` field of Eval output and for inspecting state.
local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    local ta, tb = type(a), type(b)
    if ta == tb and (ta == "number" or ta == "string") then return a < b end
    if ta ~= tb then return ta < tb end
    return tostring(a) < tostring(b)
  end)
  return keys
end

local function is_identifier(k)
  return type(k) == "string" and k:match("^[%a_][%w_]*$") ~= nil
end

local dump

local function dump_table(t, indent, visited)
  if visited[t] then return '"<circular reference>"' end
  if next(t) == nil then return "{}" end
  visited[t] = true
  local pad = string.rep("  ", indent + 1)
  local lines, n = {}, #t
  for i = 1, n do lines[#lines + 1] = pad .. dump(t[i], indent + 1, visited) end
  for _, k in ipairs(sorted_keys(t)) do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then
      local key = is_identifier(k) and k or "[" .. dump(k, indent + 1, visited) .. "]"
      lines[#lines + 1] = pad .. key .. " = " .. dump(t[k], indent + 1, visited)
    end
  end
  visited[t] = nil
  return "{\n" .. table.concat(lines, ",\n") .. "\n" .. string.rep("  ", indent) .. "}"
end

dump = function(value, indent, visited)
  local kind = type(value)
  if kind == "string" then return string.format("%q", value) end
  if kind == "number" or kind == "boolean" or kind == "nil" then return tostring(value) end
  if kind == "table" then return dump_table(value, indent or 0, visited or {}) end
  return '"<' .. kind .. '>"'
end

return function(value) return dump(value) end
