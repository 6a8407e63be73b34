-- Dump(value[, indent[, padding]]): a Lua-syntax rendering of a value, as aos's Dump writes it
-- (used for the `test` field of Eval output).
--
-- Tables list their entries one per line, indented `indent` spaces (4) per level after `padding`
-- (0): number keys first, then the others, each sorted; `[1] = ...` for numbers and booleans,
-- bare names for identifiers, `["..."]` for other strings. Strings are %q-quoted; functions and
-- other values print as their quoted tostring; a table inside itself as "<Circular table: ...>".
-- A value that is not a table prints as its quoted tostring.
local RESERVED = {}
for word in ("and break do else elseif end false for function goto if in local nil not or repeat "
  .. "return then true until while"):gmatch("%a+") do RESERVED[word] = true end

local function entry_less(a, b)
  if a.kind == b.kind then
    if a.kind == "boolean" then return b.key end
    return a.key < b.key
  end
  return a.kind == "number"
end

local dump_table

local function dump_value(value, indent, nest, circular)
  local kind = type(value)
  if kind == "number" or kind == "boolean" then return tostring(value) end
  if kind == "string" then return string.format("%q", value) end
  if kind == "table" then return dump_table(value, indent, nest, circular) end
  return string.format("%q", tostring(value))
end

dump_table = function(tbl, indent, nest, circular)
  local ref = tostring(tbl)
  if circular[ref] then return '"<Circular ' .. ref .. '>"' end
  circular[ref] = true
  local field_indent = indent .. nest
  local entries = {}
  for k, v in pairs(tbl) do
    local kind, key, sort_key = type(k), nil, k
    if kind == "number" or kind == "boolean" then
      key = "[" .. tostring(k) .. "]"
    elseif kind == "table" then
      key = "[" .. dump_table(k, field_indent, nest, circular) .. "]"
      kind, sort_key = "string", key
    elseif kind ~= "string" or RESERVED[k] or not k:match("^[%a_][%w_]*$") then
      key = string.format("[%q]", tostring(k))
      kind, sort_key = "string", key
    else
      key = k
    end
    entries[#entries + 1] = {
      kind = kind, key = sort_key,
      text = field_indent .. key .. " = " .. dump_value(v, field_indent, nest, circular),
    }
  end
  circular[ref] = nil
  if #entries == 0 then return "{}" end
  table.sort(entries, entry_less)
  local lines = {}
  for i, entry in ipairs(entries) do lines[i] = entry.text end
  return "{\n" .. table.concat(lines, ",\n") .. "\n" .. indent .. "}"
end

return function(value, indent, padding)
  indent, padding = indent or 4, padding or 0
  if type(value) ~= "table" then return string.format("%q", tostring(value)) end
  return dump_table(value, string.rep(" ", padding), string.rep(" ", indent), {})
end
