/*
 * Answer compression (src/compress.h): which encoding an Accept-Encoding
 * value gets (q values, "*", case), and that what the compressor makes
 * decodes with zlib and libzstd themselves to exactly the bytes fed, fed
 * in random pieces with flushes between (a flushed prefix decodes on its
 * own, as a client reading a stream needs). The seed is printed
 * (FPG_TEST_SEED replays it).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>
#include <zstd.h>

#include "compress.h"
#include "unit.h"

START_TEST(choose_reads_accept_encoding)
{
	static const struct {
		const char *header;
		enum fpg_encoding want;
	} cases[] = {
		{NULL, FPG_ENCODING_IDENTITY},
		{"", FPG_ENCODING_IDENTITY},
		{"identity", FPG_ENCODING_IDENTITY},
		{"gzip", FPG_ENCODING_GZIP},
		{"GZip", FPG_ENCODING_GZIP},
		{"deflate, gzip;q=0.5", FPG_ENCODING_GZIP},
		{"gzip, zstd", FPG_ENCODING_ZSTD},
		{"zstd;q=0.4, gzip;q=0.9", FPG_ENCODING_GZIP},
		{"gzip;q=0", FPG_ENCODING_IDENTITY},
		{"gzip; q=0.0, br", FPG_ENCODING_IDENTITY},
		{"*", FPG_ENCODING_ZSTD},
		{"*;q=0.5, zstd;q=0", FPG_ENCODING_GZIP},
		{"br, deflate", FPG_ENCODING_IDENTITY},
		{"gzipx, xgzip", FPG_ENCODING_IDENTITY},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++)
		ck_assert_msg(fpg_encoding_choose(cases[i].header) ==
				      cases[i].want,
			      "%s", cases[i].header ? cases[i].header : "NULL");
	ck_assert_str_eq(fpg_encoding_name(FPG_ENCODING_GZIP), "gzip");
	ck_assert_str_eq(fpg_encoding_name(FPG_ENCODING_ZSTD), "zstd");
	ck_assert_ptr_null(fpg_encoding_name(FPG_ENCODING_IDENTITY));
	ck_assert_ptr_null(fpg_compressor_new(FPG_ENCODING_IDENTITY));
}
END_TEST

/* Decodes all of in with zlib (gzip framing); *n its length. */
static char *gunzip(const char *in, size_t len, size_t cap, size_t *n,
		    bool whole)
{
	char *out = malloc(cap);
	z_stream z = {0};
	ck_assert_int_eq(inflateInit2(&z, 16 + MAX_WBITS), Z_OK);
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)len;
	z.next_out = (Bytef *)out;
	z.avail_out = (uInt)cap;
	int rc = inflate(&z, Z_SYNC_FLUSH);
	ck_assert_msg(whole ? rc == Z_STREAM_END : rc == Z_OK || rc == Z_BUF_ERROR,
		      "inflate: %d", rc);
	*n = cap - z.avail_out;
	inflateEnd(&z);
	return out;
}

static char *unzstd(const char *in, size_t len, size_t cap, size_t *n,
		    bool whole)
{
	char *out = malloc(cap);
	ZSTD_DStream *d = ZSTD_createDStream();
	ZSTD_inBuffer src = {in, len, 0};
	ZSTD_outBuffer dst = {out, cap, 0};
	size_t rc = ZSTD_decompressStream(d, &dst, &src);
	ck_assert_msg(!ZSTD_isError(rc), "zstd: %s", ZSTD_getErrorName(rc));
	ck_assert_uint_eq(src.pos, len);
	if (whole)
		ck_assert_uint_eq(rc, 0); /* the frame ended */
	*n = dst.pos;
	ZSTD_freeDStream(d);
	return out;
}

static void round_trip(enum fpg_encoding e)
{
	unsigned rs = unit_seed();
	size_t total = 200000 + (size_t)rand_r(&rs) % 300000;
	char *plain = malloc(total);
	/* Rows of a kind: compressible, with random bytes between. */
	for (size_t i = 0; i < total; i++)
		plain[i] = (i % 97 < 60) ? "{\"id\":1,\"name\":\"x\"}\n"[i % 20]
					 : (char)rand_r(&rs);
	struct fpg_compressor *c = fpg_compressor_new(e);
	ck_assert_ptr_nonnull(c);
	struct fpg_buf out;
	fpg_buf_init(&out);
	size_t fed = 0;
	while (fed < total) {
		size_t k = 1 + (size_t)rand_r(&rs) % 40000;
		if (k > total - fed)
			k = total - fed;
		bool flush = rand_r(&rs) % 3 == 0;
		ck_assert(fpg_compressor_feed(c, plain + fed, k, flush, false,
					      &out));
		fed += k;
		if (flush) {
			size_t n;
			char *got = e == FPG_ENCODING_GZIP
					    ? gunzip(out.data, out.len, total, &n,
						     false)
					    : unzstd(out.data, out.len, total, &n,
						     false);
			ck_assert_uint_eq(n, fed);
			ck_assert(memcmp(got, plain, n) == 0);
			free(got);
		}
	}
	ck_assert(fpg_compressor_feed(c, NULL, 0, false, true, &out));
	ck_assert(!out.failed);
	ck_assert_uint_lt(out.len, total); /* it did compress */
	size_t n;
	char *got = e == FPG_ENCODING_GZIP
			    ? gunzip(out.data, out.len, total + 1, &n, true)
			    : unzstd(out.data, out.len, total + 1, &n, true);
	ck_assert_uint_eq(n, total);
	ck_assert(memcmp(got, plain, total) == 0);
	free(got);
	fpg_buf_deinit(&out);
	fpg_compressor_free(c);
	free(plain);
}

START_TEST(gzip_round_trips)
{
	round_trip(FPG_ENCODING_GZIP);
}
END_TEST

START_TEST(zstd_round_trips)
{
	round_trip(FPG_ENCODING_ZSTD);
}
END_TEST

static const struct test_case cases[] = {
	TEST_CASE(choose_reads_accept_encoding),
	TEST_CASE(gzip_round_trips),
	TEST_CASE(zstd_round_trips),
	{0},
};

const struct unit_program unit_program = {
	.name = "compress",
	.cases = cases,
};
