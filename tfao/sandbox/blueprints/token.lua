-- The token blueprint: the ao Standard Token, with the handlers and replies of aos's token blueprint.
--
-- Balances are decimal strings, computed in 256-bit integers. Actions: Info, Balance (of
-- Recipient, Target or the sender), Balances (a JSON map), Transfer (Recipient, Quantity; a
-- Debit-Notice to the sender and a Credit-Notice to the recipient unless Cast is set, X- tags
-- forwarded), Mint (only from the process itself), Total-Supply, Burn (not implemented). Loading
-- it again keeps the balances and parameters already set.
local bint = require(".bint")(256)
local json = require("json")

local function sum(a, b) return tostring(bint(a) + bint(b)) end
local function difference(a, b) return tostring(bint(a) - bint(b)) end
local function balance_value(a) return tostring(bint(a)) end

Variant = "0.0.3"
Denomination = Denomination or 12
Balances = Balances or { [ao.id] = balance_value(10000 * 10 ^ Denomination) }
TotalSupply = TotalSupply or balance_value(10000 * 10 ^ Denomination)
Name = Name or "Points Coin"
Ticker = Ticker or "PNTS"
Logo = Logo or "SBCCXwwecBlDqRLUjb8dYABExTJXLieawf7m2aBJ-KY"

local function token_info()
  return { name = Name, ticker = Ticker, logo = Logo, denomination = tostring(Denomination), supply = TotalSupply }
end

-- a reply to `msg`: through msg.reply when the message has one, else a message to its sender
local function answer(msg, reply)
  if msg.reply then return msg.reply(reply) end
  reply.Target = msg.From
  return Send(reply)
end

-- the state update a HyperBEAM node keeps as the process's base state
local function patch_balances(accounts)
  local patch = { device = "patch@1.0", balances = {}, ["token-info"] = token_info() }
  for _, account in ipairs(accounts) do patch.balances[account] = Balances[account] end
  Send(patch)
end

Handlers.add("info", Handlers.utils.hasMatchingTag("Action", "Info"), function(msg)
  answer(msg, token_info())
end)

Handlers.add("balance", Handlers.utils.hasMatchingTag("Action", "Balance"), function(msg)
  local balance = "0"
  if msg.Tags.Recipient then
    balance = Balances[msg.Tags.Recipient] or balance
  elseif msg.Tags.Target and Balances[msg.Tags.Target] then
    balance = Balances[msg.Tags.Target]
  elseif Balances[msg.From] then
    balance = Balances[msg.From]
  end
  answer(msg, { Balance = balance, Ticker = Ticker, Account = msg.Tags.Recipient or msg.From, Data = balance })
end)

Handlers.add("balances", Handlers.utils.hasMatchingTag("Action", "Balances"), function(msg)
  answer(msg, { Data = json.encode(Balances) })
end)

Handlers.add("transfer", Handlers.utils.hasMatchingTag("Action", "Transfer"), function(msg)
  assert(type(msg.Recipient) == "string", "Recipient is required!")
  assert(type(msg.Quantity) == "string", "Quantity is required!")
  assert(bint.__lt(0, bint(msg.Quantity)), "Quantity must be greater than 0")

  Balances[msg.From] = Balances[msg.From] or "0"
  Balances[msg.Recipient] = Balances[msg.Recipient] or "0"

  if not (bint(msg.Quantity) <= bint(Balances[msg.From])) then
    answer(msg, { Action = "Transfer-Error", ["Message-Id"] = msg.Id, Error = "Insufficient Balance!" })
    return
  end
  Balances[msg.From] = difference(Balances[msg.From], msg.Quantity)
  Balances[msg.Recipient] = sum(Balances[msg.Recipient], msg.Quantity)

  if not msg.Cast then
    local debit = {
      Action = "Debit-Notice", Recipient = msg.Recipient, Quantity = msg.Quantity,
      Data = Colors.gray .. "You transferred " .. Colors.blue .. msg.Quantity .. Colors.gray .. " to "
        .. Colors.green .. msg.Recipient .. Colors.reset,
    }
    local credit = {
      Target = msg.Recipient, Action = "Credit-Notice", Sender = msg.From, Quantity = msg.Quantity,
      Data = Colors.gray .. "You received " .. Colors.blue .. msg.Quantity .. Colors.gray .. " from "
        .. Colors.green .. msg.From .. Colors.reset,
    }
    for name, value in pairs(msg) do
      if type(name) == "string" and name:sub(1, 2) == "X-" then
        debit[name], credit[name] = value, value
      end
    end
    answer(msg, debit)
    Send(credit)
  end
  patch_balances({ msg.Recipient, msg.From })
end)

Handlers.add("mint", Handlers.utils.hasMatchingTag("Action", "Mint"), function(msg)
  assert(type(msg.Quantity) == "string", "Quantity is required!")
  assert(bint(0) < bint(msg.Quantity), "Quantity must be greater than zero!")

  Balances[ao.id] = Balances[ao.id] or "0"
  if msg.From ~= ao.id then
    answer(msg, { Action = "Mint-Error", ["Message-Id"] = msg.Id,
                  Error = "Only the Process Id can mint new " .. Ticker .. " tokens!" })
    return
  end
  Balances[msg.From] = sum(Balances[msg.From], msg.Quantity)
  TotalSupply = sum(TotalSupply, msg.Quantity)
  answer(msg, { Data = Colors.gray .. "Successfully minted " .. Colors.blue .. msg.Quantity .. Colors.reset })
  patch_balances({ msg.From })
end)

Handlers.add("totalSupply", Handlers.utils.hasMatchingTag("Action", "Total-Supply"), function(msg)
  assert(msg.From ~= ao.id, "Cannot call Total-Supply from the same process!")
  answer(msg, { Action = "Total-Supply", Data = TotalSupply, Ticker = Ticker })
end)

Handlers.add("burn", Handlers.utils.hasMatchingTag("Action", "Burn"), function(msg)
  print("not implemented")
end)
