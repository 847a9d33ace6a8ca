/*
 * libFuzzer target: the value encoder (fpg_encode_value in src/encode.c)
 * on arbitrary text for a type OID.
 *
 * Input: byte 0, then the text. Bit 7 of byte 0 set: the OID is the next
 * four bytes (little endian), usually unknown to the cache. Clear: the
 * OID is entry ((byte 0 & 0x3f) << 8 | byte 1) modulo the list of the
 * types the cache knows: every built-in one, found by asking the cache
 * for OIDs 1 to 16383, and the user-defined types added here (composites,
 * nested and self-referencing, arrays of them, a domain). Bit 6 of byte 0
 * is FPG_ENC_BIG_STRING.
 *
 * The encoder promises valid JSON for any text, so the output is parsed
 * with jansson. Two exceptions, both because the server guarantees the
 * input: text that is not valid UTF-8 (the connections use UTF8), and
 * types that contain json or jsonb, whose text is embedded as it is. The
 * output is written after a partly consumed prefix, so that the encoder's
 * roll-back of a value that does not parse is tested against a buffer
 * whose read offset is not 0.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "buf.h"
#include "encode.h"
#include "typecache.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* User-defined types, above the built-in range. */
enum {
	OID_INNER = 90001,
	OID_INNERARRAY,
	OID_OUTER,
	OID_DOMAIN,
	OID_DOMAINARRAY,
	OID_EMPTY,
	OID_SELF,
	OID_WITHJSON,
	OID_ENUM,
	OID_ENUMARRAY,
	OID_OUTERARRAY,
};

static struct fpg_typecache *tc;
static uint32_t *known;
static size_t nknown;

static void add_type(const struct fpg_type *t)
{
	struct fpg_error err;
	if (!fpg_typecache_add(tc, t, &err))
		abort();
}

/* The same shapes as tests/unit/test_encode.c, and a few more. */
static void add_user_types(void)
{
	static char a[] = "a", b[] = "b", c[] = "c", d[] = "d", x[] = "x",
		    y[] = "y", weird[] = "we\"ird\\\n", t[] = "t", me[] = "me",
		    j[] = "j", e[] = "e";
	static struct fpg_type_attr inner[] = {
	    {a, 23}, {b, 25}, {c, 1231}, {d, 16}};
	static struct fpg_type_attr outer[] = {
	    {x, OID_INNER}, {y, OID_INNERARRAY}, {weird, 25}, {t, 1184}};
	static struct fpg_type_attr self[] = {{me, OID_SELF}};
	static struct fpg_type_attr withjson[] = {
	    {j, 114}, {e, OID_ENUM}, {d, 1082}, {t, 1114}};
	const struct fpg_type types[] = {
	    {.oid = OID_INNER,
	     .kind = FPG_TYPE_COMPOSITE,
	     .name = "inner",
	     .nattrs = 4,
	     .attrs = inner},
	    {.oid = OID_INNERARRAY,
	     .kind = FPG_TYPE_ARRAY,
	     .name = "_inner",
	     .elem = OID_INNER,
	     .delim = ','},
	    {.oid = OID_OUTER,
	     .kind = FPG_TYPE_COMPOSITE,
	     .name = "outer",
	     .nattrs = 4,
	     .attrs = outer},
	    {.oid = OID_DOMAIN, .kind = FPG_TYPE_NUMBER, .name = "posint"},
	    {.oid = OID_DOMAINARRAY,
	     .kind = FPG_TYPE_ARRAY,
	     .name = "_posint",
	     .elem = OID_DOMAIN,
	     .delim = ','},
	    {.oid = OID_EMPTY, .kind = FPG_TYPE_COMPOSITE, .name = "empty"},
	    {.oid = OID_SELF,
	     .kind = FPG_TYPE_COMPOSITE,
	     .name = "self",
	     .nattrs = 1,
	     .attrs = self},
	    {.oid = OID_WITHJSON,
	     .kind = FPG_TYPE_COMPOSITE,
	     .name = "withjson",
	     .nattrs = 4,
	     .attrs = withjson},
	    {.oid = OID_ENUM, .kind = FPG_TYPE_STRING, .name = "mood"},
	    {.oid = OID_ENUMARRAY,
	     .kind = FPG_TYPE_ARRAY,
	     .name = "_mood",
	     .elem = OID_ENUM,
	     .delim = ','},
	    {.oid = OID_OUTERARRAY,
	     .kind = FPG_TYPE_ARRAY,
	     .name = "_outer",
	     .elem = OID_OUTER,
	     .delim = ','},
	};
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		add_type(&types[i]);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	tc = fpg_typecache_new();
	if (!tc)
		abort();
	add_user_types();
	known = malloc((16384 + 16) * sizeof(*known));
	if (!known)
		abort();
	for (uint32_t oid = 1; oid < 16384; oid++)
		if (fpg_typecache_get(tc, oid))
			known[nknown++] = oid;
	for (uint32_t oid = OID_INNER; oid <= OID_OUTERARRAY; oid++)
		known[nknown++] = oid;
	return 0;
}

/* json or jsonb anywhere inside (elements, attributes, recursively). */
static bool has_json(const struct fpg_type *t, int depth)
{
	if (!t || depth > 8)
		return false;
	switch (t->kind) {
	case FPG_TYPE_JSON:
		return true;
	case FPG_TYPE_ARRAY:
	case FPG_TYPE_VECTOR:
		return has_json(fpg_typecache_get(tc, t->elem), depth + 1);
	case FPG_TYPE_COMPOSITE:
		for (int i = 0; i < t->nattrs; i++)
			if (has_json(fpg_typecache_get(tc, t->attrs[i].type),
				     depth + 1))
				return true;
		return false;
	default:
		return false;
	}
}

/* RFC 3629 UTF-8: no overlong forms, no surrogates, at most U+10FFFF. */
static bool is_utf8(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned c = s[i], len, min;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			len = 2, min = 0x80, c &= 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			len = 3, min = 0x800, c &= 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			len = 4, min = 0x10000, c &= 0x07;
		else
			return false;
		if (n - i < len)
			return false;
		for (unsigned k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			c = c << 6 | (s[i + k] & 0x3f);
		}
		if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
			return false;
		i += len;
	}
	return true;
}

/* ---- a strict JSON syntax check, for when jansson gives up early ---- */

static const char *skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

static const char *scan_string(const char *p, const char *end)
{
	for (p++; p < end && *p != '"'; p++) {
		if ((unsigned char)*p < 0x20)
			return NULL;
		if (*p != '\\')
			continue;
		if (++p == end)
			return NULL;
		if (*p == 'u') {
			for (int i = 0; i < 4; i++)
				if (++p == end ||
				    !strchr("0123456789abcdefABCDEF", *p) ||
				    !*p)
					return NULL;
		} else if (!*p || !strchr("\"\\/bfnrt", *p)) {
			return NULL;
		}
	}
	return p < end ? p + 1 : NULL;
}

static const char *scan_digits(const char *p, const char *end)
{
	if (p == end || *p < '0' || *p > '9')
		return NULL;
	while (p < end && *p >= '0' && *p <= '9')
		p++;
	return p;
}

static const char *scan_number(const char *p, const char *end)
{
	if (p < end && *p == '-')
		p++;
	if (p < end && *p == '0')
		p++;
	else if (p == end || *p < '1' || *p > '9')
		return NULL;
	else
		p = scan_digits(p, end);
	if (p < end && *p == '.' && !(p = scan_digits(p + 1, end)))
		return NULL;
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		p = scan_digits(p, end);
	}
	return p;
}

static const char *scan_value(const char *p, const char *end, int depth)
{
	p = skip_ws(p, end);
	if (p == end || depth > 4096)
		return NULL;
	if (*p == '"')
		return scan_string(p, end);
	if (*p == '[' || *p == '{') {
		char close = *p == '[' ? ']' : '}';
		p = skip_ws(p + 1, end);
		if (p < end && *p == close)
			return p + 1;
		for (;;) {
			if (close == '}') {
				p = skip_ws(p, end);
				if (p == end || *p != '"' ||
				    !(p = scan_string(p, end)))
					return NULL;
				p = skip_ws(p, end);
				if (p == end || *p++ != ':')
					return NULL;
			}
			if (!(p = scan_value(p, end, depth + 1)))
				return NULL;
			p = skip_ws(p, end);
			if (p == end)
				return NULL;
			if (*p == close)
				return p + 1;
			if (*p++ != ',')
				return NULL;
		}
	}
	static const char *const words[] = {"true", "false", "null"};
	for (int i = 0; i < 3; i++) {
		size_t n = strlen(words[i]);
		if ((size_t)(end - p) >= n && memcmp(p, words[i], n) == 0)
			return p + n;
	}
	return scan_number(p, end);
}

static bool is_json(const char *s, size_t n)
{
	const char *end = s + n, *p = scan_value(s, end, 0);
	return p && skip_ws(p, end) == end;
}

/* ---- the target ---- */

static void report(const char *what, uint32_t oid, const char *text, size_t len,
		   const char *out, size_t outlen)
{
	fprintf(stderr, "fuzz_encode: %s\noid %u, text (%zu bytes): ", what,
		oid, len);
	for (size_t i = 0; i < len; i++)
		fprintf(stderr,
			text[i] >= 0x20 && text[i] < 0x7f ? "%c" : "\\x%02x",
			(unsigned char)text[i]);
	fprintf(stderr, "\noutput: %.*s\n", (int)outlen, out);
	abort();
}

/* Parses [out] with jansson; its only excuse is a number beyond double. */
static void check_json(uint32_t oid, const char *text, size_t len,
		       const char *out, size_t outlen)
{
	json_error_t jerr;
	json_t *v = json_loadb(out, outlen,
			       JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, &jerr);
	if (v) {
		json_decref(v);
		return;
	}
	if (json_error_code(&jerr) == json_error_numeric_overflow &&
	    is_json(out, outlen))
		return;
	fprintf(stderr, "jansson: %s at %d\n", jerr.text, jerr.position);
	report("invalid JSON", oid, text, len, out, outlen);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	uint32_t oid;
	size_t at;
	if (data[0] & 0x80) {
		if (size < 5)
			return 0;
		oid = (uint32_t)data[1] | (uint32_t)data[2] << 8 |
		      (uint32_t)data[3] << 16 | (uint32_t)data[4] << 24;
		at = 5;
	} else {
		oid = known[((size_t)(data[0] & 0x3f) << 8 | data[1]) % nknown];
		at = 2;
	}
	unsigned flags = data[0] & 0x40 ? FPG_ENC_BIG_STRING : 0;
	size_t len = size - at;
	char *text = malloc(len ? len : 1);
	if (!text)
		return 0;
	memcpy(text, data + at, len);

	struct fpg_buf out;
	fpg_buf_init(&out);
	fpg_buf_puts(&out, "ab[");
	fpg_buf_consume(&out, 2);
	fpg_encode_value(&out, tc, oid, text, len, flags);
	fpg_buf_putc(&out, ']');
	const char *o = out.data + out.off;
	size_t on = fpg_buf_pending(&out);
	if (out.failed)
		report("out of memory", oid, text, len, "", 0);
	if (on <= 2)
		report("no output", oid, text, len, o, on);
	if (is_utf8((const unsigned char *)text, len) &&
	    !has_json(fpg_typecache_get(tc, oid), 0))
		check_json(oid, text, len, o, on);

	/* The type name is a JSON string for any OID. */
	fpg_buf_reset(&out);
	fpg_encode_type_name(&out, tc, oid);
	if (out.failed || !is_json(out.data, out.len))
		report("bad type name", oid, text, len, out.data, out.len);

	fpg_buf_deinit(&out);
	free(text);
	return 0;
}
