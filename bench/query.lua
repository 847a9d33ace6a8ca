-- wrk script: the same point SELECT as bench/pgbench_select.sql, with a
-- random key per request. BENCH_KIND=rows asks for 100 rows instead,
-- BENCH_KIND=insert inserts one (into bench_insert), BENCH_KIND=sleep
-- takes 50 ms (bench/hol.sh); BENCH_DELAY_MS makes
-- each connection wait that long between its requests (a fixed rate);
-- BENCH_AUTH is an Authorization header value (bench/auth.sh).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
if os.getenv("BENCH_AUTH") then
	wrk.headers["Authorization"] = os.getenv("BENCH_AUTH")
end
local rows = tonumber(os.getenv("BENCH_ROWS") or "1000000")
local sql = {
	point = "SELECT abalance FROM pgbench_accounts WHERE aid = $1",
	rows = "SELECT aid, abalance, filler FROM pgbench_accounts WHERE aid BETWEEN $1 AND $1 + 99",
	insert = "INSERT INTO bench_insert (v) VALUES ($1)",
	sleep = "SELECT pg_sleep(0.05), $1::int",
}
local stmt = sql[os.getenv("BENCH_KIND") or "point"]

request = function()
	local aid = math.random(1, rows - 100)
	return wrk.format(nil, nil, nil,
		'{"sql":"' .. stmt .. '","params":[' .. aid .. ']}')
end

local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
if pause > 0 then
	delay = function()
		return pause
	end
end

done = function(summary, latency, requests)
	local errors = summary.errors.status + summary.errors.connect +
		summary.errors.read + summary.errors.write + summary.errors.timeout
	io.write(string.format("wrk: %.0f req/s, p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, errors %d\n",
		summary.requests / (summary.duration / 1e6),
		latency:percentile(50) / 1000, latency:percentile(99) / 1000,
		latency:percentile(99.9) / 1000, errors))
end
