-- user_by_id: GET /api/users/{random existing id} (ids from the file `rawpost seed` wrote).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local rawpost = dofile(dir .. "rawpost.lua")
local ids

setup = rawpost.setup
done = rawpost.done
if rawpost.delay_ms then delay = rawpost.delay end

function init(args)
  ids = rawpost.read_ids((rawpost.init(args)), "users")
end

function request()
  return wrk.format("GET", "/api/users/" .. ids[math.random(#ids)])
end
