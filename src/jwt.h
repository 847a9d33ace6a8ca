/*
 * JSON Web Tokens (--auth jwt): a client that sends `Authorization:
 * Bearer TOKEN` runs as the PostgreSQL role the token names, when the
 * token is signed by one of our keys with an algorithm we accept, is valid
 * now (exp, nbf, with leeway), is meant for us (aud, iss) and names a role
 * of --jwt-roles. The JOSE work (reading JWKs, verifying the JWS) is
 * libcjose's; this module chooses the key and checks the claims.
 *
 * A verifier (keys and rules) never changes: a reload (SIGHUP, a JWKS
 * fetched anew) makes a new one that every worker swaps to; the old one
 * goes with its last reference (any thread).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fasterpg.h"

struct fpg_jwt;

struct fpg_jwt_config {
	const char *secret_file; /* HMAC secret (HS*), the file's bytes */
	const char *key_file;	 /* a PEM public key or certificate, a JWK
				    or a JWKS (RS*, PS*, ES*) */
	const char *jwks_file;	 /* a JWKS: {"keys": [...]} */
	const char *role_claim;	 /* path of the role: role, app.role,
				    roles[0], "https://x.io/role" */
	const char *audience;	 /* aud must name it; NULL: not checked */
	const char *issuer;	 /* iss must be it; NULL: not checked */
	const char *roles;	 /* the roles a token may name, comma list */
	const char *algorithms;	 /* accepted, comma list; NULL: every one
				    that fits a key (never "none") */
	unsigned leeway_s;	 /* clock skew allowed for exp and nbf */
};

/*
 * A verifier with cfg's rules and keys from its files and, when given,
 * jwks (a JWKS text fetched from --jwks-url). NULL with err (which file
 * and what is wrong) on failure. A verifier with no key at all is valid
 * (every token is refused) only when allow_empty.
 */
struct fpg_jwt *fpg_jwt_load(const struct fpg_jwt_config *cfg,
			     const char *jwks, size_t jwks_len,
			     bool allow_empty, struct fpg_error *err);

/*
 * A secret file's bytes (at least 32, without a final newline; *len of
 * them), for the caller to wipe and free. NULL with err naming what.
 */
unsigned char *fpg_jwt_read_secret(const char *path, const char *what,
				   size_t *len, struct fpg_error *err);

/* References: one is the loader's; the last unref frees. NULL no-op. */
void fpg_jwt_ref(struct fpg_jwt *j);
void fpg_jwt_unref(struct fpg_jwt *j);

unsigned fpg_jwt_key_count(const struct fpg_jwt *j);

/* A number no other verifier of this process has had. */
uint64_t fpg_jwt_id(const struct fpg_jwt *j);

/* Whether token (len bytes) has the shape of a JWS (three parts). */
bool fpg_jwt_looks_like(const char *token, size_t len);

struct fpg_jwt_identity {
	char role[64];	  /* "" when the token names none */
	char *claims;	  /* the payload, compact JSON; the caller frees */
	bool unknown_kid; /* refused: its kid is none of ours (a JWKS
			     fetched anew may know it) */
	double valid_from, valid_until; /* accepted: the Unix seconds
					   between which it is (nbf and exp
					   with the leeway; +-HUGE_VAL) */
};

/*
 * Verifies token at now (Unix seconds). False with err: 401
 * (invalid_token, token_expired) or 403 (role_not_allowed); out->claims
 * is NULL then.
 */
bool fpg_jwt_verify(const struct fpg_jwt *j, const char *token, size_t len,
		    int64_t now, struct fpg_jwt_identity *out,
		    struct fpg_error *err) FPG_MUST_CHECK;
