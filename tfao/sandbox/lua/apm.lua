-- apm: aos's package manager client, the `apm` global.
--
-- apm.install("[@vendor/]name[@x.y.z]"), apm.uninstall(name), apm.search(query), apm.info(query)
-- and apm.update() send their request to the registry process apm.ID; its replies arrive as
-- APM.DownloadResponse (hex-encoded Lua source in Data, Name, Version, Dependencies as JSON),
-- APM.SearchResponse, APM.InfoResponse and APM.UpdateResponse. A downloaded package's value goes
-- to package.loaded[name] (without the "@apm/" vendor), so `require(name)` finds it. Only replies
-- from apm.ID are acted on. A registry process on the local node that answers these messages
-- (or a reply assigned to the process) installs packages the same way.
local json = require("json")

local apm = _G.apm or {} -- loading it again keeps what is installed
apm.ID = apm.ID or "DKF8oXtPvh3q8s0fJFIeHFyHNM6oKrwMCUrPxEMroak"
apm._version = apm._version or "2.0.6"
apm.installed = apm.installed or {}

local function hex_decode(hex)
  return (hex:gsub("%x%x", function(digits) return string.char(tonumber(digits, 16)) end))
end

local function valid_version(version)
  return version:match("^%d+%.%d+%.%d+$") or (version:match("^[%w%-_]+$") and #version == 43)
end

-- "@vendor/name@1.2.3" -> "@vendor", "name", "1.2.3"; a trailing 43-character id is a version too
local function split_package_name(query)
  if query:find("^@%w+$") then return query, nil, nil end
  local version
  local at = query:find("@%d+%.%d+%.%d+$")
  if at then
    version, query = query:sub(at + 1), query:sub(1, at - 1)
  elseif #query > 45 and query:sub(-43):match("^[%w%-_]+$") then
    version, query = query:sub(-43), query:sub(1, -44)
  end
  local vendor, name = query:match("@(%w+)/([%w%-_]+)")
  if not vendor then return nil, query, version end
  return "@" .. vendor, name, version
end

local function checked_name(query)
  local vendor, name, version = split_package_name(query)
  vendor = vendor or "@apm"
  if not vendor:match("^@[a-z0-9-]+$") then error("Invalid vendor name") end
  if not (name and name:match("^[%w%-_]+$")) then error("Invalid package name") end
  if version and not valid_version(version) then error("Invalid version") end
  return vendor .. "/" .. name, version, vendor
end

local function request(action, data)
  Send({ Target = apm.ID, Action = action, Data = data })
end

function apm.install(query)
  local package_name, version = checked_name(query)
  if version and apm.installed[package_name] == version then
    return "✅ Package " .. package_name .. " already installed"
  end
  if version then package_name = package_name .. "@" .. version end
  request("APM.Download", package_name)
  return "📦 Download requested for " .. package_name
end

function apm.uninstall(query)
  local package_name, _, vendor = checked_name(query)
  if not apm.installed[package_name] then error("Package not installed") end
  apm.installed[package_name] = nil
  package.loaded[vendor == "@apm" and query or package_name] = nil
  return "🗑️ Uninstalled " .. package_name
end

function apm.search(query)
  if not query then error("No search query provided") end
  request("APM.Search", query)
  return "🔍 Search requested for " .. query
end

function apm.info(query)
  if not query then error("No info query provided") end
  request("APM.Info", query)
  return "📦 Info requested for " .. query
end

function apm.update()
  request("APM.Update")
  return "📦 Update requested"
end

local function notice_update(msg)
  local latest = msg.LatestClientVersion
  if latest and latest > apm._version then
    print("⚠️ APM update available v:" .. latest .. " run 'apm.update()'")
  end
end

-- runs a package's source and returns its value
local function run_source(source, name)
  local chunk, err = load(source, "=" .. name, "t", _G)
  if not chunk then error("Error compiling load function: " .. err) end
  return chunk()
end

local function on_download(msg)
  local name, version = msg.Name, msg.Version
  local warnings = msg.Warnings
  if type(warnings) == "table" and warnings.ModifiesGlobalState then print("⚠️ Package modifies global state") end
  if type(warnings) == "table" and warnings.Message then print("⚠️ " .. warnings.Message) end
  local loaded_name = name:match("^@apm/(.+)$") or name
  package.loaded[loaded_name] = run_source(hex_decode(msg.Data or ""), loaded_name)
  apm.installed[name] = version
  for dependency, info in pairs(msg.Dependencies and json.decode(msg.Dependencies) or {}) do
    if apm.installed[dependency] ~= info.version then
      print("ℹ️ Installing dependency " .. dependency .. "@" .. info.version)
      apm.install(dependency)
    end
  end
  print("✅ Downloaded " .. name .. "@" .. version)
  notice_update(msg)
end

local function on_search(msg)
  local found = json.decode(msg.Data)
  if #found == 0 then
    print("No packages found")
    return
  end
  local lines = { "" }
  for _, pkg in ipairs(found) do lines[#lines + 1] = pkg.Vendor .. "/" .. pkg.Name .. " | " .. pkg.Description end
  print(table.concat(lines, "\n") .. "\n")
  notice_update(msg)
end

local function on_info(msg)
  local info = json.decode(msg.Data)
  if not info then
    print("No info found")
    return
  end
  local function line(label, value) print(label .. Colors.green .. tostring(value) .. Colors.reset) end
  line("📦 ", info.Vendor .. "/" .. info.Name)
  line("📄 Description    : ", info.Description)
  line("🔖 Latest Version : ", info.Version)
  line("📥 Installs       : ", info.TotalInstalls)
  line("🔗 APM Url        : ", "https://apm.betteridea.dev/pkg?id=" .. tostring(info.PkgID))
  line("🔗 Repository Url : ", info.Repository)
  notice_update(msg)
end

local function on_update(msg)
  run_source(hex_decode(msg.Data or ""), "apm")
  apm._version = msg.Version
  print("✅ Updated APM to v:" .. msg.Version)
  print("Please use 'apm' namespace for all commands")
end

-- a registry reply: only from apm.ID; a failure goes back to the sender as Result = "error"
local function registry_reply(action, handle)
  Handlers.add(action, Handlers.utils.hasMatchingTag("Action", action), function(msg)
    if msg.From ~= apm.ID then
      print(action .. " from an unknown source ignored: " .. tostring(msg.From))
      return
    end
    if msg.Result ~= nil and msg.Result ~= "success" then
      print(action .. " failed: " .. tostring(msg.Data))
      return
    end
    local ok, err = pcall(handle, msg)
    if not ok then
      print(msg.Action .. " - " .. tostring(err))
      ao.send({ Target = msg.From, Data = tostring(err):match(":%d+: (.+)") or tostring(err), Result = "error" })
    end
  end)
end

registry_reply("APM.DownloadResponse", on_download)
registry_reply("APM.SearchResponse", on_search)
registry_reply("APM.InfoResponse", on_info)
registry_reply("APM.UpdateResponse", on_update)

return apm
