/*
 * Random bytes from the kernel's CSPRNG, drawn 256 at a time: one system
 * call serves many small draws (request ids), and no lock is shared, as
 * each thread keeps its own. One thread per struct.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "fasterpg.h"

struct fpg_random {
	unsigned char pool[256];
	unsigned left; /* unused bytes at the end of pool */
};

/*
 * Fills out with n (at most 256) bytes. False when getrandom() fails (it
 * does not on Linux >= 3.17 once the pool is seeded).
 */
bool fpg_random_draw(struct fpg_random *r, void *out, size_t n) FPG_MUST_CHECK;
