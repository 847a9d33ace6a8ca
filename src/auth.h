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
 * (raw_sql) or not. False with err (401 unauthorized or invalid_token,
 * 403 raw_sql_off or role_not_allowed, 429 rate_limited with
 * out->retry_after, 503 too many logins) when it may not go on; nothing
 * is left to free then.
 */
bool fpg_auth_identify(const struct fpg_services *svc,
		       struct MHD_Connection *conn, bool raw_sql,
		       struct fpg_auth *out, struct fpg_error *err) FPG_MUST_CHECK;
