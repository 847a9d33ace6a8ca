-- wrk script: the same point SELECT as bench/pgbench_select.sql, with a
-- random key per request.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
-- BENCH_AUTH: an Authorization header value (bench/auth.sh)
if os.getenv("BENCH_AUTH") then
	wrk.headers["Authorization"] = os.getenv("BENCH_AUTH")
end
local rows = tonumber(os.getenv("BENCH_ROWS") or "1000000")

request = function()
	local aid = math.random(1, rows)
	return wrk.format(nil, nil, nil,
		'{"sql":"SELECT abalance FROM pgbench_accounts WHERE aid = $1","params":[' .. aid .. ']}')
end

done = function(summary, latency, requests)
	local errors = summary.errors.status + summary.errors.connect +
		summary.errors.read + summary.errors.write + summary.errors.timeout
	io.write(string.format("wrk: %.0f req/s, p50 %.2f ms, p99 %.2f ms, errors %d\n",
		summary.requests / (summary.duration / 1e6),
		latency:percentile(50) / 1000, latency:percentile(99) / 1000, errors))
end
