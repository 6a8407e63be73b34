-- Transformers for processes: deterministic model inference run by the host.
--
--   local transformers = require("transformers")
--   transformers.bert.encode_text{ model = M, tokenizer = T, config = C, prompt = "text" }
--       -> { 0.01, -0.2, ... } (one prompt) or { {...}, {...} } (a list of prompts),
--          plus a second result { model_id = opts.model_id, prompt = opts.prompt }
--   local embed = transformers.pipeline("feature-extraction", { model = M, tokenizer = T, config = C })
--   embed("text") / embed({ "a", "b" })
--
-- M, T and C are the bytes of model.safetensors, tokenizer.json and config.json, as raw bytes, base64
-- text, a weave id or a reference from require("weavedrive").ref(id). M may instead be a model
-- manifest, which names the other files. Options: normalize_embeddings (default true), pooling
-- ("mean", "cls" or "max"; default "mean"), max_seq_length, model_id (echoed back).
local _, host = ...

local transformers = { _version = "1.0.0" }

local function call(name, ...)
  local ok, value = host[name](...)
  if not ok then error(value, 3) end
  return value
end

local function copy(t)
  local out = {}
  for k, v in pairs(t) do out[k] = v end
  return out
end

transformers.bert = {}

function transformers.bert.encode_text(opts)
  if type(opts) ~= "table" then error("bert.encode_text expects an options table", 2) end
  local result = call("bert_encode_text", opts)
  return result.data, { model_id = result.model_id, prompt = opts.prompt }
end

local TASKS = {
  ["feature-extraction"] = function(spec)
    return function(prompt)
      local opts = copy(spec)
      opts.prompt = prompt
      return call("bert_encode_text", opts).data
    end
  end,
}

function transformers.pipeline(task, opts)
  local make = TASKS[task]
  if not make then error("unknown task: " .. tostring(task) .. " (supported: feature-extraction)", 2) end
  if type(opts) ~= "table" then opts = { model = opts } end
  return make(call("bert_prepare", opts))
end

return transformers
