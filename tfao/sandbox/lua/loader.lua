-- The module entry point: handle(msgJSON, envJSON) -> responseJSON, as an AO loader calls it.
-- The response is {"ok": true, "response": <result>} or {"ok": false, "response": "<error>"}.
local json = require(".json")

return function(msgJSON, envJSON)
  local ok, encoded = pcall(function()
    local response = require(".process").handle(json.decode(msgJSON), json.decode(envJSON))
    return json.encode({ ok = true, response = response })
  end)
  if ok then return encoded end
  return json.encode({ ok = false, response = tostring(encoded) })
end
