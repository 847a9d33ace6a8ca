#include "jwt.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjose/cjose.h>
#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "error.h"
#include "log.h"

#define MAX_KEYS 64
#define MAX_FILE (1u << 20)
#define MAX_TOKEN 16384
#define MIN_SECRET 32 /* bytes: HS256's own output size (RFC 7518 3.2) */
#define MAX_TRIES 8   /* keys tried for a token without a kid */

enum family { HS, RS, PS, ES };

static const struct alg {
	const char *name;
	enum family family;
	int curve; /* ES: the only curve it may use */
} algs[] = {
	{"HS256", HS, 0},
	{"HS384", HS, 0},
	{"HS512", HS, 0},
	{"RS256", RS, 0},
	{"RS384", RS, 0},
	{"RS512", RS, 0},
	{"PS256", PS, 0},
	{"PS384", PS, 0},
	{"PS512", PS, 0},
	{"ES256", ES, CJOSE_JWK_EC_P_256},
	{"ES384", ES, CJOSE_JWK_EC_P_384},
	{"ES512", ES, CJOSE_JWK_EC_P_521},
};
#define NALGS (sizeof(algs) / sizeof(*algs))

struct key {
	cjose_jwk_t *jwk;
	cjose_jwk_kty_t kty;
	int curve;	/* EC */
	char kid[128];	/* "" when none */
	char alg[8];	/* the JWK's "alg", "" when none */
};

struct fpg_jwt {
	atomic_uint refs;
	uint64_t id;
	unsigned nkeys;
	struct key keys[MAX_KEYS];
	bool accepted[NALGS];
	char **roles;
	unsigned nroles;
	char *audience, *issuer;
	/* the role claim's path: keys, each maybe followed by an index */
	unsigned nsteps;
	struct step {
		char *key;
		long index; /* -1: none */
	} steps[8];
	unsigned leeway_s;
};

static void jwt_free(struct fpg_jwt *j)
{
	for (unsigned i = 0; i < j->nkeys; i++)
		cjose_jwk_release(j->keys[i].jwk);
	for (unsigned i = 0; i < j->nroles; i++)
		free(j->roles[i]);
	free(j->roles);
	for (unsigned i = 0; i < j->nsteps; i++)
		free(j->steps[i].key);
	free(j->audience);
	free(j->issuer);
	free(j);
}

void fpg_jwt_ref(struct fpg_jwt *j)
{
	if (j)
		atomic_fetch_add(&j->refs, 1);
}

void fpg_jwt_unref(struct fpg_jwt *j)
{
	if (j && atomic_fetch_sub(&j->refs, 1) == 1)
		jwt_free(j);
}

unsigned fpg_jwt_key_count(const struct fpg_jwt *j)
{
	return j->nkeys;
}

uint64_t fpg_jwt_id(const struct fpg_jwt *j)
{
	return j->id;
}

static void nomem(struct fpg_error *err)
{
	fpg_error_set(err, FPG_ERR_NOMEM, 0, "out of memory");
}

/* The whole file (at most MAX_FILE bytes), NUL-terminated; *len its
 * length. The caller wipes and frees it: it may hold a secret. */
static char *read_file(const char *path, const char *what, size_t *len,
		       struct fpg_error *err)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fpg_error_set(err, FPG_ERR_CONFIG, 0, "%s %s: %s", what, path,
			      strerror(errno));
		return NULL;
	}
	char *buf = malloc(MAX_FILE + 1);
	size_t n = buf ? fread(buf, 1, MAX_FILE + 1, f) : 0;
	bool bad = ferror(f);
	fclose(f);
	if (!buf) {
		nomem(err);
		return NULL;
	}
	if (bad || n > MAX_FILE) {
		fpg_error_set(err, FPG_ERR_CONFIG, 0, "%s %s: %s", what, path,
			      bad ? "cannot be read" : "larger than 1 MiB");
		explicit_bzero(buf, n > MAX_FILE ? MAX_FILE : n);
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}

static void wipe_free(char *buf, size_t len)
{
	if (buf)
		explicit_bzero(buf, len);
	free(buf);
}

/*
 * Whether s (n bytes) is base64url as JWS and JWK fields have it: the
 * URL-safe alphabet without padding, of a length that encodes whole
 * bytes. Checked before libcjose decodes anything: its decoder aborts the
 * process (an assert) on a '=' after 4k+1 characters.
 */
static bool b64url_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!isalnum(c) && c != '-' && c != '_')
			return false;
	}
	return n % 4 != 1;
}

/* ---- keys ---- */

static bool add_key(struct fpg_jwt *j, cjose_jwk_t *jwk, const char *kid,
		    const char *alg, const char *where, struct fpg_error *err)
{
	if (j->nkeys == MAX_KEYS) {
		cjose_jwk_release(jwk);
		fpg_error_set(err, FPG_ERR_CONFIG, 0, "%s: more than %d keys",
			      where, MAX_KEYS);
		return false;
	}
	struct key *k = &j->keys[j->nkeys++];
	k->jwk = jwk;
	k->kty = cjose_jwk_get_kty(jwk, NULL);
	k->curve = k->kty == CJOSE_JWK_KTY_EC ? cjose_jwk_EC_get_curve(jwk, NULL)
					      : 0;
	snprintf(k->kid, sizeof(k->kid), "%s", kid ? kid : "");
	snprintf(k->alg, sizeof(k->alg), "%s", alg ? alg : "");
	return true;
}

/* One JWK of a JWKS (or a key file). Keys for encryption and of kinds
 * that sign nothing we accept are passed over, with a warning; so are
 * secrets (oct) when the set is a published one (public_only): a secret
 * everyone can read signs anyone's token. */
static bool add_jwk(struct fpg_jwt *j, json_t *jwk, const char *where,
		    bool public_only, struct fpg_error *err)
{
	const char *kty = json_string_value(json_object_get(jwk, "kty"));
	const char *use = json_string_value(json_object_get(jwk, "use"));
	json_t *kid = json_object_get(jwk, "kid");
	json_t *alg = json_object_get(jwk, "alg");
	if (!json_is_object(jwk) || !kty || (kid && !json_is_string(kid)) ||
	    (alg && !json_is_string(alg))) {
		fpg_error_set(err, FPG_ERR_CONFIG, 0,
			      "%s: a key is not a JWK (an object with a "
			      "string kty, and kid and alg strings if any)",
			      where);
		return false;
	}
	if ((use && strcmp(use, "sig") != 0) ||
	    (public_only && strcmp(kty, "oct") == 0) ||
	    (strcmp(kty, "RSA") != 0 && strcmp(kty, "EC") != 0 &&
	     strcmp(kty, "oct") != 0)) {
		fpg_log_warn("jwt", NULL, "%s: key %s passed over (kty %s%s%s)",
			     where, kid ? json_string_value(kid) : "without kid",
			     kty, use ? ", use " : "", use ? use : "");
		return true;
	}
	static const char *const fields[] = {"n", "e", "d", "p", "q", "dp",
					     "dq", "qi", "x", "y", "k"};
	for (size_t i = 0; i < sizeof(fields) / sizeof(*fields); i++) {
		json_t *f = json_object_get(jwk, fields[i]);
		if (f && (!json_is_string(f) ||
			  !b64url_ok(json_string_value(f),
				     json_string_length(f)))) {
			fpg_error_set(err, FPG_ERR_CONFIG, 0,
				      "%s: key %s: \"%s\" is not base64url",
				      where,
				      kid ? json_string_value(kid)
					  : "without kid",
				      fields[i]);
			return false;
		}
	}
	if (json_object_get(jwk, "d"))
		fpg_log_warn("jwt", NULL,
			     "%s: key %s holds a private key, which the "
			     "gateway does not need",
			     where, kid ? json_string_value(kid) : "without kid");
	char *text = json_dumps(jwk, JSON_COMPACT);
	if (!text) {
		nomem(err);
		return false;
	}
	cjose_err cerr;
	cjose_jwk_t *k = cjose_jwk_import(text, strlen(text), &cerr);
	wipe_free(text, strlen(text));
	if (!k) {
		fpg_error_set(err, FPG_ERR_CONFIG, 0, "%s: key %s: %s", where,
			      kid ? json_string_value(kid) : "without kid",
			      cerr.message);
		return false;
	}
	return add_key(j, k, kid ? json_string_value(kid) : NULL,
		       alg ? json_string_value(alg) : NULL, where, err);
}

/* A JWK or a JWKS ({"keys": [...]}) in text. */
static bool add_json_keys(struct fpg_jwt *j, const char *text, size_t len,
			  const char *where, bool public_only,
			  struct fpg_error *err)
{
	json_error_t jerr;
	json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(root)) {
		fpg_error_set(err, FPG_ERR_CONFIG, 0,
			      "%s: not a JWK or JWKS (JSON: %s)", where,
			      root ? "not an object" : jerr.text);
		json_decref(root);
		return false;
	}
	json_t *keys = json_object_get(root, "keys");
	bool ok = true;
	if (!keys) {
		ok = add_jwk(j, root, where, public_only, err);
	} else if (!json_is_array(keys)) {
		fpg_error_set(err, FPG_ERR_CONFIG, 0,
			      "%s: \"keys\" is not an array", where);
		ok = false;
	} else {
		size_t i;
		json_t *k;
		json_array_foreach(keys, i, k) {
			if (!(ok = add_jwk(j, k, where, public_only, err)))
				break;
		}
	}
	json_decref(root);
	return ok;
}

/* A big number of pkey's as big-endian bytes; the caller frees. */
static uint8_t *bn_param(const EVP_PKEY *pkey, const char *name, size_t *len)
{
	BIGNUM *bn = NULL;
	uint8_t *out = NULL;
	if (!EVP_PKEY_get_bn_param(pkey, name, &bn))
		return NULL;
	*len = (size_t)BN_num_bytes(bn);
	if ((out = malloc(*len ? *len : 1)))
		BN_bn2bin(bn, out);
	BN_free(bn);
	return out;
}

static cjose_jwk_t *jwk_from_pkey(const EVP_PKEY *pkey, const char **why)
{
	cjose_jwk_t *jwk = NULL;
	cjose_err cerr;
	if (EVP_PKEY_is_a(pkey, "RSA")) {
		cjose_jwk_rsa_keyspec spec = {0};
		spec.n = bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &spec.nlen);
		spec.e = bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &spec.elen);
		if (spec.n && spec.e)
			jwk = cjose_jwk_create_RSA_spec(&spec, &cerr);
		free(spec.n);
		free(spec.e);
	} else if (EVP_PKEY_is_a(pkey, "EC")) {
		char group[32];
		cjose_jwk_ec_keyspec spec = {0};
		if (!EVP_PKEY_get_utf8_string_param(pkey,
						    OSSL_PKEY_PARAM_GROUP_NAME,
						    group, sizeof(group), NULL)) {
			*why = "an EC key without a named curve";
			return NULL;
		}
		spec.crv = strcmp(group, "prime256v1") == 0 ? CJOSE_JWK_EC_P_256
			   : strcmp(group, "secp384r1") == 0 ? CJOSE_JWK_EC_P_384
			   : strcmp(group, "secp521r1") == 0 ? CJOSE_JWK_EC_P_521
							     : CJOSE_JWK_EC_INVALID;
		if (spec.crv == CJOSE_JWK_EC_INVALID) {
			*why = "an EC key on a curve other than P-256, P-384 "
			       "or P-521";
			return NULL;
		}
		spec.x = bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_X, &spec.xlen);
		spec.y = bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, &spec.ylen);
		if (spec.x && spec.y)
			jwk = cjose_jwk_create_EC_spec(&spec, &cerr);
		free(spec.x);
		free(spec.y);
	} else {
		*why = "neither an RSA nor an EC key";
		return NULL;
	}
	if (!jwk)
		*why = "libcjose refused the key";
	return jwk;
}

/* A PEM public key or certificate. */
static bool add_pem_key(struct fpg_jwt *j, const char *text, size_t len,
			const char *where, struct fpg_error *err)
{
	BIO *bio = BIO_new_mem_buf(text, (int)len);
	EVP_PKEY *pkey = NULL;
	const char *why = "not a PEM public key or certificate";
	if (bio && strstr(text, "-----BEGIN CERTIFICATE-----")) {
		X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
		pkey = x ? X509_get_pubkey(x) : NULL;
		X509_free(x);
	} else if (bio) {
		pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
		if (!pkey && strstr(text, "PRIVATE KEY-----"))
			why = "a private key: give the gateway the public key "
			      "only";
	}
	BIO_free(bio);
	cjose_jwk_t *jwk = pkey ? jwk_from_pkey(pkey, &why) : NULL;
	EVP_PKEY_free(pkey);
	if (!jwk) {
		fpg_error_set(err, FPG_ERR_CONFIG, 0, "%s: %s", where, why);
		return false;
	}
	return add_key(j, jwk, NULL, NULL, where, err);
}

unsigned char *fpg_jwt_read_secret(const char *path, const char *what,
				   size_t *len, struct fpg_error *err)
{
	size_t n = 0;
	char *s = read_file(path, what, &n, err);
	if (!s)
		return NULL;
	size_t size = n;
	/* An editor's newline is not part of the secret. */
	if (n && s[n - 1] == '\n')
		n--;
	if (n && s[n - 1] == '\r')
		n--;
	if (n < MIN_SECRET) {
		fpg_error_set(err, FPG_ERR_CONFIG, 0,
			      "%s %s: a secret of at least %d bytes, please "
			      "(it has %zu)",
			      what, path, MIN_SECRET, n);
		wipe_free(s, size);
		return NULL;
	}
	/* A buffer of its size: the file's is 1 MiB. */
	unsigned char *secret = malloc(n);
	if (secret) {
		memcpy(secret, s, n);
		*len = n;
	} else {
		nomem(err);
	}
	wipe_free(s, size);
	return secret;
}

static bool load_secret(struct fpg_jwt *j, const char *path,
			struct fpg_error *err)
{
	size_t len = 0;
	unsigned char *s = fpg_jwt_read_secret(path, "jwt-secret-file", &len,
					       err);
	if (!s)
		return false;
	bool ok = false;
	cjose_err cerr;
	cjose_jwk_t *jwk = cjose_jwk_create_oct_spec(s, len, &cerr);
	if (!jwk)
		fpg_error_set(err, FPG_ERR_CONFIG, 0, "jwt-secret-file: %s",
			      cerr.message);
	else
		ok = add_key(j, jwk, NULL, NULL, "jwt-secret-file", err);
	wipe_free((char *)s, len);
	return ok;
}

static bool load_key_file(struct fpg_jwt *j, const char *path,
			  const char *what, bool json_only,
			  struct fpg_error *err)
{
	size_t len = 0;
	char *text = read_file(path, what, &len, err);
	if (!text)
		return false;
	char where[300];
	snprintf(where, sizeof(where), "%s %s", what, path);
	const char *p = text + strspn(text, " \t\r\n");
	bool ok = *p == '{' || json_only
			  ? add_json_keys(j, text, len, where, false, err)
			  : add_pem_key(j, text, len, where, err);
	wipe_free(text, len);
	return ok;
}

/* ---- rules ---- */

static const struct alg *alg_named(const char *name)
{
	for (size_t i = 0; i < NALGS; i++)
		if (strcmp(algs[i].name, name) == 0)
			return &algs[i];
	return NULL;
}

static bool parse_algorithms(struct fpg_jwt *j, const char *list,
			     struct fpg_error *err)
{
	for (size_t i = 0; i < NALGS; i++)
		j->accepted[i] = list == NULL;
	for (const char *p = list ? list : ""; *p;) {
		p += strspn(p, " ,");
		size_t n = strcspn(p, " ,");
		if (!n)
			break;
		char name[16];
		snprintf(name, sizeof(name), "%.*s", (int)n, p);
		const struct alg *a = n < sizeof(name) ? alg_named(name) : NULL;
		if (!a) {
			fpg_error_set(err, FPG_ERR_CONFIG, 0,
				      "jwt-algorithms: %.*s is not one of HS256, "
				      "HS384, HS512, RS256, RS384, RS512, PS256, "
				      "PS384, PS512, ES256, ES384, ES512",
				      (int)(n < 32 ? n : 32), p);
			return false;
		}
		j->accepted[a - algs] = true;
		p += n;
	}
	return true;
}

static bool parse_roles(struct fpg_jwt *j, const char *list,
			struct fpg_error *err)
{
	for (const char *p = list ? list : ""; *p;) {
		p += strspn(p, " ,");
		size_t n = strcspn(p, " ,");
		if (!n)
			break;
		char **more = realloc(j->roles, (j->nroles + 1) * sizeof(*more));
		if (!more) {
			nomem(err);
			return false;
		}
		j->roles = more;
		if (n > 63 || !(j->roles[j->nroles] = strndup(p, n))) {
			if (n > 63)
				fpg_error_set(err, FPG_ERR_CONFIG, 0,
					      "jwt-roles: a role of at most 63 "
					      "bytes, please");
			else
				nomem(err);
			return false;
		}
		j->nroles++;
		p += n;
	}
	if (!j->nroles) {
		fpg_error_set(err, FPG_ERR_CONFIG, 0,
			      "auth jwt needs jwt-roles: the roles a token may "
			      "name (a token naming any other is refused)");
		return false;
	}
	return true;
}

/*
 * The role claim's path: keys separated by dots, a key in double quotes
 * when it holds dots itself, each maybe followed by [N] (an array's
 * element): role, app_metadata.role, roles[0], "https://x.io/claims".role
 */
static bool parse_path(struct fpg_jwt *j, const char *path,
		       struct fpg_error *err)
{
	const char *p = path && *path ? path : "role";
	if (*p == '.')
		p++;
	while (*p) {
		if (j->nsteps == sizeof(j->steps) / sizeof(*j->steps))
			goto bad;
		struct step *s = &j->steps[j->nsteps];
		size_t n;
		if (*p == '"') {
			const char *end = strchr(p + 1, '"');
			if (!end)
				goto bad;
			n = (size_t)(end - p - 1);
			s->key = strndup(p + 1, n);
			p = end + 1;
		} else {
			n = strcspn(p, ".[");
			s->key = strndup(p, n);
			p += n;
		}
		if (!s->key)
			goto oom;
		j->nsteps++;
		if (!n)
			goto bad;
		s->index = -1;
		if (*p == '[') {
			char *end;
			errno = 0;
			s->index = strtol(p + 1, &end, 10);
			if (errno || s->index < 0 || *end != ']' ||
			    !isdigit((unsigned char)p[1]))
				goto bad;
			p = end + 1;
		}
		if (*p == '.')
			p++;
		else if (*p)
			goto bad;
	}
	if (j->nsteps)
		return true;
bad:
	fpg_error_set(err, FPG_ERR_CONFIG, 0,
		      "jwt-role-claim %s: expected keys separated by dots, "
		      "each maybe in double quotes and followed by [N] "
		      "(at most 8)",
		      path);
	return false;
oom:
	nomem(err);
	return false;
}

struct fpg_jwt *fpg_jwt_load(const struct fpg_jwt_config *cfg,
			     const char *jwks, size_t jwks_len,
			     bool allow_empty, struct fpg_error *err)
{
	struct fpg_jwt *j = calloc(1, sizeof(*j));
	if (!j) {
		nomem(err);
		return NULL;
	}
	static atomic_uint_fast64_t ids;
	atomic_init(&j->refs, 1);
	j->id = atomic_fetch_add(&ids, 1) + 1;
	j->leeway_s = cfg->leeway_s;
	if ((cfg->audience && !(j->audience = strdup(cfg->audience))) ||
	    (cfg->issuer && !(j->issuer = strdup(cfg->issuer)))) {
		nomem(err);
		goto fail;
	}
	if (!parse_algorithms(j, cfg->algorithms, err) ||
	    !parse_roles(j, cfg->roles, err) ||
	    !parse_path(j, cfg->role_claim, err))
		goto fail;
	if ((cfg->secret_file && !load_secret(j, cfg->secret_file, err)) ||
	    (cfg->key_file && !load_key_file(j, cfg->key_file,
					     "jwt-key-file", false, err)) ||
	    (cfg->jwks_file && !load_key_file(j, cfg->jwks_file, "jwks-file",
					      true, err)) ||
	    (jwks && !add_json_keys(j, jwks, jwks_len, "jwks-url", true, err)))
		goto fail;
	if (!j->nkeys && !allow_empty) {
		fpg_error_set(err, FPG_ERR_CONFIG, 0,
			      "auth jwt needs a key: jwt-secret-file, "
			      "jwt-key-file, jwks-file or jwks-url");
		goto fail;
	}
	return j;
fail:
	jwt_free(j);
	return NULL;
}

/* ---- verifying ---- */

bool fpg_jwt_looks_like(const char *token, size_t len)
{
	const char *dot = memchr(token, '.', len);
	const char *dot2 = dot ? memchr(dot + 1, '.', len - (size_t)(dot + 1 - token))
			       : NULL;
	return dot2 && !memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token));
}

/* Three parts of base64url (see b64url_ok), the first two not empty. */
static bool well_formed(const char *token, size_t len)
{
	if (!fpg_jwt_looks_like(token, len))
		return false;
	const char *dot = memchr(token, '.', len);
	const char *dot2 = memchr(dot + 1, '.', len - (size_t)(dot + 1 - token));
	size_t n1 = (size_t)(dot - token), n2 = (size_t)(dot2 - dot - 1);
	return n1 && n2 && b64url_ok(token, n1) && b64url_ok(dot + 1, n2) &&
	       b64url_ok(dot2 + 1, len - (size_t)(dot2 + 1 - token));
}

static bool invalid(struct fpg_error *err, const char *reason,
		    const char *msg)
{
	fpg_error_set(err, FPG_ERR_REQUEST, 401, "%s", msg);
	err->reason = reason;
	return false;
}

static bool key_fits(const struct key *k, const struct alg *a)
{
	if (k->alg[0] && strcmp(k->alg, a->name) != 0)
		return false;
	switch (a->family) {
	case HS:
		return k->kty == CJOSE_JWK_KTY_OCT;
	case RS:
	case PS:
		/* Shorter RSA keys are factorable (RFC 7518 3.3: 2048). */
		return k->kty == CJOSE_JWK_KTY_RSA &&
		       cjose_jwk_get_keysize(k->jwk, NULL) >= 2048;
	case ES:
		return k->kty == CJOSE_JWK_KTY_EC && k->curve == a->curve;
	}
	return false;
}

/*
 * The token's header, read before libcjose sees the token: the algorithm
 * must be one we accept before any key is tried, and a header libcjose
 * cannot take (no alg) is refused here, where nothing leaks.
 */
static json_t *read_header(const char *token, size_t len,
			   struct fpg_error *err)
{
	const char *dot = memchr(token, '.', len);
	uint8_t *raw = NULL;
	size_t n = 0;
	cjose_err cerr;
	if (!dot || dot == token ||
	    !cjose_base64url_decode(token, (size_t)(dot - token), &raw, &n,
				    &cerr)) {
		invalid(err, "invalid_token", "the token's header is not "
					      "base64url");
		return NULL;
	}
	json_t *h = json_loadb((const char *)raw, n, JSON_REJECT_DUPLICATES,
			       NULL);
	free(raw);
	if (!json_is_object(h)) {
		json_decref(h);
		invalid(err, "invalid_token",
			"the token's header is not a JSON object");
		return NULL;
	}
	return h;
}

/* The claim the role path leads to, or NULL. */
static json_t *role_claim(const struct fpg_jwt *j, json_t *claims)
{
	json_t *v = claims;
	for (unsigned i = 0; v && i < j->nsteps; i++) {
		v = json_object_get(v, j->steps[i].key);
		if (v && j->steps[i].index >= 0)
			v = json_array_get(v, (size_t)j->steps[i].index);
	}
	return v;
}

static bool check_claims(const struct fpg_jwt *j, json_t *c, int64_t now,
			 struct fpg_jwt_identity *out, struct fpg_error *err)
{
	json_t *exp = json_object_get(c, "exp"), *nbf = json_object_get(c, "nbf");
	if ((exp && !json_is_number(exp)) || (nbf && !json_is_number(nbf)))
		return invalid(err, "invalid_token",
			       "the token's exp and nbf must be numbers");
	double skew = (double)j->leeway_s;
	out->valid_from = nbf ? json_number_value(nbf) - skew : -HUGE_VAL;
	out->valid_until = exp ? json_number_value(exp) + skew : HUGE_VAL;
	if (!((double)now < out->valid_until))
		return invalid(err, "token_expired", "the token has expired");
	if (!((double)now >= out->valid_from))
		return invalid(err, "invalid_token",
			       "the token is not valid yet (nbf)");
	if (j->issuer) {
		const char *iss = json_string_value(json_object_get(c, "iss"));
		if (!iss || strcmp(iss, j->issuer) != 0)
			return invalid(err, "invalid_token",
				       "the token's issuer (iss) is not ours");
	}
	if (j->audience) {
		json_t *aud = json_object_get(c, "aud"), *a;
		bool ours = json_is_string(aud) &&
			    strcmp(json_string_value(aud), j->audience) == 0;
		size_t i;
		if (json_is_array(aud))
			json_array_foreach(aud, i, a) {
				if (json_is_string(a) &&
				    strcmp(json_string_value(a), j->audience) == 0)
					ours = true;
			}
		if (!ours)
			return invalid(err, "invalid_token",
				       "the token is not meant for this "
				       "gateway (aud)");
	}
	json_t *role = role_claim(j, c);
	if (!role)
		return true;
	const char *r = json_string_value(role);
	if (!r || !*r || strlen(r) >= sizeof(out->role))
		return invalid(err, "invalid_token",
			       "the token's role claim is not a role name (a "
			       "string of 1 to 63 bytes)");
	for (unsigned i = 0; i < j->nroles; i++)
		if (strcmp(j->roles[i], r) == 0) {
			snprintf(out->role, sizeof(out->role), "%s", r);
			return true;
		}
	fpg_error_set(err, FPG_ERR_REQUEST, 403,
		      "the token's role is not one a token may name "
		      "(jwt-roles)");
	err->reason = "role_not_allowed";
	return false;
}

/* Checks jws's signature with the keys that fit alg (and kid). */
static bool verify_signature(const struct fpg_jwt *j, cjose_jws_t *jws,
			     const struct alg *a, const char *kid,
			     struct fpg_jwt_identity *out,
			     struct fpg_error *err)
{
	unsigned tried = 0;
	bool kid_known = false;
	for (unsigned i = 0; i < j->nkeys && tried < MAX_TRIES; i++) {
		const struct key *k = &j->keys[i];
		if (kid && strcmp(k->kid, kid) != 0)
			continue;
		kid_known = true;
		if (!key_fits(k, a))
			continue;
		tried++;
		cjose_err cerr;
		if (cjose_jws_verify(jws, k->jwk, &cerr))
			return true;
	}
	if (kid && !kid_known) {
		out->unknown_kid = true;
		return invalid(err, "invalid_token",
			       "the token's key (kid) is not one of ours");
	}
	return invalid(err, "invalid_token",
		       tried ? "the token's signature does not verify"
			     : "no key of ours fits the token's algorithm");
}

bool fpg_jwt_verify(const struct fpg_jwt *j, const char *token, size_t len,
		    int64_t now, struct fpg_jwt_identity *out,
		    struct fpg_error *err)
{
	memset(out, 0, sizeof(*out));
	if (len > MAX_TOKEN || !well_formed(token, len))
		return invalid(err, "invalid_token",
			       "the token is not a JWS in compact form "
			       "(three base64url parts)");
	json_t *h = read_header(token, len, err);
	if (!h)
		return false;
	bool ok = false;
	cjose_jws_t *jws = NULL;
	json_t *claims = NULL;
	const char *name = json_string_value(json_object_get(h, "alg"));
	json_t *kid = json_object_get(h, "kid");
	const struct alg *a = name ? alg_named(name) : NULL;
	if (!a || !j->accepted[a - algs]) {
		invalid(err, "invalid_token",
			"the token's algorithm is not one this gateway "
			"accepts");
		goto out;
	}
	if ((kid && !json_is_string(kid)) || json_object_get(h, "crit")) {
		invalid(err, "invalid_token",
			json_object_get(h, "crit")
				? "the token's header has critical extensions "
				  "(crit), which this gateway does not know"
				: "the token's kid is not a string");
		goto out;
	}
	cjose_err cerr;
	if (!(jws = cjose_jws_import(token, len, &cerr))) {
		invalid(err, "invalid_token", "the token is not a valid JWS");
		goto out;
	}
	if (!verify_signature(j, jws, a, kid ? json_string_value(kid) : NULL,
			      out, err))
		goto out;
	uint8_t *payload = NULL;
	size_t plen = 0;
	if (cjose_jws_get_plaintext(jws, &payload, &plen, &cerr))
		claims = json_loadb((const char *)payload, plen,
				    JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(claims)) {
		invalid(err, "invalid_token",
			"the token's claims are not a JSON object");
		goto out;
	}
	if (!check_claims(j, claims, now, out, err))
		goto out;
	if (!(out->claims = json_dumps(claims, JSON_COMPACT))) {
		nomem(err);
		goto out;
	}
	ok = true;
out:
	json_decref(claims);
	cjose_jws_release(jws);
	json_decref(h);
	return ok;
}
