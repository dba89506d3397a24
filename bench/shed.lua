-- user_by_id, counting answers by status (503: shed by RAWPOST_MAX_IN_FLIGHT); prints one SHED line.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local rawpost = dofile(dir .. "rawpost.lua")
local ids
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args)
  ids = rawpost.read_ids((rawpost.init(args)), "users")
  ok, shed, other = 0, 0, 0
end
function request() return wrk.format("GET", "/api/users/" .. ids[math.random(#ids)]) end
function response(status, headers, body)
  if status == 200 then ok = ok + 1 elseif status == 503 then shed = shed + 1 else other = other + 1 end
end
function done(summary, latency, requests)
  local o, s, x = 0, 0, 0
  for _, t in ipairs(threads) do o = o + t:get("ok"); s = s + t:get("shed"); x = x + t:get("other") end
  io.write(string.format("SHED ok=%d shed=%d other=%d p50=%.1fms p99=%.1fms max=%.1fms\n",
    o, s, x, latency:percentile(50)/1000, latency:percentile(99)/1000, latency.max/1000))
end
