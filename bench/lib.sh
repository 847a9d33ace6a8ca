# Shared by the bench/ scripts (sourced, not run): a throwaway PostgreSQL
# 15 cluster in a temp dir (as the postgres user when run as root), the
# release build of fasterpg in build-bench/ (or the binary FASTERPG_BIN
# names, which is then not built), and small measuring helpers.
# The sourcing script sets PGPORT first; it may append to PIDS the
# processes to stop at exit.
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PGBIN=${PG_BINDIR:-$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin | sort -V | tail -n 1)}
TMP=$(mktemp -d /tmp/fpg-bench.XXXXXX)
PIDS=()

as_pg() {
	if [ "$(id -u)" -eq 0 ]; then (cd "$TMP" && runuser -u postgres -- "$@"); else "$@"; fi
}

bench_cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	as_pg "$PGBIN/pg_ctl" -D "$TMP/data" -m immediate stop >/dev/null 2>&1 || true
	rm -rf "$TMP"
}
trap bench_cleanup EXIT

# bench_pg_start [EXTRA -c SETTINGS]: starts the cluster, sets DB.
bench_pg_start() {
	[ "$(id -u)" -eq 0 ] && chown postgres "$TMP"
	as_pg "$PGBIN/initdb" -A trust -U postgres -D "$TMP/data" >/dev/null
	as_pg "$PGBIN/pg_ctl" -D "$TMP/data" -l "$TMP/pg.log" -w -o \
		"-p $PGPORT -k $TMP -c listen_addresses=127.0.0.1 -c shared_buffers=256MB -c fsync=off $*" \
		start >/dev/null
	DB="host=127.0.0.1 port=$PGPORT user=postgres dbname=postgres"
}

FPG_BIN=${FASTERPG_BIN:-$ROOT/build-bench/fasterpg}

bench_build() {
	[ -n "${FASTERPG_BIN:-}" ] && return
	(cd "$ROOT" && { [ -f build-bench/build.ninja ] || meson setup build-bench --buildtype=release >/dev/null; } &&
		ninja -C build-bench fasterpg >/dev/null)
}

# bench_fasterpg PORT: starts fasterpg on PORT against DB, waits until ready;
# its pid is FPID.
bench_fasterpg() {
	"$FPG_BIN" --db "$DB" --listen "127.0.0.1:$1" --log-level warn &
	FPID=$!
	PIDS+=("$FPID")
	for _ in $(seq 50); do curl -sf "127.0.0.1:$1/readyz" >/dev/null && break; sleep 0.1; done
}

# secs CMD...: wall time of CMD in seconds (its output discarded)
secs() {
	local t0 t1
	t0=$(date +%s.%N)
	"$@" >/dev/null
	t1=$(date +%s.%N)
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}

# kb PID FIELD: a /proc/PID/status field in KiB (VmRSS, VmHWM)
kb() { awk '/^'"$2"':/ { print $2 }' "/proc/$1/status"; }

# ticks PID...: user+system clock ticks of the processes (and, for the
# postmaster, of its children: the backends).
ticks() {
	local t=0 p
	for p in "$@"; do
		[ -r "/proc/$p/stat" ] || continue
		t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat")))
	done
	echo "$t"
}

# backends: the pids of the cluster's backends now.
backends() { pgrep -P "$(head -1 "$TMP/data/postmaster.pid")" | tr '\n' ' '; }

