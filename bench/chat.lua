-- wrk script for the benchmark: non-streaming Chat Completions.
--
--   BENCH_KEY=tb-... wrk -t1 -c64 -d10s -s bench/chat.lua \
--       http://127.0.0.1:18182/v1/chat/completions [-- KEY]
--
-- The key comes from the first script argument, else $BENCH_KEY, else
-- "bench" (the mock and mod_proxy_http ignore it). done() prints one
-- machine-readable line:
--   WRKRESULT rps=.. p50_ms=.. p90_ms=.. p99_ms=.. requests=.. errors=.. non2xx=..

local key = os.getenv("BENCH_KEY") or "bench"
local model = os.getenv("BENCH_MODEL") or "bench-model"

function init(args)
   if args[1] and args[1] ~= "" then
      key = args[1]
   end
   wrk.headers["Authorization"] = "Bearer " .. key
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"' .. model .. '","messages":[{"role":"system","content":'
   .. '"You are a helpful assistant."},{"role":"user","content":"Say hello '
   .. 'in one short sentence."}],"max_tokens":16,"temperature":0}'

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
