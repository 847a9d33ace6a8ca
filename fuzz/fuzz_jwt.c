/*
 * libFuzzer target: JSON Web Token verification (src/jwt.c) on arbitrary
 * bytes. The first byte picks what the rest is:
 *
 * 0: a token, verified against an HMAC secret and a JWKS (RSA and EC
 *    keys made at start). A hostile token must be refused, never crash or
 *    leak; nothing random can carry a valid signature.
 * 1: a header and claims (JSON texts split at the first NUL), signed
 *    with the HMAC secret, so that the claim checks (exp, nbf, aud, iss,
 *    the role path, the allow-list) see arbitrary claims. Accepted means
 *    the role is "" or one of --jwt-roles, and the claims handed back are
 *    a JSON object; refused means 401 or 403 and no claims.
 * 2: a JWKS text (as fetched from --jwks-url), loaded as key set.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjose/cjose.h>
#include <jansson.h>

#include "error.h"
#include "jwt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #cond);                              \
			abort();                                               \
		}                                                              \
	} while (0)

static const char secret[] = "fuzzing-secret-of-at-least-32-bytes!";
static struct fpg_jwt *jwt;
static cjose_jwk_t *hmac;
static struct fpg_jwt_config cfg = {
	.role_claim = "app.roles[0]",
	.audience = "aud1",
	.roles = "alpha, beta",
	.leeway_s = 30,
};

static void write_temp(char *path, const char *text)
{
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
}

static void init(void)
{
	static char secret_path[] = "/tmp/fuzz_jwt_secret_XXXXXX";
	static char jwks_path[] = "/tmp/fuzz_jwt_jwks_XXXXXX";
	write_temp(secret_path, secret);
	static const uint8_t e[] = {1, 0, 1};
	cjose_jwk_t *rsa = cjose_jwk_create_RSA_random(2048, e, 3, NULL);
	cjose_jwk_t *ec = cjose_jwk_create_EC_random(CJOSE_JWK_EC_P_256, NULL);
	CHECK(rsa && ec);
	CHECK(cjose_jwk_set_kid(rsa, "r", 1, NULL));
	CHECK(cjose_jwk_set_kid(ec, "e", 1, NULL));
	char *r = cjose_jwk_to_json(rsa, false, NULL);
	char *c = cjose_jwk_to_json(ec, false, NULL);
	char *jwks = NULL;
	CHECK(asprintf(&jwks, "{\"keys\":[%s,%s]}", r, c) > 0);
	write_temp(jwks_path, jwks);
	free(r), free(c), free(jwks);
	cjose_jwk_release(rsa);
	cjose_jwk_release(ec);
	cfg.secret_file = secret_path;
	cfg.jwks_file = jwks_path;
	struct fpg_error err;
	jwt = fpg_jwt_load(&cfg, NULL, 0, false, &err);
	CHECK(jwt);
	unlink(secret_path);
	unlink(jwks_path);
	hmac = cjose_jwk_create_oct_spec((const uint8_t *)secret,
					 strlen(secret), NULL);
	CHECK(hmac);
}

static void verify(const char *token, size_t len)
{
	struct fpg_jwt_identity id;
	struct fpg_error err;
	if (fpg_jwt_verify(jwt, token, len, 1700000000, &id, &err)) {
		CHECK(id.claims);
		json_t *c = json_loads(id.claims, 0, NULL);
		CHECK(json_is_object(c));
		json_decref(c);
		CHECK(id.role[0] == '\0' || strcmp(id.role, "alpha") == 0 ||
		      strcmp(id.role, "beta") == 0);
		free(id.claims);
	} else {
		CHECK(!id.claims);
		CHECK(err.http_status == 401 || err.http_status == 403);
	}
}

/* Signs claims under header (both JSON texts) with the HMAC secret. */
static void sign_and_verify(const char *header, const char *claims,
			    size_t claims_len)
{
	json_t *h = json_loads(header, 0, NULL);
	if (!json_is_object(h)) {
		json_decref(h);
		return;
	}
	json_object_set_new(h, "alg", json_string("HS256"));
	cjose_jws_t *jws = cjose_jws_sign(hmac, (cjose_header_t *)h,
					  (const uint8_t *)claims, claims_len,
					  NULL);
	const char *compact = NULL;
	if (jws && cjose_jws_export(jws, &compact, NULL))
		verify(compact, strlen(compact));
	cjose_jws_release(jws);
	json_decref(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!jwt)
		init();
	if (size < 1)
		return 0;
	char *text = malloc(size);
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	size_t len = size - 1;
	switch (data[0] % 3) {
	case 0:
		verify(text, len);
		break;
	case 1: {
		size_t hlen = strlen(text);
		if (hlen < len)
			sign_and_verify(text, text + hlen + 1, len - hlen - 1);
		break;
	}
	case 2: {
		struct fpg_jwt_config keys_only = cfg;
		keys_only.secret_file = keys_only.jwks_file = NULL;
		struct fpg_error err;
		struct fpg_jwt *j = fpg_jwt_load(&keys_only, text, len, true,
						 &err);
		if (j)
			CHECK(fpg_jwt_key_count(j) <= 64);
		fpg_jwt_unref(j);
		break;
	}
	}
	free(text);
	return 0;
}
