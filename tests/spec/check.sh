#!/usr/bin/env bash
# The checks of api/openapi.yaml (scripts/dev.sh test runs them after the
# plain suite, each counted as a test):
#
#   tests/spec/check.sh deps              npm ci into tests/spec/node_modules
#                                         (again only when package-lock.json
#                                         changed)
#   tests/spec/check.sh validate          swagger-cli validate
#   tests/spec/check.sh lint              redocly lint (redocly.yaml at the
#                                         root; a warning fails as an error
#                                         does)
#   tests/spec/check.sh responses FILE... the exchanges the integration tests
#                                         recorded (FPG_TEST_RECORD=FILE)
#                                         against the spec (validate.mjs)
#
# Needs Node.js 20.19+ (or 22.12+) and npm 10+ (what @redocly/cli wants).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SPEC=$ROOT/api/openapi.yaml
BIN=$HERE/node_modules/.bin

log() { printf 'spec: %s\n' "$*" >&2; }

cmd_deps() {
	command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || {
		log "node and npm are needed (Node.js 20.19+ or 22.12+)"
		return 1
	}
	# npm ci leaves node_modules/.package-lock.json: the same packages
	# as our lock file's means they are installed already.
	if node -e '
		const [a, b] = process.argv.slice(1).map((f) =>
			require(f).packages);
		delete a[""];
		process.exit(JSON.stringify(a) === JSON.stringify(b) ? 0 : 1);' \
		"$HERE/package-lock.json" \
		"$HERE/node_modules/.package-lock.json" 2>/dev/null; then
		return 0
	fi
	log "npm ci in tests/spec"
	(cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error)
}

cmd_validate() {
	"$BIN/swagger-cli" validate "$SPEC"
}

cmd_lint() {
	local rc=0 out
	out=$(cd "$ROOT" && "$BIN/redocly" lint --config redocly.yaml \
		--format=stylish api/openapi.yaml 2>&1) || rc=1
	# Its banner about Node.js versions is not about the spec.
	printf '%s\n' "$out" | grep -v '^ *[╔║╚]' | grep -v '^ *$' || true
	# A warning fails too: each one is fixed or configured off.
	if printf '%s\n' "$out" | grep -Eq '^ +[0-9]+:[0-9]+ +warning'; then
		rc=1
	fi
	return $rc
}

cmd_responses() {
	[ $# -gt 0 ] || {
		log "responses: no record file given"
		return 2
	}
	local f
	for f in "$@"; do
		[ -s "$f" ] || {
			log "responses: $f is missing or empty (did the suite run with FPG_TEST_RECORD=$f?)"
			return 1
		}
	done
	node "$HERE/validate.mjs" "$SPEC" "$@"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
deps) cmd_deps ;;
validate) cmd_validate ;;
lint) cmd_lint ;;
responses) cmd_responses "$@" ;;
*)
	sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
	;;
esac
