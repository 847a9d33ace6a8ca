#!/usr/bin/env bash
# COPY over HTTP against psql's \copy, the same 1,000,000-row CSV file and
# the same PostgreSQL, in one run: upload (POST /copy vs \copy FROM) and
# download (GET /copy vs \copy TO), with fasterpg's peak RSS growth.
#
#   bench/copy.sh [ROWS]          (default 1000000)
#
# Starts a throwaway PostgreSQL 15 cluster in a temp dir (as the postgres
# user when run as root) and builds fasterpg in build-bench/ (release).
set -euo pipefail

ROWS=${1:-1000000}
PGPORT=${BENCH_PG_PORT:-55435}
HTTPPORT=${BENCH_HTTP_PORT:-18093}
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_pg_start ""
psql "$DB" -qc "CREATE TABLE t (id int, name text, amount numeric, at timestamptz, flag bool)"
awk -v n="$ROWS" 'BEGIN { for (i = 1; i <= n; i++)
	printf "%d,name %d,%d.25,2026-01-01 00:00:%02d+00,%s\n", i, i, i, i % 60, (i % 3 ? "t" : "f") }' >"$TMP/t.csv"

bench_build

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b / a }'; }

bench_fasterpg "$HTTPPORT"
BASE=$(kb "$FPID" VmRSS)

PSQL_IN=$(secs psql "$DB" -qc "\\copy t FROM '$TMP/t.csv' csv")
psql "$DB" -qc "TRUNCATE t"
HTTP_IN=$(secs curl -sf -X POST -H 'Content-Type: text/csv' -T "$TMP/t.csv" "127.0.0.1:$HTTPPORT/copy?table=t")
echo "upload   psql \\copy FROM: ${PSQL_IN} s   POST /copy: ${HTTP_IN} s   rate vs psql: $(ratio "$HTTP_IN" "$PSQL_IN")x"

PSQL_OUT=$(secs psql "$DB" -qc "\\copy t TO '$TMP/out.csv' csv")
HTTP_OUT=$(secs curl -sf -H "X-Requested-With: bench" -o "$TMP/out2.csv" "127.0.0.1:$HTTPPORT/copy?table=t")
cmp "$TMP/out.csv" "$TMP/out2.csv" && echo "download output identical to psql's"
echo "download psql \\copy TO:   ${PSQL_OUT} s   GET /copy:  ${HTTP_OUT} s   rate vs psql: $(ratio "$HTTP_OUT" "$PSQL_OUT")x"
PEAK=$(kb "$FPID" VmHWM)
echo "fasterpg RSS: baseline $((BASE / 1024)) MiB, peak $((PEAK / 1024)) MiB, growth $(((PEAK - BASE) / 1024)) MiB"
