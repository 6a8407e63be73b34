-- JSON for processes: json.encode(value) -> string, json.decode(string) -> value.
--
-- Output is deterministic: object keys are sorted, integers print as integers, floats print with
-- 15, 16 or 17 significant digits, the fewest that read back as the same double. NaN and infinities
-- cannot be encoded. An empty table encodes as []. Strings pass through byte for byte except the
-- characters JSON requires to be escaped and bytes that are not UTF-8 (each becomes U+FFFD).
-- Decoding turns null into nil and reports bad input with its position.
local json = { _version = "1.0.0" }

local byte, find, format, sub = string.byte, string.find, string.format, string.sub
local concat, sort = table.concat, table.sort
local math_type = math.type

-- encoding ---------------------------------------------------------------------------------------

local ESCAPES = {
  ['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f',
  ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t',
}

local function escape_char(c)
  return ESCAPES[c] or format("\\u%04x", byte(c))
end

local REPLACEMENT_CHAR = "\239\191\189" -- U+FFFD

-- utf8.len rejects malformed and overlong sequences but lets UTF-16 surrogates (ED A0..BF ..) through
local function is_utf8(s)
  return utf8.len(s) ~= nil and not find(s, "\237[\160-\191]")
end

-- JSON text is UTF-8: each byte that is not part of a valid sequence becomes U+FFFD
local function to_utf8(s)
  local parts, pos = {}, 1
  while pos <= #s do
    local ok, bad = utf8.len(s, pos)
    if ok then
      parts[#parts + 1] = sub(s, pos)
      break
    end
    parts[#parts + 1] = sub(s, pos, bad - 1)
    parts[#parts + 1] = REPLACEMENT_CHAR
    pos = bad + 1
  end
  return (concat(parts):gsub("\237[\160-\191][\128-\191]", REPLACEMENT_CHAR))
end

local function encode_string(s)
  if find(s, "[\128-\255]") and not is_utf8(s) then s = to_utf8(s) end
  return '"' .. s:gsub('[%z\1-\31"\\\127]', escape_char) .. '"'
end

local function encode_number(n)
  if math_type(n) == "integer" then return format("%d", n) end
  if n ~= n or n == math.huge or n == -math.huge then
    error("json: cannot encode " .. tostring(n), 0)
  end
  for digits = 15, 16 do
    local text = format("%." .. digits .. "g", n)
    if tonumber(text) == n then return text end
  end
  return format("%.17g", n)
end

-- a table is an array when its keys are exactly 1..n
local function array_length(t)
  local count = 0
  for k in pairs(t) do
    if math_type(k) ~= "integer" or k < 1 then return nil end
    count = count + 1
  end
  if count ~= #t then return nil end
  for i = 1, count do
    if t[i] == nil then return nil end
  end
  return count
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do
    local kind = type(k)
    if kind ~= "string" and kind ~= "number" then
      error("json: cannot encode a table key of type " .. kind, 0)
    end
    keys[#keys + 1] = k
  end
  sort(keys, function(a, b)
    if type(a) == type(b) then return a < b end
    return type(a) == "number"
  end)
  return keys
end

local encode_value

local function encode_table(t, out, seen)
  if seen[t] then error("json: cannot encode a table that contains itself", 0) end
  seen[t] = true
  local n = array_length(t)
  if n then
    out[#out + 1] = "["
    for i = 1, n do
      if i > 1 then out[#out + 1] = "," end
      encode_value(t[i], out, seen)
    end
    out[#out + 1] = "]"
  else
    out[#out + 1] = "{"
    for i, k in ipairs(sorted_keys(t)) do
      if i > 1 then out[#out + 1] = "," end
      out[#out + 1] = encode_string(type(k) == "string" and k or encode_number(k))
      out[#out + 1] = ":"
      encode_value(t[k], out, seen)
    end
    out[#out + 1] = "}"
  end
  seen[t] = nil
end

encode_value = function(v, out, seen)
  local kind = type(v)
  if kind == "string" then
    out[#out + 1] = encode_string(v)
  elseif kind == "number" then
    out[#out + 1] = encode_number(v)
  elseif kind == "boolean" then
    out[#out + 1] = v and "true" or "false"
  elseif kind == "nil" then
    out[#out + 1] = "null"
  elseif kind == "table" then
    encode_table(v, out, seen)
  else
    error("json: cannot encode a value of type " .. kind, 0)
  end
end

function json.encode(value)
  local out = {}
  encode_value(value, out, {})
  return concat(out)
end

-- decoding ---------------------------------------------------------------------------------------

local function fail(text, pos, what)
  local line, col = 1, pos
  for nl in text:sub(1, pos - 1):gmatch("()\n") do
    line, col = line + 1, pos - nl
  end
  error(format("json: %s at line %d column %d", what, line, col), 0)
end

local function skip_space(text, pos)
  local _, last = find(text, "^[ \n\r\t]*", pos)
  return last + 1
end


local SIMPLE_ESCAPES = {
  [byte('"')] = '"', [byte("\\")] = "\\", [byte("/")] = "/", [byte("b")] = "\b",
  [byte("f")] = "\f", [byte("n")] = "\n", [byte("r")] = "\r", [byte("t")] = "\t",
}

local function hex4(text, pos)
  local digits = sub(text, pos, pos + 3)
  if not find(digits, "^%x%x%x%x$") then fail(text, pos, "invalid \\u escape") end
  return tonumber(digits, 16)
end

-- a \uXXXX escape (pos at the 'u'), joining surrogate pairs; returns the UTF-8 text and next pos
local function decode_unicode_escape(text, pos)
  local code = hex4(text, pos + 1)
  local next_pos = pos + 5
  if code >= 0xD800 and code <= 0xDBFF then
    if sub(text, next_pos, next_pos + 1) == "\\u" then
      local low = hex4(text, next_pos + 2)
      if low >= 0xDC00 and low <= 0xDFFF then
        return utf8.char(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)), next_pos + 6
      end
    end
    return REPLACEMENT_CHAR, next_pos
  elseif code >= 0xDC00 and code <= 0xDFFF then
    return REPLACEMENT_CHAR, next_pos
  end
  return utf8.char(code), next_pos
end

-- pos is just after the opening quote
local function decode_string(text, pos)
  local parts = {}
  while true do
    local stop = find(text, '[%z\1-\31"\\]', pos)
    if not stop then fail(text, pos, "unterminated string") end
    parts[#parts + 1] = sub(text, pos, stop - 1)
    local c = byte(text, stop)
    if c == 34 then -- closing quote
      return concat(parts), stop + 1
    elseif c == 92 then -- backslash
      local e = byte(text, stop + 1)
      if e == 117 then -- u
        parts[#parts + 1], pos = decode_unicode_escape(text, stop + 1)
      elseif SIMPLE_ESCAPES[e] then
        parts[#parts + 1] = SIMPLE_ESCAPES[e]
        pos = stop + 2
      else
        fail(text, stop, "invalid escape in string")
      end
    else
      fail(text, stop, "control character in string")
    end
  end
end

-- integers that fit stay integers; a fraction or exponent makes a float
local function decode_number(text, pos)
  local _, last = find(text, "^-?%d+", pos)
  if not last then fail(text, pos, "unexpected character") end
  if find(text, "^-?0%d", pos) then fail(text, pos, "number with a leading zero") end
  local _, frac_end = find(text, "^%.%d+", last + 1)
  last = frac_end or last
  local _, exp_end = find(text, "^[eE][-+]?%d+", last + 1)
  last = exp_end or last
  return tonumber(sub(text, pos, last)), last + 1
end


local decode_value

local function decode_array(text, pos)
  local result, n = {}, 0
  pos = skip_space(text, pos)
  if byte(text, pos) == 93 then return result, pos + 1 end
  while true do
    local value
    value, pos = decode_value(text, pos)
    n = n + 1
    result[n] = value
    pos = skip_space(text, pos)
    local c = byte(text, pos)
    if c == 93 then return result, pos + 1 end
    if c ~= 44 then fail(text, pos, "expected ',' or ']' in array") end
    pos = pos + 1
  end
end

local function decode_object(text, pos)
  local result = {}
  pos = skip_space(text, pos)
  if byte(text, pos) == 125 then return result, pos + 1 end
  while true do
    if byte(text, pos) ~= 34 then fail(text, pos, "expected a string key in object") end
    local key
    key, pos = decode_string(text, pos + 1)
    pos = skip_space(text, pos)
    if byte(text, pos) ~= 58 then fail(text, pos, "expected ':' after object key") end
    local value
    value, pos = decode_value(text, pos + 1)
    result[key] = value
    pos = skip_space(text, pos)
    local c = byte(text, pos)
    if c == 125 then return result, pos + 1 end
    if c ~= 44 then fail(text, pos, "expected ',' or '}' in object") end
    pos = skip_space(text, pos + 1)
  end
end

decode_value = function(text, pos)
  pos = skip_space(text, pos)
  local c = byte(text, pos)
  if c == 34 then return decode_string(text, pos + 1) end
  if c == 123 then return decode_object(text, pos + 1) end
  if c == 91 then return decode_array(text, pos + 1) end
  if c == nil then fail(text, pos, "unexpected end of input") end
  local word = text:match("^%a+", pos)
  if word == "true" then return true, pos + 4 end
  if word == "false" then return false, pos + 5 end
  if word == "null" then return nil, pos + 4 end
  if word then fail(text, pos, "unexpected word '" .. word .. "'") end
  return decode_number(text, pos)
end

function json.decode(text)
  if type(text) ~= "string" then
    error("json: expected a string to decode, got " .. type(text), 0)
  end
  local value, pos = decode_value(text, 1)
  pos = skip_space(text, pos)
  if pos <= #text then fail(text, pos, "trailing characters after the value") end
  return value
end

return json
