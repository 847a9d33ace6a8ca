#!/usr/bin/env bash
# GET /listen: the time from sending SELECT pg_notify through /query until
# every subscriber of the channel has the event (bench/listen.mjs), and
# how many notifications did not reach all of their subscribers.
#
#   bench/listen.sh [SUBSCRIBERS] [CHANNELS] [RATE] [SECONDS]
#                                   (defaults 1000, 50, 500, 10)
set -euo pipefail

SUBS=${1:-1000}
CHANNELS=${2:-50}
RATE=${3:-500}
DUR=${4:-10}
PGPORT=${BENCH_PG_PORT:-55438}
HTTPPORT=${BENCH_HTTP_PORT:-18095}
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_pg_start
bench_build
bench_fasterpg "$HTTPPORT"
node "$ROOT/bench/listen.mjs" "$HTTPPORT" "$SUBS" "$CHANNELS" "$RATE" "$DUR"
echo "PostgreSQL backends listening: $(psql -At "$DB" -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'fasterpg listen'")"
