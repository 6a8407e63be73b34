-- pretty.tprint(table[, indent]): the table as "key: value" lines, nested tables indented by one
-- space per level, as aos's `.pretty` module renders them.
local pretty = { _version = "0.0.1" }

function pretty.tprint(tbl, indent)
  indent = indent or 0
  local lines = {}
  for k, v in pairs(tbl) do
    local head = string.rep(" ", indent) .. k .. ": "
    if type(v) == "table" then
      lines[#lines + 1] = head .. "\n" .. pretty.tprint(v, indent + 1)
    elseif type(v) == "boolean" then
      lines[#lines + 1] = head .. tostring(v) .. "\n"
    else
      lines[#lines + 1] = head .. v .. "\n"
    end
  end
  return table.concat(lines)
end

return pretty
