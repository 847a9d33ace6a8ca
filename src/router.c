#include "router.h"

#include <stdio.h>
#include <string.h>

#include "handlers.h"
#include "stats.h"

static const struct fpg_route routes[] = {
	{"POST", "/query", fpg_handle_query, false, false, true, false},
	{"DELETE", "/query/{}", fpg_handle_query_cancel, false, false, false, false},
	{"POST", "/q/{}", fpg_handle_named_query, false, false, false, false},
	{"GET", "/q/{}", fpg_handle_named_query_get, false, false, false, false},
	{"POST", "/copy", fpg_handle_copy_in, true, false, true, false},
	{"GET", "/copy", fpg_handle_copy_out, false, false, true, false},
	{"POST", "/tx", fpg_handle_tx_begin, false, false, true, false},
	{"POST", "/tx/{}/query", fpg_handle_tx_query, false, false, true, false},
	{"POST", "/tx/{}/copy", fpg_handle_tx_copy_in, true, false, true, false},
	{"GET", "/tx/{}/copy", fpg_handle_tx_copy_out, false, false, true, false},
	{"POST", "/tx/{}/commit", fpg_handle_tx_commit, false, false, true, false},
	{"POST", "/tx/{}/rollback", fpg_handle_tx_rollback, false, false, true, false},
	{"DELETE", "/tx/{}", fpg_handle_tx_rollback, false, false, true, false},
	{"GET", "/healthz", fpg_handle_healthz, false, true, false, false},
	{"GET", "/readyz", fpg_handle_readyz, false, true, false, false},
	{"GET", "/stats", fpg_handle_stats, false, true, false, false},
	{"GET", "/metrics", fpg_handle_metrics, false, true, false, false},
	{"POST", "/sql", fpg_handle_sql, false, false, FPG_ROUTE_NEON_SQL, false},
	{"GET", "/listen", fpg_handle_listen, false, false, false, true},
};

#define N_ROUTES (sizeof(routes) / sizeof(routes[0]))
_Static_assert(N_ROUTES < FPG_STATS_ROUTES, "grow FPG_STATS_ROUTES");

static const char *const stat_names[] = {
	"POST /query",
	"DELETE /query/{request_id}",
	"POST /q/{name}",
	"GET /q/{name}",
	"POST /copy",
	"GET /copy",
	"POST /tx",
	"POST /tx/{token}/query",
	"POST /tx/{token}/copy",
	"GET /tx/{token}/copy",
	"POST /tx/{token}/commit",
	"POST /tx/{token}/rollback",
	"DELETE /tx/{token}",
	"GET /healthz",
	"GET /readyz",
	"GET /stats",
	"GET /metrics",
	"POST /sql",
	"GET /listen",
	"unrouted",
};
_Static_assert(sizeof(stat_names) / sizeof(stat_names[0]) == N_ROUTES + 1,
	       "one name per route, then unrouted");

/*
 * Matches path against a route pattern segment by segment; a "{}" segment
 * takes any non-empty segment, whose start goes to *param.
 */
static bool path_matches(const char *pattern, const char *path,
			 const char **param)
{
	*param = NULL;
	while (*pattern && *path) {
		if (pattern[0] == '{' && pattern[1] == '}') {
			size_t n = strcspn(path, "/");
			if (n == 0)
				return false;
			*param = path;
			pattern += 2;
			path += n;
			continue;
		}
		if (*pattern++ != *path++)
			return false;
	}
	return *pattern == '\0' && *path == '\0';
}

/*
 * HEAD is GET without the body (RFC 9110 9.3.2): it runs GET's handler,
 * and libmicrohttpd sends the headers only.
 */
const struct fpg_route *fpg_router_match(const char *method, const char *path,
					 int *status, char *allow,
					 size_t allow_size, const char **param)
{
	size_t used = 0;
	bool path_found = false; /* not used > 0: allow may be too small */
	allow[0] = '\0';
	if (strcmp(method, "HEAD") == 0)
		method = "GET";
	for (size_t i = 0; i < N_ROUTES; i++) {
		if (!path_matches(routes[i].path, path, param))
			continue;
		if (strcmp(routes[i].method, method) == 0)
			return &routes[i];
		path_found = true;
		bool get = strcmp(routes[i].method, "GET") == 0;
		int n = snprintf(allow + used, allow_size - used, "%s%s%s",
				 used ? ", " : "", routes[i].method,
				 get ? ", HEAD" : "");
		if (n > 0 && (size_t)n < allow_size - used)
			used += (size_t)n;
		else
			allow[used] = '\0'; /* no cut-off method name */
	}
	*status = path_found ? 405 : 404;
	*param = NULL;
	return NULL;
}

unsigned fpg_router_count(void)
{
	return N_ROUTES;
}

const struct fpg_route *fpg_router_route(unsigned i)
{
	return i < N_ROUTES ? &routes[i] : NULL;
}

unsigned fpg_router_index(const struct fpg_route *route)
{
	return route ? (unsigned)(route - routes) : N_ROUTES;
}

const char *const *fpg_router_stat_names(void)
{
	return stat_names;
}
