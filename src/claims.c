#include "claims.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

struct fpg_claims *fpg_claims_new(char *json, const char *role,
				  const struct fpg_hmac *signer, int64_t now)
{
	struct fpg_claims *c = calloc(1, sizeof(*c));
	if (!c) {
		free(json);
		return NULL;
	}
	c->json = json;
	if (!signer)
		return c;
	snprintf(c->at, sizeof(c->at), "%" PRId64, now);
	/* role, at and the claims with a newline between: neither a number
	 * nor compact JSON holds one, so no two triples give the same
	 * bytes. */
	const void *parts[] = {role, "\n", c->at, "\n", json};
	size_t lens[] = {strlen(role), 1, strlen(c->at), 1, strlen(json)};
	unsigned char mac[FPG_HMAC_LEN];
	if (!fpg_hmac_parts(signer, parts, lens, 5, mac)) {
		fpg_claims_free(c);
		return NULL;
	}
	fpg_hex(c->mac, mac, FPG_HMAC_LEN);
	return c;
}

void fpg_claims_free(struct fpg_claims *c)
{
	if (!c)
		return;
	free(c->json);
	free(c);
}
