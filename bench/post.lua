-- wrk script for the benchmark: POST a request body read from a file.
--
--   wrk -t1 -c16 -d5s -s bench/post.lua \
--       http://127.0.0.1:18182/v1/responses -- bench/bodies/agent-responses.json [KEY]
--
-- The body file comes from the first script argument, else $BENCH_BODY; the
-- URL decides the route (…/chat/completions, …/responses). The key comes from
-- the second argument, else $BENCH_KEY, else "bench" (the mock and
-- mod_proxy_http ignore it). Headers as in chat.lua: Authorization: Bearer,
-- Content-Type: application/json. done() prints the same machine-readable
-- line as chat.lua:
--   WRKRESULT rps=.. p50_ms=.. p90_ms=.. p99_ms=.. requests=.. errors=.. non2xx=..

local key = os.getenv("BENCH_KEY") or "bench"
local path = os.getenv("BENCH_BODY")

function init(args)
   if args[1] and args[1] ~= "" then
      path = args[1]
   end
   if args[2] and args[2] ~= "" then
      key = args[2]
   end
   local f = path and io.open(path, "rb")
   if not f then
      error("post.lua: cannot read the body file " .. tostring(path))
   end
   wrk.body = f:read("*a")
   f:close()
   wrk.headers["Authorization"] = "Bearer " .. key
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

function done(summary, latency, requests)
   local e = summary.errors
   local secs = summary.duration / 1e6
   io.write(string.format(
      "WRKRESULT rps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f requests=%d "
      .. "errors=%d non2xx=%d\n",
      summary.requests / secs,
      latency:percentile(50) / 1000, latency:percentile(90) / 1000,
      latency:percentile(99) / 1000, summary.requests,
      e.connect + e.read + e.write + e.timeout, e.status))
end
