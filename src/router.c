#include "router.h"

#include <stdio.h>
#include <string.h>

#include "handlers.h"
#include "stats.h"

static const struct fpg_route routes[] = {
	{"POST", "/query", fpg_handle_query},
	{"GET", "/healthz", fpg_handle_healthz},
	{"GET", "/readyz", fpg_handle_readyz},
	{"GET", "/stats", fpg_handle_stats},
};

#define N_ROUTES (sizeof(routes) / sizeof(routes[0]))
_Static_assert(N_ROUTES < FPG_STATS_ROUTES, "grow FPG_STATS_ROUTES");

static const char *const stat_names[] = {
	"POST /query", "GET /healthz", "GET /readyz", "GET /stats", "unrouted",
};
_Static_assert(sizeof(stat_names) / sizeof(stat_names[0]) == N_ROUTES + 1,
	       "one name per route, then unrouted");

const struct fpg_route *fpg_router_match(const char *method, const char *path,
					 int *status, char *allow,
					 size_t allow_size)
{
	size_t used = 0;
	allow[0] = '\0';
	for (size_t i = 0; i < N_ROUTES; i++) {
		if (strcmp(routes[i].path, path) != 0)
			continue;
		if (strcmp(routes[i].method, method) == 0)
			return &routes[i];
		int n = snprintf(allow + used, allow_size - used, "%s%s",
				 used ? ", " : "", routes[i].method);
		if (n > 0 && (size_t)n < allow_size - used)
			used += (size_t)n;
	}
	*status = used ? 405 : 404;
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
