-- Base64, as aos's `.base64` module (and the `base64` global) offers it.
--
-- base64.encode(bytes[, encoder]) and base64.decode(text[, decoder]); makeencoder(c62, c63, pad) /
-- makedecoder(c62, c63, pad) build the tables for other alphabets (e.g. url-safe "-", "_").
-- An encoder maps 0..63 (and 64, the padding) to character codes, a decoder the reverse. Decoding
-- ignores characters outside the alphabet, as aos's does.
local base64 = {}

local LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

function base64.makeencoder(c62, c63, pad)
  local encoder = {}
  for i = 1, #LETTERS do encoder[i - 1] = LETTERS:byte(i) end
  encoder[62], encoder[63], encoder[64] = (c62 or "+"):byte(), (c63 or "/"):byte(), (pad or "="):byte()
  return encoder
end

function base64.makedecoder(c62, c63, pad)
  local decoder = {}
  for code, char in pairs(base64.makeencoder(c62, c63, pad)) do decoder[char] = code end
  return decoder
end

local DEFAULT_ENCODER = base64.makeencoder()
local DEFAULT_DECODER = base64.makedecoder()
local char, concat = string.char, table.concat

-- the 6-bit groups of a 24-bit value, most significant first
local function sextets(value, count, encoder)
  local out = {}
  for i = 1, 4 do
    out[i] = i <= count and encoder[(value >> (6 * (4 - i))) & 63] or encoder[64]
  end
  return char(table.unpack(out))
end

function base64.encode(bytes, encoder)
  encoder = encoder or DEFAULT_ENCODER
  local out, n = {}, #bytes
  for i = 1, n, 3 do
    local a, b, c = bytes:byte(i, i + 2)
    local value = (a << 16) | ((b or 0) << 8) | (c or 0)
    out[#out + 1] = sextets(value, math.min(n - i + 1, 3) + 1, encoder)
  end
  return concat(out)
end

function base64.decode(text, decoder)
  decoder = decoder or DEFAULT_DECODER
  local pad = DEFAULT_ENCODER[64]
  for char_code, code in pairs(decoder) do
    if code == 64 then pad = char_code end
  end
  local codes = {}
  for i = 1, #text do
    local code = decoder[text:byte(i)]
    if code ~= nil and code < 64 then codes[#codes + 1] = code
    elseif text:byte(i) == pad then break end
  end
  local out = {}
  for i = 1, #codes, 4 do
    local count = math.min(#codes - i + 1, 4)
    local value = 0
    for j = 0, 3 do value = (value << 6) | (codes[i + j] or 0) end
    local bytes = char((value >> 16) & 255, (value >> 8) & 255, value & 255)
    out[#out + 1] = bytes:sub(1, count - 1)
  end
  return concat(out)
end

return base64
