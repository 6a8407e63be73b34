-- stringify.format(table): the coloured, indented rendering aos prints tables with.
--
-- A table of only strings and numbers at 1..n prints on one line, `{ 1, "a" }` (an empty table is
-- `{  }`); other arrays print one item per line indented two spaces, closing with ` }`; maps print
-- `key = value` lines indented three spaces, in `pairs` order. Strings are green and quoted, keys
-- red, other values blue through tostring. A table met again inside its own entries prints as
-- <circular reference>. Unlike aos, the array items of a table that also has other keys are kept
-- (as `1 = ...` lines) instead of being dropped.
local stringify = { _version = "0.0.1" }

local colors = {
  red = "\27[31m",
  green = "\27[32m",
  blue = "\27[34m",
  reset = "\27[0m",
}
stringify.colors = colors

local function scalar(value)
  if type(value) == "string" then return colors.green .. '"' .. value .. '"' .. colors.reset end
  return colors.blue .. tostring(value) .. colors.reset
end

function stringify.isSimpleArray(tbl)
  local index = 1
  for k, v in pairs(tbl) do
    if k ~= index or (type(v) ~= "number" and type(v) ~= "string") then return false end
    index = index + 1
  end
  return true
end

local function is_array(tbl)
  local index = 1
  for k in pairs(tbl) do
    if k ~= index then return false end
    index = index + 1
  end
  return true
end

function stringify.format(tbl, indent, visited)
  if type(tbl) ~= "table" then return scalar(tbl) end
  indent = indent or 0
  local pad, child_pad = string.rep(" ", indent), string.rep(" ", indent + 2)
  local items = {}
  if stringify.isSimpleArray(tbl) then
    for _, v in ipairs(tbl) do items[#items + 1] = scalar(v) end
    return "{ " .. table.concat(items, ", ") .. " }"
  end
  if is_array(tbl) then
    for _, v in ipairs(tbl) do
      items[#items + 1] = child_pad .. (type(v) == "table" and stringify.format(v, indent + 2) or scalar(v))
    end
    return "{\n" .. table.concat(items, ",\n") .. "\n" .. pad .. " }"
  end
  for k, v in pairs(tbl) do
    if type(v) == "table" then
      visited = visited or {}
      if visited[v] then return "<circular reference>" end
      visited[v] = true
      v = stringify.format(v, indent + 2, visited)
    else
      v = scalar(v)
    end
    items[#items + 1] = child_pad .. colors.red .. tostring(k) .. colors.reset .. " = " .. v
  end
  return "{\n " .. table.concat(items, ",\n ") .. "\n" .. pad .. "}"
end

return stringify
