-- Deterministic random numbers for processes, the generator aos seeds math.random with: MT19937,
-- the 32-bit Mersenne Twister of Matsumoto and Nishimura (1998), in Lua integer arithmetic.
--
-- chance.seed(n) is the reference init_genrand(n mod 2^32); chance.int32() is genrand_int32;
-- chance.random() is one output scaled to [0, 1) (int32 / 2^32, as aos computes it);
-- chance.integer(a, b) is floor(random() * (b - a + 1) + a). The same seed gives aos's sequence.
local chance = { _version = "1.0.0" }

local N, M = 624, 397
local MATRIX_A = 0x9908b0df
local UPPER_MASK, LOWER_MASK = 0x80000000, 0x7fffffff

local state = {}
local index = N + 1

local function to_uint32(n)
  local whole = math.tointeger(n) or math.tointeger(math.floor(n % 4294967296.0))
  return whole & 0xffffffff
end

function chance.seed(seed)
  state[1] = to_uint32(seed)
  for i = 2, N do
    local prev = state[i - 1]
    state[i] = (1812433253 * (prev ~ (prev >> 30)) + (i - 1)) & 0xffffffff
  end
  index = N + 1
end

local function twist()
  for i = 1, N do
    local y = (state[i] & UPPER_MASK) | (state[i % N + 1] & LOWER_MASK)
    local next_value = state[(i + M - 1) % N + 1] ~ (y >> 1)
    if y & 1 == 1 then next_value = next_value ~ MATRIX_A end
    state[i] = next_value
  end
  index = 1
end

function chance.int32()
  if index > N then twist() end
  local y = state[index]
  index = index + 1
  y = y ~ (y >> 11)
  y = y ~ ((y << 7) & 0x9d2c5680)
  y = y ~ ((y << 15) & 0xefc60000)
  return y ~ (y >> 18)
end

function chance.random()
  return chance.int32() * (1.0 / 4294967296.0)
end

function chance.integer(min, max)
  assert(max >= min, "max must bigger than min")
  return math.floor(chance.random() * (max - min + 1) + min)
end

chance.seed(5489) -- the reference default seed, until the process seeds it

return chance
