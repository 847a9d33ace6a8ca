#!/usr/bin/env bash
# fasterpg developer entry point.
#
#   scripts/dev.sh deps             install missing build/test packages (apt)
#   scripts/dev.sh build            deps + meson setup/compile into build/
#   scripts/dev.sh run [ARGS...]    build, start the local PostgreSQL cluster
#                                   in .fasterpg/ unless --db, DATABASE_URL or
#                                   FASTERPG_DB says where one is, run fasterpg
#   scripts/dev.sh stop-db          stop the local cluster
#   scripts/dev.sh test             unit + integration tests, plain (then
#                                   api/openapi.yaml linted and the answers
#                                   the suite recorded checked against it:
#                                   tests/spec/, needs node and npm) and
#                                   with ASan/UBSan, then each fuzz target
#                                   for a short while over its corpus
#                                   (clang); last line "N passed, M failed"
#
# Environment: FASTERPG_PG_PORT (local cluster port, default 5433),
# PG_BINDIR (PostgreSQL server binaries), CI (non-empty: -Dwerror=true),
# FUZZ_SECONDS (time per fuzz target in test, default 20).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

# clang and libclang-rt-14-dev (libFuzzer, a Recommends of clang-14 that
# --no-install-recommends skips) build the fuzz targets. nodejs and npm
# run it_js (tests/js: the npm drivers of Neon's protocol against POST
# /sql); a node and npm already on PATH (nodesource's, nvm's) will do.
# prometheus brings promtool, which checks /metrics (it_meta's
# metrics_pass_promtool); chromium and chromium-driver run it_browser (an
# EventSource on GET /listen).
PACKAGES=(meson ninja-build pkg-config gcc libmicrohttpd-dev libjansson-dev
	libpq-dev zlib1g-dev libzstd-dev libssl-dev libcjose-dev libgnutls28-dev check
	libcurl4-openssl-dev postgresql-15 postgresql-client-15
	wrk curl clang libclang-rt-14-dev nodejs npm prometheus chromium
	chromium-driver)

LOCAL_DIR="$ROOT/.fasterpg"
LOCAL_PGDATA="$LOCAL_DIR/pgdata"
LOCAL_LOG="$LOCAL_DIR/pg.log"

log() { printf 'dev.sh: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

is_root() { [ "$(id -u)" -eq 0 ]; }

as_root() {
	if is_root; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		die "need root (and there is no sudo) to run: $*"
	fi
}

# ---------------------------------------------------------------- deps

pkg_installed() {
	# shellcheck disable=SC2016 # ${Status} is dpkg-query's, not ours
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null |
		grep -q 'install ok installed'
}

cmd_deps() {
	if ! command -v dpkg-query >/dev/null 2>&1; then
		log "not a Debian-like system: install by hand: ${PACKAGES[*]}"
		return 0
	fi
	local missing=() p
	for p in "${PACKAGES[@]}"; do
		case $p in
		nodejs) command -v node >/dev/null 2>&1 && continue ;;
		npm) command -v npm >/dev/null 2>&1 && continue ;;
		esac
		pkg_installed "$p" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	log "installing missing packages: ${missing[*]}"
	as_root apt-get update -qq
	as_root env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# ---------------------------------------------------------------- build

# meson_dir DIR OPTION...: configure DIR with the options (setup the first
# time, reconfigure afterwards so that changed options take effect).
meson_dir() {
	local dir=$1
	shift
	if [ -f "$dir/meson-private/coredata.dat" ]; then
		meson configure "$dir" "$@"
	else
		meson setup "$dir" "$@"
	fi
}

werror_opt() {
	if [ -n "${CI:-}" ]; then
		echo "-Dwerror=true"
	else
		echo "-Dwerror=false"
	fi
}

cmd_build() {
	cmd_deps
	if [ ! -f build/meson-private/coredata.dat ]; then
		meson setup build
	fi
	meson compile -C build
}

# ---------------------------------------------------------------- local db

pg_bindir() {
	if [ -n "${PG_BINDIR:-}" ]; then
		echo "$PG_BINDIR"
		return
	fi
	local initdb
	if initdb=$(command -v initdb 2>/dev/null); then
		dirname "$(readlink -f "$initdb")"
		return
	fi
	local d
	d=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin \
		2>/dev/null | sort -V | tail -n 1)
	[ -n "$d" ] || die "PostgreSQL server binaries not found (run '$0 deps' or set PG_BINDIR)"
	echo "$d"
}

# as_pg CMD...: run a PostgreSQL tool as the postgres OS user when we are
# root (initdb and postgres refuse to run as root), from a directory that
# user can enter.
as_pg() {
	if is_root; then
		(cd "$LOCAL_DIR" && runuser -u postgres -- "$@")
	else
		"$@"
	fi
}

port_busy() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pick_port() {
	local want=$1 port
	for ((port = want; port < want + 100; port++)); do
		if ! port_busy "$port"; then
			[ "$port" -ne "$want" ] &&
				log "port $want is busy: using $port for the local cluster"
			echo "$port"
			return
		fi
	done
	die "no free port in $want..$((want + 99))"
}

local_running() {
	[ -f "$LOCAL_PGDATA/PG_VERSION" ] &&
		as_pg "$PGBIN/pg_ctl" -D "$LOCAL_PGDATA" status >/dev/null 2>&1
}

local_init() {
	mkdir -p "$LOCAL_DIR"
	if is_root; then
		id postgres >/dev/null 2>&1 ||
			die "running as root but there is no 'postgres' user (run '$0 deps')"
		chown postgres: "$LOCAL_DIR"
		runuser -u postgres -- test -w "$LOCAL_DIR" ||
			die "the postgres user cannot reach $LOCAL_DIR (a parent directory is private); run as a normal user or move the checkout"
	fi
	[ -f "$LOCAL_PGDATA/PG_VERSION" ] && return 0
	if [ -e "$LOCAL_PGDATA" ]; then
		log "removing the incomplete cluster in $LOCAL_PGDATA"
		rm -rf "$LOCAL_PGDATA"
	fi
	log "creating a local PostgreSQL cluster in $LOCAL_PGDATA (user postgres, trust auth)"
	as_pg "$PGBIN/initdb" -A trust -U postgres -E UTF8 --locale=C.UTF-8 \
		-D "$LOCAL_PGDATA" >"$LOCAL_DIR/initdb.log" 2>&1 || {
		cat "$LOCAL_DIR/initdb.log" >&2
		die "initdb failed"
	}
	printf "\n# fasterpg dev.sh\ninclude_if_exists = 'fasterpg.conf'\n" |
		as_pg tee -a "$LOCAL_PGDATA/postgresql.conf" >/dev/null
}

# Writes the per-start settings; the port may change from run to run.
local_conf() {
	local port=$1 sockdir=$LOCAL_DIR
	# A unix socket path longer than ~100 bytes cannot be bound.
	if [ $((${#sockdir} + 20)) -gt 100 ]; then
		log "$sockdir is too long for a unix socket: TCP only"
		sockdir=""
	fi
	printf "%s\n" "port = $port" \
		"listen_addresses = '127.0.0.1'" \
		"unix_socket_directories = '${sockdir//\'/\'\'}'" \
		"max_connections = 300" \
		"shared_buffers = 128MB" |
		as_pg tee "$LOCAL_PGDATA/fasterpg.conf" >/dev/null
}

# Prints the port of the running local cluster, starting it if needed.
local_start() {
	PGBIN=$(pg_bindir)
	local_init
	if local_running; then
		local port
		port=$(sed -n 4p "$LOCAL_PGDATA/postmaster.pid")
		log "reusing the local PostgreSQL already running on port $port"
		echo "$port"
		return
	fi
	local port
	port=$(pick_port "${FASTERPG_PG_PORT:-5433}")
	local_conf "$port"
	log "starting the local PostgreSQL on 127.0.0.1:$port (log: $LOCAL_LOG)"
	if ! as_pg "$PGBIN/pg_ctl" -D "$LOCAL_PGDATA" -l "$LOCAL_LOG" \
		-w -t 60 start >/dev/null; then
		tail -n 40 "$LOCAL_LOG" >&2 || true
		die "PostgreSQL did not start"
	fi
	echo "$port"
}

cmd_stop_db() {
	PGBIN=$(pg_bindir)
	if local_running; then
		as_pg "$PGBIN/pg_ctl" -D "$LOCAL_PGDATA" -m fast -w -t 60 stop \
			>/dev/null
		log "stopped the local PostgreSQL ($LOCAL_PGDATA)"
	else
		log "the local PostgreSQL is not running"
	fi
}

cmd_run() {
	cmd_build >&2
	local a need_db=1
	for a in "$@"; do
		case $a in
		--db | --db=*) need_db=0 ;;
		-h | --help | --version) need_db=0 ;;
		esac
	done
	[ -n "${DATABASE_URL:-}" ] && need_db=0
	[ -n "${FASTERPG_DB:-}" ] && need_db=0
	if [ "$need_db" -eq 0 ]; then
		exec build/fasterpg "$@"
	fi
	local port db
	port=$(local_start)
	db="host=127.0.0.1 port=$port user=postgres dbname=postgres"
	log "running build/fasterpg --db \"$db\" $*"
	log "(psql: psql \"$db\"; stop the database with: $0 stop-db)"
	exec build/fasterpg --db "$db" "$@"
}

# ---------------------------------------------------------------- test

PASSED=0
FAILED=0

# run_suite DIR SUITE [MESON TEST OPTIONS...]
run_suite() {
	local dir=$1 suite=$2 logf ok fail rc=0
	shift 2
	logf="$dir/meson-logs/testlog.txt"
	rm -f "$logf"
	log "== $dir: suite $suite"
	meson test -C "$dir" --print-errorlogs --num-processes 2 \
		--suite "$suite" "$@" || rc=$?
	ok=0
	fail=0
	if [ -f "$logf" ]; then
		ok=$(awk '/^Ok:/ { n += $2 } END { print n + 0 }' "$logf")
		fail=$(awk '/^Fail:/ || /^Timeout:/ { n += $2 }
			/^Unexpected Pass:/ { n += $3 } END { print n + 0 }' "$logf")
	fi
	# A failing run that failed no test (e.g. did not build) counts once.
	if [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then
		fail=1
	fi
	PASSED=$((PASSED + ok))
	FAILED=$((FAILED + fail))
}

# test_build DIR [MESON TEST OPTIONS...] -- SETUP OPTIONS...
test_build() {
	local dir=$1 test_opts=() setup_opts
	shift
	while [ $# -gt 0 ] && [ "$1" != "--" ]; do
		test_opts+=("$1")
		shift
	done
	shift
	setup_opts=("$@" "$(werror_opt)")
	log "== configuring $dir: ${setup_opts[*]}"
	if ! meson_dir "$dir" "${setup_opts[@]}" || ! meson compile -C "$dir"; then
		log "$dir: build failed"
		FAILED=$((FAILED + 1))
		return
	fi
	run_suite "$dir" unit "${test_opts[@]}"
	run_suite "$dir" integration "${test_opts[@]}"
}

FUZZ_TARGETS=(fuzz_statement fuzz_sqlcheck fuzz_copy fuzz_router fuzz_encode fuzz_jwt)

# fuzz_target NAME: runs build-fuzz's target for FUZZ_SECONDS over its
# committed corpus. New inputs go to a scratch corpus (listed first, so the
# committed one is only read), a crash to build-fuzz/artifacts/.
fuzz_target() {
	local name=$1 dir=build-fuzz/fuzz-run/$1 rc=0
	rm -rf "$dir"
	mkdir -p "$dir" build-fuzz/artifacts
	log "== fuzz: $name, ${FUZZ_SECONDS:-20} s"
	"build-fuzz/fuzz/$name" -max_total_time="${FUZZ_SECONDS:-20}" \
		-timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="build-fuzz/artifacts/$name-" \
		"$dir" "fuzz/corpus/$name" >"$dir.log" 2>&1 || rc=$?
	if [ "$rc" -eq 0 ]; then
		grep '^stat::number_of_executed_units' "$dir.log" >&2 || true
		PASSED=$((PASSED + 1))
	else
		tail -n 60 "$dir.log" >&2
		log "fuzz: $name failed (exit $rc; log $dir.log)"
		FAILED=$((FAILED + 1))
	fi
}

# Builds fuzz/ with clang (-Dfuzz=true) in build-fuzz and runs each target
# (one test each); a build failure counts as one failed test.
fuzz_all() {
	local targets=() t
	if ! command -v clang >/dev/null 2>&1; then
		log "fuzz: clang not found (run '$0 deps')"
		FAILED=$((FAILED + 1))
		return
	fi
	for t in "${FUZZ_TARGETS[@]}"; do
		targets+=("fuzz/$t")
	done
	log "== configuring build-fuzz: CC=clang -Dfuzz=true $(werror_opt)"
	if [ -f build-fuzz/meson-private/coredata.dat ]; then
		meson configure build-fuzz -Dfuzz=true "$(werror_opt)"
	else
		CC=clang meson setup build-fuzz -Dfuzz=true "$(werror_opt)"
	fi || {
		log "build-fuzz: configure failed"
		FAILED=$((FAILED + 1))
		return
	}
	if ! meson compile -C build-fuzz "${targets[@]}"; then
		log "build-fuzz: build failed"
		FAILED=$((FAILED + 1))
		return
	fi
	for t in "${FUZZ_TARGETS[@]}"; do
		fuzz_target "$t"
	done
}

# spec_check NAME CMD...: one counted test of api/openapi.yaml.
spec_check() {
	local name=$1
	shift
	log "== spec: $name"
	if "$@"; then
		PASSED=$((PASSED + 1))
	else
		log "spec: $name failed"
		FAILED=$((FAILED + 1))
	fi
}

# The spec is linted by real validators, and every exchange the plain
# suite recorded is checked against it (tests/spec/check.sh): three
# tests, which all count as failed without their packages (no node, no
# registry).
spec_all() {
	local record=$1
	if ! tests/spec/check.sh deps; then
		log "spec: could not install tests/spec's packages"
		FAILED=$((FAILED + 3))
		return
	fi
	spec_check validate tests/spec/check.sh validate
	spec_check lint tests/spec/check.sh lint
	spec_check responses tests/spec/check.sh responses "$record"
}

cmd_test() {
	cmd_deps
	# Every HTTP exchange of the plain suite, one JSON line each.
	local record=$ROOT/build-test/spec-record.ndjson
	mkdir -p build-test
	rm -f "$record"
	FPG_TEST_RECORD=$record test_build build-test -- -Dcassert=true
	spec_all "$record"
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		test_build build-asan --timeout-multiplier 3 -- -Dcassert=true \
		-Db_sanitize=address,undefined -Db_lundef=false
	fuzz_all
	echo "$PASSED passed, $FAILED failed"
	[ "$FAILED" -eq 0 ]
}

# ---------------------------------------------------------------- main

usage() {
	sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
deps) cmd_deps ;;
build) cmd_build ;;
run) cmd_run "$@" ;;
stop-db) cmd_stop_db ;;
test) cmd_test ;;
-h | --help | help) usage ;;
*)
	usage >&2
	exit 2
	;;
esac
