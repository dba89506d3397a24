-- posts_page: GET /api/posts?limit=20 (the newest page: the same request every time).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local rawpost = dofile(dir .. "rawpost.lua")

setup = rawpost.setup
done = rawpost.done
if rawpost.delay_ms then delay = rawpost.delay end

function init(args)
  rawpost.init(args)
  -- A fixed request: wrk builds it once and sends it again and again.
  wrk.path = "/api/posts?limit=20"
end
