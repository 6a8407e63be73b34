-- Digests, MACs and key derivation, as aos's `.crypto` module offers them.
--
-- crypto.digest.NAME(input) with NAME one of md5, sha1, sha2_256, sha2_512, sha3_256, sha3_512,
-- keccak256, keccak512, and blake2b(input[, outlen = 64[, key]]); crypto.mac.createHmac(data, key
-- [, "sha1" | "sha256"]) (aos's HMAC, see below); crypto.kdf.pbkdf2(password, salt, iterations,
-- length[, "sha1" | "sha256"]). Inputs are strings, byte streams
-- (crypto.utils.stream.fromString(s)) or, for keys, byte arrays; each result has asBytes() (a table
-- of bytes), asHex() (lower case), asString() (the raw bytes) and asBase64().
--
-- Pure Lua on 32- and 64-bit integer arithmetic, so a digest costs compute like any other code
-- and is the same everywhere. keccak256/512 are the original Keccak (padding 0x01, as Ethereum
-- uses it); sha3_256/512 are FIPS 202 (padding 0x06).
local base64 = require(".base64")

local MASK32 = 0xffffffff
local unpack, pack, rep, byte, char = string.unpack, string.pack, string.rep, string.byte, string.char

-- stream and hex helpers ---------------------------------------------------------------------

local stream = {}

function stream.fromString(s)
  local i = 0
  return function()
    i = i + 1
    return byte(s, i)
  end
end

function stream.fromArray(bytes)
  local i = 0
  return function()
    i = i + 1
    return bytes[i]
  end
end

function stream.toArray(source)
  local bytes = {}
  for b in source do bytes[#bytes + 1] = b end
  return bytes
end

function stream.toString(source)
  local parts = {}
  for b in source do parts[#parts + 1] = char(b) end
  return table.concat(parts)
end

local hex = {}

function hex.stringToHex(s)
  return (s:gsub(".", function(c) return string.format("%02x", byte(c)) end))
end

function hex.hexToString(text)
  text = text:gsub("%s+", "")
  if text:find("[^%x]") or #text % 2 ~= 0 then error("invalid hex string") end
  return (text:gsub("%x%x", function(pair) return char(tonumber(pair, 16)) end))
end

function stream.fromHex(text) return stream.fromString(hex.hexToString(text)) end
function stream.toHex(source) return hex.stringToHex(stream.toString(source)) end

local array = {}
function array.fromString(s) return { byte(s, 1, -1) } end
function array.toString(bytes) return char(table.unpack(bytes)) end
function array.fromHex(text) return array.fromString(hex.hexToString(text)) end
function array.toHex(bytes) return hex.stringToHex(array.toString(bytes)) end

-- a string, or the bytes a stream yields
local function input_bytes(input)
  if type(input) == "string" then return input end
  if type(input) == "function" then return stream.toString(input) end
  error("a digest takes a string or a byte stream, not a " .. type(input), 3)
end

local function digest_result(bytes)
  return {
    asBytes = function() return array.fromString(bytes) end,
    asHex = function() return hex.stringToHex(bytes) end,
    asString = function() return bytes end,
    asBase64 = function() return base64.encode(bytes) end,
  }
end

-- Merkle-Damgard padding: 0x80, zeros, then the bit length in `length_bytes` bytes
local function md_padded(message, block, length_bytes, little_endian)
  local zeros = (block - (#message + 1 + length_bytes) % block) % block
  local bits = #message * 8
  local length = little_endian and pack("<I8", bits) .. rep("\0", length_bytes - 8)
    or rep("\0", length_bytes - 8) .. pack(">I8", bits)
  return message .. "\128" .. rep("\0", zeros) .. length
end

local function rotl32(x, n) return ((x << n) | (x >> (32 - n))) & MASK32 end
local function rotr32(x, n) return ((x >> n) | (x << (32 - n))) & MASK32 end
local function rotr64(x, n) return (x >> n) | (x << (64 - n)) end

-- MD5 (RFC 1321) ---------------------------------------------------------------------------

local MD5_T = {
  0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
  0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
  0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
  0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
  0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
  0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
  0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
  0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
}
local MD5_SHIFTS = { 7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21 }

local function md5(message)
  message = md_padded(message, 64, 8, true)
  local a0, b0, c0, d0 = 0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476
  for offset = 1, #message, 64 do
    local w = { unpack(rep("<I4", 16), message, offset) }
    local a, b, c, d = a0, b0, c0, d0
    for i = 0, 63 do
      local round, f, g = i // 16
      if round == 0 then f, g = (b & c) | (~b & d), i
      elseif round == 1 then f, g = (d & b) | (~d & c), (5 * i + 1) % 16
      elseif round == 2 then f, g = b ~ c ~ d, (3 * i + 5) % 16
      else f, g = c ~ (b | ~d), (7 * i) % 16 end
      f = (f + a + MD5_T[i + 1] + w[g + 1]) & MASK32
      a, d, c = d, c, b
      b = (b + rotl32(f, MD5_SHIFTS[round * 4 + i % 4 + 1])) & MASK32
    end
    a0, b0 = (a0 + a) & MASK32, (b0 + b) & MASK32
    c0, d0 = (c0 + c) & MASK32, (d0 + d) & MASK32
  end
  return pack("<I4I4I4I4", a0, b0, c0, d0)
end

-- SHA-1 (FIPS 180-4) -----------------------------------------------------------------------

local function sha1(message)
  message = md_padded(message, 64, 8)
  local h = { 0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0 }
  for offset = 1, #message, 64 do
    local w = { unpack(rep(">I4", 16), message, offset) }
    for t = 17, 80 do w[t] = rotl32(w[t - 3] ~ w[t - 8] ~ w[t - 14] ~ w[t - 16], 1) end
    local a, b, c, d, e = h[1], h[2], h[3], h[4], h[5]
    for t = 1, 80 do
      local f, k
      if t <= 20 then f, k = (b & c) | (~b & d), 0x5a827999
      elseif t <= 40 then f, k = b ~ c ~ d, 0x6ed9eba1
      elseif t <= 60 then f, k = (b & c) | (b & d) | (c & d), 0x8f1bbcdc
      else f, k = b ~ c ~ d, 0xca62c1d6 end
      local temp = (rotl32(a, 5) + (f & MASK32) + e + k + w[t]) & MASK32
      a, b, c, d, e = temp, a, rotl32(b, 30), c, d
    end
    h[1], h[2], h[3] = (h[1] + a) & MASK32, (h[2] + b) & MASK32, (h[3] + c) & MASK32
    h[4], h[5] = (h[4] + d) & MASK32, (h[5] + e) & MASK32
  end
  return pack(">I4I4I4I4I4", table.unpack(h))
end

-- SHA-256 and SHA-512 (FIPS 180-4) ---------------------------------------------------------

local K256 = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}

local function sha2_256(message)
  message = md_padded(message, 64, 8)
  local h = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
  }
  for offset = 1, #message, 64 do
    local w = { unpack(rep(">I4", 16), message, offset) }
    for t = 17, 64 do
      local s0 = rotr32(w[t - 15], 7) ~ rotr32(w[t - 15], 18) ~ (w[t - 15] >> 3)
      local s1 = rotr32(w[t - 2], 17) ~ rotr32(w[t - 2], 19) ~ (w[t - 2] >> 10)
      w[t] = (w[t - 16] + s0 + w[t - 7] + s1) & MASK32
    end
    local a, b, c, d, e, f, g, hh = table.unpack(h)
    for t = 1, 64 do
      local s1 = rotr32(e, 6) ~ rotr32(e, 11) ~ rotr32(e, 25)
      local choice = (e & f) ~ (~e & g & MASK32)
      local temp1 = (hh + s1 + choice + K256[t] + w[t]) & MASK32
      local s0 = rotr32(a, 2) ~ rotr32(a, 13) ~ rotr32(a, 22)
      local temp2 = (s0 + ((a & b) ~ (a & c) ~ (b & c))) & MASK32
      a, b, c, d, e, f, g, hh = (temp1 + temp2) & MASK32, a, b, c, (d + temp1) & MASK32, e, f, g
    end
    local state = { a, b, c, d, e, f, g, hh }
    for i = 1, 8 do h[i] = (h[i] + state[i]) & MASK32 end
  end
  return pack(rep(">I4", 8), table.unpack(h))
end

-- 64-bit words: Lua integer addition wraps modulo 2^64, as SHA-512 needs
local K512 = {
  0x428a2f98d728ae22, 0x7137449123ef65cd, 0xb5c0fbcfec4d3b2f, 0xe9b5dba58189dbbc,
  0x3956c25bf348b538, 0x59f111f1b605d019, 0x923f82a4af194f9b, 0xab1c5ed5da6d8118,
  0xd807aa98a3030242, 0x12835b0145706fbe, 0x243185be4ee4b28c, 0x550c7dc3d5ffb4e2,
  0x72be5d74f27b896f, 0x80deb1fe3b1696b1, 0x9bdc06a725c71235, 0xc19bf174cf692694,
  0xe49b69c19ef14ad2, 0xefbe4786384f25e3, 0x0fc19dc68b8cd5b5, 0x240ca1cc77ac9c65,
  0x2de92c6f592b0275, 0x4a7484aa6ea6e483, 0x5cb0a9dcbd41fbd4, 0x76f988da831153b5,
  0x983e5152ee66dfab, 0xa831c66d2db43210, 0xb00327c898fb213f, 0xbf597fc7beef0ee4,
  0xc6e00bf33da88fc2, 0xd5a79147930aa725, 0x06ca6351e003826f, 0x142929670a0e6e70,
  0x27b70a8546d22ffc, 0x2e1b21385c26c926, 0x4d2c6dfc5ac42aed, 0x53380d139d95b3df,
  0x650a73548baf63de, 0x766a0abb3c77b2a8, 0x81c2c92e47edaee6, 0x92722c851482353b,
  0xa2bfe8a14cf10364, 0xa81a664bbc423001, 0xc24b8b70d0f89791, 0xc76c51a30654be30,
  0xd192e819d6ef5218, 0xd69906245565a910, 0xf40e35855771202a, 0x106aa07032bbd1b8,
  0x19a4c116b8d2d0c8, 0x1e376c085141ab53, 0x2748774cdf8eeb99, 0x34b0bcb5e19b48a8,
  0x391c0cb3c5c95a63, 0x4ed8aa4ae3418acb, 0x5b9cca4f7763e373, 0x682e6ff3d6b2b8a3,
  0x748f82ee5defb2fc, 0x78a5636f43172f60, 0x84c87814a1f0ab72, 0x8cc702081a6439ec,
  0x90befffa23631e28, 0xa4506cebde82bde9, 0xbef9a3f7b2c67915, 0xc67178f2e372532b,
  0xca273eceea26619c, 0xd186b8c721c0c207, 0xeada7dd6cde0eb1e, 0xf57d4f7fee6ed178,
  0x06f067aa72176fba, 0x0a637dc5a2c898a6, 0x113f9804bef90dae, 0x1b710b35131c471b,
  0x28db77f523047d84, 0x32caab7b40c72493, 0x3c9ebe0a15c9bebc, 0x431d67c49c100d4c,
  0x4cc5d4becb3e42b6, 0x597f299cfc657e2a, 0x5fcb6fab3ad6faec, 0x6c44198c4a475817,
}

local H512_IV = {
  0x6a09e667f3bcc908, 0xbb67ae8584caa73b, 0x3c6ef372fe94f82b, 0xa54ff53a5f1d36f1,
  0x510e527fade682d1, 0x9b05688c2b3e6c1f, 0x1f83d9abfb41bd6b, 0x5be0cd19137e2179,
}

local function sha2_512(message)
  message = md_padded(message, 128, 16)
  local h = table.move(H512_IV, 1, 8, 1, {})
  for offset = 1, #message, 128 do
    local w = { unpack(rep(">i8", 16), message, offset) }
    for t = 17, 80 do
      local s0 = rotr64(w[t - 15], 1) ~ rotr64(w[t - 15], 8) ~ (w[t - 15] >> 7)
      local s1 = rotr64(w[t - 2], 19) ~ rotr64(w[t - 2], 61) ~ (w[t - 2] >> 6)
      w[t] = w[t - 16] + s0 + w[t - 7] + s1
    end
    local a, b, c, d, e, f, g, hh = table.unpack(h)
    for t = 1, 80 do
      local s1 = rotr64(e, 14) ~ rotr64(e, 18) ~ rotr64(e, 41)
      local temp1 = hh + s1 + ((e & f) ~ (~e & g)) + K512[t] + w[t]
      local s0 = rotr64(a, 28) ~ rotr64(a, 34) ~ rotr64(a, 39)
      local temp2 = s0 + ((a & b) ~ (a & c) ~ (b & c))
      a, b, c, d, e, f, g, hh = temp1 + temp2, a, b, c, d + temp1, e, f, g
    end
    local state = { a, b, c, d, e, f, g, hh }
    for i = 1, 8 do h[i] = h[i] + state[i] end
  end
  return pack(rep(">i8", 8), table.unpack(h))
end

-- Keccak-f[1600] sponge (FIPS 202) ---------------------------------------------------------

local ROUND_CONSTANTS = {
  0x0000000000000001, 0x0000000000008082, 0x800000000000808a, 0x8000000080008000,
  0x000000000000808b, 0x0000000080000001, 0x8000000080008081, 0x8000000000008009,
  0x000000000000008a, 0x0000000000000088, 0x0000000080008009, 0x000000008000000a,
  0x000000008000808b, 0x800000000000008b, 0x8000000000008089, 0x8000000000008003,
  0x8000000000008002, 0x8000000000000080, 0x000000000000800a, 0x800000008000000a,
  0x8000000080008081, 0x8000000000008080, 0x0000000080000001, 0x8000000080008008,
}
-- rotation offsets, lane x + 5y + 1
local ROTATIONS = {
  0, 1, 62, 28, 27, 36, 44, 6, 55, 20, 3, 10, 43, 25, 39, 41, 45, 15, 21, 8, 18, 2, 61, 56, 14,
}

local function rotl64(x, n)
  if n == 0 then return x end
  return (x << n) | (x >> (64 - n))
end

local function keccak_f(lanes)
  local b, c = {}, {}
  for round = 1, 24 do
    for x = 0, 4 do c[x] = lanes[x + 1] ~ lanes[x + 6] ~ lanes[x + 11] ~ lanes[x + 16] ~ lanes[x + 21] end
    for x = 0, 4 do
      local d = c[(x + 4) % 5] ~ rotl64(c[(x + 1) % 5], 1)
      for y = 0, 20, 5 do lanes[x + y + 1] = lanes[x + y + 1] ~ d end
    end
    for x = 0, 4 do
      for y = 0, 4 do
        -- rho and pi: lane (x, y) moves to (y, 2x + 3y)
        b[y + 5 * ((2 * x + 3 * y) % 5) + 1] = rotl64(lanes[x + 5 * y + 1], ROTATIONS[x + 5 * y + 1])
      end
    end
    for y = 0, 20, 5 do
      for x = 0, 4 do
        lanes[x + y + 1] = b[x + y + 1] ~ (~b[(x + 1) % 5 + y + 1] & b[(x + 2) % 5 + y + 1])
      end
    end
    lanes[1] = lanes[1] ~ ROUND_CONSTANTS[round]
  end
end

local function sponge(rate, suffix, out_bytes)
  return function(message)
    local padding = rate - #message % rate
    if padding == 1 then
      message = message .. char(suffix | 0x80)
    else
      message = message .. char(suffix) .. rep("\0", padding - 2) .. "\128"
    end
    local lanes = {}
    for i = 1, 25 do lanes[i] = 0 end
    local words = rate // 8
    for offset = 1, #message, rate do
      local block = { unpack(rep("<i8", words), message, offset) }
      for i = 1, words do lanes[i] = lanes[i] ~ block[i] end
      keccak_f(lanes)
    end
    return pack(rep("<i8", 8), table.unpack(lanes, 1, 8)):sub(1, out_bytes)
  end
end

-- BLAKE2b (RFC 7693): 64-bit words, up to 64 output bytes, optional key of up to 64 bytes --------

local BLAKE2B_SIGMA = {
  { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 },
  { 14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3 },
  { 11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4 },
  { 7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8 },
  { 9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13 },
  { 2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9 },
  { 12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11 },
  { 13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10 },
  { 6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5 },
  { 10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0 },
}

local function blake2b_compress(h, block, counter, last)
  local m = { unpack(rep("<i8", 16), block) }
  local v = {}
  for i = 1, 8 do v[i], v[i + 8] = h[i], H512_IV[i] end
  v[13] = v[13] ~ counter
  if last then v[15] = ~v[15] end
  local function mix(a, b, c, d, x, y)
    v[a] = v[a] + v[b] + x; v[d] = rotr64(v[d] ~ v[a], 32)
    v[c] = v[c] + v[d]; v[b] = rotr64(v[b] ~ v[c], 24)
    v[a] = v[a] + v[b] + y; v[d] = rotr64(v[d] ~ v[a], 16)
    v[c] = v[c] + v[d]; v[b] = rotr64(v[b] ~ v[c], 63)
  end
  for round = 0, 11 do
    local s = BLAKE2B_SIGMA[round % 10 + 1]
    mix(1, 5, 9, 13, m[s[1] + 1], m[s[2] + 1]); mix(2, 6, 10, 14, m[s[3] + 1], m[s[4] + 1])
    mix(3, 7, 11, 15, m[s[5] + 1], m[s[6] + 1]); mix(4, 8, 12, 16, m[s[7] + 1], m[s[8] + 1])
    mix(1, 6, 11, 16, m[s[9] + 1], m[s[10] + 1]); mix(2, 7, 12, 13, m[s[11] + 1], m[s[12] + 1])
    mix(3, 8, 9, 14, m[s[13] + 1], m[s[14] + 1]); mix(4, 5, 10, 15, m[s[15] + 1], m[s[16] + 1])
  end
  for i = 1, 8 do h[i] = h[i] ~ v[i] ~ v[i + 8] end
end

local function blake2b(message, out_bytes, key)
  out_bytes, key = out_bytes or 64, key or ""
  assert(math.type(out_bytes) == "integer" and out_bytes >= 1 and out_bytes <= 64, "blake2b: outlen must be 1..64")
  assert(#key <= 64, "blake2b: the key is at most 64 bytes")
  local h = table.move(H512_IV, 1, 8, 1, {})
  h[1] = h[1] ~ 0x01010000 ~ (#key << 8) ~ out_bytes
  if #key > 0 then message = key .. rep("\0", 128 - #key) .. message end
  local blocks = math.max(1, (#message + 127) // 128)
  for i = 1, blocks do
    local block = message:sub(128 * (i - 1) + 1, 128 * i)
    local last = i == blocks
    blake2b_compress(h, block .. rep("\0", 128 - #block), last and #message or 128 * i, last)
  end
  return pack(rep("<i8", 8), table.unpack(h)):sub(1, out_bytes)
end

-- HMAC and PBKDF2 over sha1 and sha256 --------------------------------------------------------

local HMAC_DIGESTS = { sha1 = sha1, sha256 = sha2_256 }

local function bytes_of(value)
  if type(value) == "table" then return array.toString(value) end
  return input_bytes(value)
end

-- the HMAC construction with the key padded (or hashed) to `block` bytes
local function hmac(message, key, algorithm, block)
  local hash = HMAC_DIGESTS[algorithm or "sha1"]
  if not hash then error("Unsupported algorithm: " .. tostring(algorithm), 3) end
  if #key > block then key = hash(key) end
  key = key .. rep("\0", block - #key)
  local inner = key:gsub(".", function(c) return char(byte(c) ~ 0x36) end)
  local outer = key:gsub(".", function(c) return char(byte(c) ~ 0x5c) end)
  return hash(outer .. hash(inner .. message))
end

-- PBKDF2 (RFC 8018) with RFC 2104 HMAC (64-byte blocks)
local function pbkdf2(password, salt, iterations, key_length, algorithm)
  local out, length, index = {}, 0, 1
  while length < key_length do
    local u = hmac(salt .. pack(">I4", index), password, algorithm, 64)
    local block = { byte(u, 1, -1) }
    for _ = 2, iterations do
      u = hmac(u, password, algorithm, 64)
      for i = 1, #block do block[i] = block[i] ~ byte(u, i) end
    end
    out[#out + 1] = char(table.unpack(block))
    length, index = length + #u, index + 1
  end
  return table.concat(out):sub(1, key_length)
end

local function digest(fn)
  return function(input) return digest_result(fn(input_bytes(input))) end
end

local crypto = {
  _version = "0.0.1",
  digest = {
    _version = "0.0.1",
    md5 = digest(md5),
    sha1 = digest(sha1),
    sha2_256 = digest(sha2_256),
    sha2_512 = digest(sha2_512),
    sha3_256 = digest(sponge(136, 0x06, 32)),
    sha3_512 = digest(sponge(72, 0x06, 64)),
    keccak256 = digest(sponge(136, 0x01, 32)),
    keccak512 = digest(sponge(72, 0x01, 64)),
    blake2b = function(input, out_bytes, key) return digest_result(blake2b(input_bytes(input), out_bytes, key)) end,
  },
  mac = {
    _version = "0.0.1",
    -- as aos computes it: the key is padded to 32 bytes, not to the digest's 64-byte block, so the
    -- values are not RFC 2104's
    createHmac = function(data, key, algorithm)
      return digest_result(hmac(bytes_of(data), bytes_of(key), algorithm, 32))
    end,
  },
  kdf = {
    _version = "0.0.1",
    pbkdf2 = function(password, salt, iterations, key_length, algorithm)
      return digest_result(pbkdf2(bytes_of(password), bytes_of(salt), iterations, key_length, algorithm))
    end,
  },
  utils = { _version = "0.0.1", stream = stream, hex = hex, array = array },
}

return crypto
