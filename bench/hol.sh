#!/usr/bin/env bash
# Head-of-line: do slow statements hold up fast ones? One wrk sends point
# SELECTs at a fixed rate (CONC connections, each pausing DELAY_MS between
# its requests), alone and then beside a second wrk whose SLOW connections
# each run SELECT pg_sleep(0.05) back to back (about 1% of the statements
# at the defaults). Prints the fast statements' p50/p99/p99.9 for both,
# with coalescing on and off (--coalesce=0), against one PostgreSQL.
#
#   bench/hol.sh [SECONDS] [CONC] [DELAY_MS] [SLOW]  (defaults 10, 32, 2, 2)
set -euo pipefail

DUR=${1:-10}
CONC=${2:-32}
DELAY=${3:-2}
SLOW=${4:-2}
PGPORT=${BENCH_PG_PORT:-55438}
HTTPPORT=${BENCH_HTTP_PORT:-18095}
SCALE=10
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_pg_start -c max_connections=200
pgbench -i -q -s "$SCALE" "$DB" >/dev/null 2>&1
bench_build
export BENCH_ROWS=$((SCALE * 100000))

fast() {
	BENCH_DELAY_MS=$DELAY wrk -t1 -c"$CONC" -d"${DUR}s" -s "$ROOT/bench/query.lua" \
		"http://127.0.0.1:$1/query" | awk '/^wrk:/ { sub(/^wrk: /, ""); print }'
}

echo "| --coalesce | slow beside | fast statements |"
echo "| --- | --- | --- |"
# VARIANTS: the --coalesce values to run ("-": the option not given, for
# a FASTERPG_BIN from before it).
port=$HTTPPORT
for co in ${VARIANTS:-32 0}; do
	port=$((port + 1))
	args=()
	[ "$co" != - ] && args=(--coalesce "$co")
	"$FPG_BIN" --db "$DB" --listen "127.0.0.1:$port" --log-level warn "${args[@]}" &
	PIDS+=($!)
	for _ in $(seq 50); do curl -sf "127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
	fast "$port" >/dev/null # warm up: the lanes learn
	echo "| $co | none | $(fast "$port") |"
	BENCH_KIND=sleep wrk -t1 -c"$SLOW" -d"$((DUR + 2))s" -s "$ROOT/bench/query.lua" \
		"http://127.0.0.1:$port/query" >"$TMP/slow.out" &
	SLOWPID=$!
	sleep 1
	echo "| $co | $SLOW × pg_sleep(0.05) | $(fast "$port") |"
	wait "$SLOWPID"
	echo "|  | (the slow ones) | $(awk '/^wrk:/ { sub(/^wrk: /, ""); print }' "$TMP/slow.out") |"
done
