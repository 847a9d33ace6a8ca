/*
 * A JSON Web Token's claims as SQL sees them (request.jwt.claims), and,
 * with --claims-key-file, what proves that the gateway set them: the time
 * and an HMAC-SHA256 over the login role, that time and the claims, which
 * a SECURITY DEFINER function in the database checks with the same key
 * (docs/verified-claims.sql). Raw SQL can set request.jwt.claims to
 * anything, but cannot make the MAC. Owned by the request.
 */
#pragma once

#include <stdint.h>

#include "hmac.h"

struct fpg_claims {
	char *json;  /* the payload, compact JSON; owned */
	char at[24]; /* Unix seconds when signed; "" when not signed */
	char mac[2 * FPG_HMAC_LEN + 1]; /* hex; "" when not signed */
};

/*
 * Claims owning json (freed here on failure), signed at now for role
 * (the login's session_user) when signer is given. NULL when out of
 * memory.
 */
struct fpg_claims *fpg_claims_new(char *json, const char *role,
				  const struct fpg_hmac *signer, int64_t now);

void fpg_claims_free(struct fpg_claims *c);
