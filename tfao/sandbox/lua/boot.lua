-- The `_boot` handler (AOP-6 boot loader): on the process's own first message, which it keeps in
-- the Inbox, the `On-Boot`
-- process tag names code to Eval: "Data" (the process message's Data) or a transaction id read
-- through WeaveDrive.
return function(ao)
  local eval = require(".eval")(ao)
  return function(msg)
    -- the process's own spawn message is the first thing in its Inbox
    if #Inbox == 0 then table.insert(Inbox, msg) end
    local source = msg.Tags["On-Boot"]
    if source == nil then return end
    if source == "Data" then
      eval(msg)
      return
    end
    local code, err = require("weavedrive").getData(source)
    if code == nil then error("On-Boot: cannot read " .. source .. ": " .. tostring(err), 0) end
    eval({ Data = code })
  end
end
