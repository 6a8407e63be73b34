-- JSON as aos encodes and decodes it: json.encode(value) -> string, json.decode(string) -> value.
--
-- Encoding: a table whose [1] is set, or an empty table, is an array (its keys must all be
-- numbers, "invalid table: mixed or invalid key types", and run 1..#t, "invalid table: sparse
-- array"); any other table is an object with string keys only, listed in `pairs` order (sorted),
-- whose function, thread and userdata values are skipped. Numbers print with 14 significant digits
-- ("%.14g"); NaN and infinities are errors. Strings pass through byte for byte, with only `"`, `\`
-- and control characters escaped.
-- Decoding is as lenient as aos's: trailing commas, any number Lua's tonumber reads, null as nil.
-- Errors read "<what> at line L col C".
local json = { _version = "0.2.0" }

local byte, find, format, sub = string.byte, string.find, string.format, string.sub
local concat = table.concat

-- encoding ---------------------------------------------------------------------------------------

local ESCAPES = {
  ['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f',
  ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t',
}

local function escape_char(c)
  return ESCAPES[c] or format("\\u%04x", byte(c))
end

local function encode_string(s)
  return '"' .. s:gsub('[%z\1-\31"\\]', escape_char) .. '"'
end

local function encode_number(n)
  if n ~= n or n <= -math.huge or n >= math.huge then
    error("unexpected number value '" .. tostring(n) .. "'")
  end
  return format("%.14g", n)
end

-- values an object leaves out instead of failing on
local SKIPPED = { ["function"] = true, thread = true, userdata = true }

local encode

local function encode_table(t, stack)
  if stack[t] then error("circular reference") end
  stack[t] = true
  local parts = {}
  if rawget(t, 1) ~= nil or next(t) == nil then
    local count = 0
    for k in pairs(t) do
      if type(k) ~= "number" then error("invalid table: mixed or invalid key types") end
      count = count + 1
    end
    if count ~= #t then error("invalid table: sparse array") end
    for i = 1, #t do parts[i] = encode(t[i], stack) end
    stack[t] = nil
    return "[" .. concat(parts, ",") .. "]"
  end
  for k, v in pairs(t) do
    if type(k) ~= "string" then error("invalid table: mixed or invalid key types") end
    if not SKIPPED[type(v)] then parts[#parts + 1] = encode_string(k) .. ":" .. encode(v, stack) end
  end
  stack[t] = nil
  return "{" .. concat(parts, ",") .. "}"
end

encode = function(value, stack)
  local kind = type(value)
  if kind == "string" then return encode_string(value) end
  if kind == "number" then return encode_number(value) end
  if kind == "boolean" then return tostring(value) end
  if kind == "nil" then return "null" end
  if kind == "table" then return encode_table(value, stack) end
  error("unexpected type '" .. kind .. "'")
end

function json.encode(value)
  return (encode(value, {}))
end

-- decoding ---------------------------------------------------------------------------------------

local function fail(text, pos, what)
  local line, col = 1, 1
  for i = 1, pos - 1 do
    col = col + 1
    if byte(text, i) == 10 then line, col = line + 1, 1 end
  end
  error(format("%s at line %d col %d", what, line, col))
end

local SPACE = { [32] = true, [10] = true, [13] = true, [9] = true }

local function skip_space(text, pos)
  if not SPACE[byte(text, pos)] then return pos end  -- most tokens follow one another directly
  local _, last = find(text, "^[ \n\r\t]*", pos)
  return last + 1
end

-- a number or literal runs to the next space, ',', ']' or '}'
local function token_end(text, pos)
  return (find(text, "[ \n\r\t,%]}]", pos) or #text + 1)
end

local SIMPLE_ESCAPES = {
  ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t",
}

-- a code point as UTF-8 (surrogates included, as aos writes them)
local function utf8_bytes(n)
  if n <= 0x7f then return string.char(n) end
  if n <= 0x7ff then return string.char(0xc0 | (n >> 6), 0x80 | (n & 0x3f)) end
  if n <= 0xffff then return string.char(0xe0 | (n >> 12), 0x80 | ((n >> 6) & 0x3f), 0x80 | (n & 0x3f)) end
  return string.char(0xf0 | (n >> 18), 0x80 | ((n >> 12) & 0x3f), 0x80 | ((n >> 6) & 0x3f), 0x80 | (n & 0x3f))
end

-- a \u escape at pos (the backslash): a surrogate pair when one follows, else one code point
local function decode_unicode_escape(text, pos)
  local pair = text:match("^[dD][89aAbB]%x%x\\u%x%x%x%x", pos + 2)
  if pair then
    local high, low = tonumber(pair:sub(1, 4), 16), tonumber(pair:sub(7, 10), 16)
    return utf8_bytes((high - 0xd800) * 0x400 + (low - 0xdc00) + 0x10000), pos + 12
  end
  local single = text:match("^%x%x%x%x", pos + 2)
  if not single then fail(text, pos, "invalid unicode escape in string") end
  return utf8_bytes(tonumber(single, 16)), pos + 6
end

-- pos is at the opening quote
local function decode_string(text, start)
  local pos = start + 1
  local stop = find(text, '[%z\1-\31"\\]', pos)
  if stop and byte(text, stop) == 34 then return sub(text, pos, stop - 1), stop + 1 end  -- no escapes: one slice
  local parts = {}
  while true do
    if not stop then fail(text, start, "expected closing quote for string") end
    parts[#parts + 1] = sub(text, pos, stop - 1)
    local c = byte(text, stop)
    if c == 34 then return concat(parts), stop + 1 end
    if c < 32 then fail(text, stop, "control character in string") end
    local escape = sub(text, stop + 1, stop + 1)
    if escape == "u" then
      parts[#parts + 1], pos = decode_unicode_escape(text, stop)
    elseif SIMPLE_ESCAPES[escape] then
      parts[#parts + 1], pos = SIMPLE_ESCAPES[escape], stop + 2
    else
      fail(text, stop, "invalid escape char '" .. escape .. "' in string")
    end
    stop = find(text, '[%z\1-\31"\\]', pos)
  end
end

local function decode_number(text, pos)
  local last = token_end(text, pos)
  local word = sub(text, pos, last - 1)
  local n = tonumber(word)
  if not n then fail(text, pos, "invalid number '" .. word .. "'") end
  return n, last
end

local LITERALS = { ["true"] = true, ["false"] = false }

local function decode_literal(text, pos)
  local last = token_end(text, pos)
  local word = sub(text, pos, last - 1)
  if word == "null" then return nil, last end
  if LITERALS[word] == nil then fail(text, pos, "invalid literal '" .. word .. "'") end
  return LITERALS[word], last
end

local decode_value

local function decode_array(text, pos)
  local result, n = {}, 0
  pos = pos + 1
  while true do
    pos = skip_space(text, pos)
    if byte(text, pos) == 93 then return result, pos + 1 end
    local value
    value, pos = decode_value(text, pos)
    n = n + 1
    result[n] = value
    pos = skip_space(text, pos)
    local c = byte(text, pos)
    pos = pos + 1
    if c == 93 then return result, pos end
    if c ~= 44 then fail(text, pos, "expected ']' or ','") end
  end
end

local function decode_object(text, pos)
  local result = {}
  pos = pos + 1
  while true do
    pos = skip_space(text, pos)
    if byte(text, pos) == 125 then return result, pos + 1 end
    if byte(text, pos) ~= 34 then fail(text, pos, "expected string for key") end
    local key, value
    key, pos = decode_string(text, pos)
    pos = skip_space(text, pos)
    if byte(text, pos) ~= 58 then fail(text, pos, "expected ':' after key") end
    value, pos = decode_value(text, skip_space(text, pos + 1))
    result[key] = value
    pos = skip_space(text, pos)
    local c = byte(text, pos)
    pos = pos + 1
    if c == 125 then return result, pos end
    if c ~= 44 then fail(text, pos, "expected '}' or ','") end
  end
end

local DECODERS = {  -- by the value's first byte
  [byte('"')] = decode_string, [byte("{")] = decode_object, [byte("[")] = decode_array,
  [byte("t")] = decode_literal, [byte("f")] = decode_literal, [byte("n")] = decode_literal,
  [byte("-")] = decode_number,
}
for digit = byte("0"), byte("9") do DECODERS[digit] = decode_number end

decode_value = function(text, pos)
  local decoder = DECODERS[byte(text, pos)]
  if not decoder then fail(text, pos, "unexpected character '" .. sub(text, pos, pos) .. "'") end
  return decoder(text, pos)
end

function json.decode(text)
  if type(text) ~= "string" then
    error("expected argument of type string, got " .. type(text))
  end
  local value, pos = decode_value(text, skip_space(text, 1))
  pos = skip_space(text, pos)
  if pos <= #text then fail(text, pos, "trailing garbage") end
  return value
end

return json
