-- Every key once: GET /api/users/{id} for each id of a file (one a line), the ids
-- shared out between wrk's threads; a thread stops when its share is done. Used to fill
-- the read cache with distinct keys and measure the worker's memory
-- (tests/system/test_read_cache_memory.py):
--   wrk -t2 -c16 -d300s -s bench/cache_scan.lua http://127.0.0.1:8000 -- ids.txt 2
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("number", threads)
end

function init(args)
  ids = {}
  for line in io.lines(args[1]) do
    ids[#ids + 1] = line
  end
  step = tonumber(args[2])
  index = number
  answered, failed = 0, 0
end

function request()
  if index > #ids then
    wrk.thread:stop()
    return wrk.format("GET", "/health/live")
  end
  local path = "/api/users/" .. ids[index]
  index = index + step
  return wrk.format("GET", path)
end

function response(status, headers, body)
  if status == 200 then
    answered = answered + 1
  else
    failed = failed + 1
  end
end

function done(summary, latency, requests)
  local ok, bad = 0, 0
  for n = 1, threads do
    local t = thread_list[n]
    ok = ok + t:get("answered")
    bad = bad + t:get("failed")
  end
  io.write(string.format('RAWPOST_SCAN {"answered": %d, "failed": %d}\n', ok, bad))
end

thread_list = {}
local original_setup = setup
function setup(thread)
  original_setup(thread)
  thread_list[#thread_list + 1] = thread
end
