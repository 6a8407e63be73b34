-- stringify.format(value): a coloured, indented, readable rendering of Lua values, as aos prints
-- tables. Keys are listed in sorted order and functions print without their address, so the same
-- value always renders the same text.
local stringify = { _version = "1.0.0" }

local colors = {
  red = "\27[31m",
  green = "\27[32m",
  blue = "\27[34m",
  reset = "\27[0m",
}
stringify.colors = colors

local function scalar(value)
  local kind = type(value)
  if kind == "string" then return colors.green .. '"' .. value .. '"' .. colors.reset end
  if kind == "number" or kind == "boolean" then return colors.blue .. tostring(value) .. colors.reset end
  if kind == "nil" then return colors.red .. "nil" .. colors.reset end
  if kind == "function" then return "function: builtin" end
  return "<" .. kind .. ">"
end

-- array items first (1..#t), then the other keys sorted (numbers before strings)
local function entries(t)
  local n = #t
  local rest = {}
  for k in pairs(t) do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then rest[#rest + 1] = k end
  end
  table.sort(rest, function(a, b)
    local ta, tb = type(a), type(b)
    if ta == tb and (ta == "number" or ta == "string") then return a < b end
    if ta ~= tb then return ta < tb end
    return tostring(a) < tostring(b)
  end)
  return n, rest
end

function stringify.isSimpleArray(t)
  local n, rest = entries(t)
  if #rest > 0 then return false end
  for i = 1, n do
    if type(t[i]) == "table" then return false end
  end
  return true
end

function stringify.format(value, indent, visited)
  if type(value) ~= "table" then return scalar(value) end
  indent = indent or 0
  visited = visited or {}
  if visited[value] then return "<circular reference>" end
  if next(value) == nil then return "{}" end

  local n, rest = entries(value)
  if stringify.isSimpleArray(value) then
    local items = {}
    for i = 1, n do items[i] = scalar(value[i]) end
    return "{ " .. table.concat(items, ", ") .. " }"
  end

  visited[value] = true
  local pad = string.rep(" ", indent + 2)
  local lines = {}
  for i = 1, n do
    lines[#lines + 1] = pad .. stringify.format(value[i], indent + 2, visited)
  end
  for _, k in ipairs(rest) do
    local key = colors.red .. tostring(k) .. colors.reset
    lines[#lines + 1] = pad .. key .. " = " .. stringify.format(value[k], indent + 2, visited)
  end
  visited[value] = nil
  return "{\n" .. table.concat(lines, ",\n") .. "\n" .. string.rep(" ", indent) .. "}"
end

return stringify
