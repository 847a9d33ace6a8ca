#include "jwtcache.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "hmac.h"

#define SLOTS 1024	  /* per worker */
#define MAX_CLAIMS 4096 /* larger claims are verified every time */

struct entry {
	unsigned char mac[FPG_HMAC_LEN]; /* of the token */
	uint64_t verifier;		 /* fpg_jwt_id; 0: empty */
	double valid_from, valid_until;
	char role[64];
	char *claims;
};

struct fpg_jwt_cache {
	struct fpg_hmac *hmac;
	struct entry slots[SLOTS];
};

struct fpg_jwt_cache *fpg_jwt_cache_new(void)
{
	struct fpg_jwt_cache *c = calloc(1, sizeof(*c));
	if (c && !(c->hmac = fpg_hmac_new(NULL, 0))) {
		free(c);
		c = NULL;
	}
	return c;
}

void fpg_jwt_cache_free(struct fpg_jwt_cache *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < SLOTS; i++)
		free(c->slots[i].claims);
	fpg_hmac_free(c->hmac);
	free(c);
}

static bool hit(const struct entry *e, const unsigned char *mac,
		uint64_t verifier, int64_t now)
{
	return e->verifier == verifier &&
	       memcmp(e->mac, mac, FPG_HMAC_LEN) == 0 &&
	       (double)now >= e->valid_from && (double)now < e->valid_until;
}

static void remember(struct entry *e, const unsigned char *mac,
		     uint64_t verifier, const struct fpg_jwt_identity *id)
{
	size_t n = strlen(id->claims);
	if (n > MAX_CLAIMS)
		return;
	char *copy = malloc(n + 1);
	if (!copy)
		return; /* only a miss next time */
	memcpy(copy, id->claims, n + 1);
	free(e->claims);
	memcpy(e->mac, mac, FPG_HMAC_LEN);
	e->verifier = verifier;
	e->valid_from = id->valid_from;
	e->valid_until = id->valid_until;
	memcpy(e->role, id->role, sizeof(e->role));
	e->claims = copy;
}

bool fpg_jwt_cache_verify(struct fpg_jwt_cache *c, const struct fpg_jwt *j,
			  const char *token, size_t len, int64_t now,
			  struct fpg_jwt_identity *out, struct fpg_error *err)
{
	unsigned char mac[FPG_HMAC_LEN];
	const void *parts[] = {token};
	if (!fpg_hmac_parts(c->hmac, parts, &len, 1, mac))
		return fpg_jwt_verify(j, token, len, now, out, err);
	uint32_t slot;
	memcpy(&slot, mac, sizeof(slot));
	struct entry *e = &c->slots[slot % SLOTS];
	uint64_t verifier = fpg_jwt_id(j);
	if (hit(e, mac, verifier, now)) {
		memset(out, 0, sizeof(*out));
		if (!(out->claims = strdup(e->claims))) {
			fpg_error_set(err, FPG_ERR_NOMEM, 503, "out of memory");
			return false;
		}
		memcpy(out->role, e->role, sizeof(out->role));
		out->valid_from = e->valid_from;
		out->valid_until = e->valid_until;
		return true;
	}
	if (!fpg_jwt_verify(j, token, len, now, out, err))
		return false;
	remember(e, mac, verifier, out);
	return true;
}
