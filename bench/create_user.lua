-- create_user: POST /api/users with a fresh email each time:
-- bench-<run id>-<thread>-<counter>@bench.rawpost.invalid, unique across threads and runs
-- (`rawpost bench` deletes these users again when it is done).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local rawpost = dofile(dir .. "rawpost.lua")
local prefix
local counter = 0
local headers = { ["Content-Type"] = "application/json" }

setup = rawpost.setup
done = rawpost.done

function init(args)
  local _, run = rawpost.init(args)
  prefix = "bench-" .. run .. "-" .. (thread_number or 1) .. "-"
end

function request()
  counter = counter + 1
  local body = string.format('{"email": "%s%d@bench.rawpost.invalid", "name": "Bench User"}',
    prefix, counter)
  return wrk.format("POST", "/api/users", headers, body)
end
