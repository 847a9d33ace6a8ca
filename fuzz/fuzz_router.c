/*
 * libFuzzer target: fpg_router_match (src/router.c) on an arbitrary method
 * and path, checked against a segment-by-segment matcher written here.
 *
 * Input: one byte for the size of the Allow buffer (1 to 64), then the
 * method, a NUL, the path (up to the next NUL or the end). Both strings
 * are copied into buffers of their exact size, so that ASan sees a read
 * past their end.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #cond);                              \
			abort();                                               \
		}                                                              \
	} while (0)

static char *copy_str(const uint8_t *p, size_t n)
{
	char *s = malloc(n + 1);
	CHECK(s != NULL);
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

/* The reference: "{}" is a whole segment that matches one non-empty one. */
static bool match_segments(const char *pat, const char *path,
			   const char **param)
{
	*param = NULL;
	for (;;) {
		size_t pn = strcspn(pat, "/"), sn = strcspn(path, "/");
		if (pn == 2 && memcmp(pat, "{}", 2) == 0) {
			if (sn == 0)
				return false;
			*param = path;
		} else if (pn != sn || memcmp(pat, path, pn) != 0) {
			return false;
		}
		if (pat[pn] == '\0' || path[sn] == '\0')
			return pat[pn] == path[sn];
		pat += pn + 1;
		path += sn + 1;
	}
}

/*
 * Checks a miss: the status, and allow: whole method names of routes for
 * that path, in their order (all of them when they fit), HEAD right after
 * every GET (it is answered as GET).
 */
static void check_miss(const char *path, int status, const char *allow,
		       size_t allow_size)
{
	char full[256] = "";
	size_t used = 0;
	const char *param;
	for (unsigned i = 0; i < fpg_router_count(); i++) {
		const struct fpg_route *r = fpg_router_route(i);
		if (!match_segments(r->path, path, &param))
			continue;
		used += (size_t)snprintf(full + used, sizeof(full) - used,
					 "%s%s%s", used ? ", " : "", r->method,
					 strcmp(r->method, "GET") == 0 ? ", HEAD"
								       : "");
	}
	CHECK(status == (used ? 405 : 404));
	CHECK(strlen(allow) < allow_size);
	const char *f = full;
	for (const char *a = allow; *a;) {
		size_t n = strcspn(a, ",");
		bool same = false;
		while (!same) { /* to the next name in full equal to it */
			CHECK(*f != '\0');
			size_t m = strcspn(f, ",");
			same = m == n && strncmp(f, a, n) == 0;
			f += m + (f[m] ? 2 : 0);
		}
		a += n;
		if (*a) {
			CHECK(a[1] == ' ' && a[2] != '\0');
			a += 2;
		}
	}
	if (used < allow_size)
		CHECK(strcmp(full, allow) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t allow_size = 1 + data[0] % 64;
	const uint8_t *rest = data + 1, *end = data + size;
	const uint8_t *nul = memchr(rest, 0, (size_t)(end - rest));
	const uint8_t *ps = nul ? nul + 1 : end;
	const uint8_t *pe = memchr(ps, 0, (size_t)(end - ps));
	char *method = copy_str(rest, (size_t)((nul ? nul : end) - rest));
	char *path = copy_str(ps, (size_t)((pe ? pe : end) - ps));
	char *allow = malloc(allow_size);
	CHECK(allow != NULL);

	int status = -1;
	const char *param = (const char *)1;
	const struct fpg_route *r =
	    fpg_router_match(method, path, &status, allow, allow_size, &param);

	/* The first route whose path and method match wins; HEAD is GET. */
	const char *as = strcmp(method, "HEAD") == 0 ? "GET" : method;
	const struct fpg_route *want = NULL;
	const char *want_param = NULL;
	for (unsigned i = 0; i < fpg_router_count() && !want; i++) {
		const struct fpg_route *c = fpg_router_route(i);
		if (match_segments(c->path, path, &want_param) &&
		    strcmp(c->method, as) == 0)
			want = c;
	}
	CHECK(r == want);
	if (r) {
		CHECK(param == want_param);
		CHECK(fpg_router_route(fpg_router_index(r)) == r);
	} else {
		CHECK(param == NULL);
		CHECK(fpg_router_index(NULL) == fpg_router_count());
		check_miss(path, status, allow, allow_size);
	}
	free(allow);
	free(method);
	free(path);
	return 0;
}
