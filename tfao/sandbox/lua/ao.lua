-- ao: the process's view of the network. It builds the outbox (messages, spawns, assignments,
-- logged output) that the compute unit turns into the message's result, and decides whom to trust.
local json = require(".json")
local utils = require(".utils")

local previous = ao or {}

local ao = {
  _version = "1.0.0",
  id = previous.id or "",
  _module = previous._module or "",
  authorities = previous.authorities or {},
  reference = previous.reference or 0,
  outbox = previous.outbox or { Output = {}, Messages = {}, Spawns = {}, Assignments = {} },
  -- tags that stay off the message root when tags are promoted onto it
  nonExtractableTags = {
    "Data-Protocol", "Variant", "From-Process", "From-Module", "Type",
    "From", "Owner", "Anchor", "Target", "Data", "Tags", "Read-Only",
  },
  -- fields a forwarded message does not carry over
  nonForwardableTags = {
    "Data-Protocol", "Variant", "From-Process", "From-Module", "Type",
    "From", "Owner", "Anchor", "Target", "Tags", "TagArray", "Hash-Chain",
    "Timestamp", "Nonce", "Epoch", "Signature", "Forwarded-By",
    "Pushed-For", "Read-Only", "Cron", "Block-Height", "Reference", "Id",
    "Reply-To",
  },
}

local function reference_anchor(reference)
  return string.format("%032d", reference)
end

function ao.clone(value, seen)
  if type(value) ~= "table" then return value end
  seen = seen or {}
  if seen[value] then return seen[value] end
  local copy = {}
  seen[value] = copy
  for k, v in pairs(value) do copy[ao.clone(k, seen)] = ao.clone(v, seen) end
  return setmetatable(copy, getmetatable(value))
end

-- Copies every tag onto the message root, except the non-extractable ones; later tags win.
function ao.normalize(msg)
  for _, tag in ipairs(msg.Tags or {}) do
    if not utils.includes(tag.name, ao.nonExtractableTags) then msg[tag.name] = tag.value end
  end
  return msg
end

-- A copy of `msg` without the fields that must not be forwarded (nor functions).
function ao.sanitize(msg)
  local copy = ao.clone(msg)
  for k, v in pairs(msg) do
    if utils.includes(k, ao.nonForwardableTags) or type(v) == "function" then copy[k] = nil end
  end
  return copy
end

local function add_authorities(value)
  for authority in value:gmatch("[^,]+") do
    authority = authority:match("^%s*(.-)%s*$")
    if authority ~= "" and not utils.includes(authority, ao.authorities) then
      table.insert(ao.authorities, authority)
    end
  end
end

-- Per message: learn the process id, module and authorities (once), start an empty outbox.
function ao.init(env)
  if ao.id == "" then ao.id = env.Process.Id end
  for _, tag in ipairs(env.Process.Tags) do
    if tag.name == "Module" and ao._module == "" then ao._module = tag.value end
    if tag.name == "Authority" then add_authorities(tag.value) end
  end
  ao.outbox = { Output = {}, Messages = {}, Spawns = {}, Assignments = {} }
  ao.env = env
end

function ao.log(text)
  if type(ao.outbox.Output) == "string" then ao.outbox.Output = { ao.outbox.Output } end
  table.insert(ao.outbox.Output, text)
end

function ao.clearOutbox()
  ao.outbox = { Output = {}, Messages = {}, Spawns = {}, Assignments = {} }
end

local function tag_value(name, value)
  local kind = type(value)
  if kind == "string" then return value end
  if kind == "number" or kind == "boolean" then return tostring(value) end
  -- aos passes a table through as the tag's value; a message tag is text, so it travels as JSON
  if kind == "table" then return json.encode(value) end
  error("the value of tag '" .. tostring(name) .. "' must be a string, not a " .. kind, 0)
end

-- base tags, then the caller's root fields (sorted, so the order is always the same), then
-- msg.Tags (an array of {name, value} kept in order, or a map, sorted)
local function build_tags(base, msg, reserved)
  local tags = base
  for _, key in ipairs(utils.keys(msg)) do
    local value = msg[key]
    if type(key) == "string" and not utils.includes(key, reserved) and type(value) ~= "function" then
      tags[#tags + 1] = { name = key, value = tag_value(key, value) }
    end
  end
  if type(msg.Tags) == "table" then
    if utils.isArray(msg.Tags) then
      for _, tag in ipairs(msg.Tags) do
        tags[#tags + 1] = { name = tag.name, value = tag_value(tag.name, tag.value) }
      end
    else
      for _, name in ipairs(utils.keys(msg.Tags)) do
        tags[#tags + 1] = { name = name, value = tag_value(name, msg.Tags[name]) }
      end
    end
  end
  return tags
end

-- a table Data travels as JSON, marked with Content-Type
local function encode_table_data(msg)
  if type(msg.Data) == "table" then
    msg["Content-Type"] = "application/json"
    msg.Data = json.encode(msg.Data)
  end
end

local function next_reference()
  ao.reference = ao.reference + 1
  return ao.reference
end

local function shallow_copy(t)
  local copy = {}
  for k, v in pairs(t) do copy[k] = v end
  return copy
end

-- Queues a message. Returns it with onReply([from,] handler) and receive([from]), which wait for
-- the reply carrying X-Reference = this message's Reference.
function ao.send(msg)
  assert(type(msg) == "table", "msg should be a table")
  encode_table_data(msg)
  local reference = next_reference()
  local referenceString = tostring(reference)
  local message = {
    Target = msg.Target,
    Data = msg.Data,
    Anchor = reference_anchor(reference),
    Tags = build_tags({
      { name = "Data-Protocol", value = "ao" },
      { name = "Variant", value = "ao.TN.1" },
      { name = "Type", value = "Message" },
      { name = "Reference", value = referenceString },
    }, msg, { "Target", "Data", "Anchor", "Tags", "From" }),
  }
  table.insert(ao.outbox.Messages, shallow_copy(message))

  message.onReply = function(...)
    local from, resolver = message.Target, ...
    if select("#", ...) == 2 then from, resolver = ... end
    Handlers.once({ From = from, ["X-Reference"] = referenceString }, resolver)
  end
  message.receive = function(...)
    local from = message.Target
    if select("#", ...) == 1 then from = ... end
    return Handlers.receive({ From = from, ["X-Reference"] = referenceString })
  end
  return message
end

-- Queues a process spawn from `module`. onReply(handler) / receive() wait for its Spawned notice.
function ao.spawn(module, msg)
  assert(type(module) == "string", "Module source id is required!")
  assert(type(msg) == "table", "Message must be a table")
  encode_table_data(msg)
  local reference = next_reference()
  local referenceString = tostring(reference)
  local spawn = {
    Data = msg.Data or "NODATA",
    Anchor = reference_anchor(reference),
    Tags = build_tags({
      { name = "Data-Protocol", value = "ao" },
      { name = "Variant", value = "ao.TN.1" },
      { name = "Type", value = "Process" },
      { name = "From-Process", value = ao.id },
      { name = "From-Module", value = ao._module },
      { name = "Module", value = module },
      { name = "Reference", value = referenceString },
    }, msg, { "Target", "Data", "Anchor", "Tags", "From" }),
  }
  table.insert(ao.outbox.Spawns, shallow_copy(spawn))

  local spawned = { Action = "Spawned", From = ao.id, Reference = referenceString }
  spawn.onReply = function(handler) Handlers.once(spawned, handler) end
  spawn.receive = function() return Handlers.receive(spawned) end
  return spawn
end

-- Queues an assignment: { Processes = { pid, ... }, Message = "<message id>" }.
function ao.assign(assignment)
  assert(type(assignment) == "table", "assignment should be a table")
  assert(type(assignment.Processes) == "table", "Processes should be a table")
  assert(type(assignment.Message) == "string", "Message should be a string")
  table.insert(ao.outbox.Assignments, assignment)
end

-- Forwarded messages (From ~= Owner) are trusted only from an authority of this process.
function ao.isTrusted(msg)
  for _, authority in ipairs(ao.authorities) do
    if msg.From == authority or msg.Owner == authority then return true end
  end
  return false
end

-- The result for the compute unit: only the Error when there is one.
function ao.result(result)
  local err = result.Error or ao.outbox.Error
  if err ~= nil then return { Error = err } end
  return {
    Output = result.Output or ao.outbox.Output,
    Messages = ao.outbox.Messages,
    Spawns = ao.outbox.Spawns,
    Assignments = ao.outbox.Assignments,
  }
end

return ao
