-- The voting blueprint: stake-weighted votes, as aos's (load token and staking first).
--
-- Vote (Target, Side = "yay" | "nay", Deadline in blocks) adds the sender's staked amount to that
-- side of Votes[Target]; a finalize handler, run for every message, settles each vote whose
-- deadline block has been reached (printing "Handle Vote" when yay wins) and clears it.
Balances = Balances or {}
Votes = Votes or {}

function Handlers.vote(msg)
  local staker = Stakers and Stakers[msg.From]
  local quantity = staker and tonumber(staker.amount) or 0
  assert(quantity > 0, "No staked tokens to vote")
  local target, side = msg.Tags.Target, msg.Tags.Side
  local deadline = tonumber(msg["Block-Height"]) + tonumber(msg.Tags.Deadline)
  Votes[target] = Votes[target] or { yay = 0, nay = 0, deadline = deadline }
  Votes[target][side] = Votes[target][side] + quantity
end

local function finalize(msg)
  local height = tonumber(msg["Block-Height"])
  for target, vote in pairs(Votes) do
    if height >= vote.deadline then
      if vote.yay > vote.nay then print("Handle Vote") end
      Votes[target] = nil
    end
  end
end

-- a matching message goes on to the later handlers too
local function continuing(pattern)
  return function(msg)
    local match = pattern(msg)
    if match == -1 or match == true then return 1 end
    return match
  end
end

Handlers.add("vote", continuing(Handlers.utils.hasMatchingTag("Action", "Vote")), Handlers.vote)
Handlers.add("finalize", function() return "continue" end, finalize)
