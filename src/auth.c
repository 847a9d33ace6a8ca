#include "auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "apikeys.h"
#include "claims.h"
#include "error.h"
#include "jwt.h"
#include "jwtcache.h"
#include "log.h"
#include "logins.h"
#include "roles.h"

static void unauthorized(struct fpg_error *err, const char *msg)
{
	fpg_error_set(err, FPG_ERR_REQUEST, 401, "%s", msg);
	err->reason = "unauthorized";
}

/* The pool of user's login on this worker; password NULL: a role the
 * gateway logs in as itself (an API key's, --anon-role). */
static bool log_in(const struct fpg_services *svc, const char *user,
		   const char *password, struct fpg_auth *out,
		   struct fpg_error *err)
{
	if (!fpg_logins_find(svc->logins, user, password,
			     fpg_roles_for(svc->roles, user), &out->pool, err))
		return false;
	snprintf(out->login, sizeof(out->login), "%s", user);
	return true;
}

/* HTTP Basic: a PostgreSQL user and password, which PostgreSQL checks. */
static bool basic_login(const struct fpg_services *svc,
			struct MHD_Connection *conn, struct fpg_auth *out,
			struct fpg_error *err)
{
	char *password = NULL;
	char *user = MHD_basic_auth_get_username_password(conn, &password);
	bool ok = false;
	if (!user || !password || !*user || !*password)
		unauthorized(err, "send a PostgreSQL user name and password "
				  "(HTTP Basic authorization)");
	else
		ok = log_in(svc, user, password, out, err);
	if (password)
		explicit_bzero(password, strlen(password));
	MHD_free(user);
	MHD_free(password);
	return ok;
}

/* Bearer KEY: the role --api-keys names for it. */
static bool key_login(const struct fpg_services *svc, const char *key,
		      size_t n, struct fpg_auth *out, struct fpg_error *err)
{
	const char *name, *role = fpg_apikeys_role(svc->keys, key, n, &name);
	if (!role) {
		unauthorized(err, "unknown API key");
		return false;
	}
	fpg_log_debug("auth", NULL, "API key %s: role %s", name, role);
	return log_in(svc, role, NULL, out, err);
}

/* Bearer TOKEN: the role a JSON Web Token names (or, naming none, the
 * anonymous role's). */
static bool token_login(const struct fpg_services *svc, const char *token,
			size_t len, struct fpg_auth *out,
			struct fpg_error *err)
{
	struct fpg_jwt_identity id;
	if (!fpg_jwt_cache_verify(svc->jwt_cache, svc->jwt, token, len,
				  (int64_t)time(NULL), &id, err)) {
		if (id.unknown_kid && svc->jwks_stale)
			svc->jwks_stale(svc->jwks_ctx);
		return false;
	}
	const char *role = id.role[0] ? id.role : svc->anon_role;
	if (!role) {
		free(id.claims);
		fpg_error_set(err, FPG_ERR_REQUEST, 401,
			      "the token names no role (jwt-role-claim) and "
			      "there is no anon-role");
		err->reason = "invalid_token";
		return false;
	}
	if (!log_in(svc, role, NULL, out, err)) {
		free(id.claims);
		return false;
	}
	out->claims = fpg_claims_new(id.claims, role, svc->claims_signer,
				     (int64_t)time(NULL));
	if (!out->claims) {
		fpg_error_set(err, FPG_ERR_NOMEM, 503, "out of memory");
		return false;
	}
	return true;
}

static bool bearer_login(const struct fpg_services *svc, const char *cred,
			 struct fpg_auth *out, struct fpg_error *err)
{
	while (*cred == ' ')
		cred++;
	size_t n = strcspn(cred, " \t");
	bool jwt = svc->auth_jwt &&
		   (!svc->auth_api_key || fpg_jwt_looks_like(cred, n));
	if (cred[n + strspn(cred + n, " \t")] != '\0') {
		unauthorized(err, jwt ? "the token is not one word"
				      : "unknown API key");
		return false;
	}
	return jwt ? token_login(svc, cred, n, out, err)
		   : key_login(svc, cred, n, out, err);
}

/* What the caller's role may do (--roles): raw SQL, and how often. */
static bool apply_policy(const struct fpg_services *svc, bool raw_sql,
			 struct fpg_auth *out, struct fpg_error *err)
{
	const struct fpg_role_policy *p = fpg_roles_for(svc->roles, out->login);
	if (!p->raw_sql && raw_sql) {
		fpg_error_set(err, FPG_ERR_REQUEST, 403,
			      "this role runs named queries only (POST "
			      "/q/NAME)");
		err->reason = "raw_sql_off";
		return false;
	}
	out->retry_after = fpg_logins_admit(svc->logins, out->pool,
					    (double)p->rate /
						    (double)svc->nworkers);
	if (out->retry_after) {
		fpg_error_set(err, FPG_ERR_LIMIT, 429,
			      "this role sends more than %u requests a second "
			      "(--roles)",
			      p->rate);
		err->reason = "rate_limited";
		return false;
	}
	return true;
}

bool fpg_auth_identify(const struct fpg_services *svc,
		       struct MHD_Connection *conn, bool raw_sql,
		       bool query_token, struct fpg_auth *out,
		       struct fpg_error *err)
{
	memset(out, 0, sizeof(*out));
	const char *h = MHD_lookup_connection_value(
		conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	const char *qt = query_token && !h
				 ? MHD_lookup_connection_value(
					   conn, MHD_GET_ARGUMENT_KIND,
					   "access_token")
				 : NULL;
	bool known;
	if (qt && (svc->auth_api_key || svc->auth_jwt))
		known = bearer_login(svc, qt, out, err);
	else if (h && svc->auth_password && strncasecmp(h, "Basic ", 6) == 0)
		known = basic_login(svc, conn, out, err);
	else if (h && (svc->auth_api_key || svc->auth_jwt) &&
		 strncasecmp(h, "Bearer ", 7) == 0)
		known = bearer_login(svc, h + 7, out, err);
	else if (!h && svc->anon_role)
		known = log_in(svc, svc->anon_role, NULL, out, err);
	else {
		bool bearer = svc->auth_api_key || svc->auth_jwt;
		const char *what = svc->auth_api_key && svc->auth_jwt
					   ? "an API key or a JSON Web Token"
				   : svc->auth_api_key ? "an API key"
						       : "a JSON Web Token";
		if (svc->auth_password && bearer)
			fpg_error_set(err, FPG_ERR_REQUEST, 401,
				      "send a PostgreSQL user and password "
				      "(Basic) or %s (Bearer) in an "
				      "Authorization header",
				      what);
		else if (svc->auth_password)
			fpg_error_set(err, FPG_ERR_REQUEST, 401,
				      "send a PostgreSQL user and password "
				      "(Basic) in an Authorization header");
		else
			fpg_error_set(err, FPG_ERR_REQUEST, 401,
				      "send %s (Bearer) in an Authorization "
				      "header",
				      what);
		err->reason = "unauthorized";
		return false;
	}
	if (known && apply_policy(svc, raw_sql, out, err))
		return true;
	fpg_claims_free(out->claims);
	out->claims = NULL;
	return false;
}

bool fpg_auth_identify_as(const struct fpg_services *svc,
			  struct MHD_Connection *conn, bool raw_sql,
			  bool query_token, const char *user,
			  const char *password, struct fpg_auth *out,
			  struct fpg_error *err)
{
	const char *h = MHD_lookup_connection_value(
		conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	if (h || !svc->auth_password || !user || !*user || !password ||
	    !*password)
		return fpg_auth_identify(svc, conn, raw_sql, query_token, out,
					 err);
	memset(out, 0, sizeof(*out));
	return log_in(svc, user, password, out, err) &&
	       apply_policy(svc, raw_sql, out, err);
}
