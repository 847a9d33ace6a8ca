#!/usr/bin/env bash
# What a container build would find out late, checked on this machine
# (CI has no container engine nor the base image): every package the
# Dockerfile installs exists in this Debian's archive, and every library
# the fasterpg binary BIN links directly comes from a package the runtime
# stage installs (or one every Debian image has: Priority required, and
# the C library).
#
#   scripts/check-dockerfile.sh DOCKERFILE BIN
set -euo pipefail
DOCKERFILE=$1 BIN=$2
fail=0

# The package words of the apt-get install lines, per stage.
packages() { # STAGE-NUMBER (1: build, 2: runtime)
	awk -v want="$1" '
		/^FROM / { stage++ }
		on && /^[ \t]*&&/ { on = 0 }
		stage == want && /apt-get install/ { on = 1 }
		on { print; if ($0 !~ /\\$/) on = 0 }' "$DOCKERFILE" |
		tr ' \\&' '\n\n\n' | grep -E '^[a-z0-9][a-z0-9.+-]+$' |
		grep -vE '^(apt-get|install|update|rm|DEBIAN_FRONTEND|no-install-recommends)$' || true
}
build=$(packages 1)
runtime=$(packages 2)
[ -n "$build" ] && [ -n "$runtime" ] || { echo "no apt-get install lines found in $DOCKERFILE"; exit 1; }
# Without package lists (apt-get update never ran) only the installed
# packages are known: those are checked below.
if ! apt-cache show libc6 >/dev/null 2>&1; then
	echo "no apt package lists here: the archive is not checked"
	build= runtime_known=
fi
# shellcheck disable=SC2086
known=$(apt-cache show --no-all-versions $build $runtime 2>/dev/null |
	sed -n 's/^Package: //p')
for p in $build ${runtime_known-$runtime}; do
	if ! grep -qx "$p" <<<"$known"; then
		echo "Dockerfile installs $p, which this Debian does not have"
		fail=1
	fi
done
cache=$(ldconfig -p)
for lib in $(readelf -d "$BIN" | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p'); do
	path=$(awk -v l="$lib" '$1 == l && /x86-64/ && !p { print $NF; p = 1 }' <<<"$cache")
	[ -n "$path" ] || { echo "$lib: not found on this machine"; fail=1; continue; }
	# dpkg knows a file by the path its package ships (usrmerge moved
	# /lib under /usr): try the names the file goes by.
	real=$(readlink -f "$path")
	pkg=
	for f in "$real" "$path" "${real#/usr}" "/usr${real}"; do
		pkg=$(dpkg -S "$f" 2>/dev/null | head -n 1 | cut -d: -f1) || true
		[ -n "$pkg" ] && break
	done
	[ -n "$pkg" ] || { echo "$lib ($path): no package owns it"; fail=1; continue; }
	prio=$(dpkg-query -W -f='${Priority}' "$pkg")
	# libc6 is optional by its Priority, but every image holds it.
	if [ "$prio" != required ] && [ "$pkg" != libc6 ] &&
		! grep -qx "$pkg" <<<"$runtime"; then
		echo "fasterpg links $lib ($pkg), which the runtime stage does not install"
		fail=1
	fi
done
[ "$fail" = 0 ] && echo "Dockerfile: build and runtime packages exist; every linked library is installed"
exit "$fail"
