-- Runs an Argo CD health check as Argo CD does: the resource is the global `obj`, the
-- script returns a table with `status` and `message`, and only the libraries Argo CD's Lua
-- VM offers are there (base functions, string, table, math; no io, os, require or load).
-- Usage: lua5.1 driver.lua HEALTH_LUA OBJECT_LUA   (OBJECT_LUA: `return { ... }`)
-- Prints the status, a newline, then the message.
local check = assert(loadfile(arg[1]))
local object = assert(loadfile(arg[2]))()

local env = { obj = object, string = string, table = table, math = math }
for _, name in ipairs({ "assert", "error", "ipairs", "next", "pairs", "pcall", "select",
  "tonumber", "tostring", "type", "unpack" }) do
  env[name] = _G[name]
end
setfenv(check, env)

local ok, hs = pcall(check)
if not ok then
  io.stderr:write("health.lua failed: ", tostring(hs), "\n")
  os.exit(2)
end
if type(hs) ~= "table" then
  io.stderr:write("health.lua returned ", type(hs), ", not a table\n")
  os.exit(2)
end
io.write(tostring(hs.status), "\n", tostring(hs.message))
