#!/usr/bin/env bash
# The benchmark suite: one command, one PostgreSQL, every run side by side,
# one table. For each run: the rate, and the CPU time per request of each
# process group (the load generator, the gateway, PostgreSQL's backends),
# read from /proc (for a group: its own time, its children's, and what
# its children that ended left behind).
#
#   bench/suite.sh [SECONDS]          (default 10 per run)
#
# Runs: pgbench -M prepared (c=8, 32) on the point SELECT; fasterpg POST
# /query at c=8, 32, 256 on the same SELECT, a 100-row result and an
# INSERT (c=32); GET /healthz (the HTTP ceiling); --threads 1 against
# --threads 2; --coalesce 0 (reads not sharing transactions); a latency
# run at half of the measured c=32 rate (p50, p99,
# p99.9); and the Node.js peer (fastify + postgres.js) when NODE_PEER=DIR
# names a copy of it with its node_modules installed.
#
# With WRITE=1 the table replaces the one between the suite markers in
# docs/performance.md, with the date and commit.
set -euo pipefail

DUR=${1:-10}
PGPORT=${BENCH_PG_PORT:-55437}
HTTPPORT=${BENCH_HTTP_PORT:-18094}
SCALE=10
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_pg_start -c max_connections=400
pgbench -i -q -s "$SCALE" "$DB" >/dev/null 2>&1
psql -q "$DB" -c "CREATE TABLE bench_insert (id bigserial, v int)" >/dev/null
bench_build
HZ=$(getconf CLK_TCK)
export BENCH_ROWS=$((SCALE * 100000))

# group_ticks PID: CPU clock ticks of PID, its live children, and its
# ended children (cutime + cstime).
group_ticks() {
	local t=0 p
	[ -r "/proc/$1/stat" ] || { echo 0; return; }
	t=$(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$1/stat")
	for p in $(pgrep -P "$1" || true); do
		[ -r "/proc/$p/stat" ] && t=$((t + $(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$p/stat")))
	done
	echo "$t"
}
PGPID=$(head -1 "$TMP/data/postmaster.pid")

ROWS=()
# row LABEL REQUESTS RATE LOADGEN_S GATEWAY_TICKS PG_TICKS [NOTE]
row() {
	local n=$2
	ROWS+=("$(awk -v l="$1" -v n="$n" -v r="$3" -v lg="$4" -v gw="$5" -v pg="$6" -v hz="$HZ" -v note="${7:-}" 'BEGIN {
		lgu = lg * 1e6 / n; gwu = gw / hz * 1e6 / n; pgu = pg / hz * 1e6 / n
		printf "| %s | %s | %.1f | %s | %s | %.1f | %s |", l, r, lgu,
			gw < 0 ? "—" : sprintf("%.1f", gwu), pg < 0 ? "—" : sprintf("%.1f", pgu),
			lgu + (gw < 0 ? 0 : gwu) + (pg < 0 ? 0 : pgu), note }')")
	echo "${ROWS[-1]}"
}

# wrk_run LABEL GATEWAY_PID URL CONC SCRIPT [NOTE]: warm up, measure.
wrk_run() {
	local label=$1 gw=$2 url=$3 conc=$4 script=$5 note=${6:-}
	local args=(-t2 -c"$conc" -d"${DUR}s")
	[ -n "$script" ] && args+=(-s "$ROOT/bench/$script")
	wrk -t2 -c"$conc" -d2s ${script:+-s "$ROOT/bench/$script"} "$url" >/dev/null
	local g0 p0 g1 p1 out lg
	g0=$(group_ticks "$gw")
	p0=$(group_ticks "$PGPID")
	TIMEFORMAT='%3U %3S'
	{ time wrk "${args[@]}" "$url" >"$TMP/wrk.out"; } 2>"$TMP/wrk.time"
	g1=$(group_ticks "$gw")
	p1=$(group_ticks "$PGPID")
	out=$(cat "$TMP/wrk.out")
	lg=$(awk '{ print $1 + $2 }' "$TMP/wrk.time")
	local n rate
	n=$(echo "$out" | awk '/requests in/ { print $1 }')
	rate=$(echo "$out" | awk '/^wrk:/ { w = $2 } /^Requests\/sec/ { r = $2 }
		END { printf "%d", w != "" ? w : r }')
	if echo "$out" | grep -q Non-2xx; then note="$note $(echo "$out" | grep Non-2xx | tr -s ' ')"; fi
	LAST_RATE=$rate
	LAST_OUT=$out
	row "$label" "$n" "$rate" "$lg" $((g1 - g0)) $((p1 - p0)) "$note"
}

pgbench_run() { # CONC
	local p0 p1 out lg n
	p0=$(group_ticks "$PGPID")
	TIMEFORMAT='%3U %3S'
	{ time pgbench -n -M prepared -c "$1" -j 2 -T "$DUR" -f "$ROOT/bench/pgbench_select.sql" "$DB" >"$TMP/pgb.out" 2>&1; } 2>"$TMP/pgb.time"
	# Its backends end with it: their time counts once the postmaster
	# has reaped them.
	sleep 1
	p1=$(group_ticks "$PGPID")
	out=$(cat "$TMP/pgb.out")
	n=$(echo "$out" | awk '/number of transactions actually processed/ { print $NF }')
	lg=$(awk '{ print $1 + $2 }' "$TMP/pgb.time")
	row "pgbench -M prepared, c=$1" "$n" "$(echo "$out" | awk '/^tps/ { printf "%d", $3 }')" "$lg" -1 $((p1 - p0))
}

start_fasterpg() { # PORT [OPTIONS...]
	local port=$1
	shift
	"$FPG_BIN" --db "$DB" --listen "127.0.0.1:$port" --log-level warn --pool-max 8 "$@" &
	FPID=$!
	PIDS+=("$FPID")
	for _ in $(seq 50); do curl -sf "127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
}
stop_fasterpg() { kill "$FPID"; wait "$FPID" 2>/dev/null || true; }

pgbench_run 8
pgbench_run 32

start_fasterpg "$HTTPPORT"
Q="http://127.0.0.1:$HTTPPORT/query"
wrk_run "fasterpg /query, c=8" "$FPID" "$Q" 8 query.lua
wrk_run "fasterpg /query, c=32" "$FPID" "$Q" 32 query.lua
PEAK=$LAST_RATE
wrk_run "fasterpg /query, c=256" "$FPID" "$Q" 256 query.lua
BENCH_KIND=rows wrk_run "fasterpg /query 100 rows, c=32" "$FPID" "$Q" 32 query.lua
BENCH_KIND=insert wrk_run "fasterpg /query INSERT, c=32" "$FPID" "$Q" 32 query.lua
wrk_run "fasterpg GET /healthz, c=32" "$FPID" "http://127.0.0.1:$HTTPPORT/healthz" 32 ""
# Half the peak rate, spread over 32 connections: each waits between
# its requests (wrk's delay()).
DELAY=$(awk -v p="$PEAK" 'BEGIN { printf "%d", 32 * 1000 / (p / 2) }')
[ "$DELAY" -ge 1 ] || DELAY=1
BENCH_DELAY_MS=$DELAY wrk_run "fasterpg /query at ~half rate, c=32" "$FPID" "$Q" 32 query.lua
LAT=$(echo "$LAST_OUT" | awk '/^wrk:/ { print "p50 " $5 " ms, p99 " $8 " ms, p99.9 " $11 " ms" }')
stop_fasterpg

start_fasterpg "$HTTPPORT" --threads 1
wrk_run "fasterpg --threads 1 /query, c=32" "$FPID" "$Q" 32 query.lua
stop_fasterpg
start_fasterpg "$HTTPPORT" --threads 2
wrk_run "fasterpg --threads 2 /query, c=32" "$FPID" "$Q" 32 query.lua
stop_fasterpg
# What coalescing reads buys: the same server without it.
start_fasterpg "$HTTPPORT" --coalesce 0
wrk_run "fasterpg --coalesce 0 /query, c=32" "$FPID" "$Q" 32 query.lua
stop_fasterpg

if [ -n "${NODE_PEER:-}" ]; then
	(cd "$NODE_PEER" && DATABASE_URL="postgres://postgres@127.0.0.1:$PGPORT/postgres" PORT=$((HTTPPORT + 1)) WORKERS=2 DRIVER=postgres exec node server.js >/dev/null 2>&1) &
	NPID=$!
	PIDS+=("$NPID")
	sleep 2
	wrk_run "Node peer (fastify + postgres.js) /query, c=32" "$NPID" "http://127.0.0.1:$((HTTPPORT + 1))/query" 32 query.lua
	pkill -P "$NPID" 2>/dev/null || true
	kill "$NPID" 2>/dev/null || true
fi

HEAD="| run | req/s | load generator µs/req | gateway µs/req | PostgreSQL µs/req | total µs/req | |
| --- | --- | --- | --- | --- | --- | --- |"
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD)
TABLE="$HEAD
$(printf '%s\n' "${ROWS[@]}")

\`bench/suite.sh $DUR\` on $(date -u +%Y-%m-%d), commit $COMMIT, $(nproc) cores; latency at about half the c=32 rate ($DELAY ms between a connection's requests): $LAT."
echo
echo "$TABLE"
if [ "${WRITE:-}" = 1 ]; then
	DOC="$ROOT/docs/performance.md"
	awk -v table="$TABLE" '
		/<!-- suite:start -->/ { print; print table; skip = 1; next }
		/<!-- suite:end -->/ { skip = 0 }
		!skip' "$DOC" >"$TMP/perf.md"
	cp "$TMP/perf.md" "$DOC"
fi
