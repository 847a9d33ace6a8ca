#include "random.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "log.h"

bool fpg_random_draw(struct fpg_random *r, void *out, size_t n)
{
	if (n > sizeof(r->pool))
		return false;
	if (r->left < n) {
		/* Up to 256 bytes, getrandom() returns them all and is not
		 * interrupted by signals (getrandom(2)). */
		ssize_t got = getrandom(r->pool, sizeof(r->pool), 0);
		if (got != (ssize_t)sizeof(r->pool)) {
			fpg_log_error("random", NULL, "getrandom: %s",
				      got < 0 ? strerror(errno) : "short read");
			return false;
		}
		r->left = sizeof(r->pool);
	}
	r->left -= (unsigned)n;
	memcpy(out, r->pool + r->left, n);
	/* Handed out bytes must not stay behind for a later reader. */
	memset(r->pool + r->left, 0, n);
	return true;
}
