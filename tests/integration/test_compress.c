/*
 * Compressed answers: a client that sends Accept-Encoding gets gzip or
 * zstd (Content-Encoding, Vary), and what it decodes is byte for byte the
 * answer another client gets without it: a whole JSON answer, a streamed
 * NDJSON one, a COPY out. Small answers and HEAD stay as they are; a
 * request body with a Content-Encoding the route does not take is 415.
 */
#include <zlib.h>
#include <zstd.h>

#include "it_common.h"

static unsigned port;

static char *decode(const char *enc, const char *in, size_t len, size_t *n)
{
	size_t cap = 64 * 1024 * 1024;
	char *out = malloc(cap);
	ck_assert_ptr_nonnull(out);
	if (strcmp(enc, "gzip") == 0) {
		z_stream z = {0};
		ck_assert_int_eq(inflateInit2(&z, 16 + MAX_WBITS), Z_OK);
		z.next_in = (Bytef *)(uintptr_t)in;
		z.avail_in = (uInt)len;
		z.next_out = (Bytef *)out;
		z.avail_out = (uInt)cap;
		ck_assert_int_eq(inflate(&z, Z_FINISH), Z_STREAM_END);
		*n = cap - z.avail_out;
		inflateEnd(&z);
	} else {
		ck_assert_str_eq(enc, "zstd");
		ZSTD_DStream *d = ZSTD_createDStream();
		ZSTD_inBuffer src = {in, len, 0};
		ZSTD_outBuffer dst = {out, cap, 0};
		size_t rc;
		do
			rc = ZSTD_decompressStream(d, &dst, &src);
		while (!ZSTD_isError(rc) && rc != 0 && src.pos < src.size);
		ck_assert_msg(rc == 0, "zstd: %zu", rc);
		*n = dst.pos;
		ZSTD_freeDStream(d);
	}
	return out;
}

/* method path body, with extra headers: the answer. */
static struct http_resp *ask(const char *method, const char *path,
			     const char *body, const char *h1, const char *h2)
{
	const char *headers[3] = {NULL, NULL, NULL};
	int n = 0;
	if (h1)
		headers[n++] = h1;
	if (h2)
		headers[n++] = h2;
	return http_request(port, method, path, body, headers);
}

/* The plain answer and the one in enc decode to the same bytes. */
static void same_answer(const char *method, const char *path,
			const char *body, const char *accept, const char *enc)
{
	char ae[64];
	snprintf(ae, sizeof(ae), "Accept-Encoding: %s", enc);
	struct http_resp *plain = ask(method, path, body, accept, NULL);
	struct http_resp *packed = ask(method, path, body, accept, ae);
	ck_assert_msg(plain->status == 200 && packed->status == 200,
		      "%ld %ld %.200s", plain->status, packed->status,
		      plain->body);
	char *ce = http_header(packed, "Content-Encoding");
	ck_assert_msg(ce && strcmp(ce, enc) == 0, "%s: Content-Encoding %s",
		      path, ce ? ce : "none");
	free(ce);
	char *vary = http_header(packed, "Vary");
	ck_assert_ptr_nonnull(vary);
	ck_assert_ptr_nonnull(strcasestr(vary, "Accept-Encoding"));
	free(vary);
	ck_assert_ptr_null(http_header(plain, "Content-Encoding"));
	size_t n;
	char *got = decode(enc, packed->body, packed->body_len, &n);
	ck_assert_uint_eq(n, plain->body_len);
	ck_assert(memcmp(got, plain->body, n) == 0);
	ck_assert_uint_lt(packed->body_len, plain->body_len);
	free(got);
	http_resp_free(plain);
	http_resp_free(packed);
}

START_TEST(answers_decode_to_the_same_bytes)
{
	int rows = 20000 + rand() % 20000;
	char *body = it_fmt("{\"sql\":\"SELECT g, md5(g::text) AS h, now() - "
			    "now() AS z FROM generate_series(1, %d) g\"}",
			    rows);
	const char *encs[] = {"gzip", "zstd"};
	for (int i = 0; i < 2; i++) {
		same_answer("POST", "/query", body, NULL, encs[i]);
		same_answer("POST", "/query", body,
			    "Accept: application/x-ndjson", encs[i]);
		same_answer("POST", "/query?stream=true", body, NULL, encs[i]);
		char *copy = it_fmt("/copy?query=SELECT%%20g%%20FROM%%20"
				    "generate_series(1,%d)%%20g",
				    rows);
		same_answer("GET", copy, NULL, "X-Requested-With: t", encs[i]);
		free(copy);
	}
	free(body);
}
END_TEST

START_TEST(small_answers_and_refusals_stay_plain)
{
	struct http_resp *r = ask("POST", "/query", "{\"sql\":\"SELECT 1\"}",
				  "Accept-Encoding: gzip, zstd", NULL);
	ck_assert_int_eq(r->status, 200);
	ck_assert_ptr_null(http_header(r, "Content-Encoding"));
	ck_assert_ptr_nonnull(strstr(r->body, "rows"));
	http_resp_free(r);
	r = ask("POST", "/query",
		"{\"sql\":\"SELECT repeat('x', 5000)\"}",
		"Accept-Encoding: gzip;q=0, zstd;q=0", NULL);
	ck_assert_int_eq(r->status, 200);
	ck_assert_ptr_null(http_header(r, "Content-Encoding"));
	http_resp_free(r);
	/* A body sent compressed to a route that takes it as it is. */
	r = ask("POST", "/query", "{\"sql\":\"SELECT 1\"}",
		"Content-Encoding: gzip", NULL);
	ck_assert_msg(r->status == 415 &&
			      strstr(r->body, "unsupported_media_type"),
		      "%ld %s", r->status, r->body);
	http_resp_free(r);
	r = ask("POST", "/query", "{\"sql\":\"SELECT 1\"}",
		"Content-Encoding: identity", NULL);
	ck_assert_int_eq(r->status, 200);
	http_resp_free(r);
}
END_TEST

static const struct test_case cases[] = {
    TEST_CASE(answers_decode_to_the_same_bytes),
    TEST_CASE(small_answers_and_refusals_stay_plain),
    {0},
};

static const struct it_server servers[] = {{&port, NULL}, {0}};

const struct it_program it_program = {
    .name = "compress",
    .cases = cases,
    .servers = servers,
};
