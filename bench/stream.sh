#!/usr/bin/env bash
# A 1,000,000-row result over HTTP against psql's COPY ... TO STDOUT (CSV),
# the same query against the same PostgreSQL, in one run: wall time of
# each, and fasterpg's peak RSS growth while streaming.
#
#   bench/stream.sh [ROWS]          (default 1000000)
#
# Starts a throwaway PostgreSQL 15 cluster in a temp dir (as the postgres
# user when run as root) and builds fasterpg in build-bench/ (release).
# With NODE_PEER=DIR (a copy of the node-gateway peer with node_modules
# installed) the Node.js gateway is measured too (it buffers whole
# results, so its RSS is reported as well).
set -euo pipefail

ROWS=${1:-1000000}
PGPORT=${BENCH_PG_PORT:-55434}
HTTPPORT=${BENCH_HTTP_PORT:-18092}
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_pg_start ""
SQL="SELECT g AS id, 'name ' || g AS name, timestamptz '2026-01-01 00:00+00' + g * interval '1 second' AS at, g * 1.25::numeric AS amount, g % 3 = 0 AS flag FROM generate_series(1, $ROWS) g"
BODY="{\"sql\":\"$SQL\"}"

bench_build

COPY_T=$(secs psql "$DB" -Atc "COPY ($SQL) TO STDOUT (FORMAT csv)")
echo "psql COPY (...) TO STDOUT (FORMAT csv): ${COPY_T} s"

bench_fasterpg "$HTTPPORT"
BASE=$(kb "$FPID" VmRSS)
for fmt in "application/json" "application/json?stream" "application/x-ndjson" "text/csv"; do
	accept=${fmt%%\?*}
	url="127.0.0.1:$HTTPPORT/query"
	[ "$fmt" != "$accept" ] && url="$url?stream=true"
	T=$(secs curl -sf -H 'Content-Type: application/json' -H "Accept: $accept" "$url" -d "$BODY")
	printf "fasterpg %-26s %7s s  %5.2fx COPY\n" "$fmt" "$T" "$(awk -v a="$T" -v b="$COPY_T" 'BEGIN { print a / b }')"
done
PEAK=$(kb "$FPID" VmHWM)
echo "fasterpg RSS: baseline $((BASE / 1024)) MiB, peak $((PEAK / 1024)) MiB, growth $(((PEAK - BASE) / 1024)) MiB"

if [ -n "${NODE_PEER:-}" ]; then
	(cd "$NODE_PEER" && exec env DATABASE_URL="postgres://postgres@127.0.0.1:$PGPORT/postgres" PORT=$((HTTPPORT + 1)) WORKERS=1 DRIVER=postgres node server.js >/dev/null 2>&1) &
	PIDS+=($!)
	for _ in $(seq 50); do curl -s "127.0.0.1:$((HTTPPORT + 1))/" >/dev/null 2>&1 && break; sleep 0.2; done
	NBASE=$(kb "${PIDS[-1]}" VmRSS)
	T=$(secs curl -s -H 'Content-Type: application/json' "127.0.0.1:$((HTTPPORT + 1))/query" -d "$BODY")
	NPEAK=$(kb "${PIDS[-1]}" VmHWM)
	printf "node-gateway (postgres.js) %16s s  %5.2fx COPY; RSS growth %d MiB\n" "$T" \
		"$(awk -v a="$T" -v b="$COPY_T" 'BEGIN { print a / b }')" $(((NPEAK - NBASE) / 1024))
fi
