/*
 * Unit tests for encode.c and typecache.c, no database: hand-written text
 * forms and the to_json() output PostgreSQL 15 gives for them (the pairs
 * were taken from a real server; tests/integration/test_encode_pg.c checks
 * the same rules against one). User-defined types are added with
 * fpg_typecache_add() or loaded from a PGresult built with libpq's
 * PQmakeEmptyPGresult()/PQsetvalue().
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <libpq-fe.h>

#include "buf.h"
#include "encode.h"
#include "typecache.h"
#include "unit.h"

enum {
	OID_BOOL = 16,
	OID_INT8 = 20,
	OID_INT2 = 21,
	OID_INT2VECTOR = 22,
	OID_INT4 = 23,
	OID_TEXT = 25,
	OID_OID = 26,
	OID_OIDVECTOR = 30,
	OID_JSON = 114,
	OID_BOX = 603,
	OID_FLOAT4 = 700,
	OID_FLOAT8 = 701,
	OID_BOOLARRAY = 1000,
	OID_INT2VECTORARRAY = 1006,
	OID_INT4ARRAY = 1007,
	OID_TEXTARRAY = 1009,
	OID_BOXARRAY = 1020,
	OID_INT8ARRAY = 1016,
	OID_DATE = 1082,
	OID_TIME = 1083,
	OID_TIMESTAMP = 1114,
	OID_TIMESTAMPARRAY = 1115,
	OID_TIMESTAMPTZ = 1184,
	OID_TIMESTAMPTZARRAY = 1185,
	OID_INTERVAL = 1186,
	OID_NUMERIC = 1700,
	OID_RECORD = 2249,
	OID_RECORDARRAY = 2287,
	OID_UUID = 2950,
	OID_JSONB = 3802,
	OID_JSONBARRAY = 3807,
	OID_INT4RANGE = 3904,
	/* user types added by add_user_types() */
	OID_INNER = 90001,
	OID_INNERARRAY = 90002,
	OID_OUTER = 90003,
	OID_DOMAIN = 90004,
	OID_DOMAINARRAY = 90005,
	OID_EMPTY = 90006,
	OID_SELF = 90007,
};

static struct fpg_typecache *tc;
static struct fpg_buf out;

static void setup(void)
{
	tc = fpg_typecache_new();
	ck_assert_ptr_nonnull(tc);
	fpg_buf_init(&out);
}

static void teardown(void)
{
	fpg_typecache_free(tc);
	fpg_buf_deinit(&out);
}

static const char *enc_flags(uint32_t oid, const char *text, unsigned flags)
{
	fpg_buf_reset(&out);
	fpg_encode_value(&out, tc, oid, text, strlen(text), flags);
	fpg_buf_putc(&out, '\0');
	ck_assert(!out.failed);
	return out.data;
}

static const char *enc(uint32_t oid, const char *text)
{
	return enc_flags(oid, text, 0);
}

#define EXPECT(oid, text, want) ck_assert_str_eq(enc(oid, text), want)

static void add(const struct fpg_type *t)
{
	struct fpg_error err = {0};
	ck_assert(fpg_typecache_add(tc, t, &err));
}

/*
 * inner(a int4, b text, c numeric[], d bool); outer(x inner, y inner[],
 * "we\"ird" text, t timestamptz); posint domain over int4 and its array.
 */
static void add_user_types(void)
{
	/* attr names are char * (the cache owns its copies) */
	static char a[] = "a", b[] = "b", c[] = "c", d[] = "d", x[] = "x",
		    y[] = "y", weird[] = "we\"ird", t[] = "t", me[] = "me";
	static struct fpg_type_attr inner_attrs[] = {
	    {a, OID_INT4},
	    {b, OID_TEXT},
	    {c, 1231 /* _numeric */},
	    {d, OID_BOOL},
	};
	static struct fpg_type_attr outer_attrs[] = {
	    {x, OID_INNER},
	    {y, OID_INNERARRAY},
	    {weird, OID_TEXT},
	    {t, OID_TIMESTAMPTZ},
	};
	static struct fpg_type_attr self_attrs[] = {
	    {me, OID_SELF},
	};
	const struct fpg_type types[] = {
	    {.oid = OID_INNER,
	     .kind = FPG_TYPE_COMPOSITE,
	     .name = "inner",
	     .nattrs = 4,
	     .attrs = inner_attrs},
	    {.oid = OID_INNERARRAY,
	     .kind = FPG_TYPE_ARRAY,
	     .name = "_inner",
	     .elem = OID_INNER,
	     .delim = ','},
	    {.oid = OID_OUTER,
	     .kind = FPG_TYPE_COMPOSITE,
	     .name = "outer",
	     .nattrs = 4,
	     .attrs = outer_attrs},
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
	     .attrs = self_attrs},
	};
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		add(&types[i]);
}

/* A tiny strict JSON checker: every encoder output must pass it. */
static const char *skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

static const char *json_value(const char *p, int depth);

static const char *json_string(const char *p)
{
	if (*p++ != '"')
		return NULL;
	while (*p != '"') {
		if ((unsigned char)*p < 0x20)
			return NULL;
		if (*p == '\\') {
			p++;
			if (*p == 'u') {
				for (int i = 1; i <= 4; i++)
					if (!strchr("0123456789abcdefABCDEF",
						    p[i]) ||
					    !p[i])
						return NULL;
				p += 4;
			} else if (!*p || !strchr("\"\\/bfnrt", *p)) {
				return NULL;
			}
		}
		p++;
	}
	return p + 1;
}

static const char *json_number(const char *p)
{
	if (*p == '-')
		p++;
	if (*p == '0')
		p++;
	else if (*p >= '1' && *p <= '9')
		while (*p >= '0' && *p <= '9')
			p++;
	else
		return NULL;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return NULL;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (*p < '0' || *p > '9')
			return NULL;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	return p;
}

static const char *json_value(const char *p, int depth)
{
	if (depth > 200)
		return NULL;
	p = skip_ws(p);
	if (*p == '"')
		return json_string(p);
	if (*p == '[' || *p == '{') {
		char close = *p == '[' ? ']' : '}';
		bool obj = *p == '{';
		p = skip_ws(p + 1);
		if (*p == close)
			return p + 1;
		for (;;) {
			if (obj) {
				if (!(p = json_string(skip_ws(p))))
					return NULL;
				p = skip_ws(p);
				if (*p++ != ':')
					return NULL;
			}
			if (!(p = json_value(p, depth + 1)))
				return NULL;
			p = skip_ws(p);
			if (*p == close)
				return p + 1;
			if (*p++ != ',')
				return NULL;
		}
	}
	if (!strncmp(p, "true", 4))
		return p + 4;
	if (!strncmp(p, "false", 5))
		return p + 5;
	if (!strncmp(p, "null", 4))
		return p + 4;
	return json_number(p);
}

static bool is_valid_json(const char *s)
{
	const char *p = json_value(s, 0);
	return p && *skip_ws(p) == '\0';
}

/* ------------------------------------------------------------------ */

START_TEST(numbers)
{
	EXPECT(OID_INT4, "42", "42");
	EXPECT(OID_INT4, "-2147483648", "-2147483648");
	EXPECT(OID_INT2, "0", "0");
	EXPECT(OID_INT8, "9223372036854775807", "9223372036854775807");
	EXPECT(OID_FLOAT8, "1e+300", "1e+300");
	EXPECT(OID_FLOAT8, "-0", "-0");
	EXPECT(OID_FLOAT4, "1.5e-07", "1.5e-07");
	EXPECT(OID_FLOAT8, "NaN", "\"NaN\"");
	EXPECT(OID_FLOAT8, "Infinity", "\"Infinity\"");
	EXPECT(OID_FLOAT8, "-Infinity", "\"-Infinity\"");
	EXPECT(OID_NUMERIC, "NaN", "\"NaN\"");
	EXPECT(OID_NUMERIC, "0.00000000000000000001", "0.00000000000000000001");
	EXPECT(OID_NUMERIC,
	       "12345678901234567890123456789012345678901234567890.123456789",
	       "12345678901234567890123456789012345678901234567890.123456789");
	/* oid is not in json_categorize_type()'s numeric list */
	EXPECT(OID_OID, "1259", "\"1259\"");
}
END_TEST

START_TEST(numbers_not_json)
{
	/* IsValidJsonNumber() rejects all of these: strings instead. */
	static const char *const bad[] = {
	    "",	   "-",	 "+1", "01",   ".5",  "1.",    "1e", "1e+",
	    "--1", " 1", "1 ", "0x1f", "1,5", "1.5.6", "١",  "1e5x",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char want[64];
		snprintf(want, sizeof(want), "\"%s\"", bad[i]);
		ck_assert_str_eq(enc(OID_NUMERIC, bad[i]), want);
	}
	EXPECT(OID_NUMERIC, "0e0", "0e0");
	EXPECT(OID_NUMERIC, "-0.0E-7", "-0.0E-7");
}
END_TEST

START_TEST(big_string)
{
	unsigned f = FPG_ENC_BIG_STRING;
	ck_assert_str_eq(enc_flags(OID_INT8, "1", f), "\"1\"");
	ck_assert_str_eq(enc_flags(OID_NUMERIC, "1.50", f), "\"1.50\"");
	ck_assert_str_eq(enc_flags(OID_INT4, "1", f), "1");
	ck_assert_str_eq(enc_flags(OID_FLOAT8, "1.5", f), "1.5");
	ck_assert_str_eq(enc_flags(OID_INT8ARRAY, "{1,NULL,-2}", f),
			 "[\"1\",null,\"-2\"]");
	add_user_types();
	ck_assert_str_eq(enc_flags(OID_INNER, "(1,x,{1.5},t)", f),
			 "{\"a\":1,\"b\":\"x\",\"c\":[\"1.5\"],\"d\":true}");
}
END_TEST

START_TEST(bools)
{
	EXPECT(OID_BOOL, "t", "true");
	EXPECT(OID_BOOL, "f", "false");
	EXPECT(OID_BOOL, "true", "\"true\"");
	EXPECT(OID_BOOL, "", "\"\"");
	EXPECT(OID_BOOLARRAY, "{t,f,NULL}", "[true,false,null]");
}
END_TEST

START_TEST(json_as_is)
{
	EXPECT(OID_JSON, " { \"a\" : [1, 2] } ", " { \"a\" : [1, 2] } ");
	EXPECT(OID_JSONB, "{\"a\": [1, 2]}", "{\"a\": [1, 2]}");
	EXPECT(OID_JSONB, "null", "null");
	EXPECT(OID_JSON, "", "\"\"");
	EXPECT(OID_JSONBARRAY,
	       "{\"{\\\"a\\\": 1}\",NULL,\"\\\"s\\\\\\\\\\\"\"}",
	       "[{\"a\": 1},null,\"s\\\\\"]");
}
END_TEST

START_TEST(strings)
{
	EXPECT(OID_TEXT, "plain", "\"plain\"");
	EXPECT(OID_TEXT, "", "\"\"");
	EXPECT(OID_TEXT, "q\"b\\", "\"q\\\"b\\\\\"");
	EXPECT(OID_TEXT, "\x01\x1f\x7f\t\n\r\b\f",
	       "\"\\u0001\\u001f\x7f\\t\\n\\r\\b\\f\"");
	EXPECT(OID_TEXT, "\xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf",
	       "\"\xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf\"");
	EXPECT(OID_UUID, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
	       "\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"");
	EXPECT(OID_INT4RANGE, "[1,10)", "\"[1,10)\"");
	EXPECT(OID_TIME, "24:00:00", "\"24:00:00\"");
	EXPECT(OID_INTERVAL, "1 day -01:00:00", "\"1 day -01:00:00\"");
	EXPECT(OID_BOX, "(1,1),(0,0)", "\"(1,1),(0,0)\"");
	/* anonymous records: no names or types in the text form */
	EXPECT(OID_RECORD, "(1,\"a b\",)", "\"(1,\\\"a b\\\",)\"");
	EXPECT(OID_RECORDARRAY, "{\"(1,a)\",NULL}", "[\"(1,a)\",null]");
	/* unknown types */
	EXPECT(123456, "x\"y", "\"x\\\"y\"");
}
END_TEST

START_TEST(dates)
{
	EXPECT(OID_DATE, "2024-02-29", "\"2024-02-29\"");
	EXPECT(OID_DATE, "0044-03-15 BC", "\"0044-03-15 BC\"");
	EXPECT(OID_DATE, "infinity", "\"infinity\"");
	EXPECT(OID_DATE, "5874897-12-31", "\"5874897-12-31\"");
}
END_TEST

START_TEST(timestamps)
{
	EXPECT(OID_TIMESTAMP, "2024-01-01 12:34:56.789",
	       "\"2024-01-01T12:34:56.789\"");
	EXPECT(OID_TIMESTAMP, "0044-03-15 12:00:00 BC",
	       "\"0044-03-15T12:00:00 BC\"");
	EXPECT(OID_TIMESTAMP, "294276-12-31 23:59:59.999999",
	       "\"294276-12-31T23:59:59.999999\"");
	EXPECT(OID_TIMESTAMP, "infinity", "\"infinity\"");
	EXPECT(OID_TIMESTAMP, "-infinity", "\"-infinity\"");
	EXPECT(OID_TIMESTAMPTZ, "2024-06-01 12:00:00+00",
	       "\"2024-06-01T12:00:00+00:00\"");
	EXPECT(OID_TIMESTAMPTZ, "2024-06-01 12:00:00.5-03",
	       "\"2024-06-01T12:00:00.5-03:00\"");
	EXPECT(OID_TIMESTAMPTZ, "2024-06-01 17:30:00+05:30",
	       "\"2024-06-01T17:30:00+05:30\"");
	EXPECT(OID_TIMESTAMPTZ, "1800-01-01 00:00:00-03:30:52",
	       "\"1800-01-01T00:00:00-03:30:52\"");
	EXPECT(OID_TIMESTAMPTZ, "0044-03-15 12:00:00+00 BC",
	       "\"0044-03-15T12:00:00+00:00 BC\"");
	EXPECT(OID_TIMESTAMPTZ, "-infinity", "\"-infinity\"");
	EXPECT(OID_TIMESTAMPTZARRAY,
	       "{\"2024-06-01 12:00:00+00\",NULL,infinity}",
	       "[\"2024-06-01T12:00:00+00:00\",null,\"infinity\"]");
	EXPECT(OID_TIMESTAMPARRAY, "{\"2024-01-01 00:00:00\"}",
	       "[\"2024-01-01T00:00:00\"]");
}
END_TEST

START_TEST(timestamps_malformed)
{
	/* Not the ISO form: written as given. */
	EXPECT(OID_TIMESTAMP, "2024-01-01", "\"2024-01-01\"");
	EXPECT(OID_TIMESTAMP, "2024-01-01T00:00:00", "\"2024-01-01T00:00:00\"");
	EXPECT(OID_TIMESTAMP, "2024-01-01 00:00:00+00",
	       "\"2024-01-01 00:00:00+00\"");
	EXPECT(OID_TIMESTAMPTZ, "2024-01-01 00:00:00",
	       "\"2024-01-01 00:00:00\"");
	EXPECT(OID_TIMESTAMPTZ, "2024-01-01 00:00:00+5",
	       "\"2024-01-01 00:00:00+5\"");
	EXPECT(OID_TIMESTAMPTZ, "2024-01-01 00:00:00.+05",
	       "\"2024-01-01 00:00:00.+05\"");
	EXPECT(OID_TIMESTAMPTZ, "Mon Jan 01 00:00:00 2024 PST",
	       "\"Mon Jan 01 00:00:00 2024 PST\"");
	EXPECT(OID_TIMESTAMPTZ, "24-01-01 00:00:00+00",
	       "\"24-01-01 00:00:00+00\"");
	EXPECT(OID_TIMESTAMPTZ, "", "\"\"");
	char longer[200];
	memset(longer, '1', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	memcpy(longer, "2024-01-01 00:00:00.", 20);
	const char *got = enc(OID_TIMESTAMP, longer);
	ck_assert(got[0] == '"' && strchr(got, ' '));
}
END_TEST

START_TEST(arrays)
{
	EXPECT(OID_INT4ARRAY, "{}", "[]");
	EXPECT(OID_INT4ARRAY, "{1,2,3}", "[1,2,3]");
	EXPECT(OID_INT4ARRAY, "{NULL,1,null}", "[null,1,null]");
	EXPECT(OID_INT4ARRAY, "{{1,2},{3,4}}", "[[1,2],[3,4]]");
	EXPECT(OID_INT4ARRAY, "{{{1},{2}},{{3},{NULL}}}",
	       "[[[1],[2]],[[3],[null]]]");
	EXPECT(OID_INT4ARRAY, "[2:3]={1,2}", "[1,2]");
	EXPECT(OID_INT4ARRAY, "[-5:-4][0:0]={{1},{2}}", "[[1],[2]]");
	EXPECT(OID_TEXTARRAY, "{a,\"b c\",\"NULL\",NULL,\"\"}",
	       "[\"a\",\"b c\",\"NULL\",null,\"\"]");
	EXPECT(OID_TEXTARRAY, "{\"q\\\"x\",\"b\\\\s\",\"{,}\"}",
	       "[\"q\\\"x\",\"b\\\\s\",\"{,}\"]");
	/* array_in() also takes backslashes outside quotes */
	EXPECT(OID_TEXTARRAY, "{a\\,b}", "[\"a,b\"]");
	EXPECT(OID_TEXTARRAY, "{\"\\u00e9\"}", "[\"u00e9\"]");
	EXPECT(OID_TEXTARRAY, "{\"\x01\"}", "[\"\\u0001\"]");
	EXPECT(OID_BOXARRAY, "{(1,1),(0,0);(2,2),(1,1);NULL}",
	       "[\"(1,1),(0,0)\",\"(2,2),(1,1)\",null]");
	EXPECT(1231 /* _numeric */, "{NaN,1.5,-Infinity}",
	       "[\"NaN\",1.5,\"-Infinity\"]");
}
END_TEST

START_TEST(arrays_malformed)
{
	static const char *const bad[] = {
	    "",	      "{",	 "}",	     "{1,2",   "{1,2}x",
	    "{1,,2}", "{,}",	 "{\"a}",    "{a\"b}", "[1:2]{1,2}",
	    "[1:2]",  "[x]={1}", "{{1},2}x", "{1}{2}", "{{{{{{{1}}}}}}}",
	    "{1\\}",  "x{1}",	 "{{1}",     "{a{b}}", "{\"a\"b}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct fpg_buf want;
		fpg_buf_init(&want);
		fpg_buf_json_str(&want, bad[i], strlen(bad[i]));
		fpg_buf_putc(&want, '\0');
		ck_assert_str_eq(enc(OID_INT4ARRAY, bad[i]), want.data);
		fpg_buf_deinit(&want);
	}
	/* Six dimensions are the most PostgreSQL makes. */
	EXPECT(OID_INT4ARRAY, "{{{{{{1}}}}}}", "[[[[[[1]]]]]]");
	/* A bad element is a string; the array around it survives. */
	EXPECT(OID_TIMESTAMPTZARRAY, "{x,\"2024-01-01 00:00:00+00\"}",
	       "[\"x\",\"2024-01-01T00:00:00+00:00\"]");
}
END_TEST

START_TEST(vectors)
{
	EXPECT(OID_INT2VECTOR, "1 2 3", "[1,2,3]");
	EXPECT(OID_INT2VECTOR, "", "[]");
	EXPECT(OID_OIDVECTOR, "1 2", "[\"1\",\"2\"]");
	EXPECT(OID_INT2VECTORARRAY, "{\"1 2\",3,NULL,\"\"}",
	       "[[1,2],[3],null,[]]");
	EXPECT(OID_INT2VECTOR, "1  2", "\"1  2\"");
	EXPECT(OID_INT2VECTOR, " 1", "\" 1\"");
	EXPECT(OID_INT2VECTOR, "1 ", "\"1 \"");
}
END_TEST

START_TEST(composites)
{
	add_user_types();
	EXPECT(OID_INNER, "(1,\"a b\",\"{1.5,NULL}\",t)",
	       "{\"a\":1,\"b\":\"a b\",\"c\":[1.5,null],\"d\":true}");
	EXPECT(OID_INNER, "(,,,)",
	       "{\"a\":null,\"b\":null,\"c\":null,\"d\":null}");
	EXPECT(OID_INNER, "(-1,\"\",{},f)",
	       "{\"a\":-1,\"b\":\"\",\"c\":[],\"d\":false}");
	/* record_out() doubles quotes and backslashes inside quotes */
	EXPECT(OID_INNER, "(2,\"q\"\"uo\\\\te,(x)\",,)",
	       "{\"a\":2,\"b\":\"q\\\"uo\\\\te,(x)\",\"c\":null,\"d\":null}");
	/* record_in() accepts quoting mid-field too */
	EXPECT(OID_INNER, "(3,ab\"c,d\"e,,)",
	       "{\"a\":3,\"b\":\"abc,de\",\"c\":null,\"d\":null}");
	EXPECT(
	    OID_OUTER,
	    "(\"(1,x,{2},t)\",\"{\"\"(2,\\\\\"\"y z\\\\\"\",{},f)\"\",NULL}\","
	    "w,\"2024-01-01 00:00:00+05:30\")",
	    "{\"x\":{\"a\":1,\"b\":\"x\",\"c\":[2],\"d\":true},"
	    "\"y\":[{\"a\":2,\"b\":\"y z\",\"c\":[],\"d\":false},null],"
	    "\"we\\\"ird\":\"w\",\"t\":\"2024-01-01T00:00:00+05:30\"}");
	EXPECT(OID_INNERARRAY,
	       "{\"(1,x,{},t)\",NULL,\"(,\\\"a\\\\\\\\b\\\",,)\"}",
	       "[{\"a\":1,\"b\":\"x\",\"c\":[],\"d\":true},null,"
	       "{\"a\":null,\"b\":\"a\\\\b\",\"c\":null,\"d\":null}]");
	EXPECT(OID_EMPTY, "()", "{}");
	EXPECT(OID_DOMAINARRAY, "[0:1]={1,NULL}", "[1,null]");
}
END_TEST

START_TEST(composites_malformed)
{
	add_user_types();
	static const char *const bad[] = {
	    "",
	    "(",
	    ")",
	    "(1,a,{},t",
	    "(1,a,{},t,x)",
	    "(1,a,{})",
	    "(1,a,{},t)x",
	    "1,a,{},t)",
	    "(\"1,a,{},t)",
	    "()",
	    "(1,a,{},t\\)",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct fpg_buf want;
		fpg_buf_init(&want);
		fpg_buf_json_str(&want, bad[i], strlen(bad[i]));
		fpg_buf_putc(&want, '\0');
		ck_assert_str_eq(enc(OID_INNER, bad[i]), want.data);
		fpg_buf_deinit(&want);
	}
	EXPECT(OID_EMPTY, "(1)", "\"(1)\"");
	EXPECT(OID_EMPTY, "(", "\"(\"");
	/* Fields that do not parse as their type are strings. */
	EXPECT(OID_INNER, "(x,a,notarray,maybe)",
	       "{\"a\":\"x\",\"b\":\"a\",\"c\":\"notarray\",\"d\":\"maybe\"}");
	/* A type that contains itself (impossible in PostgreSQL) ends. */
	const char *got = enc(OID_SELF, "(\"(\"\"(x)\"\")\")");
	ck_assert(is_valid_json(got));
}
END_TEST

START_TEST(type_names)
{
	add_user_types();
	fpg_buf_reset(&out);
	fpg_encode_type_name(&out, tc, OID_INT4);
	fpg_encode_type_name(&out, tc, OID_TEXTARRAY);
	fpg_encode_type_name(&out, tc, OID_OUTER);
	fpg_encode_type_name(&out, tc, 4242424);
	fpg_buf_putc(&out, '\0');
	ck_assert_str_eq(out.data, "\"int4\"\"_text\"\"outer\"\"4242424\"");
	ck_assert_str_eq(fpg_type_kind_to_str(FPG_TYPE_VECTOR), "vector");
}
END_TEST

START_TEST(cache_missing)
{
	uint32_t oids[] = {OID_INT4, 90100, OID_TEXT, 90100, 90101, 2249};
	uint32_t miss[8];
	ck_assert_uint_eq(fpg_typecache_missing(tc, oids, 6, miss, 8), 2);
	ck_assert_uint_eq(miss[0], 90100);
	ck_assert_uint_eq(miss[1], 90101);
	ck_assert_uint_eq(fpg_typecache_missing(tc, oids, 6, miss, 1), 1);
	/* Built-in row types (pg_class = 83) go through the lookup. */
	uint32_t pg_class = 83;
	ck_assert_uint_eq(fpg_typecache_missing(tc, &pg_class, 1, miss, 8), 1);
	const struct fpg_type *t = fpg_typecache_get(tc, OID_INT8);
	ck_assert_ptr_nonnull(t);
	ck_assert(t->big);
	ck_assert_int_eq(t->kind, FPG_TYPE_NUMBER);
	t = fpg_typecache_get(tc, OID_BOXARRAY);
	ck_assert_int_eq(t->delim, ';');
	ck_assert_uint_eq(t->elem, OID_BOX);
}
END_TEST

START_TEST(cache_grows)
{
	for (uint32_t oid = 100000; oid < 105000; oid++) {
		struct fpg_type t = {
		    .oid = oid, .kind = FPG_TYPE_NUMBER, .name = "n"};
		add(&t);
	}
	for (uint32_t oid = 100000; oid < 105000; oid++)
		ck_assert_uint_eq(fpg_typecache_get(tc, oid)->oid, oid);
	ck_assert_ptr_nonnull(fpg_typecache_get(tc, OID_INT4));
	ck_assert_ptr_null(fpg_typecache_get(tc, 99999));
}
END_TEST

/* Builds a result shaped like fpg_typecache_lookup_sql's. */
static PGresult *fake_lookup(const char *const rows[][9], int nrows)
{
	static const char *const names[9] = {
	    "oid",	"typname",     "typtype", "arr",      "typelem",
	    "typdelim", "typbasetype", "attname", "atttypid",
	};
	PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
	PGresAttDesc attrs[9];
	memset(attrs, 0, sizeof(attrs));
	for (int i = 0; i < 9; i++) {
		attrs[i].name = (char *)(uintptr_t)names[i];
		attrs[i].format = 0;
		attrs[i].typid = 25;
		attrs[i].typlen = -1;
		attrs[i].atttypmod = -1;
	}
	ck_assert(PQsetResultAttrs(res, 9, attrs));
	for (int r = 0; r < nrows; r++)
		for (int c = 0; c < 9; c++)
			ck_assert(PQsetvalue(
			    res, r, c, (char *)(uintptr_t)rows[r][c],
			    rows[r][c] ? (int)strlen(rows[r][c]) : -1));
	return res;
}

START_TEST(cache_load)
{
	static const char *const rows[][9] = {
	    /* composite pair(a int4, b mood[]) */
	    {"80001", "pair", "c", "", "0", NULL, "0", "a", "23"},
	    {"80001", "pair", "c", "", "0", NULL, "0", "b", "80003"},
	    {"80002", "mood", "e", "", "0", NULL, "0", NULL, NULL},
	    {"80003", "_mood", "b", "a", "80002", ",", "0", NULL, NULL},
	    /* domain over domain over int4, and the outer's array */
	    {"80004", "d1", "d", "", "0", NULL, "80005", NULL, NULL},
	    {"80005", "d2", "d", "", "0", NULL, "23", NULL, NULL},
	    {"80006", "_d1", "b", "a", "80004", ",", "0", NULL, NULL},
	    /* domain over the composite */
	    {"80007", "dpair", "d", "", "0", NULL, "80001", NULL, NULL},
	    /* domain over a type the result lacks */
	    {"80008", "dlost", "d", "", "0", NULL, "89999", NULL, NULL},
	    /* a composite with no live attributes */
	    {"80009", "nothing", "c", "", "0", NULL, "0", NULL, NULL},
	    {"80010", "vec", "b", "v", "23", ",", "0", NULL, NULL},
	};
	uint32_t req[] = {80001, 80006, 80007, 80008, 80009, 80010, 85555};
	PGresult *res = fake_lookup(rows, sizeof(rows) / sizeof(rows[0]));
	struct fpg_error err = {0};
	ck_assert(fpg_typecache_load(tc, res, req, 7, &err));
	PQclear(res);

	EXPECT(80001, "(1,\"{sad,\"\"very happy\"\"}\")",
	       "{\"a\":1,\"b\":[\"sad\",\"very happy\"]}");
	EXPECT(80006, "{1,NULL,3}", "[1,null,3]");
	EXPECT(80004, "7", "7");
	EXPECT(80007, "(,)", "{\"a\":null,\"b\":null}");
	EXPECT(80008, "7", "\"7\"");
	EXPECT(80009, "()", "{}");
	EXPECT(80010, "4 5", "[4,5]");
	EXPECT(85555, "x", "\"x\"");
	uint32_t miss[8];
	ck_assert_uint_eq(fpg_typecache_missing(tc, req, 7, miss, 8), 0);

	fpg_buf_reset(&out);
	fpg_encode_type_name(&out, tc, 80007);
	fpg_encode_type_name(&out, tc, 85555);
	fpg_buf_putc(&out, '\0');
	ck_assert_str_eq(out.data, "\"dpair\"\"85555\"");
}
END_TEST

START_TEST(cache_load_bad_result)
{
	PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_FATAL_ERROR);
	struct fpg_error err = {0};
	ck_assert(!fpg_typecache_load(tc, res, NULL, 0, &err));
	ck_assert_int_eq(err.code, FPG_ERR_PG);
	PQclear(res);
	ck_assert_ptr_nonnull(strstr(fpg_typecache_lookup_sql, "$1"));
}
END_TEST

/*
 * Random bytes (biased towards the syntax characters) as every kind of
 * type: must not crash (run under ASan) and must always be valid JSON.
 * json/jsonb are left out: their text is trusted as is (the server
 * validated it on input), so garbage in gives garbage out there.
 */
START_TEST(fuzz)
{
	add_user_types();
	static const uint32_t oids[] = {
	    OID_BOOL,
	    OID_INT4,
	    OID_NUMERIC,
	    OID_TEXT,
	    OID_DATE,
	    OID_TIMESTAMP,
	    OID_TIMESTAMPTZ,
	    OID_INT4ARRAY,
	    OID_TEXTARRAY,
	    OID_BOXARRAY,
	    OID_INT2VECTOR,
	    OID_INT2VECTORARRAY,
	    OID_TIMESTAMPTZARRAY,
	    OID_INNER,
	    OID_OUTER,
	    OID_INNERARRAY,
	    OID_EMPTY,
	    OID_SELF,
	    OID_DOMAINARRAY,
	};
	static const char alphabet[] = "{}()[]:=,;\"\\ NUL01239-+.eEt f:T";
	unsigned seed = unit_seed() + (unsigned)_i * 7919u;
	char text[64];
	for (int iter = 0; iter < 4000; iter++) {
		size_t n = (size_t)(rand_r(&seed) % (int)sizeof(text));
		for (size_t i = 0; i < n; i++) {
			int r = rand_r(&seed);
			text[i] = r % 8 ? alphabet[r % (sizeof(alphabet) - 1)]
					: (char)(0x20 + r % 0x5f);
		}
		for (size_t k = 0; k < sizeof(oids) / sizeof(oids[0]); k++) {
			fpg_buf_reset(&out);
			fpg_encode_value(&out, tc, oids[k], text, n, 0);
			fpg_buf_putc(&out, '\0');
			ck_assert_msg(is_valid_json(out.data),
				      "oid %u text %.*s -> %s", oids[k], (int)n,
				      text, out.data);
		}
	}
}
END_TEST

/* The rollback must hold when the buffer has consumed bytes in front. */
START_TEST(rollback_with_offset)
{
	fpg_buf_reset(&out);
	fpg_buf_puts(&out, "0123456789");
	fpg_buf_consume(&out, 7);
	const char bad[] = "{{1,2},{3}";
	fpg_encode_value(&out, tc, OID_INT4ARRAY, bad, strlen(bad), 0);
	fpg_buf_putc(&out, '\0');
	ck_assert_str_eq(out.data + out.off, "789\"{{1,2},{3}\"");
}
END_TEST

static const struct test_case cases[] = {
	TEST_CASE(numbers),
	TEST_CASE(numbers_not_json),
	TEST_CASE(big_string),
	TEST_CASE(bools),
	TEST_CASE(json_as_is),
	TEST_CASE(strings),
	TEST_CASE(dates),
	TEST_CASE(timestamps),
	TEST_CASE(timestamps_malformed),
	TEST_CASE(arrays),
	TEST_CASE(arrays_malformed),
	TEST_CASE(vectors),
	TEST_CASE(composites),
	TEST_CASE(composites_malformed),
	TEST_CASE(type_names),
	TEST_CASE(cache_missing),
	TEST_CASE(cache_grows),
	TEST_CASE(cache_load),
	TEST_CASE(cache_load_bad_result),
	TEST_CASE(rollback_with_offset),
	TEST_LOOP(fuzz, 4),
	{0},
};

const struct unit_program unit_program = {
	.name = "encode",
	.cases = cases,
	.before_each = setup,
	.after_each = teardown,
	/* fuzz takes seconds, more under sanitizers */
	.timeout_s = 60,
};
