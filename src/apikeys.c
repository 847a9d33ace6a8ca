#include "apikeys.h"

#include <ctype.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "error.h"

#define DIGEST_LEN 32

struct key {
	unsigned char digest[DIGEST_LEN];
	char *role;
	char *name;
};

struct fpg_apikeys {
	atomic_uint refs;
	unsigned n;
	struct key *keys; /* sorted by digest */
};

static int cmp_key(const void *a, const void *b)
{
	return memcmp(((const struct key *)a)->digest,
		      ((const struct key *)b)->digest, DIGEST_LEN);
}

static bool parse_digest(const char *hex, unsigned char *out)
{
	for (int i = 0; i < DIGEST_LEN; i++) {
		char byte[3] = {hex[2 * i], hex[2 * i + 1], '\0'};
		if (!isxdigit((unsigned char)byte[0]) ||
		    !isxdigit((unsigned char)byte[1]))
			return false;
		out[i] = (unsigned char)strtoul(byte, NULL, 16);
	}
	return true;
}

static void keys_free(struct fpg_apikeys *k)
{
	for (unsigned i = 0; i < k->n; i++) {
		free(k->keys[i].role);
		free(k->keys[i].name);
	}
	free(k->keys);
	free(k);
}

/* One line into k (which has room); false with *why when it is wrong. */
static bool parse_line(char *line, struct fpg_apikeys *k, const char **why)
{
	char *save = NULL;
	char *hex = strtok_r(line, " \t\r\n", &save);
	if (!hex || hex[0] == '#')
		return true;
	char *role = strtok_r(NULL, " \t\r\n", &save);
	char *name = strtok_r(NULL, "\r\n", &save);
	struct key *e = &k->keys[k->n];
	if (strlen(hex) != 2 * DIGEST_LEN || !parse_digest(hex, e->digest)) {
		*why = "expected the 64 hex digits of a key's SHA-256";
		return false;
	}
	if (!role || strlen(role) > 63) {
		*why = "expected a role (at most 63 bytes) after the digest";
		return false;
	}
	while (name && (*name == ' ' || *name == '\t'))
		name++;
	e->role = strdup(role);
	e->name = strdup(name ? name : "");
	if (!e->role || !e->name) {
		free(e->role);
		free(e->name);
		*why = "out of memory";
		return false;
	}
	k->n++;
	return true;
}

struct fpg_apikeys *fpg_apikeys_load(const char *path, struct fpg_error *err)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fpg_error_set(err, FPG_ERR_CONFIG, 0, "api-keys %s: %s", path,
			      strerror(errno));
		return NULL;
	}
	struct fpg_apikeys *k = calloc(1, sizeof(*k));
	char *line = NULL;
	size_t cap = 0, room = 0;
	unsigned lineno = 0;
	bool ok = k != NULL;
	while (ok && getline(&line, &cap, f) >= 0) {
		lineno++;
		if (k->n == room) {
			room = room ? room * 2 : 16;
			struct key *grown = realloc(k->keys, room * sizeof(*grown));
			if (!grown) {
				ok = false;
				fpg_error_set(err, FPG_ERR_NOMEM, 0, "out of memory");
				break;
			}
			k->keys = grown;
		}
		const char *why = NULL;
		if (!parse_line(line, k, &why)) {
			fpg_error_set(err, FPG_ERR_CONFIG, 0, "%s:%u: %s", path,
				      lineno, why);
			ok = false;
		}
	}
	free(line);
	fclose(f);
	if (!ok) {
		if (k)
			keys_free(k);
		else
			fpg_error_set(err, FPG_ERR_NOMEM, 0, "out of memory");
		return NULL;
	}
	qsort(k->keys, k->n, sizeof(*k->keys), cmp_key);
	for (unsigned i = 1; i < k->n; i++)
		if (memcmp(k->keys[i].digest, k->keys[i - 1].digest,
			   DIGEST_LEN) == 0) {
			fpg_error_set(err, FPG_ERR_CONFIG, 0,
				      "%s: a key is listed twice", path);
			keys_free(k);
			return NULL;
		}
	atomic_init(&k->refs, 1);
	return k;
}

void fpg_apikeys_ref(struct fpg_apikeys *keys)
{
	if (keys)
		atomic_fetch_add(&keys->refs, 1);
}

void fpg_apikeys_unref(struct fpg_apikeys *keys)
{
	if (keys && atomic_fetch_sub(&keys->refs, 1) == 1)
		keys_free(keys);
}

const char *fpg_apikeys_role(const struct fpg_apikeys *keys, const char *key,
			     size_t len, const char **name)
{
	struct key probe;
	unsigned int dlen = 0;
	if (keys->n == 0)
		return NULL;
	if (!EVP_Digest(key, len, probe.digest, &dlen, EVP_sha256(), NULL) ||
	    dlen != DIGEST_LEN)
		return NULL;
	const struct key *hit = bsearch(&probe, keys->keys, keys->n,
					sizeof(*keys->keys), cmp_key);
	if (!hit)
		return NULL;
	*name = hit->name;
	return hit->role;
}

unsigned fpg_apikeys_count(const struct fpg_apikeys *keys)
{
	return keys->n;
}
