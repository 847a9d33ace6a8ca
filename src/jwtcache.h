/*
 * Tokens a worker verified lately, so that a client sending the same
 * token again costs an HMAC and a lookup instead of a signature check
 * (ES256 took 100 us of fasterpg's CPU per request, bench/auth.sh). An
 * entry holds what verifying gave (role and claims) and when the token is
 * valid; it serves only the verifier that made it (a reload or a JWKS
 * fetched anew starts afresh) and only while exp and nbf allow. Tokens
 * are known by a keyed MAC of theirs (random key of the cache), never
 * kept. Direct-mapped: a token sharing a slot with another is verified
 * again. One thread (a worker's).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fasterpg.h"
#include "jwt.h"

struct fpg_jwt_cache;

/* NULL when out of memory. */
struct fpg_jwt_cache *fpg_jwt_cache_new(void);
void fpg_jwt_cache_free(struct fpg_jwt_cache *c);

/* fpg_jwt_verify, remembered: the same contract. */
bool fpg_jwt_cache_verify(struct fpg_jwt_cache *c, const struct fpg_jwt *j,
			  const char *token, size_t len, int64_t now,
			  struct fpg_jwt_identity *out,
			  struct fpg_error *err) FPG_MUST_CHECK;
