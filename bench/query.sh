#!/usr/bin/env bash
# POST /query against pgbench -M prepared: the same point SELECT, the same
# concurrency, the same PostgreSQL, one run. Prints both rates and the ratio.
#
#   bench/query.sh [SECONDS] [CONCURRENCY]      (defaults 15 and 32)
#
# Starts a throwaway PostgreSQL 15 cluster in a temp dir (as the postgres
# user when run as root), builds fasterpg in build-bench/ (release), and
# needs pgbench and wrk (scripts/dev.sh deps installs them).
# With NODE_PEER=DIR (a copy of the node-gateway peer with node_modules
# installed) the Node.js gateway is measured too.
set -euo pipefail

DUR=${1:-15}
CONC=${2:-32}
PGPORT=${BENCH_PG_PORT:-55433}
HTTPPORT=${BENCH_HTTP_PORT:-18090}
SCALE=10
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_pg_start -c max_connections=200
pgbench -i -q -s "$SCALE" "$DB" >/dev/null 2>&1

bench_build

echo "== pgbench -M prepared, $CONC clients, ${DUR}s"
PGB=$(pgbench -n -M prepared -c "$CONC" -j 2 -T "$DUR" -f "$ROOT/bench/pgbench_select.sql" "$DB" 2>&1)
TPS=$(echo "$PGB" | awk '/^tps/ { print int($3) }')
echo "$PGB" | grep -E "^(latency|tps)"

bench_fasterpg "$HTTPPORT"
echo "== fasterpg POST /query (wrk), $CONC connections, ${DUR}s"
# warm-up: every connection prepares the statement once
BENCH_ROWS=$((SCALE * 100000)) wrk -t2 -c"$CONC" -d2s -s "$ROOT/bench/query.lua" "http://127.0.0.1:$HTTPPORT/query" >/dev/null
OUT=$(BENCH_ROWS=$((SCALE * 100000)) wrk -t2 -c"$CONC" -d"${DUR}s" -s "$ROOT/bench/query.lua" "http://127.0.0.1:$HTTPPORT/query")
echo "$OUT" | grep -E "^wrk:|Non-2xx"
RPS=$(echo "$OUT" | awk '/^wrk:/ { print $2 }')
kill "$FPID"; wait "$FPID" 2>/dev/null || true

if [ -n "${NODE_PEER:-}" ]; then
	echo "== node-gateway peer POST /query (wrk), $CONC connections, ${DUR}s"
	(cd "$NODE_PEER" && DATABASE_URL="postgres://postgres@127.0.0.1:$PGPORT/postgres" PORT=$((HTTPPORT + 1)) WORKERS=2 DRIVER=postgres node server.js >/dev/null 2>&1) &
	PIDS+=($!)
	sleep 2
	BENCH_ROWS=$((SCALE * 100000)) wrk -t2 -c"$CONC" -d2s -s "$ROOT/bench/query.lua" "http://127.0.0.1:$((HTTPPORT + 1))/query" >/dev/null
	NOUT=$(BENCH_ROWS=$((SCALE * 100000)) wrk -t2 -c"$CONC" -d"${DUR}s" -s "$ROOT/bench/query.lua" "http://127.0.0.1:$((HTTPPORT + 1))/query")
	echo "$NOUT" | grep -E "^wrk:|Non-2xx"
	NRPS=$(echo "$NOUT" | awk '/^wrk:/ { print $2 }')
	pkill -P "${PIDS[-1]}" 2>/dev/null || true
	echo "ratio fasterpg / node-gateway: $(awk -v a="$RPS" -v b="$NRPS" 'BEGIN { printf "%.2f", a / b }')"
fi
echo "ratio fasterpg / pgbench: $(awk -v a="$RPS" -v b="$TPS" 'BEGIN { printf "%.2f", a / b }')"
