#include "hmac.h"

#include <stdlib.h>
#include <sys/random.h>
#include <sys/types.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

struct fpg_hmac {
	EVP_MAC_CTX *keyed;
};

struct fpg_hmac *fpg_hmac_new(const void *key, size_t len)
{
	unsigned char random_key[FPG_HMAC_LEN];
	if (!key) {
		if (getrandom(random_key, sizeof(random_key), 0) !=
		    (ssize_t)sizeof(random_key))
			return NULL;
		key = random_key;
		len = sizeof(random_key);
	}
	struct fpg_hmac *h = calloc(1, sizeof(*h));
	EVP_MAC *mac = h ? EVP_MAC_fetch(NULL, "HMAC", NULL) : NULL;
	EVP_MAC_CTX *c = mac ? EVP_MAC_CTX_new(mac) : NULL;
	char digest[] = "SHA256";
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
		OSSL_PARAM_construct_end(),
	};
	if (c && !EVP_MAC_init(c, key, len, params)) {
		EVP_MAC_CTX_free(c);
		c = NULL;
	}
	EVP_MAC_free(mac); /* the context keeps its own reference */
	OPENSSL_cleanse(random_key, sizeof(random_key));
	if (!c) {
		free(h);
		return NULL;
	}
	h->keyed = c;
	return h;
}

void fpg_hmac_free(struct fpg_hmac *h)
{
	if (!h)
		return;
	EVP_MAC_CTX_free(h->keyed);
	free(h);
}

bool fpg_hmac_parts(const struct fpg_hmac *h, const void *const *parts,
		    const size_t *lens, size_t n,
		    unsigned char out[FPG_HMAC_LEN])
{
	EVP_MAC_CTX *c = EVP_MAC_CTX_dup(h->keyed);
	bool ok = c != NULL;
	for (size_t i = 0; ok && i < n; i++)
		ok = EVP_MAC_update(c, parts[i], lens[i]);
	size_t len = 0;
	ok = ok && EVP_MAC_final(c, out, &len, FPG_HMAC_LEN) &&
	     len == FPG_HMAC_LEN;
	EVP_MAC_CTX_free(c);
	return ok;
}
