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

/* A new P-256 key in key_file and a certificate of it, self-signed, for
 * 127.0.0.1 and localhost, in each of the cert_files (NULL ends). */
static void make_pair(const char *cn, long serial, const char *key_file,
		      const char *const *cert_files)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	ck_assert_ptr_nonnull(key);
	X509 *x = X509_new();
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, key);
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
				   (const unsigned char *)cn, -1, -1, 0);
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
	for (; *cert_files; cert_files++) {
		FILE *f = fopen(*cert_files, "w");
		ck_assert_ptr_nonnull(f);
		ck_assert(PEM_write_X509(f, x));
		fclose(f);
	}
	write_key(key_file, key);
	X509_free(x);
	EVP_PKEY_free(key);
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
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
	snprintf(not_pem_path, sizeof(not_pem_path), "%s/not.pem", dir);
	make_pair("127.0.0.1", 1, key_path,
		  (const char *const[]){cert_path, NULL});
	EVP_PKEY *other = EVP_EC_gen("P-256");
	ck_assert_ptr_nonnull(other);
	write_key(other_key_path, other);
	EVP_PKEY_free(other);
	write_text(not_pem_path, "not a certificate\n");
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

/* ---- reload (SIGHUP) ---- */

/* The pair the server is given (rewritten under it); two pairs to put
 * there, A (the first) and B (the one that replaces it), whose
 * certificates are also what clients trust. */
static char live_cert[128], live_key[128], ca_a[128], ca_b[128], key_a[128],
	key_b[128];

static void copy_file(const char *from, const char *to)
{
	char buf[8192];
	FILE *in = fopen(from, "r"), *out = fopen(to, "w");
	ck_assert(in && out);
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		ck_assert_uint_eq(fwrite(buf, 1, n, out), n);
	fclose(in);
	fclose(out);
}

/* cert and key become the server's files (not yet what it serves). */
static void put_pair(const char *cert, const char *key)
{
	copy_file(cert, live_cert);
	copy_file(key, live_key);
}

static void make_reload_files(void)
{
	make_certificate();
	snprintf(live_cert, sizeof(live_cert), "%s/live-cert.pem", dir);
	snprintf(live_key, sizeof(live_key), "%s/live-key.pem", dir);
	snprintf(ca_a, sizeof(ca_a), "%s/ca-a.pem", dir);
	snprintf(ca_b, sizeof(ca_b), "%s/ca-b.pem", dir);
	snprintf(key_a, sizeof(key_a), "%s/key-a.pem", dir);
	snprintf(key_b, sizeof(key_b), "%s/key-b.pem", dir);
	make_pair("fasterpg A", 10, key_a, (const char *const[]){ca_a, NULL});
	make_pair("fasterpg B", 11, key_b, (const char *const[]){ca_b, NULL});
	put_pair(ca_a, key_a);
}

/* A handle whose connections trust only ca. */
static CURL *client_trusting(const char *ca)
{
	CURL *c = curl_easy_init();
	ck_assert_ptr_nonnull(c);
	curl_easy_setopt(c, CURLOPT_CAINFO, ca);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
	return c;
}

/* path on c's connection (a new one when it has none); the status, or
 * -1 with *code (may be NULL) saying why the transfer failed. */
static long perform(CURL *c, unsigned port, const char *path,
		    const char *json, CURLcode *code)
{
	char url[200], body[4096];
	snprintf(url, sizeof(url), "https://127.0.0.1:%u%s", port, path);
	struct curl_slist *h =
		curl_slist_append(NULL, "Content-Type: application/json");
	body[0] = '\0';
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
	curl_easy_setopt(c, CURLOPT_HTTPGET, json ? 0L : 1L);
	long status = -1;
	CURLcode rc = curl_easy_perform(c);
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (code)
		*code = rc;
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(h);
	return status;
}

/* GET /healthz on a new connection that trusts only ca. */
static long fresh_get(unsigned port, const char *ca, CURLcode *code)
{
	CURL *c = client_trusting(ca);
	long status = perform(c, port, "/healthz", NULL, code);
	curl_easy_cleanup(c);
	return status;
}

/* Every new connection, whichever worker takes it (8 tries for 2),
 * is served the certificate of good and not the one of bad. */
static void serves(unsigned port, const char *good, const char *bad)
{
	for (int i = 0; i < 8; i++) {
		CURLcode code = CURLE_OK;
		ck_assert_int_eq(fresh_get(port, good, &code), 200);
		ck_assert_int_eq(fresh_get(port, bad, &code), -1);
		ck_assert_msg(code == CURLE_PEER_FAILED_VERIFICATION,
			      "curl: %s", curl_easy_strerror(code));
	}
}

/*
 * A reload reaches each worker at its next loop turn, not before the
 * call returns: a handshake that worker runs in the turn under way still
 * gets the pair before (valgrind makes that window wide). So first wait,
 * up to 10 s, for new connections to be served the certificate of good
 * 8 times in a row; then serves() holds them to it, every time.
 */
static void settle(unsigned port, const char *good)
{
	int in_row = 0;
	for (int i = 0; i < 1000 && in_row < 8; i++) {
		if (fresh_get(port, good, NULL) == 200) {
			in_row++;
			continue;
		}
		in_row = 0;
		usleep(10 * 1000);
	}
	ck_assert_msg(in_row == 8, "the new certificate is not served");
}

/* An open connection (opened before a reload) still answers, on the
 * same connection: one that trusts only the old certificate. */
static void still_serves(CURL *old, unsigned port)
{
	CURLcode code = CURLE_OK;
	long status = perform(old, port, "/query",
			      "{\"sql\":\"SELECT 41 + 1\",\"expect\":\"scalar\"}",
			      &code);
	ck_assert_msg(status == 200, "%ld: %s", status,
		      curl_easy_strerror(code));
	long connects = -1;
	curl_easy_getinfo(old, CURLINFO_NUM_CONNECTS, &connects);
	ck_assert_int_eq(connects, 0);
}

/* The server's log: stderr (fd 2) goes to a file until capture_end(). */
struct capture {
	int saved;
	char path[64];
};

static void capture_start(struct capture *c)
{
	snprintf(c->path, sizeof(c->path), "/tmp/fpg_tls_log_XXXXXX");
	int fd = mkstemp(c->path);
	ck_assert_int_ge(fd, 0);
	fflush(stderr);
	c->saved = dup(2);
	dup2(fd, 2);
	close(fd);
}

/* Restores stderr; returns what was logged (caller frees). */
static char *capture_end(struct capture *c)
{
	fflush(stderr);
	dup2(c->saved, 2);
	close(c->saved);
	struct it_buf b = {0};
	FILE *f = fopen(c->path, "r");
	char chunk[4096];
	size_t n;
	while (f && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		it_buf_put(&b, chunk, n);
	if (f)
		fclose(f);
	unlink(c->path);
	it_buf_put(&b, "", 0);
	return b.data;
}

/*
 * SIGHUP (fpg_server_reload) reads the pair again: new connections get
 * the new certificate, a connection opened before keeps working.
 */
START_TEST(reload_serves_the_new_certificate)
{
	make_reload_files();
	struct fpg_options o;
	unsigned p;
	it_options(&o);
	o.tls_cert = live_cert;
	o.tls_key = live_key;
	struct fpg_server *srv = it_server_start(&o, &p);
	CURL *old = client_trusting(ca_a);
	ck_assert_int_eq(perform(old, p, "/healthz", NULL, NULL), 200);
	ck_assert_int_eq(fresh_get(p, ca_a, NULL), 200);
	put_pair(ca_b, key_b);
	struct fpg_error err = {0};
	ck_assert_msg(fpg_server_reload(srv, &err), "%s", err.message);
	settle(p, ca_b);
	serves(p, ca_b, ca_a);
	still_serves(old, p);
	/* And back: every reload takes what the files hold now. */
	put_pair(ca_a, key_a);
	ck_assert_msg(fpg_server_reload(srv, &err), "%s", err.message);
	settle(p, ca_a);
	serves(p, ca_a, ca_b);
	still_serves(old, p);
	curl_easy_cleanup(old);
	fpg_server_free(srv);
}
END_TEST

/*
 * A pair that does not load is refused with an error in the log (which
 * shows no key), and the old certificate keeps serving: new connections
 * and open ones.
 */
START_TEST(bad_reload_keeps_the_certificate)
{
	make_reload_files();
	struct fpg_options o;
	unsigned p;
	it_options(&o);
	o.tls_cert = live_cert;
	o.tls_key = live_key;
	struct fpg_server *srv = it_server_start(&o, &p);
	CURL *old = client_trusting(ca_a);
	ck_assert_int_eq(perform(old, p, "/healthz", NULL, NULL), 200);
	/* A line of A's key, which no log may show. */
	char key_line[128] = "";
	FILE *f = fopen(key_a, "r");
	ck_assert(f && fgets(key_line, sizeof(key_line), f) &&
		  fgets(key_line, sizeof(key_line), f));
	fclose(f);
	key_line[strcspn(key_line, "\n")] = '\0';
	ck_assert_uint_gt(strlen(key_line), 20);
	static const char broken_cert[] = "-----BEGIN CERTIFICATE-----\n"
					  "bm90IGEgY2VydGlmaWNhdGU=\n"
					  "-----END CERTIFICATE-----\n";
	static const char broken_key[] = "-----BEGIN PRIVATE KEY-----\n"
					 "bm90IGEga2V5\n"
					 "-----END PRIVATE KEY-----\n";
	for (int i = 0; i < 6; i++) {
		put_pair(ca_a, key_a);
		const char *what[] = {
		    "a key that does not fit", "a certificate that is not PEM",
		    "no certificate file", "a key that is not PEM",
		    "a broken certificate", "a broken key",
		};
		if (i == 0)
			copy_file(other_key_path, live_key);
		else if (i == 1)
			copy_file(not_pem_path, live_cert);
		else if (i == 2)
			ck_assert_int_eq(unlink(live_cert), 0);
		else if (i == 3)
			copy_file(not_pem_path, live_key);
		else if (i == 4)
			write_text(live_cert, broken_cert);
		else
			write_text(live_key, broken_key);
		struct fpg_error err = {0};
		struct capture cap;
		capture_start(&cap);
		bool ok = fpg_server_reload(srv, &err);
		char *log = capture_end(&cap);
		ck_assert_msg(!ok, "%s: reloaded", what[i]);
		ck_assert_msg(strstr(err.message, "tls"), "%s: %s", what[i],
			      err.message);
		ck_assert_msg(strstr(log, "error") && strstr(log, err.message),
			      "%s: the log says: %s", what[i], log);
		ck_assert_msg(!strstr(log, key_line) &&
				      !strstr(log, "PRIVATE KEY"),
			      "%s: the log shows the key: %s", what[i], log);
		free(log);
		serves(p, ca_a, ca_b);
		still_serves(old, p);
	}
	/* The next good pair is taken as usual. */
	put_pair(ca_b, key_b);
	struct fpg_error err = {0};
	ck_assert_msg(fpg_server_reload(srv, &err), "%s", err.message);
	settle(p, ca_b);
	serves(p, ca_b, ca_a);
	still_serves(old, p);
	curl_easy_cleanup(old);
	fpg_server_free(srv);
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
	const char *more[] = {live_cert, live_key, ca_a, ca_b, key_a, key_b};
	for (size_t i = 0; i < sizeof(more) / sizeof(*more); i++)
		if (more[i][0])
			unlink(more[i]);
	rmdir(dir);
}

static const struct test_case cases[] = {
    TEST_CASE(https_round_trip),
    TEST_CASE(bad_tls_options_stop_the_start),
    TEST_CASE(reload_serves_the_new_certificate),
    TEST_CASE(bad_reload_keeps_the_certificate),
    {0},
};

const struct it_program it_program = {
    .name = "tls",
    .cases = cases,
};
