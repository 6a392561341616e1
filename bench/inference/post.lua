-- wrk script for bench/inference: POST the body in the file named by BENCH_BODY_FILE (headers
-- come from wrk's -H options), count answers by status outside 2xx, and print a
-- machine-readable summary line at the end.
local path = os.getenv("BENCH_BODY_FILE")
if path == nil then
   error("BENCH_BODY_FILE is not set")
end
local file = assert(io.open(path, "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()

local threads = {}
bad = {}

function setup(thread)
   table.insert(threads, thread)
end

function response(status, headers, body)
   if status < 200 or status > 299 then
      bad[status] = (bad[status] or 0) + 1
   end
end

function done(summary, latency, requests)
   local statuses = {}
   for _, thread in ipairs(threads) do
      for status, count in pairs(thread:get("bad")) do
         statuses[status] = (statuses[status] or 0) + count
      end
   end
   local parts = {}
   for status, count in pairs(statuses) do
      table.insert(parts, string.format("\"%d\": %d", status, count))
   end
   local e = summary.errors
   io.write(string.format(
      "BENCH-RESULT {\"requests\": %d, \"duration_us\": %d, \"p50_us\": %d, \"p90_us\": %d, " ..
      "\"p99_us\": %d, \"max_us\": %d, \"mean_us\": %.1f, \"status_errors\": %d, " ..
      "\"connect_errors\": %d, \"read_errors\": %d, \"write_errors\": %d, \"timeouts\": %d, " ..
      "\"statuses\": {%s}}\n",
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.max, latency.mean, e.status, e.connect, e.read, e.write,
      e.timeout, table.concat(parts, ", ")))
end
