-- The staking blueprint: stake token Balances (load the token blueprint first), as aos's does.
--
-- Stake (Quantity) moves tokens from Balances to Stakers[sender].amount and sets when they may be
-- unstaked (UnstakeDelay blocks later); Unstake (Quantity) queues them in Unstaking, and a
-- finalize handler ahead of all others pays queued amounts back into Balances once their block
-- height is reached. Stakers replies with the stakers as JSON. Amounts are decimal strings.
local bint = require(".bint")(256)
local json = require("json")

Variant = "0.0.4"
Stakers = Stakers or {}
Unstaking = Unstaking or {}
UnstakeDelay = UnstakeDelay or 670

local function sum(a, b) return tostring(bint(a) + bint(b)) end
local function difference(a, b) return tostring(bint(a) - bint(b)) end

local function answer(msg, reply)
  if msg.reply then return msg.reply(reply) end
  reply.Target = msg.From
  return Send(reply)
end

function Handlers.stake(msg)
  local quantity = bint(msg.Tags.Quantity)
  assert(Balances[msg.From] and bint(Balances[msg.From]) >= quantity, "Insufficient balance to stake")
  Balances[msg.From] = difference(Balances[msg.From], msg.Tags.Quantity)
  Stakers[msg.From] = Stakers[msg.From] or { amount = "0" }
  Stakers[msg.From].amount = sum(Stakers[msg.From].amount, msg.Tags.Quantity)
  Stakers[msg.From].unstake_at = tonumber(msg["Block-Height"]) + UnstakeDelay
  print("Successfully Staked " .. msg.Tags.Quantity)
  answer(msg, { Data = "Successfully Staked " .. msg.Tags.Quantity })
end

function Handlers.unstake(msg)
  local staker = Stakers[msg.From]
  assert(staker and bint(staker.amount) >= bint(msg.Tags.Quantity), "Insufficient staked amount")
  staker.amount = difference(staker.amount, msg.Tags.Quantity)
  Unstaking[msg.From] = { amount = msg.Tags.Quantity, release_at = staker.unstake_at }
  answer(msg, { Data = "Successfully unstaked " .. msg.Tags.Quantity })
end

local function finalize(msg)
  local height = tonumber(msg["Block-Height"])
  for address, unstaking in pairs(Unstaking) do
    if unstaking.release_at == nil or height >= unstaking.release_at then
      Balances[address] = sum(Balances[address] or "0", unstaking.amount)
      Unstaking[address] = nil
    end
  end
end

-- a matching message goes on to the later handlers too
local function continuing(pattern)
  return function(msg)
    local match = pattern(msg)
    if match == -1 or match == true then return "continue" end
    return match
  end
end

Handlers.add("staking.balances", Handlers.utils.hasMatchingTag("Action", "Stakers"), function(msg)
  answer(msg, { Data = json.encode(Stakers) })
end)
Handlers.add("staking.stake", continuing(Handlers.utils.hasMatchingTag("Action", "Stake")), Handlers.stake)
Handlers.add("staking.unstake", continuing(Handlers.utils.hasMatchingTag("Action", "Unstake")), Handlers.unstake)
Handlers.prepend("staking.finalize", function() return "continue" end, finalize)
