/*
 * --tls-cert / --tls-key: HTTPS with a certificate the test makes (a
 * self-signed P-256 one for 127.0.0.1), verified by curl against it.
 */
#include <check.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "http.h"
#include "it.h"

static char dir[64], cert_path[128], key_path[128], other_key_path[128],
	not_pem_path[128];

static void write_key(const char *path, EVP_PKEY *key)
{
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL));
	fclose(f);
}

/* A self-signed certificate for 127.0.0.1 and localhost, and its key;
 * another key that does not fit it. */
static void make_certificate(void)
{
	if (dir[0])
		return;
	snprintf(dir, sizeof(dir), "/tmp/fpg_tls_XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(cert_path, sizeof(cert_path), "%s/cert.pem", dir);
	snprintf(key_path, sizeof(key_path), "%s/key.pem", dir);
	snprintf(other_key_path, sizeof(other_key_path), "%s/other.pem", dir);
	EVP_PKEY *key = EVP_EC_gen("P-256"), *other = EVP_EC_gen("P-256");
	ck_assert(key && other);
	X509 *x = X509_new();
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, key);
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
				   (const unsigned char *)"127.0.0.1", -1, -1,
				   0);
	X509_set_issuer_name(x, name);
	X509V3_CTX ctx;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	X509_EXTENSION *san = X509V3_EXT_conf_nid(NULL, &ctx,
						  NID_subject_alt_name,
						  "IP:127.0.0.1,DNS:localhost");
	ck_assert_ptr_nonnull(san);
	X509_add_ext(x, san, -1);
	X509_EXTENSION_free(san);
	ck_assert(X509_sign(x, key, EVP_sha256()));
	FILE *f = fopen(cert_path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert(PEM_write_X509(f, x));
	fclose(f);
	write_key(key_path, key);
	write_key(other_key_path, other);
	snprintf(not_pem_path, sizeof(not_pem_path), "%s/not.pem", dir);
	f = fopen(not_pem_path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("not a certificate\n", f);
	fclose(f);
	X509_free(x);
	EVP_PKEY_free(key);
	EVP_PKEY_free(other);
}

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
	strncat(ud, p, 4095 - strlen(ud) < size * n ? 4095 - strlen(ud)
						     : size * n);
	return size * n;
}

/* An HTTPS (or, with scheme "http", plain) request; the status, or -1
 * when the transfer failed. body gets the answer (4096 bytes). */
static long request(const char *scheme, unsigned port, const char *path,
		    const char *json, char *body)
{
	CURL *c = curl_easy_init();
	char url[200];
	snprintf(url, sizeof(url), "%s://127.0.0.1:%u%s", scheme, port, path);
	struct curl_slist *h =
		curl_slist_append(NULL, "Content-Type: application/json");
	body[0] = '\0';
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CAINFO, cert_path);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
	if (json)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
	long status = -1;
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return status;
}

START_TEST(https_round_trip)
{
	make_certificate();
	struct fpg_options o;
	unsigned p;
	it_options(&o);
	o.tls_cert = cert_path;
	o.tls_key = key_path;
	struct fpg_server *srv = it_server_start(&o, &p);
	char body[4096];
	ck_assert_int_eq(request("https", p, "/healthz", NULL, body), 200);
	for (int i = 0; i < 20; i++) {
		int a = rand() % 1000, b = rand() % 1000;
		char sql[128], want[64];
		snprintf(sql, sizeof(sql),
			 "{\"sql\":\"SELECT %d + %d\",\"expect\":\"scalar\"}", a,
			 b);
		snprintf(want, sizeof(want), "{\"value\":%d}", a + b);
		ck_assert_int_eq(request("https", p, "/query", sql, body), 200);
		ck_assert_msg(strstr(body, want), "%s: %s", want, body);
	}
	/* Plain HTTP to it gets no answer of ours. */
	long plain = request("http", p, "/healthz", NULL, body);
	ck_assert_msg(plain != 200, "plain HTTP answered %ld", plain);
	/* The server still serves HTTPS afterwards. */
	ck_assert_int_eq(request("https", p, "/healthz", NULL, body), 200);
	fpg_server_free(srv);
}
END_TEST

START_TEST(bad_tls_options_stop_the_start)
{
	make_certificate();
	struct {
		const char *cert, *key;
	} bad[] = {
	    {cert_path, NULL},
	    {NULL, key_path},
	    {cert_path, other_key_path}, /* does not fit */
	    {"/nonexistent/cert.pem", key_path},
	    {not_pem_path, key_path},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		struct fpg_options o;
		it_options(&o);
		o.tls_cert = bad[i].cert;
		o.tls_key = bad[i].key;
		struct fpg_error err = {0};
		struct fpg_server *srv = fpg_server_new(&o, &err);
		ck_assert_msg(!srv, "case %zu started", i);
		ck_assert_msg(strstr(err.message, "tls") ||
				      strstr(err.message, "TLS"),
			      "case %zu: %s", i, err.message);
	}
}
END_TEST

/* After the cases (the program's files go with it). */
__attribute__((destructor)) static void remove_files(void)
{
	if (!dir[0])
		return;
	unlink(cert_path);
	unlink(key_path);
	unlink(other_key_path);
	unlink(not_pem_path);
	rmdir(dir);
}

static const struct test_case cases[] = {
    TEST_CASE(https_round_trip),
    TEST_CASE(bad_tls_options_stop_the_start),
    {0},
};

const struct it_program it_program = {
    .name = "tls",
    .cases = cases,
};
