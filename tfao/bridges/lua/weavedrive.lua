-- WeaveDrive for processes: Arweave-addressed data, admitted and verified by the host.
--
--   local drive = require("weavedrive")
--   drive.getData(id)          -> the bytes of /data/ID, or nil, "File not found!"
--   drive.getTx(id)            -> the item's header as a table, or nil, "File not found!"
--   drive.getBlock(height)     -> the block header as a table, or nil, "Block Header not found!"
--   drive.ref(id)              -> a reference to /data/ID that require("transformers") takes for bytes
--   drive.open(path) / drive.read(fd) / drive.close(fd)   the older fd-style API
--   drive.io_open(path, mode)  what io.open("/data/ID"), "/tx/ID" and "/block/H" return
--
-- Reading an id the process may not read raises "HALT: FILE NOT FOUND ...", halting the message.
local _, host = ...

local weavedrive = { _version = "1.0.0" }

local function call(name, ...)
  local ok, value = host[name](...)
  if not ok then error(value, 0) end
  return value
end

local function is_id(id)
  return type(id) == "string" and #id == 43 and id:match("^[%w_-]+$") ~= nil
end

-- files ------------------------------------------------------------------------------------------

local File = {}
File.__index = File
local LINE_CHUNK = 65536

local function new_file(info)
  return setmetatable({ id = info.id, content = info.content, size = info.size, pos = 0 }, File)
end

function File:_check()
  if self.closed then error("attempt to use a closed file", 3) end
end

-- up to n bytes from the current position, advancing it
function File:_take(n)
  n = math.min(n, self.size - self.pos)
  if n <= 0 then return "" end
  local bytes
  if self.content then
    bytes = self.content:sub(self.pos + 1, self.pos + n)
  else
    bytes = call("read", self.id, self.pos, n)
  end
  self.pos = self.pos + #bytes
  return bytes
end

function File:_line(keep_newline)
  if self.pos >= self.size then return nil end
  local parts = {}
  while self.pos < self.size do
    local start = self.pos
    local chunk = self:_take(LINE_CHUNK)
    local newline = chunk:find("\n", 1, true)
    if newline then
      self.pos = start + newline
      parts[#parts + 1] = chunk:sub(1, keep_newline and newline or newline - 1)
      break
    end
    parts[#parts + 1] = chunk
  end
  return table.concat(parts)
end

function File:_read_one(format, index)
  if math.type(format) == "integer" or math.type(format) == "float" then
    local n = math.floor(format)
    if self.pos >= self.size then return nil end
    return self:_take(n)
  end
  local kind = tostring(format):gsub("^%*", ""):sub(1, 1)
  if kind == "a" then return self:_take(self.size - self.pos) end
  if kind == "l" or kind == "L" then return self:_line(kind == "L") end
  error("bad argument #" .. index .. " to 'read' (invalid format)", 3)
end

function File:read(...)
  self:_check()
  local formats = table.pack(...)
  if formats.n == 0 then formats = { "l", n = 1 } end
  local results = {}
  for i = 1, formats.n do
    results[i] = self:_read_one(formats[i], i)
    if results[i] == nil then return table.unpack(results, 1, i) end
  end
  return table.unpack(results, 1, formats.n)
end

function File:lines(...)
  local formats = table.pack(...)
  return function() return self:read(table.unpack(formats, 1, formats.n)) end
end

-- seek("end") (offset 0) reports the size and leaves the read position alone, as the WeaveDrive
-- host does (it keeps its own read position), so aos's f:read(f:seek("end")) reads the whole file.
function File:seek(whence, offset)
  self:_check()
  whence, offset = whence or "cur", offset or 0
  if whence == "end" and offset == 0 then return self.size end
  local base = ({ set = 0, cur = self.pos, ["end"] = self.size })[whence]
  if base == nil then error("bad argument #1 to 'seek' (invalid option '" .. tostring(whence) .. "')", 2) end
  if base + offset < 0 then return nil, "Invalid argument", 22 end
  self.pos = base + offset
  return self.pos
end

function File:write()
  return nil, "Bad file descriptor", 9
end

function File:setvbuf() return true end
function File:flush() return self end

function File:close()
  self:_check()
  self.closed = true
  return true
end

function weavedrive.io_open(path, mode)
  if mode ~= nil and mode ~= "r" and mode ~= "rb" then
    return nil, tostring(path) .. ": Read-only file system", 30
  end
  local info = call("open", path)
  if info == nil then return nil, tostring(path) .. ": No such file or directory", 2 end
  return new_file(info)
end

-- the aos client API -------------------------------------------------------------------------------

function weavedrive.getData(id)
  if not is_id(id) then return nil, "File not found!" end
  return call("data", id)
end

function weavedrive.getTx(id)
  local tx = is_id(id) and call("tx", id) or nil
  if tx == nil then return nil, "File not found!" end
  return tx
end

function weavedrive.getBlock(height)
  local h = math.tointeger(tonumber(height))
  local header = h ~= nil and h >= 0 and call("block", h) or nil
  if header == nil then return nil, "Block Header not found!" end
  return header
end

function weavedrive.ref(id)
  if not is_id(id) then error("weavedrive.ref: expected a 43-character id, got " .. tostring(id), 2) end
  return call("ref", id)
end

-- the fd-style API: open(path) -> fd, read(fd) -> the rest of the file, close(fd) ------------------

local descriptors, next_fd = {}, 3

function weavedrive.open(path, mode)
  local file, err = weavedrive.io_open(path, mode)
  if file == nil then return nil, err end
  local fd = next_fd
  next_fd = next_fd + 1
  descriptors[fd] = file
  return fd
end

function weavedrive.read(fd)
  local file = descriptors[fd]
  if file == nil then return nil, "bad file descriptor" end
  return file:read("a")
end

function weavedrive.close(fd)
  local file = descriptors[fd]
  if file == nil then return nil, "bad file descriptor" end
  descriptors[fd] = nil
  return file:close()
end

return weavedrive
