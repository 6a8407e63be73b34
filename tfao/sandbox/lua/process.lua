-- The aos process: process.handle(msg, env) evaluates one message the way aos 2 does.
--
-- Per message: normalise names and promote tags, seed randomness (first message), pin os.time to
-- the message's Timestamp, turn Tags into a map (TagArray keeps the list), decode JSON Data,
-- check trust, then run the Handlers in a coroutine (so handlers may wait with Receive) and
-- return the result: Output {data, prompt, print | test}, Messages, Spawns, Assignments, or Error.
local json = require(".json")
local chance = require(".chance")
local stringify = require(".stringify")
local assignment = require(".assignment")

Colors = {
  red = "\27[31m",
  green = "\27[32m",
  blue = "\27[34m",
  reset = "\27[0m",
  gray = "\27[90m",
}
Bell = "\x07"

Dump = require(".dump")
Utils = require(".utils")
Handlers = require(".handlers")
ao = require(".ao")
assignment.init(ao)
_G.json = json -- aos code often uses the json module without requiring it
base64 = require(".base64")

local process = { _version = "2.0.4-tfao" }
local MAX_INBOX = 10000

function Prompt()
  return Colors.green .. (Name or "aos") .. Colors.gray .. "@" .. Colors.blue .. "aos-" .. process._version
    .. Colors.gray .. "[Inbox:" .. Colors.red .. tostring(#(Inbox or {})) .. Colors.gray .. "]"
    .. Colors.reset .. "> "
end

function Version()
  print("version: " .. process._version)
end

-- print(value) as aos has it: one value, a table through stringify, booleans, nil and numbers
-- coloured; the line joins the message's Output (HANDLER_PRINT_LOGS)
local function printable(value)
  local kind = type(value)
  if kind == "table" then return stringify.format(value) end
  if kind == "boolean" then return Colors.blue .. tostring(value) .. Colors.reset end
  if kind == "nil" then return Colors.red .. "nil" .. Colors.reset end
  if kind == "number" then return Colors.green .. tostring(value) .. Colors.reset end
  return tostring(value)
end

function print(value)
  local line = printable(value)
  if HANDLER_PRINT_LOGS then
    table.insert(HANDLER_PRINT_LOGS, line)
    return nil
  end
  return line
end

function Tab(msg)
  local map = {}
  for _, tag in ipairs(msg.Tags or {}) do
    if map[tag.name] == nil then map[tag.name] = tag.value end
  end
  return map
end

function Send(msg)
  if not msg.Target then
    print("WARN: No target specified for message. Data will be stored, but no process will receive it.")
  end
  local message = ao.send(msg)
  return { output = "Message added to outbox", receive = message.receive, onReply = message.onReply }
end

-- Spawn(msg) spawns this process's module; Spawn(module, msg) another one
function Spawn(...)
  local module, msg = ao._module, ...
  if select("#", ...) >= 2 then module, msg = ... end
  local spawn = ao.spawn(module, msg or {})
  return { output = "Spawn process request added to outbox", receive = spawn.receive, onReply = spawn.onReply }
end

function Receive(pattern)
  return Handlers.receive(pattern)
end

function Assign(request)
  ao.assign(request)
  print("Assignment added to outbox.")
  return "Assignment added to outbox."
end

Seeded = Seeded or false

local function byte_sum(s)
  local sum = 0
  for i = 1, #s do sum = sum + s:byte(i) end
  return sum
end

local function seeded_random(...)
  local n = select("#", ...)
  if n == 1 then return chance.integer(1, (...)) end
  if n >= 2 then return chance.integer(...) end
  return chance.random()
end

local function find_tag(tags, name)
  for _, tag in ipairs(tags or {}) do
    if tag.name == name then return tag.value end
  end
  return nil
end

local function initialize_state(msg, env)
  if not Seeded then
    local height = tostring(msg["Block-Height"] or "")
    local identity = (msg.Owner or "") .. (msg.Module or "") .. (msg.Id or "")
    chance.seed(tonumber(height .. byte_sum(identity)))
    math.random = seeded_random
    Seeded = true
  end
  Errors = Errors or {}
  Inbox = Inbox or {}
  if Owner == nil and env.Process.Id == msg.Id then
    Owner = find_tag(env.Process.Tags, "From-Process") or msg.From
  end
  if Name == nil then
    Name = find_tag(env.Process.Tags, "Name") or "aos"
  end
end

local function insert_inbox(msg)
  table.insert(Inbox, msg)
  while #Inbox > MAX_INBOX do table.remove(Inbox, 1) end
end

local function short_id(id)
  if type(id) ~= "string" then return "unknown" end
  return id:sub(1, 3) .. "..." .. id:sub(-3)
end

-- `_default`: what no handler took goes to the Inbox, with a notice (a JSON Data shown as JSON)
local function default_handler(msg)
  insert_inbox(msg)
  local notice = Colors.gray .. "New Message From " .. Colors.green .. short_id(msg.From) .. Colors.gray .. ": "
  if msg.Action then
    notice = notice .. Colors.gray .. "Action = " .. Colors.blue .. tostring(msg.Action):sub(1, 20) .. Colors.reset
  else
    local data = msg.Data
    if type(data) == "table" then data = json.encode(data) end
    notice = notice .. Colors.gray .. "Data = " .. Colors.blue .. tostring(data or ""):sub(1, 20) .. Colors.reset
  end
  print(notice)
end

-- root keys and tag names title-cased: "data_PROTOCOL" -> "Data-Protocol"
local function normalize_names(msg)
  local normalized = {}
  for _, key in ipairs(Utils.keys(msg)) do
    normalized[type(key) == "string" and Utils.normalize(key) or key] = msg[key]
  end
  for _, tag in ipairs(normalized.Tags or {}) do tag.name = Utils.normalize(tag.name) end
  return normalized
end

local function add_reply_and_forward(msg)
  msg.reply = function(reply)
    reply.Target = msg["Reply-To"] or reply.Target or msg.From
    reply["X-Reference"] = msg["X-Reference"] or msg.Reference
    reply["X-Origin"] = msg["X-Origin"]
    return ao.send(reply)
  end
  msg.forward = function(target, extra)
    local forwarded = ao.sanitize(msg)
    for k, v in pairs(extra or {}) do forwarded[k] = v end
    forwarded.Target = target
    forwarded["Reply-To"] = msg["Reply-To"] or msg.From
    forwarded["X-Reference"] = msg["X-Reference"] or msg.Reference
    forwarded["X-Origin"] = msg["X-Origin"] or msg.From
    return ao.send(forwarded)
  end
end

local function take_print_logs()
  local text = table.concat(HANDLER_PRINT_LOGS, "\n")
  HANDLER_PRINT_LOGS = {}
  return text
end

local function error_text(err)
  if type(err) == "string" then return err end
  if type(err) == "table" then return stringify.format(err) end
  return tostring(err)
end

local function success_result(msg)
  if msg.Action == "Eval" then
    local test = Dump(HANDLER_PRINT_LOGS)
    return ao.result({ Output = { data = take_print_logs(), prompt = Prompt(), test = test } })
  end
  return ao.result({ Output = { data = take_print_logs(), prompt = Prompt(), print = true } })
end

-- the stack of the code that reports the error, without the loader's frames below it
local function report_traceback()
  local lines = {}
  for line in debug.traceback(nil, 2):gmatch("[^\n]+") do lines[#lines + 1] = line end
  return table.concat(lines, "\n", 1, math.max(#lines - 3, 1))
end

-- An Eval's error is reported as is; a handler's error after aos's notice and the traceback.
local function failure_result(msg, err)
  err = error_text(err)
  if msg.Action == "Eval" then
    table.insert(Errors, err)
  else
    if msg.Action then
      print(Colors.red .. "Error" .. Colors.gray .. " handling message with Action = " .. msg.Action .. Colors.reset)
    else
      print(Colors.red .. "Error" .. Colors.gray .. " handling message " .. Colors.reset)
    end
    print(Colors.green .. err .. Colors.reset)
    print("\n" .. Colors.gray .. report_traceback() .. Colors.reset)
  end
  return { Error = take_print_logs() .. "\n\n" .. Colors.red .. "error:\n" .. Colors.reset .. err }
end

-- Runs the handlers in a coroutine; keeps the coroutines that wait for a later message.
local function run_handlers(msg)
  local co = coroutine.create(function() return Handlers.evaluate(msg, ao.env) end)
  local ok, err = coroutine.resume(co)
  local waiting = {}
  for _, other in ipairs(Handlers.coroutines) do
    if coroutine.status(other) ~= "dead" then waiting[#waiting + 1] = other end
  end
  if coroutine.status(co) ~= "dead" then waiting[#waiting + 1] = co end
  Handlers.coroutines = waiting
  return ok, err
end

local function install_handlers(msg)
  Handlers.add("_eval", function(m)
    return m.Action == "Eval" and Owner == m.From
  end, require(".eval")(ao))
  if ao.env.Process.Id == msg.Id then
    Handlers.once("_boot", function(m)
      return m.Tags.Type == "Process" and Owner == m.From
    end, require(".boot")(ao))
  end
  Handlers.append("_default", function() return true end, default_handler)
end

function process.handle(msg, env)
  ao.init(env)
  msg = ao.normalize(normalize_names(msg))
  initialize_state(msg, ao.env)
  HANDLER_PRINT_LOGS = {}
  local timestamp = msg.Timestamp
  os.time = function() return timestamp end

  msg.TagArray = msg.Tags or {}
  msg.Tags = Tab(msg)
  ao.env.Process.TagArray = ao.env.Process.Tags
  ao.env.Process.Tags = Tab(ao.env.Process)
  if msg.Tags["Content-Type"] == "application/json" then
    msg.Data = json.decode(msg.Data or "{}")
  end
  ao.clearOutbox()

  if msg.From ~= msg.Owner and not ao.isTrusted(msg) then
    print("Message is not trusted! From: " .. tostring(msg.From) .. " - Owner: " .. tostring(msg.Owner))
    return success_result(msg)
  end
  if ao.isAssignment(msg) and not ao.isAssignable(msg) then
    if msg.From ~= ao.id then
      Send({ Target = msg.From, Data = "Assignment is not trusted by this process!" })
    end
    print("Assignment is not trusted! From: " .. tostring(msg.From) .. " - Owner: " .. tostring(msg.Owner))
    return success_result(msg)
  end

  install_handlers(msg)
  add_reply_and_forward(msg)
  local ok, err = run_handlers(msg)
  if not ok then return failure_result(msg, err) end
  local result = success_result(msg)
  if result.Error ~= nil then result.Error = error_text(result.Error) end
  return result
end

apm = require(".apm")

return process
