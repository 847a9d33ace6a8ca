/*
 * Who a request is, with --auth: the login its Authorization header
 * names (HTTP Basic: a PostgreSQL user and password, checked by
 * PostgreSQL; Bearer: an API key's role or a JSON Web Token's), that
 * login's pool on this
 * worker, and what its role may do (--roles: raw SQL, rate). The
 * request's own worker thread.
 */
#pragma once

#include <stdbool.h>

#include <microhttpd.h>

#include "fasterpg.h"
#include "services.h"

struct fpg_claims;
struct fpg_pool;

struct fpg_auth {
	struct fpg_pool *pool;	/* the login's */
	char login[64];		/* its user */
	struct fpg_claims *claims; /* a JWT's, or NULL; the caller frees */
	unsigned retry_after;	/* seconds, with a 429 */
};

/*
 * Identifies the request of conn for a route that runs client SQL
 * (raw_sql) or not; with query_token, a Bearer credential may also come
 * as the query parameter access_token (EventSource sends no header).
 * False with err (401 unauthorized or invalid_token, 403 raw_sql_off or
 * role_not_allowed, 429 rate_limited with out->retry_after, 503 too many
 * logins) when it may not go on; nothing is left to free then.
 */
bool fpg_auth_identify(const struct fpg_services *svc,
		       struct MHD_Connection *conn, bool raw_sql,
		       bool query_token, struct fpg_auth *out,
		       struct fpg_error *err) FPG_MUST_CHECK;

/*
 * fpg_auth_identify for a request that may also name its login outside
 * the Authorization header (Neon's connection string): with --auth
 * password and no Authorization header, user and password (borrowed for
 * the call; NULL or "": none) are that login, checked by PostgreSQL as
 * Basic credentials are. Otherwise the Authorization header decides,
 * as for every route, and user and password are not looked at.
 */
bool fpg_auth_identify_as(const struct fpg_services *svc,
			  struct MHD_Connection *conn, bool raw_sql,
			  bool query_token, const char *user,
			  const char *password, struct fpg_auth *out,
			  struct fpg_error *err) FPG_MUST_CHECK;
