-- Shared by the wrk scripts in this folder: sample ids, unique emails, a JSON summary.
--
-- Each script takes, after wrk's `--`, the ids file written by `rawpost seed`
-- (default bench/sample-ids.json) and a run id that makes emails unique across runs
-- (default: the current time), e.g.
--   wrk -t2 -c64 -d10s --latency -s bench/user_by_id.lua http://127.0.0.1:8000 \
--       -- bench/sample-ids.json
local M = {}

-- The JSON array under `key` ("users" or "posts") of the ids file, as a Lua list.
function M.read_ids(path, key)
  local file = assert(io.open(path, "r"), "cannot open ids file " .. path ..
    " (write it with `rawpost seed`)")
  local text = file:read("*a")
  file:close()
  local list = text:match('"' .. key .. '"%s*:%s*(%b[])')
  assert(list, "no \"" .. key .. "\" list in " .. path)
  local ids = {}
  for id in list:gmatch('"([%x%-]+)"') do
    ids[#ids + 1] = id
  end
  assert(#ids > 0, "the \"" .. key .. "\" list in " .. path .. " is empty")
  return ids
end

-- Paced load (`rawpost bench --paced`): with RAWPOST_WRK_DELAY_MS set, each connection
-- waits on average that long before each of its requests, so C connections offer about
-- C * 1000 / delay requests a second while the server keeps up (wrk's latencies leave
-- the wait out). Each wait is drawn between 0 and twice the mean: with one fixed wait,
-- connections that started together would keep sending together, a burst of C requests
-- every period. A script turns it on with `if rawpost.delay_ms then delay = rawpost.delay
-- end`: wrk looks for a global delay() when it loads the script, and an unpaced run must
-- not pay for a timer per request.
M.delay_ms = tonumber(os.getenv("RAWPOST_WRK_DELAY_MS") or "")
function M.delay()
  return M.delay_ms * 2 * math.random()
end

-- wrk calls setup() once per thread in the main Lua state, before the threads start:
-- give each its number, so emails and random streams differ between threads.
local threads = 0
function M.setup(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
end

-- In a thread's own Lua state: arguments, and a random stream seeded per thread.
function M.init(args)
  local n = thread_number or 1
  math.randomseed(os.time() * 1000 + n)
  return args[1] or "bench/sample-ids.json", args[2] or tostring(os.time())
end

-- wrk calls done() once, in the main state, with the totals of every thread. The line
-- `RAWPOST_WRK {...}` is what `rawpost bench` reads; latencies are in microseconds.
function M.done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RAWPOST_WRK {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"connect_errors": %d, "read_errors": %d, "write_errors": %d, "status_errors": %d, ' ..
    '"timeouts": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "mean_us": %.1f, ' ..
    '"max_us": %d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max))
end

return M
