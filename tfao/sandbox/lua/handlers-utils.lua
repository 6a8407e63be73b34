-- Handlers.utils: ready-made patterns and handlers.
local utils = require(".utils")

local handlers_utils = { _version = "1.0.0" }

-- true when the message's tag `name` is exactly `value` (case-sensitive)
function handlers_utils.hasMatchingTag(name, value)
  assert(type(name) == "string" and type(value) == "string", "invalid arguments: (name : string, value : string)")
  return function(msg)
    return msg.Tags[name] == value
  end
end

-- true when the message's tag `name` is one of `values`
function handlers_utils.hasMatchingTagOf(name, values)
  assert(type(name) == "string" and type(values) == "table", "invalid arguments: (name : string, values : string[])")
  return function(msg)
    for _, value in ipairs(values) do
      if msg.Tags[name] == value then return true end
    end
    return false
  end
end

-- true when the message's Data is exactly `value`
function handlers_utils.hasMatchingData(value)
  assert(type(value) == "string", "invalid arguments: (value : string)")
  return function(msg)
    return msg.Data == value
  end
end

-- a handler that replies with `input`: a string becomes the reply's Data, a table is the reply
function handlers_utils.reply(input)
  assert(type(input) == "table" or type(input) == "string", "invalid arguments: (input : table | string)")
  return function(msg)
    if type(input) == "string" then
      msg.reply({ Data = input })
    else
      msg.reply(input)
    end
  end
end

-- wraps any pattern so that a match lets the following handlers run too (break becomes continue)
function handlers_utils.continue(pattern)
  return function(msg)
    local match = utils.matchesSpec(msg, pattern)
    if match == true or match == -1 or match == "break" then return 1 end
    return match
  end
end

return handlers_utils
