#!/usr/bin/env bash
# Installs the build BUILD into OUT/root (meson install --destdir), takes
# the C program out of SRC/docs/embedding.md, and compiles it as a user
# would, with pkg-config against that installed copy, into OUT/embed.
# EXTRA_CFLAGS: what the build was compiled with beyond the defaults (its
# sanitizers). Prints LD_LIBRARY_PATH for running OUT/embed.
set -euo pipefail
BUILD=$1 SRC=$2 OUT=$3
meson install -C "$BUILD" --no-rebuild --quiet --destdir "$OUT/root" >&2
pc=$(find "$OUT/root" -name fasterpg.pc | head -n 1)
[ -n "$pc" ] || { echo "build-embed: no fasterpg.pc installed" >&2; exit 1; }
awk '/^```c$/ { on = 1; next } /^```$/ { if (on) exit } on' \
	"$SRC/docs/embedding.md" > "$OUT/embed.c"
[ -s "$OUT/embed.c" ] || { echo "build-embed: no C program in docs/embedding.md" >&2; exit 1; }
# The .pc names the prefix it was built for; under OUT/root it lies one
# level down, which is what a user of this copy needs it to say.
prefix=$(sed -n 's/^prefix=//p' "$pc")
sed -i "s|^prefix=.*|prefix=$OUT/root$prefix|" "$pc"
export PKG_CONFIG_PATH=${pc%/*}
# shellcheck disable=SC2046,SC2086
cc -std=c11 -Wall -Wextra -Werror ${EXTRA_CFLAGS:-} "$OUT/embed.c" \
	$(pkg-config --cflags --libs fasterpg) -o "$OUT/embed"
echo "$(dirname "$(find "$OUT/root" -name 'libfasterpg.so' | head -n 1)")"
