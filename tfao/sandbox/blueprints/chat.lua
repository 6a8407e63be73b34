-- The chat blueprint: aos's DevChat client. Loading it registers the process with the
-- Getting-Started room (once) and returns the help text.
--
-- List() asks the router for the rooms; Join(room[, nickname]), Say(text[, room]),
-- Tip([recipient[, room[, quantity]]]), Replay([depth[, room]]) and Leave(room) talk to a room by
-- name or address. Broadcasts from rooms print as "[nick@room]> text"; the router's Room-List
-- reply refreshes the known rooms.
DevChat = {}
DevChat.Router = "8MGp9kOU4JYxAlPT1AyL7O3cedd97y-w8X4ciBsf_Xo"
DevChat.InitRoom = "6I1JBBc9SOMtqFxlX7OoYgsMh7QeZk2fFwUCHTUqshg"
DevChat.LastSend = DevChat.LastSend or DevChat.InitRoom
DevChat.LastReceive = { Room = DevChat.InitRoom, Sender = nil }
DevChat.InitRooms = { [DevChat.InitRoom] = "Getting-Started" }
DevChat.Rooms = DevChat.Rooms or DevChat.InitRooms
DevChat.Confirmations = DevChat.Confirmations or true

-- a room's address from its name
function DevChat.findRoom(target)
  for address, name in pairs(DevChat.Rooms) do
    if name == target then return address end
  end
end

local function gray(text) return Colors.gray .. text .. Colors.reset end

function DevChat.add(name, address)
  ao.send({ Target = DevChat.Router, Action = "Register", Name = name or Name, Address = address or ao.id })
end

function List()
  ao.send({ Target = DevChat.Router, Action = "Get-List" })
  return gray("Getting the room list from the DevChat index...")
end

function Join(id, nickname)
  local address = DevChat.findRoom(id) or id
  ao.send({ Target = address, Action = "Register", Nickname = nickname or ao.id })
  return Colors.gray .. "Registering with room " .. Colors.blue .. id .. Colors.gray .. "..." .. Colors.reset
end

function Say(text, id)
  if id ~= nil then DevChat.LastSend = DevChat.findRoom(id) or id end -- remembered for next time
  local name = DevChat.Rooms[DevChat.LastSend] or id
  ao.send({ Target = DevChat.LastSend, Action = "Broadcast", Data = text })
  if not DevChat.Confirmations then return "" end
  return Colors.gray .. "Broadcasting to " .. Colors.blue .. name .. Colors.gray .. "..." .. Colors.reset
end

function Tip(recipient, room, quantity)
  room = room or DevChat.LastReceive.Room
  local room_name = DevChat.Rooms[room] or room
  quantity = tostring(quantity or 1)
  recipient = recipient or DevChat.LastReceive.Sender
  ao.send({ Action = "Transfer", Target = room, Recipient = recipient, Quantity = quantity })
  return Colors.gray .. "Sent tip of " .. Colors.green .. quantity .. Colors.gray .. " to " .. Colors.red
    .. recipient .. Colors.gray .. " in room " .. Colors.blue .. room_name .. Colors.gray .. "."
end

function Replay(depth, room_name)
  local room = DevChat.LastReceive.Room
  if depth then room = DevChat.findRoom(room_name) or room_name end
  local shown_room = DevChat.Rooms[room] or room
  depth = depth or 3
  ao.send({ Target = room, Action = "Replay", Depth = tostring(depth) })
  return Colors.gray .. "Requested replay of the last " .. Colors.green .. depth .. Colors.gray
    .. " messages from " .. Colors.blue .. shown_room .. Colors.reset .. "."
end

function Leave(id)
  ao.send({ Target = DevChat.findRoom(id) or id, Action = "Unregister" })
  return Colors.gray .. "Leaving room " .. Colors.blue .. id .. Colors.gray .. "..." .. Colors.reset
end

Handlers.add("DevChat-Broadcasted", Handlers.utils.hasMatchingTag("Action", "Broadcasted"), function(m)
  local room = DevChat.Rooms[m.From] or string.sub(m.From, 1, 6)
  if m.Broadcaster == ao.id and DevChat.Confirmations == true then
    print(Colors.gray .. "[Received confirmation of your broadcast in " .. Colors.blue .. room .. Colors.gray
      .. ".]" .. Colors.reset)
  end
  local nick = string.sub(m.Nickname, 1, 10)
  if m.Broadcaster ~= m.Nickname then nick = nick .. Colors.gray .. "#" .. string.sub(m.Broadcaster, 1, 3) end
  print("[" .. Colors.red .. nick .. Colors.reset .. "@" .. Colors.blue .. room .. Colors.reset .. "]> "
    .. Colors.green .. m.Data .. Colors.reset)
  DevChat.LastReceive.Room = m.From
  DevChat.LastReceive.Sender = m.Broadcaster
end)

Handlers.add("DevChat-List", function(m)
  return m.Action == "Room-List" and m.From == DevChat.Router
end, function(m)
  local rows = {}
  DevChat.Rooms = DevChat.InitRooms
  for _, tag in ipairs(m.TagArray) do
    if string.sub(tag.name, 1, 5) == "Room-" then
      local name = string.sub(tag.name, 6)
      rows[#rows + 1] = Colors.blue .. "        " .. name .. Colors.reset .. "\n"
      DevChat.Rooms[tag.value] = name
    end
  end
  print("👋 The following rooms are currently available on DevChat:\n\n" .. table.concat(rows)
    .. "\nJoin a chat by running `Join(\"chatName\"[, \"yourNickname\"])`! You can leave chats with `Leave(\"name\")`.")
end)

if DevChatRegistered == nil then
  DevChatRegistered = true
  Join(DevChat.InitRoom)
end

local function command(text) return Colors.green .. "\t\t`" .. text .. "`" .. Colors.reset end

function help()
  return Colors.blue .. "\n\nWelcome to ao DevChat v0.1!\n\n" .. Colors.reset
    .. "DevChat is a simple service that helps the ao community communicate as we build our new computer.\n"
    .. "The interface is simple. Run...\n\n"
    .. command("List()") .. " to see which rooms are available.\n"
    .. command("Join(\"RoomName\")") .. " to join a room.\n"
    .. command("Say(\"Msg\", \"RoomName\") or Say(\"Msg\", \"RoomName1\", \"RoomName2\")")
    .. " to post to a room (remembering your last choice for next time).\n"
    .. command("Replay(Count, \"RoomName\") e.g. Replay(1, \"Getting-Started\")")
    .. " to reprint the most recent messages from a chat.\n"
    .. command("Leave(\"RoomName\")") .. " at any time to unsubscribe from a chat.\n"
    .. command("Tip([\"Recipient\"])") .. " to send a token from the chatroom to the sender of the last message.\n\n"
    .. "You have already been registered to the " .. Colors.blue .. DevChat.Rooms[DevChat.InitRoom] .. Colors.reset
    .. ".\nHave fun, be respectful, and remember: Cypherpunks ship code! 🫡"
end

return help()
