#!/usr/bin/env bash
# Two builds of fasterpg side by side on the same point SELECT as
# bench/query.sh: the working tree against a git revision (default
# HEAD~1), alternating runs (A B A B ...) against one PostgreSQL, so that
# the noise of this machine hits both alike. Prints, per build, the rate
# and the CPU time per request of fasterpg and of PostgreSQL's backends.
#
#   bench/compare.sh [REV] [SECONDS] [CONCURRENCY] [ROUNDS]
#                                  (defaults HEAD~1, 10, 32, 3)
#
# TREE_ARGS adds options for the working tree's build only, e.g.
# TREE_ARGS=--statement-cache=0 bench/compare.sh HEAD, and TREE_SCHEME=https
# talks TLS to it (TREE_ARGS="--tls-cert C --tls-key K": the cost of TLS).
set -euo pipefail

REV=${1:-HEAD~1}
DUR=${2:-10}
CONC=${3:-32}
ROUNDS=${4:-3}
PGPORT=${BENCH_PG_PORT:-55434}
HTTPPORT=${BENCH_HTTP_PORT:-18091}
SCALE=10
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_pg_start -c max_connections=200
pgbench -i -q -s "$SCALE" "$DB" >/dev/null 2>&1

bench_build
OLD="$TMP/old"
git -C "$ROOT" worktree add -q --detach "$OLD" "$REV"
(cd "$OLD" && meson setup build-bench --buildtype=release >/dev/null && ninja -C build-bench fasterpg >/dev/null)

declare -A RPS FCPU PCPU
run_one() { # BIN LABEL SCHEME [OPTIONS...]
	local bin=$1 label=$2 scheme=$3
	shift 3
	"$bin" --db "$DB" --listen "127.0.0.1:$HTTPPORT" --log-level warn "$@" &
	local fp=$!
	for _ in $(seq 50); do curl -sfk "$scheme://127.0.0.1:$HTTPPORT/readyz" >/dev/null && break; sleep 0.1; done
	BENCH_ROWS=$((SCALE * 100000)) wrk -t2 -c"$CONC" -d2s -s "$ROOT/bench/query.lua" "$scheme://127.0.0.1:$HTTPPORT/query" >/dev/null
	local b f0 p0 out f1 p1 n
	b=$(backends)
	f0=$(ticks "$fp")
	# shellcheck disable=SC2086
	p0=$(ticks $b)
	out=$(BENCH_ROWS=$((SCALE * 100000)) wrk -t2 -c"$CONC" -d"${DUR}s" -s "$ROOT/bench/query.lua" "$scheme://127.0.0.1:$HTTPPORT/query")
	f1=$(ticks "$fp")
	# shellcheck disable=SC2086
	p1=$(ticks $b)
	kill "$fp"
	wait "$fp" 2>/dev/null || true
	n=$(echo "$out" | awk '/requests in/ { print $1 }')
	local rps us_f us_p
	rps=$(echo "$out" | awk '/^wrk:/ { print $2 }')
	us_f=$(awk -v t=$((f1 - f0)) -v n="$n" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
	us_p=$(awk -v t=$((p1 - p0)) -v n="$n" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
	echo "$label: $rps req/s, fasterpg $us_f us/req, PostgreSQL $us_p us/req $(echo "$out" | grep -E 'Non-2xx' || true)"
	RPS[$label]="${RPS[$label]:-} $rps"
	FCPU[$label]="${FCPU[$label]:-} $us_f"
	PCPU[$label]="${PCPU[$label]:-} $us_p"
}

for _ in $(seq "$ROUNDS"); do
	run_one "$OLD/build-bench/fasterpg" "base" http
	# shellcheck disable=SC2086 # TREE_ARGS are words
	run_one "$ROOT/build-bench/fasterpg" "tree" "${TREE_SCHEME:-http}" ${TREE_ARGS:-}
done
med() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
for l in base tree; do
	echo "median $l: $(echo "${RPS[$l]}" | med) req/s, fasterpg $(echo "${FCPU[$l]}" | med) us/req, PostgreSQL $(echo "${PCPU[$l]}" | med) us/req"
done
echo "ratio tree/base req/s: $(awk -v a="$(echo "${RPS[tree]}" | med)" -v b="$(echo "${RPS[base]}" | med)" 'BEGIN { printf "%.2f", a / b }')"
git -C "$ROOT" worktree remove --force "$OLD"
