/*
 * --auth jwt: a Bearer JSON Web Token names the role a request runs as.
 * The test makes its own keys (an HMAC secret, RSA and EC key pairs),
 * signs tokens with libcjose, and serves a JWKS over HTTP for
 * --jwks-url. Roles: webuser (named queries only, rows by the token's
 * sub through row-level security on request.jwt.claims), reader, and
 * webraw (raw SQL, rows by claims that docs/verified-claims.sql checks).
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjose/cjose.h>
#include <microhttpd.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "http.h"
#include "it.h"
#include "pg_harness.h"

static unsigned port;	  /* secret + JWKS file, aud, iss, named queries */
static unsigned pem_port; /* a PEM public key, a nested role claim */
static unsigned url_port; /* --jwks-url */
static unsigned signed_port; /* --claims-key-file */
static char dir[64];
static char secret[48], claims_key[65];
static cjose_jwk_t *hmac_key, *rsa_key, *ec_key, *rsa2_key, *pem_key,
	*url_key, *url2_key;
static char pem_text[4096]; /* pem_key's public key, PEM */

/* The JWKS --jwks-url serves, swapped by the test. */
static pthread_mutex_t served_lock = PTHREAD_MUTEX_INITIALIZER;
static char *served;
static unsigned fetches;
static struct MHD_Daemon *jwks_server;
static unsigned jwks_port;

static char *path_of(const char *name)
{
	return it_fmt("%s/%s", dir, name);
}

static void write_file(const char *name, const char *text)
{
	char *p = path_of(name);
	FILE *f = fopen(p, "w");
	if (!f)
		abort(); /* from setup(), where Check cannot */
	fputs(text, f);
	fclose(f);
	free(p);
}

/* A JWKS of the public halves of keys (kid set on each). */
static char *jwks_of(cjose_jwk_t *const *keys, size_t n)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++) {
		char *pub = cjose_jwk_to_json(keys[i], false, NULL);
		json_array_append_new(arr, json_loads(pub, 0, NULL));
		free(pub);
	}
	json_t *root = json_pack("{s:o}", "keys", arr);
	char *text = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	return text;
}

static cjose_jwk_t *with_kid(cjose_jwk_t *k, const char *kid)
{
	if (!k || !cjose_jwk_set_kid(k, kid, strlen(kid), NULL))
		abort();
	return k;
}

static uint8_t *bn(const EVP_PKEY *k, const char *name, size_t *len)
{
	BIGNUM *b = NULL;
	if (!EVP_PKEY_get_bn_param(k, name, &b))
		abort();
	*len = (size_t)BN_num_bytes(b);
	uint8_t *out = malloc(*len);
	BN_bn2bin(b, out);
	BN_free(b);
	return out;
}

/* An RSA key made by OpenSSL: its public half as PEM (pem_text), the
 * whole as a JWK to sign with. */
static cjose_jwk_t *pem_rsa_key(void)
{
	EVP_PKEY *k = EVP_RSA_gen(2048);
	if (!k)
		abort();
	BIO *bio = BIO_new(BIO_s_mem());
	PEM_write_bio_PUBKEY(bio, k);
	int n = BIO_read(bio, pem_text, sizeof(pem_text) - 1);
	pem_text[n > 0 ? n : 0] = '\0';
	BIO_free(bio);
	cjose_jwk_rsa_keyspec s = {0};
	s.n = bn(k, OSSL_PKEY_PARAM_RSA_N, &s.nlen);
	s.e = bn(k, OSSL_PKEY_PARAM_RSA_E, &s.elen);
	s.d = bn(k, OSSL_PKEY_PARAM_RSA_D, &s.dlen);
	s.p = bn(k, OSSL_PKEY_PARAM_RSA_FACTOR1, &s.plen);
	s.q = bn(k, OSSL_PKEY_PARAM_RSA_FACTOR2, &s.qlen);
	s.dp = bn(k, OSSL_PKEY_PARAM_RSA_EXPONENT1, &s.dplen);
	s.dq = bn(k, OSSL_PKEY_PARAM_RSA_EXPONENT2, &s.dqlen);
	s.qi = bn(k, OSSL_PKEY_PARAM_RSA_COEFFICIENT1, &s.qilen);
	cjose_jwk_t *jwk = cjose_jwk_create_RSA_spec(&s, NULL);
	free(s.n), free(s.e), free(s.d), free(s.p), free(s.q), free(s.dp),
		free(s.dq), free(s.qi);
	EVP_PKEY_free(k);
	if (!jwk)
		abort();
	return jwk;
}

/* A compact JWS of claims (JSON text) signed by key with alg; kid NULL:
 * none in the header. Caller frees. */
static char *sign(cjose_jwk_t *key, const char *alg, const char *kid,
		  const char *claims)
{
	cjose_err err;
	cjose_header_t *h = cjose_header_new(&err);
	cjose_header_set(h, CJOSE_HDR_ALG, alg, &err);
	cjose_header_set(h, "typ", "JWT", &err);
	if (kid)
		cjose_header_set(h, CJOSE_HDR_KID, kid, &err);
	cjose_jws_t *jws = cjose_jws_sign(key, h, (const uint8_t *)claims,
					  strlen(claims), &err);
	ck_assert_msg(jws, "sign %s: %s", alg, err.message);
	const char *out = NULL;
	ck_assert(cjose_jws_export(jws, &out, &err));
	char *copy = strdup(out);
	cjose_jws_release(jws);
	cjose_header_release(h);
	return copy;
}

static char *b64url(const char *s)
{
	char *out = NULL;
	size_t n = 0;
	ck_assert(cjose_base64url_encode((const uint8_t *)s, strlen(s), &out,
					 &n, NULL));
	return out;
}

/* Claims with the role, sub, and exp/nbf relative to now (0: none). */
static char *claims_of(const char *role, const char *sub, long exp_in,
		       long nbf_in)
{
	long now = (long)time(NULL);
	json_t *c = json_pack("{s:s,s:s,s:s}", "sub", sub, "aud",
			      "fasterpg-test", "iss", "https://issuer.test");
	if (role)
		json_object_set_new(c, "role", json_string(role));
	if (exp_in)
		json_object_set_new(c, "exp", json_integer(now + exp_in));
	if (nbf_in)
		json_object_set_new(c, "nbf", json_integer(now + nbf_in));
	char *text = json_dumps(c, JSON_COMPACT);
	json_decref(c);
	return text;
}

static struct http_resp *sql_with(unsigned p, const char *token,
				  const char *sql)
{
	char auth[20000];
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
	const char *headers[] = {auth, NULL};
	json_t *j = json_pack("{s:s,s:s}", "sql", sql, "expect", "scalar");
	char *body = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	struct http_resp *r = http_request(p, "POST", "/query", body, headers);
	free(body);
	return r;
}

static long status_of(unsigned p, const char *token, const char *sql)
{
	struct http_resp *r = sql_with(p, token, sql);
	long s = r->status;
	http_resp_free(r);
	return s;
}

/* The scalar sql answers for token; the test fails on anything else. */
static char *scalar(unsigned p, const char *token, const char *sql)
{
	struct http_resp *r = sql_with(p, token, sql);
	ck_assert_msg(r->status == 200, "%s: %ld %s", sql, r->status, r->body);
	json_t *v = json_object_get(r->json, "value");
	char *out = json_is_string(v) ? strdup(json_string_value(v))
				       : json_dumps(v, JSON_ENCODE_ANY);
	http_resp_free(r);
	return out;
}

static enum MHD_Result serve_jwks(void *cls, struct MHD_Connection *c,
				  const char *url, const char *method,
				  const char *version, const char *data,
				  size_t *size, void **state)
{
	(void)cls, (void)url, (void)method, (void)version, (void)data,
		(void)size, (void)state;
	pthread_mutex_lock(&served_lock);
	fetches++;
	struct MHD_Response *r = MHD_create_response_from_buffer(
		strlen(served), served, MHD_RESPMEM_MUST_COPY);
	pthread_mutex_unlock(&served_lock);
	enum MHD_Result ok = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return ok;
}

static void serve(char *jwks)
{
	pthread_mutex_lock(&served_lock);
	free(served);
	served = jwks;
	pthread_mutex_unlock(&served_lock);
}

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/fpg_jwt_XXXXXX");
	if (!mkdtemp(dir))
		abort();
	for (size_t i = 0; i + 1 < sizeof(secret); i++)
		secret[i] = "abcdefghijkmnopqrstuvwxyzABCDEFGH23456789"[rand() % 41];
	hmac_key = cjose_jwk_create_oct_spec((const uint8_t *)secret,
					     strlen(secret), NULL);
	static const uint8_t e[] = {1, 0, 1};
	rsa_key = with_kid(cjose_jwk_create_RSA_random(2048, e, 3, NULL), "r1");
	rsa2_key = with_kid(cjose_jwk_create_RSA_random(2048, e, 3, NULL), "r2");
	ec_key = with_kid(cjose_jwk_create_EC_random(CJOSE_JWK_EC_P_256, NULL),
			  "e1");
	url_key = with_kid(cjose_jwk_create_EC_random(CJOSE_JWK_EC_P_256, NULL),
			   "u1");
	url2_key = with_kid(cjose_jwk_create_EC_random(CJOSE_JWK_EC_P_384, NULL),
			    "u2");
	pem_key = pem_rsa_key();
	if (!hmac_key || !rsa_key || !rsa2_key || !ec_key || !url_key ||
	    !url2_key)
		abort();
	char s[64];
	snprintf(s, sizeof(s), "%s\n", secret); /* an editor's newline */
	write_file("secret", s);
	cjose_jwk_t *keys[] = {rsa_key, ec_key};
	char *jwks = jwks_of(keys, 2);
	write_file("jwks.json", jwks);
	free(jwks);
	write_file("key.pem", pem_text);
	serve(jwks_of(&url_key, 1));
	jwks_server = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0,
				       NULL, NULL, serve_jwks, NULL,
				       MHD_OPTION_END);
	if (!jwks_server)
		abort();
	jwks_port = MHD_get_daemon_info(jwks_server, MHD_DAEMON_INFO_BIND_PORT)
			    ->port;
	/* The claims' sub decides the rows of a named query. */
	char *q = path_of("queries");
	mkdir(q, 0700);
	free(q);
	write_file("queries/my_notes.sql",
		   "-- roles: webuser\n"
		   "SELECT string_agg(note, ',' ORDER BY note) FROM jwt_notes\n");
	write_file("queries/whoami.sql",
		   "SELECT current_user || ' ' || "
		   "current_setting('request.jwt.claim.sub', true) || ' ' || "
		   "(current_setting('request.jwt.claims', true)::json->>'iss')\n");
	write_file("roles", "webuser raw-sql=no\n");
	pgh_exec("CREATE ROLE webuser LOGIN; CREATE ROLE reader LOGIN;"
		 "CREATE ROLE nobody LOGIN;"
		 "CREATE TABLE jwt_notes (owner text NOT NULL, note text);"
		 "ALTER TABLE jwt_notes ENABLE ROW LEVEL SECURITY;"
		 "CREATE POLICY by_sub ON jwt_notes USING (owner = "
		 "current_setting('request.jwt.claims', true)::json->>'sub');"
		 "GRANT SELECT ON jwt_notes TO webuser;"
		 "INSERT INTO jwt_notes VALUES ('ann', 'a1'), ('ann', 'a2'),"
		 " ('ben', 'b1')");
	for (size_t i = 0; i < 64; i++)
		claims_key[i] = "0123456789abcdef"[rand() % 16];
	char k[80];
	snprintf(k, sizeof(k), "%s\n", claims_key);
	write_file("claims.key", k);
	/* As an operator would: the script, then the key. */
	FILE *f = fopen(FPG_SOURCE_DIR "/docs/verified-claims.sql", "r");
	if (!f)
		abort();
	static char script[16384];
	script[fread(script, 1, sizeof(script) - 1, f)] = '\0';
	fclose(f);
	pgh_exec(script);
	char *key_sql = it_fmt("INSERT INTO fasterpg_claims.key VALUES "
			       "(convert_to('%s', 'UTF8'))",
			       claims_key);
	pgh_exec(key_sql);
	free(key_sql);
	pgh_exec("CREATE ROLE webraw LOGIN;"
		 "CREATE TABLE signed_notes (owner text NOT NULL, note text);"
		 "ALTER TABLE signed_notes ENABLE ROW LEVEL SECURITY;"
		 "CREATE POLICY by_sub ON signed_notes USING (owner = "
		 "(SELECT fasterpg_claims.verified() ->> 'sub'));"
		 "GRANT SELECT ON signed_notes TO webraw, reader;"
		 "INSERT INTO signed_notes VALUES ('ann', 's1'), ('ann', 's2'),"
		 " ('ben', 't1');"
		 /* What a raw-SQL caller can write (here given to it). */
		 "CREATE FUNCTION forge(c text, a text, m text, t regclass) "
		 "RETURNS text LANGUAGE plpgsql AS $$DECLARE r text; BEGIN "
		 "PERFORM set_config('request.jwt.claims', c, true), "
		 "set_config('fasterpg.claims_at', a, true), "
		 "set_config('fasterpg.claims_mac', m, true); "
		 "EXECUTE format('SELECT string_agg(note, '','' ORDER BY note) "
		 "FROM %s', t) INTO r; RETURN r; END$$;"
		 "GRANT SELECT ON jwt_notes TO webraw;");
}

__attribute__((destructor)) static void remove_files(void)
{
	if (!dir[0])
		return;
	static const char *const names[] = {
		"secret", "jwks.json", "key.pem", "roles", "claims.key",
		"queries/my_notes.sql", "queries/whoami.sql", "queries"};
	for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
		char *p = path_of(names[i]);
		if (unlink(p) != 0)
			rmdir(p);
		free(p);
	}
	rmdir(dir);
}

/* A path of the test's directory, in static storage that lasts. */
static const char *kept_path(char *buf, size_t n, const char *name)
{
	snprintf(buf, n, "%s/%s", dir, name);
	return buf;
}

static void jwt_server(struct fpg_options *o)
{
	static char secret_path[96], jwks_path[96], queries[96], roles[96];
	o->auth = "jwt";
	o->jwt_secret_file = kept_path(secret_path, sizeof(secret_path),
				       "secret");
	o->jwks_file = kept_path(jwks_path, sizeof(jwks_path), "jwks.json");
	o->jwt_roles = "webuser, reader";
	o->jwt_audience = "fasterpg-test";
	o->jwt_issuer = "https://issuer.test";
	o->jwt_leeway_s = 5;
	o->queries = kept_path(queries, sizeof(queries), "queries");
	o->roles = kept_path(roles, sizeof(roles), "roles");
	o->threads = 2;
}

static void pem_server(struct fpg_options *o)
{
	static char key_path[96];
	o->auth = "jwt";
	o->jwt_key_file = kept_path(key_path, sizeof(key_path), "key.pem");
	o->jwt_roles = "reader";
	o->jwt_role_claim = "\"https://app.test/claims\".roles[1]";
	o->anon_role = "nobody";
}

static void url_server(struct fpg_options *o)
{
	static char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/jwks", jwks_port);
	o->auth = "jwt";
	o->jwks_url = url;
	o->jwt_roles = "reader";
}

static void signed_server(struct fpg_options *o)
{
	static char secret_path[96], key_path[96], queries[96];
	o->auth = "jwt";
	o->jwt_secret_file = kept_path(secret_path, sizeof(secret_path),
				       "secret");
	o->claims_key_file = kept_path(key_path, sizeof(key_path),
				       "claims.key");
	o->jwt_roles = "webraw,reader";
	o->queries = kept_path(queries, sizeof(queries), "queries");
}

START_TEST(valid_tokens_run_as_their_role)
{
	char *c = claims_of("reader", "ann", 60, 0);
	struct {
		cjose_jwk_t *key;
		const char *alg, *kid;
	} signers[] = {
		{hmac_key, "HS256", NULL}, {hmac_key, "HS512", NULL},
		{rsa_key, "RS256", "r1"},  {rsa_key, "PS384", "r1"},
		{ec_key, "ES256", "e1"},   {rsa_key, "RS512", NULL},
	};
	for (size_t i = 0; i < sizeof(signers) / sizeof(*signers); i++) {
		char *t = sign(signers[i].key, signers[i].alg, signers[i].kid,
			       c);
		char *u = scalar(port, t, "SELECT current_user::text");
		ck_assert_msg(strcmp(u, "reader") == 0, "%s: %s",
			      signers[i].alg, u);
		free(u);
		free(t);
	}
	free(c);
	/* A token without exp is valid (as with PostgREST). */
	c = claims_of("reader", "ann", 0, -10);
	char *t = sign(hmac_key, "HS256", NULL, c);
	ck_assert_int_eq(status_of(port, t, "SELECT 1"), 200);
	free(t);
	free(c);
}
END_TEST

static void expect_refusal(unsigned p, const char *token, long status,
			   const char *reason, const char *what)
{
	struct http_resp *r = sql_with(p, token, "SELECT 1");
	ck_assert_msg(r->status == status && strstr(r->body, reason),
		      "%s: %ld %s", what, r->status, r->body);
	if (status == 401)
		ck_assert_msg(strcasestr(r->headers, "WWW-Authenticate: Bearer"),
			      "%s: no challenge", what);
	http_resp_free(r);
}

START_TEST(bad_tokens_are_refused)
{
	char *t, *c;
	/* Expired beyond the leeway, and not valid yet. */
	c = claims_of("reader", "ann", -10, 0);
	t = sign(hmac_key, "HS256", NULL, c);
	expect_refusal(port, t, 401, "token_expired", "expired");
	free(t), free(c);
	c = claims_of("reader", "ann", 3, 0); /* within the leeway: fine */
	t = sign(hmac_key, "HS256", NULL, c);
	ck_assert_int_eq(status_of(port, t, "SELECT 1"), 200);
	free(t), free(c);
	c = claims_of("reader", "ann", 600, 60);
	t = sign(hmac_key, "HS256", NULL, c);
	expect_refusal(port, t, 401, "invalid_token", "nbf");
	free(t), free(c);
	/* Wrong audience, wrong issuer. */
	t = sign(hmac_key, "HS256", NULL,
		 "{\"role\":\"reader\",\"aud\":\"other\",\"iss\":"
		 "\"https://issuer.test\"}");
	expect_refusal(port, t, 401, "invalid_token", "aud");
	free(t);
	t = sign(hmac_key, "HS256", NULL,
		 "{\"role\":\"reader\",\"aud\":[\"x\",\"fasterpg-test\"],"
		 "\"iss\":\"https://issuer.test\"}");
	ck_assert_int_eq(status_of(port, t, "SELECT 1"), 200); /* aud list */
	free(t);
	t = sign(hmac_key, "HS256", NULL,
		 "{\"role\":\"reader\",\"aud\":\"fasterpg-test\",\"iss\":"
		 "\"https://evil.test\"}");
	expect_refusal(port, t, 401, "invalid_token", "iss");
	free(t);
	/* A role outside the allow-list, even a real one. */
	c = claims_of("postgres", "ann", 60, 0);
	t = sign(hmac_key, "HS256", NULL, c);
	expect_refusal(port, t, 403, "role_not_allowed", "role");
	free(t), free(c);
	/* Tampered: the claims changed after signing. */
	c = claims_of("reader", "ann", 60, 0);
	t = sign(rsa_key, "RS256", "r1", c);
	char *other = claims_of("webuser", "ann", 60, 0);
	char *forged_payload = b64url(other);
	char *dot1 = strchr(t, '.');
	char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
	if (!dot2)
		ck_abort_msg("not a JWS: %s", t);
	char *forged = it_fmt("%.*s.%s%s", (int)(dot1 - t), t, forged_payload,
			      dot2);
	expect_refusal(port, forged, 401, "invalid_token", "tampered");
	free(forged), free(forged_payload), free(other);
	/* A flipped signature byte. */
	size_t n = strlen(t);
	t[n - 2] = t[n - 2] == 'A' ? 'B' : 'A';
	expect_refusal(port, t, 401, "invalid_token", "signature");
	free(t);
	/* alg none, with and without a signature. */
	char *h = b64url("{\"alg\":\"none\",\"typ\":\"JWT\"}"), *p = b64url(c);
	t = it_fmt("%s.%s.", h, p);
	expect_refusal(port, t, 401, "invalid_token", "alg none");
	free(t);
	t = it_fmt("%s.%s.c2ln", h, p);
	expect_refusal(port, t, 401, "invalid_token", "alg none signed");
	free(t), free(h);
	/* A header libcjose would leak on (no alg). */
	h = b64url("{\"typ\":\"JWT\"}");
	t = it_fmt("%s.%s.c2ln", h, p);
	expect_refusal(port, t, 401, "invalid_token", "no alg");
	free(t), free(h), free(p);
	/* An unknown kid; a kid of an EC key with an RSA algorithm. */
	t = sign(rsa2_key, "RS256", "r2", c);
	expect_refusal(port, t, 401, "invalid_token", "unknown kid");
	free(t);
	t = sign(rsa_key, "RS256", "e1", c);
	expect_refusal(port, t, 401, "invalid_token", "kid of another kind");
	free(t);
	/* HS256 "signed" with the RSA key's public JWK as the secret: the
	 * old key confusion. No public key is ever an HMAC secret. */
	cjose_jwk_t *confused =
		cjose_jwk_create_oct_spec((const uint8_t *)pem_text,
					  strlen(pem_text), NULL);
	t = sign(confused, "HS256", NULL, c);
	expect_refusal(pem_port, t, 401, "invalid_token", "key confusion");
	free(t);
	cjose_jwk_release(confused);
	/* A '=' where libcjose's base64 decoder would abort the process
	 * (found by fuzz_jwt): in the header, the claims, the signature. */
	expect_refusal(port, "eyJhbGciOiJSUzI1NiIsImtpZCI6InIiLCJjsml5I="
			     "pbIngiXX0.e30.AAAA",
		       401, "invalid_token", "'=' in the header");
	h = b64url("{\"alg\":\"HS256\"}");
	const char *tails[] = {"e30=.AAAA", "eyJ4IjoxfQ.AAAAA=", "eyJ4IjoxfQ.A"};
	for (int i = 0; i < 3; i++) {
		t = it_fmt("%s.%s", h, tails[i]);
		expect_refusal(port, t, 401, "invalid_token", tails[i]);
		free(t);
	}
	free(h);
	/* Not a token at all. */
	expect_refusal(port, "a.b.c", 401, "invalid_token", "garbage");
	expect_refusal(port, "abc", 401, "invalid_token", "one part");
	free(c);
}
END_TEST

START_TEST(pem_key_and_claim_path)
{
	long now = (long)time(NULL);
	char *c = it_fmt("{\"https://app.test/claims\":{\"roles\":[\"x\","
			 "\"reader\"]},\"exp\":%ld}",
			 now + 60);
	char *t = sign(pem_key, "RS256", NULL, c);
	char *u = scalar(pem_port, t, "SELECT current_user::text");
	ck_assert_str_eq(u, "reader");
	free(u), free(t), free(c);
	/* No role claim: the anonymous role. */
	c = it_fmt("{\"sub\":\"x\",\"exp\":%ld}", now + 60);
	t = sign(pem_key, "RS256", NULL, c);
	u = scalar(pem_port, t, "SELECT current_user::text");
	ck_assert_str_eq(u, "nobody");
	free(u), free(t), free(c);
	/* Other keys are not this server's. */
	c = claims_of("reader", "ann", 60, 0);
	t = sign(rsa_key, "RS256", NULL, c);
	expect_refusal(pem_port, t, 401, "invalid_token", "other key");
	free(t), free(c);
}
END_TEST

static struct http_resp *named(const char *token, const char *name,
			       const char *body)
{
	char auth[20000];
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
	const char *headers[] = {auth, NULL};
	char *path = it_fmt("/q/%s", name);
	struct http_resp *r = http_request(port, "POST", path, body, headers);
	free(path);
	return r;
}

START_TEST(claims_reach_named_queries)
{
	const char *subs[] = {"ann", "ben", "cid"};
	const char *want[] = {"\"a1,a2\"", "\"b1\"", "null"};
	for (int i = 0; i < 3; i++) {
		char *c = claims_of("webuser", subs[i], 60, 0);
		char *t = sign(ec_key, "ES256", "e1", c);
		struct http_resp *r =
			named(t, "my_notes", "{\"expect\":\"scalar\"}");
		ck_assert_msg(r->status == 200 && strstr(r->body, want[i]),
			      "%s: %ld %s", subs[i], r->status, r->body);
		http_resp_free(r);
		r = named(t, "whoami", "{\"expect\":\"scalar\"}");
		char *w = it_fmt("webuser %s https://issuer.test", subs[i]);
		ck_assert_msg(r->status == 200 && strstr(r->body, w), "%ld %s",
			      r->status, r->body);
		free(w);
		http_resp_free(r);
		/* webuser runs named queries only. */
		r = sql_with(port, t, "SELECT 1");
		ck_assert_msg(r->status == 403 && strstr(r->body, "raw_sql_off"),
			      "%ld %s", r->status, r->body);
		http_resp_free(r);
		free(t), free(c);
	}
	/* Raw SQL sees its own claims too, and they do not outlive the
	 * request on the shared connection. */
	char *c = claims_of("reader", "dan", 60, 0);
	char *t = sign(hmac_key, "HS256", NULL, c);
	for (int i = 0; i < 4; i++) {
		char *s = scalar(port, t,
				 "SELECT current_setting('request.jwt.claims',"
				 " true)::json->>'sub'");
		ck_assert_str_eq(s, "dan");
		free(s);
	}
	free(t), free(c);
	c = claims_of("reader", "eve", 60, 0);
	t = sign(hmac_key, "HS256", NULL, c);
	for (int i = 0; i < 4; i++) {
		char *s = scalar(port, t,
				 "SELECT current_setting('request.jwt.claim.sub'"
				 ", true)");
		ck_assert_str_eq(s, "eve");
		free(s);
		/* A statement that must run alone still can. */
		ck_assert_int_eq(status_of(port, t, "VACUUM pg_class"), 200);
	}
	free(t), free(c);
}
END_TEST

START_TEST(jwks_file_reload)
{
	char *jwks_path = path_of("jwks.json");
	struct fpg_options o;
	unsigned p;
	it_options(&o);
	jwt_server(&o);
	struct fpg_server *srv = it_server_start(&o, &p);
	char *c = claims_of("reader", "ann", 60, 0);
	char *t1 = sign(rsa_key, "RS256", "r1", c);
	char *t2 = sign(rsa2_key, "RS256", "r2", c);
	ck_assert_int_eq(status_of(p, t1, "SELECT 1"), 200);
	ck_assert_int_eq(status_of(p, t2, "SELECT 1"), 401);
	/* A file that does not load changes nothing. */
	write_file("jwks.json", "{\"keys\": 7}");
	struct fpg_error err = {0};
	ck_assert(!fpg_server_reload(srv, &err));
	ck_assert_int_eq(status_of(p, t1, "SELECT 1"), 200);
	/* Rotated: r2 in, r1 out, on every worker. */
	char *jwks = jwks_of(&rsa2_key, 1);
	write_file("jwks.json", jwks);
	free(jwks);
	ck_assert_msg(fpg_server_reload(srv, &err), "%s", err.message);
	/* Each worker switches at its next loop turn, which may come just
	 * after a request's. */
	double until = it_now() + 5;
	for (int seen = 0; seen < 8 && it_now() < until;)
		seen = status_of(p, t2, "SELECT 1") == 200 ? seen + 1 : 0;
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(status_of(p, t1, "SELECT 1"), 401);
		ck_assert_int_eq(status_of(p, t2, "SELECT 1"), 200);
	}
	fpg_server_free(srv);
	cjose_jwk_t *keys[] = {rsa_key, ec_key};
	jwks = jwks_of(keys, 2);
	write_file("jwks.json", jwks);
	free(jwks);
	free(t1), free(t2), free(c), free(jwks_path);
}
END_TEST

START_TEST(jwks_url_rotation)
{
	char *c = claims_of("reader", "ann", 60, 0);
	char *t1 = sign(url_key, "ES256", "u1", c);
	char *t2 = sign(url2_key, "ES384", "u2", c);
	ck_assert_int_eq(status_of(url_port, t1, "SELECT 1"), 200);
	/* The identity provider rotates; a token with the new kid makes the
	 * gateway fetch again, soon. */
	cjose_jwk_t *both[] = {url_key, url2_key};
	serve(jwks_of(both, 2));
	double until = it_now() + 15;
	long s = 0;
	while ((s = status_of(url_port, t2, "SELECT 1")) != 200 &&
	       it_now() < until)
		usleep(200 * 1000);
	ck_assert_int_eq(s, 200);
	ck_assert_int_eq(status_of(url_port, t1, "SELECT 1"), 200);
	/* Unknown kids do not make it fetch on every request. */
	pthread_mutex_lock(&served_lock);
	unsigned before = fetches;
	pthread_mutex_unlock(&served_lock);
	cjose_jwk_t *stranger =
		with_kid(cjose_jwk_create_EC_random(CJOSE_JWK_EC_P_256, NULL),
			 "zz");
	char *t3 = sign(stranger, "ES256", "zz", c);
	for (int i = 0; i < 50; i++)
		ck_assert_int_eq(status_of(url_port, t3, "SELECT 1"), 401);
	pthread_mutex_lock(&served_lock);
	ck_assert_uint_le(fetches - before, 2);
	pthread_mutex_unlock(&served_lock);
	cjose_jwk_release(stranger);
	serve(jwks_of(&url_key, 1));
	free(t1), free(t2), free(t3), free(c);
}
END_TEST

START_TEST(configuration_is_checked)
{
	struct fpg_options o;
	struct fpg_error err;
	/* No allow-list of roles. */
	it_options(&o);
	jwt_server(&o);
	o.jwt_roles = NULL;
	memset(&err, 0, sizeof(err));
	ck_assert_ptr_null(fpg_server_new(&o, &err));
	ck_assert_ptr_nonnull(strstr(err.message, "jwt-roles"));
	/* No key. */
	it_options(&o);
	o.auth = "jwt";
	o.jwt_roles = "reader";
	ck_assert_ptr_null(fpg_server_new(&o, &err));
	ck_assert_ptr_nonnull(strstr(err.message, "key"));
	/* A short secret. */
	write_file("short", "tooshort\n");
	char *short_path = path_of("short");
	o.jwt_secret_file = short_path;
	ck_assert_ptr_null(fpg_server_new(&o, &err));
	ck_assert_ptr_nonnull(strstr(err.message, "at least 32"));
	unlink(short_path);
	free(short_path);
	/* "none" is no algorithm. */
	it_options(&o);
	jwt_server(&o);
	o.jwt_algorithms = "HS256,none";
	ck_assert_ptr_null(fpg_server_new(&o, &err));
	ck_assert_ptr_nonnull(strstr(err.message, "none"));
	/* jwt options without auth jwt. */
	it_options(&o);
	o.jwt_roles = "reader";
	ck_assert_ptr_null(fpg_server_new(&o, &err));
	ck_assert_ptr_nonnull(strstr(err.message, "auth jwt"));
	/* Plain HTTP for a JWKS only to this machine: on the way, anyone
	 * could add a key. */
	it_options(&o);
	o.auth = "jwt";
	o.jwt_roles = "reader";
	o.jwks_url = "http://192.0.2.1/jwks";
	ck_assert_ptr_null(fpg_server_new(&o, &err));
	ck_assert_ptr_nonnull(strstr(err.message, "https"));
	o.jwks_url = "http://127.0.0.1.example/jwks";
	ck_assert_ptr_null(fpg_server_new(&o, &err));
	ck_assert_ptr_nonnull(strstr(err.message, "https"));
	/* A published JWKS with only a secret (oct) in it: no usable key. */
	char *hold = NULL;
	pthread_mutex_lock(&served_lock);
	hold = served;
	served = jwks_of(&hmac_key, 1);
	pthread_mutex_unlock(&served_lock);
	char *url = it_fmt("http://127.0.0.1:%u/jwks", jwks_port);
	o.jwks_url = url;
	ck_assert_ptr_null(fpg_server_new(&o, &err));
	ck_assert_ptr_nonnull(strstr(err.message, "no usable key"));
	free(url);
	pthread_mutex_lock(&served_lock);
	free(served);
	served = hold;
	pthread_mutex_unlock(&served_lock);
	/* A JWKS URL that does not answer. */
	it_options(&o);
	o.auth = "jwt";
	o.jwt_roles = "reader";
	o.jwks_url = "http://127.0.0.1:1/jwks";
	ck_assert_ptr_null(fpg_server_new(&o, &err));
	ck_assert_ptr_nonnull(strstr(err.message, "jwks-url"));
	/* A private key where a public one belongs. */
	EVP_PKEY *k = EVP_EC_gen("P-256");
	char *priv_path = path_of("priv.pem");
	FILE *f = fopen(priv_path, "w");
	PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	EVP_PKEY_free(k);
	it_options(&o);
	o.auth = "jwt";
	o.jwt_roles = "reader";
	o.jwt_key_file = priv_path;
	ck_assert_ptr_null(fpg_server_new(&o, &err));
	ck_assert_ptr_nonnull(strstr(err.message, "private key"));
	unlink(priv_path);
	free(priv_path);
}
END_TEST

/* The HS256 algorithm alone: an RS256 token is refused although its key
 * is known. */
START_TEST(algorithm_allow_list)
{
	struct fpg_options o;
	unsigned p;
	it_options(&o);
	jwt_server(&o);
	o.jwt_algorithms = "HS256";
	o.threads = 1;
	struct fpg_server *srv = it_server_start(&o, &p);
	char *c = claims_of("reader", "ann", 60, 0);
	char *t = sign(rsa_key, "RS256", "r1", c);
	expect_refusal(p, t, 401, "invalid_token", "RS256 not allowed");
	free(t);
	t = sign(hmac_key, "HS384", NULL, c);
	expect_refusal(p, t, 401, "invalid_token", "HS384 not allowed");
	free(t);
	t = sign(hmac_key, "HS256", NULL, c);
	ck_assert_int_eq(status_of(p, t, "SELECT 1"), 200);
	free(t), free(c);
	fpg_server_free(srv);
}
END_TEST

static char *forge_sql(const char *claims, const char *at, const char *mac,
		       const char *table)
{
	return it_fmt("SELECT forge('%s', '%s', '%s', '%s')", claims, at, mac,
		      table);
}

START_TEST(signed_claims_cannot_be_forged)
{
	char *ann_c = claims_of("webraw", "ann", 60, 0);
	char *ann = sign(hmac_key, "HS256", NULL, ann_c);
	char *ben_c = claims_of("webraw", "ben", 60, 0);
	char *ben = sign(hmac_key, "HS256", NULL, ben_c);
	const char *rows = "SELECT string_agg(note, ',' ORDER BY note) FROM "
			   "signed_notes";
	/* Raw SQL sees the rows of its token's sub. */
	char *s = scalar(signed_port, ann, rows);
	ck_assert_str_eq(s, "s1,s2");
	free(s);
	s = scalar(signed_port, ben, rows);
	ck_assert_str_eq(s, "t1");
	free(s);
	/* ann's raw SQL claims to be ben. Unsigned claims believe it... */
	char *forged = it_fmt("{\"sub\":\"ben\"}");
	char *sql = forge_sql(forged, "", "", "jwt_notes");
	s = scalar(signed_port, ann, sql);
	ck_assert_str_eq(s, "b1");
	free(s), free(sql);
	/* ...signed ones do not: no MAC, ann's MAC, a made-up one. */
	char *ann_at = scalar(signed_port, ann,
			      "SELECT current_setting('fasterpg.claims_at')");
	char *ann_mac = scalar(signed_port, ann,
			       "SELECT current_setting('fasterpg.claims_mac')");
	ck_assert_uint_eq(strlen(ann_mac), 64);
	const char *macs[] = {"", ann_mac,
			      "00000000000000000000000000000000"
			      "00000000000000000000000000000000"};
	for (int i = 0; i < 3; i++) {
		sql = forge_sql(forged, ann_at, macs[i], "signed_notes");
		struct http_resp *r = sql_with(signed_port, ann, sql);
		ck_assert_msg(r->status == 403 && strstr(r->body, "42501"),
			      "mac %d: %ld %s", i, r->status, r->body);
		http_resp_free(r);
		free(sql);
	}
	/* The claims, time and MAC of reader's request, replayed by
	 * webraw: bound to the login they were made for. */
	char *reader_c = claims_of("reader", "ann", 60, 0);
	char *reader = sign(hmac_key, "HS256", NULL, reader_c);
	char *r_claims = scalar(signed_port, reader,
				"SELECT current_setting('request.jwt.claims')");
	char *r_at = scalar(signed_port, reader,
			    "SELECT current_setting('fasterpg.claims_at')");
	char *r_mac = scalar(signed_port, reader,
			     "SELECT current_setting('fasterpg.claims_mac')");
	s = scalar(signed_port, reader, rows); /* reader's own: fine */
	ck_assert_str_eq(s, "s1,s2");
	free(s);
	sql = forge_sql(r_claims, r_at, r_mac, "signed_notes");
	struct http_resp *r = sql_with(signed_port, ben, sql);
	ck_assert_msg(r->status == 403 && strstr(r->body, "42501"), "%ld %s",
		      r->status, r->body);
	http_resp_free(r);
	free(sql);
	/* A named query reads them as well. */
	char auth[2048];
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", ben);
	const char *headers[] = {auth, NULL};
	r = http_request(signed_port, "POST", "/q/whoami",
			 "{\"expect\":\"scalar\"}", headers);
	ck_assert_msg(r->status == 200 && strstr(r->body, "webraw ben"),
		      "%ld %s", r->status, r->body);
	http_resp_free(r);
	free(r_claims), free(r_at), free(r_mac), free(reader), free(reader_c);
	free(ann_at), free(ann_mac), free(forged);
	free(ann), free(ann_c), free(ben), free(ben_c);
}
END_TEST

/* A token verified before (and so remembered) still expires. */
START_TEST(remembered_tokens_expire)
{
	char *c = claims_of("reader", "ann", -4, 0); /* leeway 5: 1 s left */
	char *t = sign(ec_key, "ES256", "e1", c);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(status_of(port, t, "SELECT 1"), 200);
	usleep(1500 * 1000);
	expect_refusal(port, t, 401, "token_expired", "remembered, expired");
	free(t), free(c);
}
END_TEST

/* Without a statement cache the claims statement is parsed each time. */
START_TEST(claims_without_statement_cache)
{
	struct fpg_options o;
	unsigned p;
	it_options(&o);
	jwt_server(&o);
	o.statement_cache = 0;
	o.threads = 1;
	struct fpg_server *srv = it_server_start(&o, &p);
	char *c = claims_of("reader", "fay", 60, 0);
	char *t = sign(hmac_key, "HS256", NULL, c);
	for (int i = 0; i < 3; i++) {
		char *s = scalar(p, t,
				 "SELECT current_setting('request.jwt.claim.sub')");
		ck_assert_str_eq(s, "fay");
		free(s);
		ck_assert_int_eq(status_of(p, t, "VACUUM pg_class"), 200);
	}
	free(t), free(c);
	fpg_server_free(srv);
}
END_TEST

static const struct test_case cases[] = {
    TEST_CASE(valid_tokens_run_as_their_role),
    TEST_CASE(bad_tokens_are_refused),
    TEST_CASE(pem_key_and_claim_path),
    TEST_CASE(claims_reach_named_queries),
    TEST_CASE(jwks_file_reload),
    TEST_CASE(jwks_url_rotation),
    TEST_CASE(configuration_is_checked),
    TEST_CASE(algorithm_allow_list),
    TEST_CASE(signed_claims_cannot_be_forged),
    TEST_CASE(remembered_tokens_expire),
    TEST_CASE(claims_without_statement_cache),
    {0},
};

static const struct it_server servers[] = {
    {&port, jwt_server},
    {&pem_port, pem_server},
    {&url_port, url_server},
    {&signed_port, signed_server},
    {0},
};

const struct it_program it_program = {
    .name = "jwt",
    .cases = cases,
    .servers = servers,
    .setup = setup,
};
