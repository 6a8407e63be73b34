-- Transformers for processes: deterministic model inference run by the host.
--
--   local transformers = require("transformers")
--   transformers.<family>.<function>(opts)     one function per model family in the host's registry, e.g.
--   transformers.bert.encode_text{ model = M, tokenizer = T, config = C, prompt = "text" }
--       -> { 0.01, -0.2, ... } (one prompt) or { {...}, {...} } (a list of prompts),
--          plus a second result { model_id = opts.model_id, prompt = opts.prompt }
--   local embed = transformers.pipeline("feature-extraction", { model = M, tokenizer = T, config = C })
--   embed("text") / embed({ "a", "b" })
--
-- M, T and C are the bytes of model.safetensors, tokenizer.json and config.json, as raw bytes, base64
-- text, a weave id or a reference from require("weavedrive").ref(id). M may instead be a model
-- manifest, which names the other files. bert.encode_text options: normalize_embeddings (default: as
-- the model's modules.json says, true without one), pooling ("mean", "cls" or "max"; default: the
-- model's Pooling config, else "mean"), max_seq_length, model_id (echoed back).
-- clip.encode_text takes the same files and prompt (normalize_embeddings defaults to false).
-- sd.txt2img{ model = MANIFEST_ID, prompt = "a cat" } -> "data:image/png;base64,..."; with store = true the
-- PNG goes into the node's weave and the call returns its id, the same on every node for this process.
-- Each call charges its multiply-adds to the message's Compute-Limit.
local _, host = ...

local transformers = { _version = "2.0.0" }

local function call(name, ...)
  local ok, value = host[name](...)
  if not ok then error(value, 3) end
  return value
end

local function results(family, fn, opts)
  local r = call("call", family, fn, opts)
  return table.unpack(r.values, 1, r.n)
end

for family, functions in pairs(call("families")) do
  local namespace = {}
  for _, fn in ipairs(functions) do
    namespace[fn] = function(opts)
      if type(opts) ~= "table" then error(family .. "." .. fn .. " expects an options table", 2) end
      return results(family, fn, opts)
    end
  end
  transformers[family] = namespace
end

function transformers.pipeline(task, opts)
  if type(opts) ~= "table" then opts = { model = opts } end
  local spec = call("prepare", task, opts)
  return function(input)
    local each = {}
    for k, v in pairs(spec.opts) do each[k] = v end
    each[spec.input] = input
    return (results(spec.family, spec["function"], each))
  end
end

return transformers
