/*
 * Unit tests for rowfmt.c, no database: PGresults are built with libpq's
 * PQmakeEmptyPGresult()/PQsetResultAttrs()/PQsetvalue(), and values are
 * checked against what encode.c writes for them.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <jansson.h>
#include <libpq-fe.h>

#include "buf.h"
#include "encode.h"
#include "error.h"
#include "rowfmt.h"
#include "typecache.h"
#include "unit.h"

enum {
	OID_BOOL = 16,
	OID_BYTEA = 17,
	OID_INT8 = 20,
	OID_INT4 = 23,
	OID_TEXT = 25,
	OID_JSON = 114,
	OID_INT4ARRAY = 1007,
	OID_TEXTARRAY = 1009,
	OID_NUMERIC = 1700,
};

static struct fpg_typecache *tc;
static struct fpg_buf out;
static struct fpg_rowfmt fmt;

static void setup(void)
{
	tc = fpg_typecache_new();
	ck_assert_ptr_nonnull(tc);
	fpg_buf_init(&out);
}

static void teardown(void)
{
	fpg_rowfmt_deinit(&fmt);
	fpg_buf_deinit(&out);
	fpg_typecache_free(tc);
}

/* A result of n columns named by names with types; values set later. */
static PGresult *make_result(int n, const char *const *names,
			     const uint32_t *types)
{
	PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
	ck_assert_ptr_nonnull(res);
	PGresAttDesc attrs[16];
	ck_assert_int_le(n, 16);
	memset(attrs, 0, sizeof(attrs));
	for (int i = 0; i < n; i++) {
		attrs[i].name = (char *)(uintptr_t)names[i];
		attrs[i].typid = types[i];
		attrs[i].typlen = -1;
		attrs[i].atttypmod = -1;
	}
	ck_assert(PQsetResultAttrs(res, n, attrs));
	return res;
}

/* Sets row row of res; a NULL entry is SQL NULL. */
static void set_row(PGresult *res, int row, int n, const char *const *vals)
{
	for (int i = 0; i < n; i++)
		ck_assert(PQsetvalue(res, row, i, (char *)(uintptr_t)vals[i],
				     vals[i] ? (int)strlen(vals[i]) : -1));
}

static void start(enum fpg_rowfmt_format f, enum fpg_rows_shape shape,
		  enum fpg_expect expect, int n, const char *const *names,
		  const uint32_t *types)
{
	struct fpg_column cols[16];
	memset(cols, 0, sizeof(cols));
	for (int i = 0; i < n; i++) {
		cols[i].name = names[i];
		cols[i].type = types[i];
	}
	fpg_rowfmt_init(&fmt, f, shape, expect, 0, tc);
	ck_assert(fpg_rowfmt_put_header(&fmt, &out, n, cols));
}

/* Writes every row of res and the end. */
static void put_all(PGresult *res)
{
	for (int r = 0; r < PQntuples(res); r++)
		fpg_rowfmt_put_row(&fmt, &out, res, r);
	fpg_rowfmt_put_end(&fmt, &out, res);
}

static void assert_out(const char *want)
{
	ck_assert(!out.failed);
	ck_assert_int_eq(out.len, strlen(want));
	ck_assert_msg(memcmp(out.data, want, out.len) == 0,
		      "got %.*s\nwant %s", (int)out.len, out.data, want);
}

/* ---- JSON ---- */

static const char *const two_names[] = {"id", "name"};
static const uint32_t two_types[] = {OID_INT4, OID_TEXT};

START_TEST(json_objects)
{
	PGresult *res = make_result(2, two_names, two_types);
	set_row(res, 0, 2, (const char *const[]){"1", "one"});
	set_row(res, 1, 2, (const char *const[]){"2", NULL});
	start(FPG_ROWFMT_JSON, FPG_ROWS_OBJECT, FPG_EXPECT_ALL, 2, two_names,
	      two_types);
	put_all(res);
	assert_out("{\"columns\":[{\"name\":\"id\",\"type\":\"int4\"},"
		   "{\"name\":\"name\",\"type\":\"text\"}],"
		   "\"rows\":[{\"id\":1,\"name\":\"one\"},"
		   "{\"id\":2,\"name\":null}],"
		   "\"command\":\"\",\"row_count\":null}\n");
	PQclear(res);
}
END_TEST

START_TEST(json_arrays)
{
	PGresult *res = make_result(2, two_names, two_types);
	set_row(res, 0, 2, (const char *const[]){"1", "a\"b"});
	set_row(res, 1, 2, (const char *const[]){NULL, ""});
	start(FPG_ROWFMT_JSON, FPG_ROWS_ARRAY, FPG_EXPECT_ALL, 2, two_names,
	      two_types);
	put_all(res);
	assert_out("{\"columns\":[{\"name\":\"id\",\"type\":\"int4\"},"
		   "{\"name\":\"name\",\"type\":\"text\"}],"
		   "\"rows\":[[1,\"a\\\"b\"],[null,\"\"]],"
		   "\"command\":\"\",\"row_count\":null}\n");
	PQclear(res);
}
END_TEST

START_TEST(json_no_rows)
{
	PGresult *res = make_result(2, two_names, two_types);
	start(FPG_ROWFMT_JSON, FPG_ROWS_OBJECT, FPG_EXPECT_ALL, 2, two_names,
	      two_types);
	put_all(res);
	assert_out("{\"columns\":[{\"name\":\"id\",\"type\":\"int4\"},"
		   "{\"name\":\"name\",\"type\":\"text\"}],\"rows\":[],"
		   "\"command\":\"\",\"row_count\":null}\n");
	PQclear(res);
}
END_TEST

/* A column name needing escapes is escaped in the header and the keys. */
START_TEST(json_escaped_names)
{
	static const char *const names[] = {"a\"b\\c\n"};
	static const uint32_t types[] = {OID_INT4};
	PGresult *res = make_result(1, names, types);
	set_row(res, 0, 1, (const char *const[]){"7"});
	start(FPG_ROWFMT_JSON, FPG_ROWS_OBJECT, FPG_EXPECT_ALL, 1, names,
	      types);
	fpg_rowfmt_put_row(&fmt, &out, res, 0);
	assert_out("{\"columns\":[{\"name\":\"a\\\"b\\\\c\\n\","
		   "\"type\":\"int4\"}],\"rows\":[{\"a\\\"b\\\\c\\n\":7}");
	PQclear(res);
}
END_TEST

/* A second header (the statement was prepared anew) starts the rows
 * over: no comma before the first row after it. */
START_TEST(json_header_again)
{
	PGresult *res = make_result(2, two_names, two_types);
	set_row(res, 0, 2, (const char *const[]){"1", "x"});
	start(FPG_ROWFMT_JSON, FPG_ROWS_ARRAY, FPG_EXPECT_ALL, 2, two_names,
	      two_types);
	fpg_rowfmt_put_row(&fmt, &out, res, 0);
	fpg_buf_reset(&out);
	struct fpg_column cols[] = {{.name = "id", .type = OID_INT4},
				    {.name = "name", .type = OID_TEXT}};
	ck_assert(fpg_rowfmt_put_header(&fmt, &out, 2, cols));
	fpg_rowfmt_put_row(&fmt, &out, res, 0);
	assert_out("{\"columns\":[{\"name\":\"id\",\"type\":\"int4\"},"
		   "{\"name\":\"name\",\"type\":\"text\"}],"
		   "\"rows\":[[1,\"x\"]");
	PQclear(res);
}
END_TEST

/* Each type's value is what encode.c writes for it. */
START_TEST(json_types)
{
	static const char *const names[] = {"i", "n", "b", "t", "j",
					    "a", "y", "ta", "big"};
	static const uint32_t types[] = {OID_INT4,	OID_NUMERIC,
					 OID_BOOL,	OID_TEXT,
					 OID_JSON,	OID_INT4ARRAY,
					 OID_BYTEA,	OID_TEXTARRAY,
					 OID_INT8};
	static const char *const vals[] = {
		"-42",	   "3.14159265358979323846", "t",
		"é\t\"x\"", "{\"k\": [1, null]}",      "{1,NULL,3}",
		"\\x00ff", "{\"a,b\",NULL,c}",	   "9007199254740993"};
	static const char *const want[] = {
		"-42",	      "3.14159265358979323846", "true",
		"\"é\\t\\\"x\\\"\"", "{\"k\": [1, null]}", "[1,null,3]",
		"\"\\\\x00ff\"", "[\"a,b\",null,\"c\"]", "9007199254740993"};
	int n = 9;
	PGresult *res = make_result(n, names, types);
	set_row(res, 0, n, vals);
	start(FPG_ROWFMT_JSON, FPG_ROWS_ARRAY, FPG_EXPECT_ALL, n, names,
	      types);
	size_t at = out.len;
	fpg_rowfmt_put_row(&fmt, &out, res, 0);
	struct fpg_buf expect;
	fpg_buf_init(&expect);
	fpg_buf_putc(&expect, '[');
	for (int i = 0; i < n; i++) {
		if (i)
			fpg_buf_putc(&expect, ',');
		struct fpg_buf one;
		fpg_buf_init(&one);
		fpg_encode_value(&one, tc, types[i], vals[i], strlen(vals[i]),
				 0);
		ck_assert_msg(one.len == strlen(want[i]) &&
				      memcmp(one.data, want[i], one.len) == 0,
			      "type %u: encoder gave %.*s", types[i],
			      (int)one.len, one.data);
		fpg_buf_append(&expect, one.data, one.len);
		fpg_buf_deinit(&one);
	}
	fpg_buf_putc(&expect, ']');
	ck_assert_int_eq(out.len - at, expect.len);
	ck_assert(memcmp(out.data + at, expect.data, expect.len) == 0);
	fpg_buf_deinit(&expect);
	PQclear(res);
}
END_TEST

START_TEST(json_big_numbers_string)
{
	static const char *const names[] = {"n"};
	static const uint32_t types[] = {OID_INT8};
	PGresult *res = make_result(1, names, types);
	set_row(res, 0, 1, (const char *const[]){"9007199254740993"});
	struct fpg_column cols[] = {{.name = "n", .type = OID_INT8}};
	fpg_rowfmt_init(&fmt, FPG_ROWFMT_JSON, FPG_ROWS_ARRAY, FPG_EXPECT_ALL,
			FPG_ENC_BIG_STRING, tc);
	ck_assert(fpg_rowfmt_put_header(&fmt, &out, 1, cols));
	fpg_buf_reset(&out);
	fpg_rowfmt_put_row(&fmt, &out, res, 0);
	assert_out("[\"9007199254740993\"]");
	PQclear(res);
}
END_TEST

/* ---- expect shapes ---- */

static PGresult *three_rows(void)
{
	PGresult *res = make_result(2, two_names, two_types);
	set_row(res, 0, 2, (const char *const[]){"1", "a"});
	set_row(res, 1, 2, (const char *const[]){"2", "b"});
	set_row(res, 2, 2, (const char *const[]){"3", "c"});
	return res;
}

START_TEST(expect_first)
{
	PGresult *res = three_rows();
	start(FPG_ROWFMT_JSON, FPG_ROWS_OBJECT, FPG_EXPECT_FIRST, 2,
	      two_names, two_types);
	ck_assert(fpg_rowfmt_single(&fmt));
	put_all(res);
	assert_out("{\"row\":{\"id\":1,\"name\":\"a\"}}\n");
	PQclear(res);
}
END_TEST

START_TEST(expect_one_array)
{
	PGresult *res = three_rows();
	start(FPG_ROWFMT_JSON, FPG_ROWS_ARRAY, FPG_EXPECT_ONE, 2, two_names,
	      two_types);
	put_all(res);
	assert_out("{\"row\":[1,\"a\"]}\n");
	PQclear(res);
}
END_TEST

START_TEST(expect_scalar)
{
	PGresult *res = three_rows();
	start(FPG_ROWFMT_JSON, FPG_ROWS_OBJECT, FPG_EXPECT_SCALAR, 2,
	      two_names, two_types);
	put_all(res);
	assert_out("{\"value\":1}\n");
	PQclear(res);
}
END_TEST

START_TEST(expect_scalar_null)
{
	PGresult *res = make_result(2, two_names, two_types);
	set_row(res, 0, 2, (const char *const[]){NULL, "a"});
	start(FPG_ROWFMT_JSON, FPG_ROWS_OBJECT, FPG_EXPECT_SCALAR, 2,
	      two_names, two_types);
	put_all(res);
	assert_out("{\"value\":null}\n");
	PQclear(res);
}
END_TEST

START_TEST(expect_scalar_no_columns)
{
	PGresult *res = make_result(0, NULL, NULL);
	start(FPG_ROWFMT_JSON, FPG_ROWS_OBJECT, FPG_EXPECT_SCALAR, 0, NULL,
	      NULL);
	fpg_rowfmt_put_row(&fmt, &out, res, 0);
	fpg_rowfmt_put_end(&fmt, &out, res);
	assert_out("{\"value\":null}\n");
	PQclear(res);
}
END_TEST

START_TEST(expect_no_rows)
{
	PGresult *res = make_result(2, two_names, two_types);
	start(FPG_ROWFMT_JSON, FPG_ROWS_OBJECT, FPG_EXPECT_FIRST, 2,
	      two_names, two_types);
	put_all(res);
	assert_out("{\"row\":null}\n");
	PQclear(res);
}
END_TEST

/* ---- NDJSON ---- */

START_TEST(ndjson_rows)
{
	PGresult *res = make_result(2, two_names, two_types);
	set_row(res, 0, 2, (const char *const[]){"1", "a\nb"});
	set_row(res, 1, 2, (const char *const[]){NULL, NULL});
	start(FPG_ROWFMT_NDJSON, FPG_ROWS_OBJECT, FPG_EXPECT_ALL, 2,
	      two_names, two_types);
	ck_assert(!fpg_rowfmt_single(&fmt));
	put_all(res);
	assert_out("{\"columns\":[{\"name\":\"id\",\"type\":\"int4\"},"
		   "{\"name\":\"name\",\"type\":\"text\"}]}\n"
		   "{\"id\":1,\"name\":\"a\\nb\"}\n"
		   "{\"id\":null,\"name\":null}\n"
		   "{\"command\":\"\",\"row_count\":null}\n");
	PQclear(res);
}
END_TEST

START_TEST(ndjson_arrays)
{
	PGresult *res = make_result(2, two_names, two_types);
	set_row(res, 0, 2, (const char *const[]){"5", "x"});
	start(FPG_ROWFMT_NDJSON, FPG_ROWS_ARRAY, FPG_EXPECT_ALL, 2, two_names,
	      two_types);
	fpg_buf_reset(&out);
	fpg_rowfmt_put_row(&fmt, &out, res, 0);
	assert_out("[5,\"x\"]\n");
	PQclear(res);
}
END_TEST

/* ---- CSV ---- */

START_TEST(csv_quoting)
{
	static const char *const names[] = {"plain", "com,ma", "q\"uote",
					    "cr\rlf\n", "empty", "nul"};
	static const uint32_t types[] = {OID_TEXT, OID_TEXT, OID_TEXT,
					 OID_TEXT, OID_TEXT, OID_INT4};
	PGresult *res = make_result(6, names, types);
	set_row(res, 0, 6,
		(const char *const[]){"abc", "a,b", "say \"hi\"", "l1\r\nl2",
				      "", NULL});
	set_row(res, 1, 6,
		(const char *const[]){"\"", "\r", "\n", ",", "x y", "7"});
	start(FPG_ROWFMT_CSV, FPG_ROWS_OBJECT, FPG_EXPECT_ALL, 6, names,
	      types);
	put_all(res);
	assert_out("plain,\"com,ma\",\"q\"\"uote\",\"cr\rlf\n\",empty,nul\r\n"
		   "abc,\"a,b\",\"say \"\"hi\"\"\",\"l1\r\nl2\",\"\",\r\n"
		   "\"\"\"\",\"\r\",\"\n\",\",\",x y,7\r\n");
	PQclear(res);
}
END_TEST

/* CSV writes the text form as it is, whatever the type. */
START_TEST(csv_types)
{
	static const char *const names[] = {"b", "a", "j", "y"};
	static const uint32_t types[] = {OID_BOOL, OID_INT4ARRAY, OID_JSON,
					 OID_BYTEA};
	PGresult *res = make_result(4, names, types);
	set_row(res, 0, 4,
		(const char *const[]){"t", "{1,2}", "{\"a\": 1}", "\\x01"});
	start(FPG_ROWFMT_CSV, FPG_ROWS_ARRAY, FPG_EXPECT_ALL, 4, names,
	      types);
	put_all(res);
	assert_out("b,a,j,y\r\nt,\"{1,2}\",\"{\"\"a\"\": 1}\",\\x01\r\n");
	PQclear(res);
}
END_TEST

/* ---- errors in the answer ---- */

START_TEST(error_in_band)
{
	struct fpg_error err;
	fpg_error_set(&err, FPG_ERR_LIMIT, 413, "too big");
	err.reason = "result_too_large";
	fpg_rowfmt_init(&fmt, FPG_ROWFMT_JSON, FPG_ROWS_OBJECT,
			FPG_EXPECT_ALL, 0, tc);
	ck_assert(fpg_rowfmt_put_error(&fmt, &out, &err, NULL));
	struct fpg_buf want;
	fpg_buf_init(&want);
	fpg_buf_puts(&want, "],\"error\":");
	fpg_error_json_object(&want, &err, NULL);
	fpg_buf_puts(&want, "}\n");
	ck_assert_int_eq(out.len, want.len);
	ck_assert(memcmp(out.data, want.data, want.len) == 0);

	fpg_buf_reset(&out);
	fpg_buf_reset(&want);
	fmt.format = FPG_ROWFMT_NDJSON;
	ck_assert(fpg_rowfmt_put_error(&fmt, &out, &err, NULL));
	fpg_error_json(&want, &err, NULL);
	fpg_buf_putc(&want, '\n');
	ck_assert_int_eq(out.len, want.len);
	ck_assert(memcmp(out.data, want.data, want.len) == 0);

	fpg_buf_reset(&out);
	fmt.format = FPG_ROWFMT_CSV;
	ck_assert(!fpg_rowfmt_put_error(&fmt, &out, &err, NULL));
	ck_assert_int_eq(out.len, 0);
	fpg_buf_deinit(&want);
}
END_TEST

START_TEST(content_types)
{
	ck_assert_str_eq(fpg_rowfmt_content_type(FPG_ROWFMT_JSON),
			 "application/json");
	ck_assert_str_eq(fpg_rowfmt_content_type(FPG_ROWFMT_NDJSON),
			 "application/x-ndjson");
	ck_assert_str_eq(fpg_rowfmt_content_type(FPG_ROWFMT_CSV),
			 "text/csv; charset=utf-8");
	fpg_rowfmt_init(&fmt, FPG_ROWFMT_JSON, FPG_ROWS_OBJECT,
			FPG_EXPECT_ALL, 0, tc);
}
END_TEST

/* ---- randomized text ---- */

/* Appends one random code point (no NUL: PostgreSQL text has none). */
static size_t put_random_char(char *p, unsigned *seed)
{
	static const char specials[] = "\"\\/\b\f\n\r\t\x01\x1f\x7f,;";
	unsigned r = (unsigned)rand_r(seed);
	switch (r % 5) {
	case 0:
		*p = specials[(r / 5) % (sizeof(specials) - 1)];
		return 1;
	case 1:
		*p = (char)(1 + (r / 5) % 127);
		return 1;
	case 2: { /* U+0080..U+07FF */
		unsigned c = 0x80 + (r / 5) % 0x780;
		p[0] = (char)(0xc0 | c >> 6);
		p[1] = (char)(0x80 | (c & 0x3f));
		return 2;
	}
	case 3: { /* U+0800..U+FFFF without surrogates */
		unsigned c = 0x800 + (r / 5) % (0xd800 - 0x800);
		p[0] = (char)(0xe0 | c >> 12);
		p[1] = (char)(0x80 | ((c >> 6) & 0x3f));
		p[2] = (char)(0x80 | (c & 0x3f));
		return 3;
	}
	default: { /* U+10000..U+10FFFF */
		unsigned c = 0x10000 + (r / 5) % 0x100000;
		p[0] = (char)(0xf0 | c >> 18);
		p[1] = (char)(0x80 | ((c >> 12) & 0x3f));
		p[2] = (char)(0x80 | ((c >> 6) & 0x3f));
		p[3] = (char)(0x80 | (c & 0x3f));
		return 4;
	}
	}
}

START_TEST(random_text_round_trip)
{
	static const char *const names[] = {"t", "u"};
	static const uint32_t types[] = {OID_TEXT, OID_TEXT};
	enum { ROWS = 200, MAXLEN = 64 };
	static char vals[ROWS][2][MAXLEN * 4 + 1];
	unsigned seed = unit_seed();
	PGresult *res = make_result(2, names, types);
	for (int r = 0; r < ROWS; r++) {
		for (int c = 0; c < 2; c++) {
			size_t n = 0, len = (size_t)rand_r(&seed) % MAXLEN;
			for (size_t k = 0; k < len; k++)
				n += put_random_char(vals[r][c] + n, &seed);
			vals[r][c][n] = '\0';
		}
		set_row(res, r, 2,
			(const char *const[]){vals[r][0], vals[r][1]});
	}
	start(FPG_ROWFMT_JSON, FPG_ROWS_OBJECT, FPG_EXPECT_ALL, 2, names,
	      types);
	put_all(res);
	json_error_t jerr;
	json_t *root = json_loadb(out.data, out.len, 0, &jerr);
	ck_assert_msg(root != NULL, "invalid JSON: %s at %d", jerr.text,
		      jerr.position);
	json_t *rows = json_object_get(root, "rows");
	ck_assert_int_eq(json_array_size(rows), ROWS);
	for (int r = 0; r < ROWS; r++) {
		json_t *row = json_array_get(rows, (size_t)r);
		for (int c = 0; c < 2; c++) {
			json_t *v = json_object_get(row, names[c]);
			ck_assert(json_is_string(v));
			ck_assert_str_eq(json_string_value(v), vals[r][c]);
		}
	}
	json_decref(root);
	PQclear(res);
}
END_TEST

/* Neon's /sql: node-postgres' fields, rows as arrays or objects, the
 * values as their text or as to_json() has them, and no in-band error. */
START_TEST(neon_answer)
{
	static const char *const names[] = {"id", "doc"};
	static const uint32_t types[] = {OID_INT4, OID_JSON};
	PGresult *res = make_result(2, names, types);
	set_row(res, 0, 2, (const char *const[]){"7", "{\"a\": [1]}"});
	set_row(res, 1, 2, (const char *const[]){"8", NULL});
	struct fpg_column cols[] = {
	    {.name = "id", .type = OID_INT4, .table = 16384, .table_col = 1,
	     .size = 4, .mod = -1},
	    {.name = "doc", .type = OID_JSON, .size = -1, .mod = -1}};
	fpg_rowfmt_init(&fmt, FPG_ROWFMT_NEON, FPG_ROWS_ARRAY, FPG_EXPECT_ALL,
			FPG_ENC_TEXT, tc);
	ck_assert(fpg_rowfmt_put_header(&fmt, &out, 2, cols));
	put_all(res);
	assert_out("{\"fields\":[{\"name\":\"id\",\"dataTypeID\":23,"
		   "\"tableID\":16384,\"columnID\":1,\"dataTypeSize\":4,"
		   "\"dataTypeModifier\":-1,\"format\":\"text\"},"
		   "{\"name\":\"doc\",\"dataTypeID\":114,\"tableID\":0,"
		   "\"columnID\":0,\"dataTypeSize\":-1,"
		   "\"dataTypeModifier\":-1,\"format\":\"text\"}],"
		   "\"rows\":[[\"7\",\"{\\\"a\\\": [1]}\"],[\"8\",null]],"
		   "\"command\":\"\",\"rowCount\":null,\"rowAsArray\":true}\n");
	fpg_rowfmt_deinit(&fmt);
	fpg_buf_reset(&out);
	fpg_rowfmt_init(&fmt, FPG_ROWFMT_NEON, FPG_ROWS_OBJECT, FPG_EXPECT_ALL,
			0, tc);
	ck_assert(fpg_rowfmt_put_header(&fmt, &out, 2, cols));
	fpg_buf_reset(&out);
	put_all(res);
	assert_out("{\"id\":7,\"doc\":{\"a\": [1]}},{\"id\":8,\"doc\":null}],"
		   "\"command\":\"\",\"rowCount\":null,\"rowAsArray\":false}\n");
	struct fpg_error err;
	fpg_error_set(&err, FPG_ERR_LIMIT, 413, "too big");
	ck_assert(!fpg_rowfmt_put_error(&fmt, &out, &err, NULL));
	ck_assert(!fpg_rowfmt_streams(FPG_ROWFMT_NEON));
	ck_assert(fpg_rowfmt_streams(FPG_ROWFMT_CSV));
	ck_assert_str_eq(fpg_rowfmt_content_type(FPG_ROWFMT_NEON),
			 "application/json");
	PQclear(res);
}
END_TEST

static const struct test_case cases[] = {
	TEST_CASE(json_objects),
	TEST_CASE(json_arrays),
	TEST_CASE(json_no_rows),
	TEST_CASE(json_escaped_names),
	TEST_CASE(json_header_again),
	TEST_CASE(json_types),
	TEST_CASE(json_big_numbers_string),
	TEST_CASE(expect_first),
	TEST_CASE(expect_one_array),
	TEST_CASE(expect_scalar),
	TEST_CASE(expect_scalar_null),
	TEST_CASE(expect_scalar_no_columns),
	TEST_CASE(expect_no_rows),
	TEST_CASE(ndjson_rows),
	TEST_CASE(ndjson_arrays),
	TEST_CASE(csv_quoting),
	TEST_CASE(csv_types),
	TEST_CASE(error_in_band),
	TEST_CASE(content_types),
	TEST_CASE(random_text_round_trip),
	TEST_CASE(neon_answer),
	{0},
};

const struct unit_program unit_program = {
	.name = "rowfmt",
	.cases = cases,
	.before_each = setup,
	.after_each = teardown,
};
