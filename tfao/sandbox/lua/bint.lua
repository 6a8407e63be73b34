-- Fixed-width big integers, as aos's `.bint` module offers them: `local bint = require(".bint")(256)`.
--
-- A bint is a table of 32-bit words, least significant first, in two's complement at the module's
-- bit width, with bint's class as metatable. Arithmetic wraps around like Lua integers; mixing a
-- bint with a float (or a value that is not an integer) computes in floats; `/` and `^` always give
-- floats (use `//` and bint.ipow for integers). Values convert with bint(x) (= bint.new: a number, a
-- decimal / 0x hex / 0b binary string, or a bint to copy), and back with tostring, bint.tonumber,
-- bint.tointeger and bint.tobase.
local WORD_BITS = 32
local WORD_MASK = 0xffffffff

local modules = {}

local function new_module(bits)
  assert(math.type(bits) == "integer" and bits >= 64 and bits % WORD_BITS == 0,
    "bitsize must be a multiple of 32 and at least 64")
  local SIZE = bits // WORD_BITS
  local BYTES = bits // 8
  local SIGN_BIT = 1 << (WORD_BITS - 1)

  local bint = { bits = bits }
  bint.__index = bint

  local function blank() return setmetatable({}, bint) end

  local function is_bint(x) return getmetatable(x) == bint end

  local function copy(x)
    local n = blank()
    for i = 1, SIZE do n[i] = x[i] end
    return n
  end

  -- a Lua integer spread over the words, sign-extended (or zero-extended when `unsigned`)
  local function from_lua_integer(x, unsigned)
    local n = blank()
    local fill = (x < 0 and not unsigned) and WORD_MASK or 0
    n[1], n[2] = x & WORD_MASK, (x >> WORD_BITS) & WORD_MASK
    for i = 3, SIZE do n[i] = fill end
    return n
  end

  -- a number or numeric string as a Lua integer, or nil when it has a fractional part
  local function integer_of(x)
    x = tonumber(x)
    if math.type(x) == "float" and math.floor(x) == x then x = math.floor(x) end
    if math.type(x) == "integer" then return x end
    return nil
  end

  function bint.zero() return from_lua_integer(0) end
  function bint.one() return from_lua_integer(1) end

  function bint.frominteger(x)
    x = integer_of(x)
    if x then return from_lua_integer(x) end
  end

  function bint.fromuinteger(x)
    x = integer_of(x)
    if x then return from_lua_integer(x, true) end
  end

  local function is_negative(x) return x[SIZE] & SIGN_BIT ~= 0 end

  local function is_zero(x)
    for i = 1, SIZE do
      if x[i] ~= 0 then return false end
    end
    return true
  end

  -- in-place helpers on a bint's words ---------------------------------------------------------

  local function negate_in_place(x)
    local carry = 1
    for i = 1, SIZE do
      local word = (~x[i] & WORD_MASK) + carry
      x[i], carry = word & WORD_MASK, word >> WORD_BITS
    end
    return x
  end

  -- x = x * m + a, for small non-negative m and a (m * word + a fits in 64 bits unsigned)
  local function mul_add_small(x, m, a)
    local carry = a
    for i = 1, SIZE do
      local word = x[i] * m + carry
      x[i], carry = word & WORD_MASK, word >> WORD_BITS
    end
    return x
  end

  -- x = x // d in place for 0 < d < 2^31; returns the remainder
  local function div_small(x, d)
    local rest = 0
    for i = SIZE, 1, -1 do
      local part = (rest << WORD_BITS) | x[i]
      x[i], rest = part // d, part % d
    end
    return rest
  end

  -- conversions --------------------------------------------------------------------------------

  local DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"

  -- how many digits of `base` fit in one step of mul_add_small
  local function digits_per_step(base)
    local step, power = 0, 1
    while power * base < (1 << 31) do step, power = step + 1, power * base end
    return step, power
  end

  function bint.frombase(s, base)
    if type(s) ~= "string" then return nil end
    base = base or 10
    if not (math.type(base) == "integer" and base >= 2 and base <= 36) then return nil end
    local sign, digits = s:lower():match("^([+-]?)(%w+)$")
    if not digits then return nil end
    local n = bint.zero()
    local step = digits_per_step(base)
    for i = 1, #digits, step do
      local chunk = digits:sub(i, i + step - 1)
      local value = tonumber(chunk, base)
      if not value then return nil end
      mul_add_small(n, math.tointeger(base ^ #chunk), value)
    end
    if sign == "-" then negate_in_place(n) end
    return n
  end

  function bint.fromstring(s)
    if type(s) ~= "string" then return nil end
    if s:find("^[+-]?%d+$") then return bint.frombase(s, 10) end
    if s:find("^[+-]?0[xX]%x+$") then return bint.frombase((s:gsub("0[xX]", "", 1)), 16) end
    if s:find("^[+-]?0[bB][01]+$") then return bint.frombase((s:gsub("0[bB]", "", 1)), 2) end
    return nil
  end

  -- x when it is a bint (a copy if `clone`), else its conversion, or nil
  function bint.tobint(x, clone)
    if is_bint(x) then return clone and copy(x) or x end
    local kind = type(x)
    if kind == "number" then return bint.frominteger(x) end
    if kind == "string" then return bint.fromstring(x) end
    return nil
  end
  local tobint = bint.tobint

  function bint.new(x)
    if is_bint(x) then return copy(x) end
    local n = tobint(x)
    assert(n, "value cannot be represented by a bint")
    return n
  end

  function bint.parse(x, clone)
    return tobint(x, clone) or tonumber(x)
  end

  local function as_bint(x)
    local n = tobint(x)
    assert(n, "value has no integer representation")
    return n
  end

  function bint.touinteger(x)
    if is_bint(x) then return x[1] | (x[2] << WORD_BITS) end
    return integer_of(x)
  end
  -- the low 64 bits read as a signed integer: wraps around like Lua integers
  bint.tointeger = bint.touinteger

  local MAX_LUA_INTEGER, MIN_LUA_INTEGER

  function bint.tonumber(x)
    if not is_bint(x) then return tonumber(x) end
    if x <= MAX_LUA_INTEGER and x >= MIN_LUA_INTEGER then return bint.tointeger(x) end
    return tonumber(tostring(x))
  end
  local to_number = bint.tonumber

  function bint.tobase(x, base, unsigned)
    x = tobint(x)
    if not x then return nil end
    base = base or 10
    if not (math.type(base) == "integer" and base >= 2 and base <= 36) then return nil end
    if unsigned == nil then unsigned = base ~= 10 end
    local negative = not unsigned and is_negative(x)
    local n = copy(x)
    if negative then negate_in_place(n) end
    if is_zero(n) then return "0" end
    local step, power = digits_per_step(base)
    local chunks = {}
    while not is_zero(n) do
      local rest = div_small(n, power)
      local chunk = {}
      for i = step, 1, -1 do
        local d = rest % base
        chunk[i] = DIGITS:sub(d + 1, d + 1)
        rest = rest // base
      end
      chunks[#chunks + 1] = table.concat(chunk)
    end
    local text = {}
    for i = #chunks, 1, -1 do text[#text + 1] = chunks[i] end
    local digits = table.concat(text):gsub("^0+", "")
    return (negative and "-" or "") .. digits
  end

  function bint.fromle(buffer)
    assert(type(buffer) == "string", "buffer is not a string")
    buffer = buffer:sub(1, BYTES) .. string.rep("\0", BYTES - math.min(#buffer, BYTES))
    local n = blank()
    for i = 1, SIZE do n[i] = string.unpack("<I4", buffer, 4 * (i - 1) + 1) end
    return n
  end

  function bint.frombe(buffer)
    assert(type(buffer) == "string", "buffer is not a string")
    if #buffer > BYTES then buffer = buffer:sub(-BYTES) end
    return bint.fromle(buffer:reverse())
  end

  function bint.tole(x, trim)
    x = as_bint(x)
    local parts = {}
    for i = 1, SIZE do parts[i] = string.pack("<I4", x[i]) end
    local bytes = table.concat(parts)
    if trim then bytes = bytes:gsub("\0+$", "") end
    return bytes
  end

  function bint.tobe(x, trim)
    local bytes = bint.tole(x):reverse()
    if trim then bytes = bytes:gsub("^\0+", "") end
    return bytes
  end

  -- predicates ---------------------------------------------------------------------------------

  function bint.isbint(x) return is_bint(x) end
  function bint.isintegral(x) return is_bint(x) or math.type(x) == "integer" end
  function bint.isnumeric(x) return is_bint(x) or type(x) == "number" end
  function bint.type(x)
    if is_bint(x) then return "bint" end
    return math.type(x)
  end

  function bint.iszero(x)
    if is_bint(x) then return is_zero(x) end
    return x == 0
  end
  function bint.isone(x)
    if is_bint(x) then return bint.eq(x, 1) end
    return x == 1
  end
  function bint.isminusone(x)
    if is_bint(x) then return bint.eq(x, -1) end
    return x == -1
  end
  function bint.isneg(x)
    if is_bint(x) then return is_negative(x) end
    return x < 0
  end
  function bint.ispos(x)
    if is_bint(x) then return not is_negative(x) and not is_zero(x) end
    return x > 0
  end
  function bint.iseven(x)
    if is_bint(x) then return x[1] & 1 == 0 end
    return math.abs(x) % 2 == 0
  end
  function bint.isodd(x)
    if is_bint(x) then return x[1] & 1 == 1 end
    return math.abs(x) % 2 == 1
  end

  function bint.maxinteger()
    local n = blank()
    for i = 1, SIZE - 1 do n[i] = WORD_MASK end
    n[SIZE] = SIGN_BIT - 1
    return n
  end
  function bint.mininteger()
    local n = bint.zero()
    n[SIZE] = SIGN_BIT
    return n
  end

  -- arithmetic ---------------------------------------------------------------------------------

  local function add(a, b)
    local n, carry = blank(), 0
    for i = 1, SIZE do
      local word = a[i] + b[i] + carry
      n[i], carry = word & WORD_MASK, word >> WORD_BITS
    end
    return n
  end

  local function negated(x) return negate_in_place(copy(x)) end

  -- truncated product: a Lua integer product of two words is their exact 64-bit product (mod 2^64)
  local function multiply(a, b)
    local n = bint.zero()
    for i = 1, SIZE do
      if a[i] ~= 0 then
        local carry = 0
        for j = 1, SIZE - i + 1 do
          local product = a[i] * b[j]
          local k = i + j - 1
          local word = n[k] + (product & WORD_MASK) + carry
          n[k] = word & WORD_MASK
          carry = (word >> WORD_BITS) + (product >> WORD_BITS)
        end
      end
    end
    return n
  end

  local function unsigned_less(a, b)
    for i = SIZE, 1, -1 do
      if a[i] ~= b[i] then return a[i] < b[i] end
    end
    return false
  end

  local function signed_less(a, b)
    local a_negative, b_negative = is_negative(a), is_negative(b)
    if a_negative ~= b_negative then return a_negative end
    return unsigned_less(a, b)
  end

  local function same(a, b)
    for i = 1, SIZE do
      if a[i] ~= b[i] then return false end
    end
    return true
  end

  local function shift_left(x, count)
    local n = bint.zero()
    if count >= bits then return n end
    local words, rest = count // WORD_BITS, count % WORD_BITS
    for i = SIZE, words + 1, -1 do
      local word = x[i - words] << rest
      if rest > 0 and i - words - 1 >= 1 then word = word | (x[i - words - 1] >> (WORD_BITS - rest)) end
      n[i] = word & WORD_MASK
    end
    return n
  end

  -- logical shift: zeros come in at the top
  local function shift_right(x, count)
    local n = bint.zero()
    if count >= bits then return n end
    local words, rest = count // WORD_BITS, count % WORD_BITS
    for i = 1, SIZE - words do
      local word = x[i + words] >> rest
      if rest > 0 and i + words + 1 <= SIZE then word = word | (x[i + words + 1] << (WORD_BITS - rest)) end
      n[i] = word & WORD_MASK
    end
    return n
  end

  local function bit_length(x)
    for i = SIZE, 1, -1 do
      if x[i] ~= 0 then
        local word, length = x[i], 0
        while word ~= 0 do word, length = word >> 1, length + 1 end
        return (i - 1) * WORD_BITS + length
      end
    end
    return 0
  end

  -- unsigned quotient and remainder
  local function unsigned_divmod(a, b)
    assert(not is_zero(b), "attempt to divide by zero")
    if bit_length(b) <= 31 then
      local quotient = copy(a)
      return quotient, from_lua_integer(div_small(quotient, b[1]))
    end
    local quotient, rest = bint.zero(), bint.zero()
    for bit = bit_length(a) - 1, 0, -1 do
      rest = shift_left(rest, 1)
      rest[1] = rest[1] | ((a[bit // WORD_BITS + 1] >> (bit % WORD_BITS)) & 1)
      if not unsigned_less(rest, b) then
        rest = add(rest, negated(b))
        quotient[bit // WORD_BITS + 1] = quotient[bit // WORD_BITS + 1] | (1 << (bit % WORD_BITS))
      end
    end
    return quotient, rest
  end

  -- signed quotient rounded toward zero, and the remainder with the numerator's sign
  local function truncated_divmod(a, b)
    local a_negative, b_negative = is_negative(a), is_negative(b)
    local quotient, rest = unsigned_divmod(a_negative and negated(a) or a, b_negative and negated(b) or b)
    if a_negative ~= b_negative then negate_in_place(quotient) end
    if a_negative then negate_in_place(rest) end
    return quotient, rest
  end

  -- signed quotient rounded toward minus infinity, and the remainder with the divisor's sign
  local function floor_divmod(a, b)
    local quotient, rest = truncated_divmod(a, b)
    if not is_zero(rest) and is_negative(rest) ~= is_negative(b) then
      quotient = add(quotient, from_lua_integer(-1))
      rest = add(rest, b)
    end
    return quotient, rest
  end

  -- a binary operation on two integers, or the float operation when either is not one
  local function integer_or_float(on_bints, on_numbers)
    return function(x, y)
      local a, b = tobint(x), tobint(y)
      if a and b then return on_bints(a, b) end
      return on_numbers(to_number(x), to_number(y))
    end
  end

  bint.__add = integer_or_float(add, function(a, b) return a + b end)
  bint.__sub = integer_or_float(function(a, b) return add(a, negated(b)) end, function(a, b) return a - b end)
  bint.__mul = integer_or_float(multiply, function(a, b) return a * b end)
  bint.__idiv = integer_or_float(function(a, b) return (floor_divmod(a, b)) end, function(a, b) return a // b end)
  bint.__mod = integer_or_float(function(a, b) return select(2, floor_divmod(a, b)) end,
    function(a, b) return a % b end)
  bint.idivmod = integer_or_float(floor_divmod, function(a, b) return a // b, a % b end)
  bint.__lt = integer_or_float(signed_less, function(a, b) return a < b end)
  bint.__le = integer_or_float(function(a, b) return not signed_less(b, a) end, function(a, b) return a <= b end)

  function bint.__div(x, y) return to_number(x) / to_number(y) end
  function bint.__pow(x, y) return to_number(x) ^ to_number(y) end
  function bint.__unm(x) return negated(x) end
  function bint.__eq(x, y) return same(x, y) end
  function bint.__tostring(x) return bint.tobase(x, 10) end

  function bint.eq(x, y)
    local a, b = tobint(x), tobint(y)
    if a and b then return same(a, b) end
    return x == y
  end

  function bint.udivmod(x, y) return unsigned_divmod(as_bint(x), as_bint(y)) end
  function bint.udiv(x, y) return (unsigned_divmod(as_bint(x), as_bint(y))) end
  function bint.umod(x, y) return select(2, unsigned_divmod(as_bint(x), as_bint(y))) end
  function bint.tdivmod(x, y) return truncated_divmod(as_bint(x), as_bint(y)) end
  function bint.tdiv(x, y) return (truncated_divmod(as_bint(x), as_bint(y))) end
  function bint.tmod(x, y) return select(2, truncated_divmod(as_bint(x), as_bint(y))) end
  function bint.ult(x, y) return unsigned_less(as_bint(x), as_bint(y)) end
  function bint.ule(x, y) return not unsigned_less(as_bint(y), as_bint(x)) end

  -- x ^ y in integers (wrapping); a negative y counts as its unsigned value
  function bint.ipow(x, y)
    local base, exponent, result = bint.new(x), as_bint(y), bint.one()
    for bit = 0, bit_length(exponent) - 1 do
      if (exponent[bit // WORD_BITS + 1] >> (bit % WORD_BITS)) & 1 == 1 then result = multiply(result, base) end
      base = multiply(base, base)
    end
    return result
  end

  -- x ^ y mod m, all unsigned
  function bint.upowmod(x, y, m)
    local base, exponent, modulus = as_bint(x), as_bint(y), as_bint(m)
    local result = select(2, unsigned_divmod(bint.one(), modulus))
    base = select(2, unsigned_divmod(base, modulus))
    for bit = 0, bit_length(exponent) - 1 do
      if (exponent[bit // WORD_BITS + 1] >> (bit % WORD_BITS)) & 1 == 1 then
        result = select(2, unsigned_divmod(multiply(result, base), modulus))
      end
      base = select(2, unsigned_divmod(multiply(base, base), modulus))
    end
    return result
  end

  function bint.inc(x) return bint.new(x) + 1 end
  function bint.dec(x) return bint.new(x) - 1 end

  function bint.abs(x)
    if not is_bint(x) then return math.abs(x) end
    return is_negative(x) and negated(x) or copy(x)
  end

  -- whole numbers of a number as a bint; a bint stays as it is (copied)
  local function rounded(fn)
    return function(x)
      if is_bint(x) then return copy(x) end
      return bint.new(fn(to_number(x)))
    end
  end
  bint.floor = rounded(math.floor)
  bint.ceil = rounded(math.ceil)
  bint.trunc = rounded(function(x) return x < 0 and math.ceil(x) or math.floor(x) end)

  function bint.max(x, y)
    local a, b = as_bint(x), as_bint(y)
    return copy(signed_less(a, b) and b or a)
  end
  function bint.min(x, y)
    local a, b = as_bint(x), as_bint(y)
    return copy(signed_less(b, a) and b or a)
  end

  -- bitwise ------------------------------------------------------------------------------------

  local function wordwise(op)
    return function(x, y)
      local a, b = as_bint(x), as_bint(y)
      local n = blank()
      for i = 1, SIZE do n[i] = op(a[i], b[i]) & WORD_MASK end
      return n
    end
  end
  bint.__band = wordwise(function(a, b) return a & b end)
  bint.__bor = wordwise(function(a, b) return a | b end)
  bint.__bxor = wordwise(function(a, b) return a ~ b end)
  function bint.__bnot(x)
    local a, n = as_bint(x), blank()
    for i = 1, SIZE do n[i] = ~a[i] & WORD_MASK end
    return n
  end

  local function shift_count(y)
    local count = bint.tointeger(y)
    assert(count, "value has no integer representation")
    return count
  end

  function bint.__shl(x, y)
    local count = shift_count(y)
    if count < 0 then return shift_right(as_bint(x), -count) end
    return shift_left(as_bint(x), count)
  end

  function bint.__shr(x, y)
    local count = shift_count(y)
    if count < 0 then return shift_left(as_bint(x), -count) end
    return shift_right(as_bint(x), count)
  end

  -- the low y bits of x
  function bint.bwrap(x, y)
    local count = shift_count(y)
    if count <= 0 then return bint.zero() end
    if count >= bits then return bint.new(x) end
    return as_bint(x) & (shift_left(bint.one(), count) - 1)
  end

  function bint.brol(x, y)
    local count = shift_count(y) % bits
    local a = as_bint(x)
    return shift_left(a, count) | shift_right(a, bits - count)
  end

  function bint.bror(x, y)
    local count = shift_count(y) % bits
    local a = as_bint(x)
    return shift_right(a, count) | shift_left(a, bits - count)
  end

  setmetatable(bint, { __call = function(_, x) return bint.new(x) end })
  MAX_LUA_INTEGER, MIN_LUA_INTEGER = bint.new(math.maxinteger), bint.new(math.mininteger)
  return bint
end

return function(bits)
  bits = bits or 256
  modules[bits] = modules[bits] or new_module(bits)
  return modules[bits]
end
