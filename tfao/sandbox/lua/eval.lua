-- The `_eval` handler: runs msg.Data as Lua in the process's global environment (Owner only).
--
-- The text is first compiled as an expression ("return " .. Data), else as a chunk, named "aos"
-- so that errors read `[string "aos"]:LINE: ...`. A value other than nil and false is printed
-- (tables through stringify); a compile error or a second return value becomes the message's Error.
local stringify = require(".stringify")

return function(ao)
  return function(msg)
    local source = msg.Data
    if type(source) ~= "string" then
      ao.outbox.Error = "Eval expects Lua source text in Data, got a " .. type(source)
      return
    end
    local chunk = load("return " .. source, "aos", "t", _G)
    local compile_error
    if not chunk then chunk, compile_error = load(source, "aos", "t", _G) end
    if not chunk then
      ao.outbox.Error = compile_error
      return
    end
    local output, err = chunk()
    if err ~= nil then
      ao.outbox.Error = err
      return
    end
    if output then -- as in aos, a nil or false value prints nothing
      table.insert(HANDLER_PRINT_LOGS, type(output) == "table" and stringify.format(output) or tostring(output))
    end
  end
end
