-- create_post: POST /api/posts as one of the sampled users, with a bearer token that
-- `rawpost bench` minted for it before the run (the third argument: a file of tokens, one
-- a line). The posts are published and titled "rawpost bench post"; `rawpost bench`
-- deletes them again when it is done.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local rawpost = dofile(dir .. "rawpost.lua")
local tokens = {}
local body = '{"title": "rawpost bench post", "content": "Written by rawpost bench.", ' ..
  '"published": true}'

setup = rawpost.setup
done = rawpost.done
if rawpost.delay_ms then delay = rawpost.delay end

function init(args)
  rawpost.init(args)
  local path = assert(args[3], "create_post.lua needs a tokens file as its third argument")
  for line in assert(io.open(path, "r"), "cannot open tokens file " .. path):lines() do
    if #line > 0 then
      tokens[#tokens + 1] = line
    end
  end
  assert(#tokens > 0, "no tokens in " .. path)
end

function request()
  local headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. tokens[math.random(#tokens)],
  }
  return wrk.format("POST", "/api/posts", headers, body)
end
