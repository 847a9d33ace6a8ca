#!/usr/bin/env bash
# The working tree against a git revision (default HEAD~1) on every
# benchmark, side by side: bench/compare.sh for the point SELECT (both
# builds alternating against one PostgreSQL), then bench/stream.sh and
# bench/copy.sh of the working tree run ROUNDS times with each build's
# binary in turn (A B A B ...). Each of those reports its own ratio
# against psql measured in the same run, which is what to compare.
#
#   bench/before-after.sh [REV] [ROUNDS] [ROWS]   (defaults HEAD~1, 2, 1000000)
set -euo pipefail

REV=${1:-HEAD~1}
ROUNDS=${2:-2}
ROWS=${3:-1000000}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OLD=$(mktemp -d /tmp/fpg-before.XXXXXX)
trap 'git -C "$ROOT" worktree remove --force "$OLD" >/dev/null 2>&1 || rm -rf "$OLD"' EXIT
git -C "$ROOT" worktree add -q --detach "$OLD" "$REV"
(cd "$OLD" && meson setup build-bench --buildtype=release >/dev/null && ninja -C build-bench fasterpg >/dev/null)
(cd "$ROOT" && { [ -f build-bench/build.ninja ] || meson setup build-bench --buildtype=release >/dev/null; } &&
	ninja -C build-bench fasterpg >/dev/null)

echo "== point SELECT (bench/compare.sh $REV 8 32 3)"
"$ROOT/bench/compare.sh" "$REV" 8 32 3 | grep -E '^(median|ratio)'
for bench in stream copy; do
	for round in $(seq "$ROUNDS"); do
		for side in base tree; do
			bin="$ROOT/build-bench/fasterpg"
			[ "$side" = base ] && bin="$OLD/build-bench/fasterpg"
			echo "== $bench, round $round, $side"
			FASTERPG_BIN=$bin "$ROOT/bench/$bench.sh" "$ROWS" | grep -E 'x COPY|rate vs psql|RSS'
		done
	done
done
