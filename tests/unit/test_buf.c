/*
 * fpg_buf (src/buf.h): growth keeps every byte, the read offset, steal,
 * the sticky failure flag, and JSON string escaping byte by byte against
 * an oracle written from the header's promise (quote, backslash and the
 * short escapes, \u00XX for other control characters, every other byte
 * as is: UTF-8 checking is not the buffer's job), and hex digits against
 * printf's. Random data uses a seed
 * printed at start (FPG_TEST_SEED replays it).
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "buf.h"
#include "unit.h"

START_TEST(growth_keeps_every_byte)
{
	struct fpg_buf b;
	fpg_buf_init(&b);
	size_t cap = 1 << 20, n = 0;
	char *want = malloc(cap);
	ck_assert_ptr_nonnull(want);
	unsigned rs = unit_seed();
	while (n < cap - 70000) {
		size_t k = (size_t)rand_r(&rs) % 65536;
		char *piece = malloc(k + 1);
		ck_assert_ptr_nonnull(piece);
		for (size_t i = 0; i < k; i++)
			piece[i] = (char)rand_r(&rs);
		switch (rand_r(&rs) % 3) {
		case 0:
			fpg_buf_append(&b, piece, k);
			memcpy(want + n, piece, k);
			n += k;
			break;
		case 1:
			fpg_buf_putc(&b, piece[0]);
			want[n++] = piece[0];
			break;
		default:
			fpg_buf_printf(&b, "%zu-%s", k, "x");
			n += (size_t)sprintf(want + n, "%zu-%s", k, "x");
			break;
		}
		free(piece);
		ck_assert(!b.failed);
		ck_assert_uint_eq(b.len, n);
		ck_assert_uint_ge(b.cap, b.len);
		ck_assert_uint_eq(fpg_buf_pending(&b), n);
	}
	ck_assert_msg(memcmp(b.data, want, n) == 0, "bytes differ (seed %u)",
		      unit_seed());
	free(want);
	fpg_buf_deinit(&b);
}
END_TEST

START_TEST(printf_longer_than_the_room)
{
	struct fpg_buf b;
	fpg_buf_init(&b);
	fpg_buf_puts(&b, "ab");
	char big[10000];
	memset(big, 'q', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	fpg_buf_printf(&b, "<%s|%d>", big, -42);
	ck_assert(!b.failed);
	ck_assert_uint_eq(b.len, 2 + 1 + sizeof(big) - 1 + 5);
	ck_assert(memcmp(b.data, "ab<q", 4) == 0);
	ck_assert(memcmp(b.data + b.len - 5, "|-42>", 5) == 0);
	fpg_buf_deinit(&b);
}
END_TEST

START_TEST(consume_rewinds_and_steal_takes_the_rest)
{
	struct fpg_buf b;
	fpg_buf_init(&b);
	fpg_buf_puts(&b, "hello world");
	fpg_buf_consume(&b, 6);
	ck_assert_uint_eq(fpg_buf_pending(&b), 5);
	ck_assert(memcmp(b.data + b.off, "world", 5) == 0);
	fpg_buf_consume(&b, 5);
	ck_assert_uint_eq(b.off, 0);
	ck_assert_uint_eq(b.len, 0);
	fpg_buf_puts(&b, "abcdef");
	fpg_buf_consume(&b, 2);
	size_t n = 0;
	char *s = fpg_buf_steal(&b, &n);
	ck_assert_uint_eq(n, 4);
	ck_assert(memcmp(s, "cdef", 4) == 0);
	free(s);
	ck_assert_uint_eq(fpg_buf_pending(&b), 0);
	ck_assert_ptr_null(fpg_buf_steal(&b, &n));
	fpg_buf_puts(&b, "xyz");
	size_t cap = b.cap;
	fpg_buf_reset(&b);
	ck_assert_uint_eq(fpg_buf_pending(&b), 0);
	ck_assert_uint_eq(b.cap, cap);
	fpg_buf_deinit(&b);
}
END_TEST

START_TEST(failure_is_sticky_and_drops_bytes)
{
	struct fpg_buf b;
	fpg_buf_init(&b);
	fpg_buf_puts(&b, "ok");
	ck_assert(!fpg_buf_reserve(&b, SIZE_MAX));
	ck_assert(b.failed);
	ck_assert_uint_eq(b.len, 2);
	fpg_buf_append(&b, "more", 4);
	ck_assert(b.failed);
	ck_assert_uint_le(b.len, b.cap);
	fpg_buf_deinit(&b);
}
END_TEST

/* The escaping the header promises, written independently. */
static size_t oracle_escape(char *o, const unsigned char *s, size_t n)
{
	size_t k = 0;
	o[k++] = '"';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = s[i];
		const char *e = NULL;
		switch (c) {
		case '"': e = "\\\""; break;
		case '\\': e = "\\\\"; break;
		case '\b': e = "\\b"; break;
		case '\f': e = "\\f"; break;
		case '\n': e = "\\n"; break;
		case '\r': e = "\\r"; break;
		case '\t': e = "\\t"; break;
		default: break;
		}
		if (e)
			k += (size_t)sprintf(o + k, "%s", e);
		else if (c < 0x20)
			k += (size_t)sprintf(o + k, "\\u%04x", c);
		else
			o[k++] = (char)c;
	}
	o[k++] = '"';
	return k;
}

static void assert_escapes_like_oracle(const unsigned char *s, size_t n)
{
	struct fpg_buf b;
	fpg_buf_init(&b);
	fpg_buf_json_str(&b, (const char *)s, n);
	char *want = malloc(n * 6 + 2);
	ck_assert_ptr_nonnull(want);
	size_t wn = oracle_escape(want, s, n);
	ck_assert(!b.failed);
	ck_assert_msg(b.len == wn && memcmp(b.data, want, wn) == 0,
		      "escape of %zu bytes differs (seed %u): got %.*s want %.*s",
		      n, unit_seed(), (int)(b.len < 200 ? b.len : 200), b.data,
		      (int)(wn < 200 ? wn : 200), want);
	free(want);
	fpg_buf_deinit(&b);
}

START_TEST(json_str_every_byte)
{
	for (unsigned c = 0; c < 256; c++) {
		unsigned char s[3] = {'a', (unsigned char)c, 'z'};
		assert_escapes_like_oracle(s, sizeof(s));
	}
	/* Invalid UTF-8 is not the buffer's business: bytes go as is. */
	static const unsigned char bad[] = {0xff, 0xc3, 0x28, 0xe2, 0x82, 0x7f};
	assert_escapes_like_oracle(bad, sizeof(bad));
}
END_TEST

START_TEST(json_str_random_round_trips)
{
	unsigned rs = unit_seed();
	for (int r = 0; r < 300; r++) {
		/* Up to ~3 pieces of the buffer's 4096-byte step. */
		size_t n = (size_t)rand_r(&rs) % 13000;
		unsigned char *s = malloc(n + 1);
		ck_assert_ptr_nonnull(s);
		for (size_t i = 0; i < n; i++)
			s[i] = (unsigned char)(1 + rand_r(&rs) % 127);
		assert_escapes_like_oracle(s, n);
		/* ASCII without NUL: a JSON parser gives the bytes back. */
		struct fpg_buf b;
		fpg_buf_init(&b);
		fpg_buf_json_str(&b, (const char *)s, n);
		json_error_t e;
		json_t *j = json_loadb(b.data, b.len, JSON_DECODE_ANY, &e);
		ck_assert_msg(j && json_is_string(j), "not a JSON string: %s",
			      e.text);
		ck_assert_uint_eq(json_string_length(j), n);
		ck_assert(memcmp(json_string_value(j), s, n) == 0);
		json_decref(j);
		fpg_buf_deinit(&b);
		free(s);
	}
}
END_TEST

/* fpg_hex against printf's %02x, for random bytes of random lengths. */
START_TEST(hex_is_printf_s)
{
	for (int round = 0; round < 200; round++) {
		unsigned char in[64];
		size_t n = (size_t)(rand() % (int)sizeof(in));
		char want[2 * sizeof(in) + 1] = "", got[2 * sizeof(in) + 2];
		for (size_t i = 0; i < n; i++) {
			in[i] = (unsigned char)(rand() & 0xff);
			snprintf(want + 2 * i, 3, "%02x", in[i]);
		}
		memset(got, 'x', sizeof(got));
		fpg_hex(got, in, n);
		ck_assert_str_eq(got, want);
		ck_assert_int_eq(got[2 * n + 1], 'x'); /* nothing past the NUL */
	}
}
END_TEST

static const struct test_case cases[] = {
	TEST_CASE(growth_keeps_every_byte),
	TEST_CASE(printf_longer_than_the_room),
	TEST_CASE(consume_rewinds_and_steal_takes_the_rest),
	TEST_CASE(failure_is_sticky_and_drops_bytes),
	TEST_CASE(json_str_every_byte),
	TEST_CASE(json_str_random_round_trips),
	TEST_CASE(hex_is_printf_s),
	{0},
};

const struct unit_program unit_program = {
	.name = "buf",
	.cases = cases,
};
