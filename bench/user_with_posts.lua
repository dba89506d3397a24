-- user_with_posts: GET /api/users/{random existing id}?include=posts.
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
  return wrk.format("GET", "/api/users/" .. ids[math.random(#ids)] .. "?include=posts")
end
