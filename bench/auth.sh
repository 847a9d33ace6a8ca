#!/usr/bin/env bash
# What authenticating each request costs: the point SELECT of
# bench/query.sh through one build (the working tree's) with no --auth,
# with an API key, and with JSON Web Tokens signed HS256, RS256 and ES256,
# in alternating runs (none key hs rs es none ...) against one PostgreSQL.
# Every authenticated run is the role "bench", logged in as itself. Prints
# the rate and the CPU time per request of fasterpg and of PostgreSQL's
# backends, and the ratios to the unauthenticated run.
#
#   bench/auth.sh [SECONDS] [CONCURRENCY] [ROUNDS]   (defaults 10, 32, 3)
#
# Needs openssl (the tokens are signed with its command line tool).
set -euo pipefail

DUR=${1:-10}
CONC=${2:-32}
ROUNDS=${3:-3}
PGPORT=${BENCH_PG_PORT:-55436}
HTTPPORT=${BENCH_HTTP_PORT:-18093}
SCALE=10
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_pg_start -c max_connections=300
pgbench -i -q -s "$SCALE" "$DB" >/dev/null 2>&1
psql -q "$DB" -c "CREATE ROLE bench LOGIN; GRANT SELECT ON pgbench_accounts TO bench" >/dev/null
bench_build

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
CLAIMS=$(printf '{"role":"bench","sub":"u1","exp":%d}' $(($(date +%s) + 86400)) | b64url)

# The secret, the RSA and EC keys, and a token signed with each.
head -c 32 /dev/urandom | base64 > "$TMP/secret"
tr -d '\n' < "$TMP/secret" > "$TMP/secret.raw"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$TMP/rsa.pem" 2>/dev/null
openssl pkey -in "$TMP/rsa.pem" -pubout -out "$TMP/rsa.pub"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$TMP/ec.pem" 2>/dev/null
openssl pkey -in "$TMP/ec.pem" -pubout -out "$TMP/ec.pub"
token() { # ALG SIGN-COMMAND...
	local head input
	head=$(printf '{"alg":"%s","typ":"JWT"}' "$1" | b64url)
	shift
	input="$head.$CLAIMS"
	printf '%s.%s' "$input" "$(printf %s "$input" | "$@" | b64url)"
}
# ES256 wants r||s (32 bytes each), openssl gives DER.
es_raw() {
	openssl asn1parse -inform DER | awk -F: '/INTEGER/ { printf "%064s\n", $4 }' |
		tr ' ' 0 | tr -d '\n' | xxd -r -p
}
es_sign() { openssl dgst -sha256 -sign "$TMP/ec.pem" | es_raw; }
HS=$(token HS256 openssl dgst -sha256 -mac HMAC -macopt "key:$(cat "$TMP/secret.raw")" -binary)
RS=$(token RS256 openssl dgst -sha256 -sign "$TMP/rsa.pem")
ES=$(token ES256 es_sign)
KEY=$(head -c 24 /dev/urandom | base64)
echo "$(printf %s "$KEY" | sha256sum | cut -d' ' -f1) bench" > "$TMP/keys"

declare -A RPS FCPU PCPU
run_one() { # LABEL AUTH-HEADER [OPTIONS...]
	local label=$1 auth=$2
	shift 2
	"$FPG_BIN" --db "$DB" --listen "127.0.0.1:$HTTPPORT" --log-level warn "$@" &
	local fp=$!
	for _ in $(seq 50); do curl -sf "127.0.0.1:$HTTPPORT/healthz" >/dev/null && break; sleep 0.1; done
	if [ -n "$auth" ] && ! curl -sf -H "Authorization: $auth" -H 'Content-Type: application/json' \
		"127.0.0.1:$HTTPPORT/query" -d '{"sql":"SELECT 1"}' >/dev/null; then
		echo "$label: the credential does not work" >&2
		exit 1
	fi
	BENCH_AUTH=$auth BENCH_ROWS=$((SCALE * 100000)) wrk -t2 -c"$CONC" -d2s -s "$ROOT/bench/query.lua" "http://127.0.0.1:$HTTPPORT/query" >/dev/null
	local b f0 p0 out f1 p1 n rps us_f us_p
	b=$(backends)
	f0=$(ticks "$fp")
	# shellcheck disable=SC2086
	p0=$(ticks $b)
	out=$(BENCH_AUTH=$auth BENCH_ROWS=$((SCALE * 100000)) wrk -t2 -c"$CONC" -d"${DUR}s" -s "$ROOT/bench/query.lua" "http://127.0.0.1:$HTTPPORT/query")
	f1=$(ticks "$fp")
	# shellcheck disable=SC2086
	p1=$(ticks $b)
	kill "$fp"
	wait "$fp" 2>/dev/null || true
	n=$(echo "$out" | awk '/requests in/ { print $1 }')
	rps=$(echo "$out" | awk '/^wrk:/ { print $2 }')
	us_f=$(awk -v t=$((f1 - f0)) -v n="$n" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
	us_p=$(awk -v t=$((p1 - p0)) -v n="$n" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
	echo "$label: $rps req/s, fasterpg $us_f us/req, PostgreSQL $us_p us/req $(echo "$out" | grep -E 'Non-2xx' || true)"
	RPS[$label]="${RPS[$label]:-} $rps"
	FCPU[$label]="${FCPU[$label]:-} $us_f"
	PCPU[$label]="${PCPU[$label]:-} $us_p"
}

JWT=(--auth jwt --jwt-roles bench)
for _ in $(seq "$ROUNDS"); do
	run_one none ""
	run_one api-key "Bearer $KEY" --auth api-key --api-keys "$TMP/keys"
	run_one hs256 "Bearer $HS" "${JWT[@]}" --jwt-secret-file "$TMP/secret.raw"
	run_one rs256 "Bearer $RS" "${JWT[@]}" --jwt-key-file "$TMP/rsa.pub"
	run_one es256 "Bearer $ES" "${JWT[@]}" --jwt-key-file "$TMP/ec.pub"
done
med() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
base=$(echo "${RPS[none]}" | med)
for l in none api-key hs256 rs256 es256; do
	r=$(echo "${RPS[$l]}" | med)
	echo "median $l: $r req/s ($(awk -v a="$r" -v b="$base" 'BEGIN { printf "%.2f", a / b }')x), fasterpg $(echo "${FCPU[$l]}" | med) us/req, PostgreSQL $(echo "${PCPU[$l]}" | med) us/req"
done
