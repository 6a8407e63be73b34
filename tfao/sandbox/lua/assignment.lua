-- Assignments: messages scheduled onto this process whose Target is another process. They are
-- evaluated only when they match one of ao.assignables (match specs, optionally named).
local utils = require(".utils")

local assignment = { _version = "1.0.0" }

function assignment.init(ao)
  ao.assignables = ao.assignables or {}

  -- addAssignable(matchSpec) or addAssignable(name, matchSpec); a known name is replaced
  function ao.addAssignable(...)
    local name, spec
    if select("#", ...) == 1 then spec = ... else name, spec = ... end
    assert(spec ~= nil, "a MatchSpec is required")
    if name ~= nil then
      for _, entry in ipairs(ao.assignables) do
        if entry.name == name then
          entry.pattern = spec
          return name
        end
      end
    end
    table.insert(ao.assignables, { name = name, pattern = spec })
    return name or #ao.assignables
  end

  -- removeAssignable(name) or removeAssignable(index); unknown ones are ignored
  function ao.removeAssignable(key)
    if math.type(key) == "integer" then
      if ao.assignables[key] then table.remove(ao.assignables, key) end
      return
    end
    for i, entry in ipairs(ao.assignables) do
      if entry.name == key then
        table.remove(ao.assignables, i)
        return
      end
    end
  end

  function ao.isAssignment(msg)
    return msg.Target ~= nil and msg.Target ~= ao.id
  end

  function ao.isAssignable(msg)
    for _, entry in ipairs(ao.assignables) do
      if utils.matchesSpec(msg, entry.pattern) then return true end
    end
    return false
  end
end

return assignment
