/*
 * What a worker gives the requests it serves (request.c, the handlers and
 * what they call): borrowed, every one outlives those requests. Filled by
 * the worker (and, for the fields marked "whole server", by the server)
 * before its thread starts; read-only after, except buffered.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "fasterpg.h"

struct fpg_apikeys;
struct fpg_hmac;
struct fpg_hosts;
struct fpg_jwt;
struct fpg_jwt_cache;
struct fpg_lanes;
struct fpg_listener;
struct fpg_logins;
struct fpg_loop;
struct fpg_pool;
struct fpg_queries;
struct fpg_roles;
struct fpg_requests;
struct fpg_route;
struct fpg_stats;
struct fpg_tls;
struct fpg_tx_registry;
struct fpg_tx_table;
struct fpg_typecache;

/* The route table's lookup (see router.h), given to request.c. */
typedef const struct fpg_route *(*fpg_route_match_fn)(
	const char *method, const char *path, int *status, char *allow,
	size_t allow_size, const char **param);
typedef unsigned (*fpg_route_index_fn)(const struct fpg_route *route);

struct fpg_services {
	unsigned worker_id;
	const struct fpg_options *opts;
	struct fpg_loop *loop;
	struct fpg_pool *pool;		/* the --db login's */
	struct fpg_logins *logins;	/* every login's pool */
	bool auth_password;		/* clients may send their own login */
	bool auth_api_key;		/* ... or an API key */
	bool auth_jwt;			/* ... or a JSON Web Token */
	struct fpg_jwt *jwt;		/* its verifier now (a reference of
					   this worker's; swapped on reload) */
	struct fpg_listener *listener;	/* GET /listen's, this worker's */
	struct fpg_jwt_cache *jwt_cache; /* tokens verified lately, this
					    worker's */
	void (*jwks_stale)(void *ctx);	/* a token's kid is unknown: fetch
					   the JWKS soon; NULL: no URL */
	void *jwks_ctx;
	struct fpg_hmac *claims_signer; /* signs claims (--claims-key-file),
					   this worker's; or NULL */
	const char *anon_role;		/* ... or none: this role; NULL: 401 */
	const struct fpg_queries *queries; /* named queries, or NULL */
	const struct fpg_roles *roles;	/* per-role policy, or NULL */
	struct fpg_apikeys *keys;	/* the API keys now (a reference of
					   this worker's; swapped on reload) */
	struct fpg_tls *tls;		/* the pair new TLS connections get (a
					   reference of this worker's; swapped
					   on reload), or NULL: plain HTTP */
	struct fpg_typecache *types;
	struct fpg_tx_table *tx;	/* the sessions this worker began */
	struct fpg_lanes *lanes;	/* lane choice of /query */
	struct fpg_stats *stats;	/* this worker's counters */
	const bool *draining;		/* no longer accepting; finishing */
	size_t buffered;		/* answer bytes waiting for clients,
					   this worker's (answer.c) */
	fpg_route_match_fn route_match;
	fpg_route_index_fn route_index;
	/* whole server */
	const struct fpg_hosts *hosts;	/* the names it answers to */
	const char *db_name;		/* the database --db logs in to, ""
					   when unknown (fpg_startup_target) */
	const char *db_user;		/* ... and its user, the same way */
	bool access_log;		/* a line per request (--access-log) */
	const unsigned char *claims_key; /* --claims-key-file's, or NULL */
	size_t claims_key_len;
	struct fpg_tx_registry *tx_reg; /* every worker's sessions */
	unsigned nworkers;
	struct fpg_stats *const *all_stats;	  /* [nworkers] */
	struct fpg_requests *const *all_requests; /* [nworkers] */
	const char *const *route_names;		  /* for statistics */
	unsigned nroutes;			  /* ... their number */
};
