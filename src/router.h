/*
 * The route table: method + path -> handler. The table is the code form of
 * api/openapi.yaml (a test checks that both list the same routes).
 */
#pragma once

#include <stddef.h>

#include "request.h"

/*
 * Finds the route for method and path (HEAD finds GET's). On a miss,
 * returns NULL and sets
 * *status to 404 (no such path) or 405 (path exists, other methods: their
 * list goes to allow, e.g. "GET, POST"). For a route with a "{}"
 * segment, *param points at the matched segment inside path (it ends at
 * the next '/' or the end), else it is NULL.
 */
const struct fpg_route *fpg_router_match(const char *method, const char *path,
					 int *status, char *allow,
					 size_t allow_size, const char **param);

/* Number of routes, and the route at index i (for stats and tests). */
unsigned fpg_router_count(void);
const struct fpg_route *fpg_router_route(unsigned i);

/* Stable index of a route, for statistics; count()+0 = unrouted. */
unsigned fpg_router_index(const struct fpg_route *route);

/* Names for statistics: "POST /query", ..., last "unrouted". */
const char *const *fpg_router_stat_names(void);
