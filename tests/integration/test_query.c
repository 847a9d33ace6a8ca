/*
 * POST /query end to end: result shapes, commands, expect, big_numbers,
 * timeouts, parameters, request ids, streaming of large results, errors
 * before and after the first byte, and a type-by-type comparison of the
 * rows with PostgreSQL's own to_json().
 *
 * One throwaway cluster and one in-process server (2 workers) for the
 * whole binary; CK_NOFORK because the server's threads live in this
 * process. Random values use a seed printed at start (FPG_TEST_SEED
 * replays it).
 */
#include <math.h>

#include "it_common.h"

static unsigned port;

/* ---- helpers ---- */

static struct http_resp *post(const char *body)
{
	struct http_resp *r = it_query(port, body);
	ck_assert_ptr_nonnull(r);
	ck_assert_msg(r->curl_code == 0, "curl error %d for %s", r->curl_code,
		      body);
	return r;
}

/* POST and require a 200 with a parseable JSON object. */
static struct http_resp *post_ok(const char *body)
{
	struct http_resp *r = post(body);
	ck_assert_msg(r->status == 200, "status %ld for %s: %.2000s",
		      r->status, body, r->body);
	ck_assert_msg(json_is_object(r->json), "not a JSON object: %.2000s",
		      r->body);
	return r;
}

/* The body must contain needle verbatim (numbers jansson cannot hold). */
static void assert_raw(const struct http_resp *r, const char *needle)
{
	ck_assert_msg(strstr(r->body, needle) != NULL,
		      "body lacks %s: %.2000s", needle, r->body);
}

static json_t *rows_of(const struct http_resp *r)
{
	json_t *rows = json_object_get(r->json, "rows");
	ck_assert_msg(json_is_array(rows), "no rows: %.2000s", r->body);
	return rows;
}

static json_t *row0(const struct http_resp *r)
{
	json_t *rows = rows_of(r);
	ck_assert_msg(json_array_size(rows) >= 1, "no row: %.2000s", r->body);
	return json_array_get(rows, 0);
}

static void assert_json_eq(const json_t *got, const char *want_text)
{
	json_error_t e;
	json_t *want = json_loads(want_text, JSON_DECODE_ANY, &e);
	ck_assert_msg(want, "bad expected JSON %s: %s", want_text, e.text);
	char *g = json_dumps(got, JSON_ENCODE_ANY | JSON_COMPACT);
	ck_assert_msg(json_equal(got, want), "got %s, want %s",
		      g ? g : "(null)", want_text);
	free(g);
	json_decref(want);
}

static const char *str_member(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* ---- shapes ---- */

START_TEST(rows_as_objects_with_columns)
{
	struct http_resp *r = post_ok(
	    "{\"sql\":\"select 1 as a, 'x'::text as b, null::int8 as c,"
	    " 1.5::float8 as \\\"Dé \\\"\\\"q\\\"\\\"\\\"\"}");
	assert_json_eq(json_object_get(r->json, "columns"),
		       "[{\"name\":\"a\",\"type\":\"int4\"},"
		       "{\"name\":\"b\",\"type\":\"text\"},"
		       "{\"name\":\"c\",\"type\":\"int8\"},"
		       "{\"name\":\"Dé \\\"q\\\"\",\"type\":\"float8\"}]");
	/* Key order follows the columns. */
	assert_raw(r, "\"rows\":[{\"a\":1,\"b\":\"x\",\"c\":null,"
		      "\"Dé \\\"q\\\"\":1.5}]");
	ck_assert_str_eq(str_member(r->json, "command"), "SELECT");
	ck_assert_int_eq(json_integer_value(json_object_get(r->json,
							     "row_count")),
			 1);
	http_resp_free(r);
}
END_TEST

START_TEST(rows_as_arrays)
{
	struct http_resp *r = post_ok(
	    "{\"sql\":\"select g, g::text as t, null::bool as n from"
	    " generate_series(1,3) g\",\"rows\":\"array\"}");
	assert_json_eq(rows_of(r),
		       "[[1,\"1\",null],[2,\"2\",null],[3,\"3\",null]]");
	assert_json_eq(json_object_get(r->json, "columns"),
		       "[{\"name\":\"g\",\"type\":\"int4\"},"
		       "{\"name\":\"t\",\"type\":\"text\"},"
		       "{\"name\":\"n\",\"type\":\"bool\"}]");
	ck_assert_int_eq(json_integer_value(json_object_get(r->json,
							     "row_count")),
			 3);
	http_resp_free(r);

	/* Zero rows still give the columns and an empty array. */
	r = post_ok("{\"sql\":\"select 1 as x where false\",\"rows\":\"array\"}");
	assert_json_eq(rows_of(r), "[]");
	ck_assert_int_eq(json_array_size(json_object_get(r->json, "columns")),
			 1);
	ck_assert_int_eq(json_integer_value(json_object_get(r->json,
							     "row_count")),
			 0);
	http_resp_free(r);
}
END_TEST

static void expect_command(const char *sql, const char *command,
			   long long count)
{
	char *body = it_fmt("{\"sql\":\"%s\"}", sql);
	struct http_resp *r = post_ok(body);
	free(body);
	ck_assert_msg(str_member(r->json, "command") &&
			  strcmp(str_member(r->json, "command"), command) == 0,
		      "%s: command in %.500s, want %s", sql, r->body, command);
	json_t *rc = json_object_get(r->json, "row_count");
	if (count < 0)
		ck_assert_msg(json_is_null(rc), "%s: row_count %.500s", sql,
			      r->body);
	else
		ck_assert_msg(json_is_integer(rc) &&
				  json_integer_value(rc) == count,
			      "%s: row_count in %.500s, want %lld", sql,
			      r->body, count);
	ck_assert(json_is_array(json_object_get(r->json, "rows")));
	http_resp_free(r);
}

START_TEST(commands_and_row_counts)
{
	/* In the case's own schema: no other case has this table. */
	char *t = it_table("cmd"), sql[512];
	snprintf(sql, sizeof(sql),
		 "create table %s (id int primary key, v text)", t);
	expect_command(sql, "CREATE TABLE", -1);
	snprintf(sql, sizeof(sql),
		 "insert into %s values (1,'a'),(2,'b'),(3,'c')", t);
	expect_command(sql, "INSERT", 3);
	snprintf(sql, sizeof(sql),
		 "update %s set v = v || '!' where id <= 2", t);
	expect_command(sql, "UPDATE", 2);
	snprintf(sql, sizeof(sql), "delete from %s where id = 3", t);
	expect_command(sql, "DELETE", 1);
	snprintf(sql, sizeof(sql), "select * from %s", t);
	expect_command(sql, "SELECT", 2);
	snprintf(sql, sizeof(sql),
		 "select string_agg(id || v, ',' order by id) from %s",
		 t);
	char *v = pgh_scalar(sql);
	ck_assert_str_eq(v, "1a!,2b!");
	free(v);

	/* RETURNING: rows and the command's own count. */
	snprintf(sql, sizeof(sql),
		 "{\"sql\":\"insert into %s values (7,'x'),(8,'y')"
		 " returning id, v\"}",
		 t);
	struct http_resp *r = post_ok(sql);
	assert_json_eq(rows_of(r), "[{\"id\":7,\"v\":\"x\"},"
				   "{\"id\":8,\"v\":\"y\"}]");
	ck_assert_str_eq(str_member(r->json, "command"), "INSERT");
	ck_assert_int_eq(json_integer_value(json_object_get(r->json,
							     "row_count")),
			 2);
	http_resp_free(r);

	snprintf(sql, sizeof(sql), "drop table %s", t);
	expect_command(sql, "DROP TABLE", -1);
	free(t);
}
END_TEST

/* ---- expect ---- */

START_TEST(expect_one_first_scalar)
{
	struct http_resp *r = post_ok(
	    "{\"sql\":\"select 42 as n, 'a' as s\",\"expect\":\"one\"}");
	assert_json_eq(r->json, "{\"row\":{\"n\":42,\"s\":\"a\"}}");
	http_resp_free(r);

	r = post("{\"sql\":\"select 1 where false\",\"expect\":\"one\"}");
	it_assert_error(r, 404, NULL);
	http_resp_free(r);

	r = post("{\"sql\":\"select generate_series(1,2)\",\"expect\":\"one\"}");
	it_assert_error(r, 409, NULL);
	http_resp_free(r);

	r = post_ok("{\"sql\":\"select g from generate_series(5,7) g\","
		    "\"expect\":\"first\"}");
	assert_json_eq(r->json, "{\"row\":{\"g\":5}}");
	http_resp_free(r);

	r = post_ok("{\"sql\":\"select g from generate_series(5,7) g\","
		    "\"expect\":\"first\",\"rows\":\"array\"}");
	assert_json_eq(r->json, "{\"row\":[5]}");
	http_resp_free(r);

	r = post_ok("{\"sql\":\"select 1 where false\",\"expect\":\"first\"}");
	assert_json_eq(r->json, "{\"row\":null}");
	http_resp_free(r);

	r = post_ok("{\"sql\":\"select 'v'::text, 2\",\"expect\":\"scalar\"}");
	assert_json_eq(r->json, "{\"value\":\"v\"}");
	http_resp_free(r);

	r = post_ok("{\"sql\":\"select '{1,2}'::int[] from generate_series(1,3)\","
		    "\"expect\":\"scalar\"}");
	assert_json_eq(r->json, "{\"value\":[1,2]}");
	http_resp_free(r);

	r = post_ok("{\"sql\":\"select 1 where false\",\"expect\":\"scalar\"}");
	assert_json_eq(r->json, "{\"value\":null}");
	http_resp_free(r);

	r = post_ok("{\"sql\":\"select null::int\",\"expect\":\"scalar\"}");
	assert_json_eq(r->json, "{\"value\":null}");
	http_resp_free(r);

	/* An SQL error under expect keeps its own status. */
	r = post("{\"sql\":\"select 1/0\",\"expect\":\"one\"}");
	it_assert_error(r, 400, "22012");
	http_resp_free(r);
}
END_TEST

/* ---- big_numbers ---- */

START_TEST(big_numbers_as_strings)
{
	static const char sql[] =
	    "select 9223372036854775807::int8 as a,"
	    " 12345678901234567890.5::numeric as b, 1.5::float8 as c,"
	    " 7::int4 as d, '{1,-2}'::int8[] as e, 'NaN'::numeric as f,"
	    " 2::int2 as g";
	char *body = it_fmt("{\"sql\":\"%s\"}", sql);
	struct http_resp *r = post(body);
	free(body);
	ck_assert_int_eq(r->status, 200);
	assert_raw(r, "{\"a\":9223372036854775807,"
		      "\"b\":12345678901234567890.5,\"c\":1.5,\"d\":7,"
		      "\"e\":[1,-2],\"f\":\"NaN\",\"g\":2}");
	http_resp_free(r);

	body = it_fmt("{\"sql\":\"%s\",\"big_numbers\":\"string\"}", sql);
	r = post_ok(body);
	free(body);
	assert_raw(r, "{\"a\":\"9223372036854775807\","
		      "\"b\":\"12345678901234567890.5\",\"c\":1.5,\"d\":7,"
		      "\"e\":[\"1\",\"-2\"],\"f\":\"NaN\",\"g\":2}");
	http_resp_free(r);

	body = it_fmt("{\"sql\":\"%s\",\"big_numbers\":\"number\"}", sql);
	r = post_ok(body);
	free(body);
	assert_raw(r, "\"a\":9223372036854775807,");
	http_resp_free(r);
}
END_TEST

/* ---- timeout ---- */

START_TEST(timeout_ms_gives_504)
{
	double t0 = it_now();
	struct http_resp *r = post(
	    "{\"sql\":\"select pg_sleep(5)\",\"timeout_ms\":300}");
	double took = it_now() - t0;
	it_assert_error(r, 504, "57014");
	ck_assert_msg(took < 3.0, "the timeout took %.2f s", took);
	http_resp_free(r);

	/* The timeout was for that statement only: longer ones without
	 * timeout_ms run to completion on whatever connection they get. */
	for (int i = 0; i < 4; i++) {
		r = post_ok("{\"sql\":\"select pg_sleep(0.4) is null as s\"}");
		http_resp_free(r);
	}
	/* A generous timeout does not get in the way. */
	r = post_ok("{\"sql\":\"select pg_sleep(0.1) is null as s\","
		    "\"timeout_ms\":5000}");
	http_resp_free(r);
}
END_TEST

/* ---- parameters ---- */

START_TEST(params_scalars)
{
	static const char s[] = "it's \"q\" \\ back \\\\ ü 😀 \n\t end";
	json_t *req = json_pack(
	    "{s:s, s:[n, s, b, b, i, f, s]}", "sql",
	    "select $1::text is null as n, $2::text as s,"
	    " octet_length($2::text) as ol, $3::bool as t, $4::bool as f,"
	    " $5::int as i, $6::float8 as d, $7::text as e",
	    "params", s, 1, 0, -17, 1500.0, "");
	char *body = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	struct http_resp *r = post_ok(body);
	free(body);
	json_t *row = row0(r);
	ck_assert(json_is_true(json_object_get(row, "n")));
	ck_assert_str_eq(str_member(row, "s"), s);
	ck_assert_int_eq(json_integer_value(json_object_get(row, "ol")),
			 (long long)strlen(s));
	ck_assert(json_is_true(json_object_get(row, "t")));
	ck_assert(json_is_false(json_object_get(row, "f")));
	ck_assert_int_eq(json_integer_value(json_object_get(row, "i")), -17);
	ck_assert(json_number_value(json_object_get(row, "d")) == 1500.0);
	ck_assert_str_eq(str_member(row, "e"), "");
	http_resp_free(r);

	/* Numbers are sent as the client wrote them. */
	r = post_ok("{\"sql\":\"select $1::text as a, $2::text as b,"
		    " $3::float8 as c\",\"params\":[1.50, -0, 1.5e3]}");
	row = row0(r);
	ck_assert_str_eq(str_member(row, "a"), "1.50");
	ck_assert_str_eq(str_member(row, "b"), "-0");
	ck_assert(json_number_value(json_object_get(row, "c")) == 1500.0);
	http_resp_free(r);
}
END_TEST

START_TEST(params_integer_beyond_int64)
{
	/* 2^64 and -(2^63)-1 do not fit any C integer: the server must pass
	 * the client's text through. */
	struct http_resp *r = post(
	    "{\"sql\":\"select $1::numeric as a, $2::numeric as b,"
	    " $1::numeric = 18446744073709551616 as eq\","
	    "\"params\":[18446744073709551616, -9223372036854775809]}");
	ck_assert_msg(r->status == 200, "status %ld: %.1000s", r->status,
		      r->body);
	assert_raw(r, "{\"a\":18446744073709551616,"
		      "\"b\":-9223372036854775809,\"eq\":true}");
	http_resp_free(r);

	r = post("{\"sql\":\"select $1::numeric[] as a\","
		 "\"params\":[[123456789012345678901234567890, 1]]}");
	ck_assert_msg(r->status == 200, "status %ld: %.1000s", r->status,
		      r->body);
	assert_raw(r, "{\"a\":[123456789012345678901234567890,1]}");
	http_resp_free(r);
}
END_TEST

START_TEST(params_numeric_40_digits)
{
	static const char n40[] =
	    "1234567890123456789012345678901234567890.0123456789";
	char *body = it_fmt("{\"sql\":\"select $1::numeric as a,"
			    " $1::numeric = '%s'::numeric as eq,"
			    " $2::numeric as b\",\"params\":[%s, -%s]}",
			    n40, n40, n40);
	struct http_resp *r = post(body);
	free(body);
	ck_assert_msg(r->status == 200, "status %ld: %.1000s", r->status,
		      r->body);
	char *want = it_fmt("{\"a\":%s,\"eq\":true,\"b\":-%s}", n40, n40);
	assert_raw(r, want);
	free(want);
	http_resp_free(r);
}
END_TEST

START_TEST(params_arrays)
{
	struct http_resp *r = post_ok(
	    "{\"sql\":\"select $1::int[] as a, array_dims($1::int[]) as d,"
	    " ($1::int[])[2][2] is null as nul\","
	    "\"params\":[[[1,2],[3,null]]]}");
	json_t *row = row0(r);
	assert_json_eq(json_object_get(row, "a"), "[[1,2],[3,null]]");
	ck_assert_str_eq(str_member(row, "d"), "[1:2][1:2]");
	ck_assert(json_is_true(json_object_get(row, "nul")));
	http_resp_free(r);

	/* Strings that mean something inside an array literal. */
	static const char texts[] =
	    "[\"a\\\"b\",\"c,d\",\"{e}\",\"back\\\\slash\",null,\"NULL\","
	    "\"\",\" sp \",\"ü😀\",\"x}y{\",\"\\\\\\\"\",\"a b\",\"(1,2)\","
	    "\"tab\\there\",\"nl\\nthere\"]";
	char *body = it_fmt(
	    "{\"sql\":\"select $1::text[] as a, array_length($1::text[], 1)"
	    " as n, ($1::text[])[5] is null as fifth_null,"
	    " ($1::text[])[6] as sixth\",\"params\":[%s]}",
	    texts);
	r = post_ok(body);
	free(body);
	row = row0(r);
	assert_json_eq(json_object_get(row, "a"), texts);
	ck_assert_int_eq(json_integer_value(json_object_get(row, "n")), 15);
	ck_assert(json_is_true(json_object_get(row, "fifth_null")));
	ck_assert_str_eq(str_member(row, "sixth"), "NULL");
	http_resp_free(r);

	r = post_ok("{\"sql\":\"select $1::text[] as a,"
		    " array_dims($1::text[]) as d\","
		    "\"params\":[[[\"a\",\"b\"],[\"c,d\",null]]]}");
	row = row0(r);
	assert_json_eq(json_object_get(row, "a"),
		       "[[\"a\",\"b\"],[\"c,d\",null]]");
	ck_assert_str_eq(str_member(row, "d"), "[1:2][1:2]");
	http_resp_free(r);

	r = post_ok("{\"sql\":\"select $1::int[] as a, $2::bool[] as b,"
		    " $3::float8[] as c\","
		    "\"params\":[[], [true,false,null], [1.5,-2,1e3]]}");
	assert_json_eq(row0(r),
		       "{\"a\":[],\"b\":[true,false,null],\"c\":[1.5,-2,1000]}");
	http_resp_free(r);

	/* Objects inside an array are JSON text elements. */
	r = post_ok("{\"sql\":\"select $1::jsonb[] as a\","
		    "\"params\":[[{\"k\":1},{\"k\":\"v,\\\"}\"},null]]}");
	assert_json_eq(json_object_get(row0(r), "a"),
		       "[{\"k\":1},{\"k\":\"v,\\\"}\"},null]");
	http_resp_free(r);
}
END_TEST

START_TEST(params_object_as_jsonb)
{
	static const char n[] = "1234567890123456789012345.678901234567890";
	char *body = it_fmt(
	    "{\"sql\":\"select $1::jsonb as j, $1::jsonb->>'n' as n,"
	    " ($1::jsonb->'a')::text as a, $1::jsonb->>'s' as s\","
	    "\"params\":[{\"n\":%s,\"s\":\"q\\\"\\\\ü\",\"a\":[1,2.50,"
	    "{\"x\":null}]}]}",
	    n);
	struct http_resp *r = post(body);
	free(body);
	ck_assert_msg(r->status == 200, "status %ld: %.1000s", r->status,
		      r->body);
	char *want = it_fmt("\"n\": %s", n);
	assert_raw(r, want); /* inside j, as jsonb prints it */
	free(want);
	want = it_fmt("\"n\":\"%s\"", n);
	assert_raw(r, want);
	free(want);
	assert_raw(r, "\"a\":\"[1, 2.50, {\\\"x\\\": null}]\"");
	assert_raw(r, "\"s\":\"q\\\"\\\\ü\"");
	http_resp_free(r);

	/* A number beyond int64 inside an object as well. */
	r = post("{\"sql\":\"select $1::jsonb->>'n' as n\","
		 "\"params\":[{\"n\":98765432109876543210987654321}]}");
	ck_assert_msg(r->status == 200, "status %ld: %.1000s", r->status,
		      r->body);
	assert_raw(r, "{\"n\":\"98765432109876543210987654321\"}");
	http_resp_free(r);
}
END_TEST

/* ---- request ids ---- */

static bool is_hex16(const char *s)
{
	if (!s || strlen(s) != 16)
		return false;
	for (; *s; s++)
		if (!strchr("0123456789abcdef", *s))
			return false;
	return true;
}

START_TEST(request_id_echoed_or_generated)
{
	static const char *const given[] = {"X-Request-Id: my-req.42:x_Y",
					    "Content-Type: application/json",
					    NULL};
	struct http_resp *r =
	    http_request(port, "POST", "/query", "{\"sql\":\"select 1\"}", given);
	ck_assert_int_eq(r->status, 200);
	char *id = http_header(r, "X-Request-Id");
	ck_assert_str_eq(id, "my-req.42:x_Y");
	free(id);
	http_resp_free(r);

	/* Echoed on errors too. */
	r = http_request(port, "GET", "/nowhere", NULL, given);
	ck_assert_int_eq(r->status, 404);
	id = http_header(r, "X-Request-Id");
	ck_assert_str_eq(id, "my-req.42:x_Y");
	free(id);
	http_resp_free(r);

	char *ids[2];
	for (int i = 0; i < 2; i++) {
		r = post_ok("{\"sql\":\"select 1\"}");
		ids[i] = http_header(r, "X-Request-Id");
		ck_assert_msg(is_hex16(ids[i]), "generated id %s",
			      ids[i] ? ids[i] : "(none)");
		http_resp_free(r);
	}
	ck_assert_str_ne(ids[0], ids[1]);
	free(ids[0]);
	free(ids[1]);

	r = http_get(port, "/healthz");
	id = http_header(r, "X-Request-Id");
	ck_assert(is_hex16(id));
	free(id);
	http_resp_free(r);
}
END_TEST

/* ---- streaming ---- */

START_TEST(large_result_streams)
{
	struct http_resp *r = post(
	    "{\"sql\":\"select g, 'row ' || g as s from"
	    " generate_series(1,200000) g\"}");
	ck_assert_int_eq(r->status, 200);
	ck_assert_msg(r->json, "200,000 rows do not parse (%zu bytes)",
		      r->body_len);
	char *te = http_header(r, "Transfer-Encoding");
	ck_assert_msg(te && strcasecmp(te, "chunked") == 0,
		      "Transfer-Encoding %s", te ? te : "(none)");
	free(te);
	json_t *rows = rows_of(r);
	ck_assert_int_eq(json_array_size(rows), 200000);
	assert_json_eq(json_array_get(rows, 199999),
		       "{\"g\":200000,\"s\":\"row 200000\"}");
	assert_json_eq(json_array_get(rows, 65536),
		       "{\"g\":65537,\"s\":\"row 65537\"}");
	ck_assert_int_eq(json_integer_value(json_object_get(r->json,
							     "row_count")),
			 200000);
	ck_assert_str_eq(str_member(r->json, "command"), "SELECT");
	http_resp_free(r);

	/* Just past the buffered start, and just under it. */
	for (int n = 2000; n <= 4000; n += 2000) {
		char *body = it_fmt("{\"sql\":\"select repeat('x', 20) as x,"
				    " g from generate_series(1,%d) g\"}",
				    n);
		r = post_ok(body);
		free(body);
		ck_assert_int_eq(json_array_size(rows_of(r)), (size_t)n);
		http_resp_free(r);
	}
}
END_TEST

START_TEST(error_mid_stream)
{
	struct http_resp *r = post(
	    "{\"sql\":\"select g, 1/(g-150000) as q from"
	    " generate_series(1,200000) g\"}");
	ck_assert_int_eq(r->status, 200);
	ck_assert_msg(r->json, "the truncated stream is not valid JSON: ...%s",
		      r->body_len > 300 ? r->body + r->body_len - 300
					: r->body);
	json_t *err = json_object_get(r->json, "error");
	ck_assert_msg(json_is_object(err), "no error member at the end: ...%s",
		      r->body + (r->body_len > 300 ? r->body_len - 300 : 0));
	ck_assert_str_eq(str_member(err, "code"), "22012");
	ck_assert(json_is_string(json_object_get(err, "message")));
	ck_assert_ptr_null(json_object_get(r->json, "command"));
	ck_assert_ptr_null(json_object_get(r->json, "row_count"));
	json_t *rows = rows_of(r);
	ck_assert_int_eq(json_array_size(rows), 149999);
	assert_json_eq(json_array_get(rows, 149998),
		       "{\"g\":149999,\"q\":-1}");
	/* The error is the last member. */
	const char *last = strstr(r->body, "],\"error\":");
	ck_assert_ptr_nonnull(last);
	http_resp_free(r);

	/* The connection that carried it is fine afterwards. */
	for (int i = 0; i < 4; i++) {
		r = post_ok("{\"sql\":\"select 5 as five\"}");
		assert_json_eq(rows_of(r), "[{\"five\":5}]");
		http_resp_free(r);
	}
}
END_TEST

START_TEST(error_before_first_byte)
{
	struct http_resp *r = post(
	    "{\"sql\":\"select 1/(g-1) as x from generate_series(1,3) g\"}");
	it_assert_error(r, 400, "22012");
	ck_assert(json_is_null(
	    json_object_get(json_object_get(r->json, "error"), "position")));
	ck_assert_ptr_null(json_object_get(r->json, "rows"));
	http_resp_free(r);

	r = post("{\"sql\":\"selec 1\"}");
	it_assert_error(r, 400, "42601");
	ck_assert_int_eq(json_integer_value(json_object_get(
			     json_object_get(r->json, "error"), "position")),
			 1);
	http_resp_free(r);

	r = post("{\"sql\":\"select nosuchcol\"}");
	it_assert_error(r, 400, "42703");
	ck_assert_int_eq(json_integer_value(json_object_get(
			     json_object_get(r->json, "error"), "position")),
			 8);
	http_resp_free(r);

	/* Past a few rows but before 64 KiB: still a proper status. */
	r = post("{\"sql\":\"select 1/(g-100) as x from"
		 " generate_series(1,200) g\"}");
	it_assert_error(r, 400, "22012");
	http_resp_free(r);
}
END_TEST

/* ---- the value rule, against PostgreSQL's to_json() ---- */

/*
 * How the comparison is made exact: our response is parsed by
 * PostgreSQL's own json type (which keeps numbers of any size and the
 * exact text of every element), json_array_elements() yields the raw
 * text of each of our row objects, and each must equal, byte for byte,
 * to_json(t)::text of the same row computed by PostgreSQL. to_json of a
 * row writes {"col":value,...} with no whitespace and the same
 * per-column rules as docs/api.md, so no normalisation is needed (json
 * values keep their own spacing on both sides, jsonb is printed by
 * jsonb_out on both sides). Column names and type names are compared
 * with the query's row description and pg_type.typname.
 */
static int compare_query(const char *sql, int n, const char *const *params)
{
	json_t *req = json_object();
	json_object_set_new(req, "sql", json_string(sql));
	if (n) {
		json_t *arr = json_array();
		for (int i = 0; i < n; i++)
			json_array_append_new(arr, json_string(params[i]));
		json_object_set_new(req, "params", arr);
	}
	char *body = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	struct http_resp *r = post(body);
	free(body);
	ck_assert_msg(r->status == 200, "status %ld for %s: %.2000s",
		      r->status, sql, r->body);
	char why[512];
	ck_assert_msg(it_json_valid(r->body, why, sizeof(why)),
		      "invalid JSON (%s) for %s: %.2000s", why, sql, r->body);

	char *tq = it_fmt("SELECT to_json(fpg_t__)::text FROM (%s) fpg_t__", sql);
	PGresult *theirs = it_pg(tq, n, params);
	free(tq);
	const char *bp[1] = {r->body};
	PGresult *ours = it_pg("SELECT e::text FROM json_array_elements("
			       "($1::json)->'rows') WITH ORDINALITY x(e, i)"
			       " ORDER BY i",
			       1, bp);
	int bad = 0;
	ck_assert_msg(PQntuples(ours) == PQntuples(theirs),
		      "%d rows, PostgreSQL has %d for %s", PQntuples(ours),
		      PQntuples(theirs), sql);
	for (int i = 0; i < PQntuples(ours); i++) {
		const char *o = PQgetvalue(ours, i, 0);
		const char *t = PQgetvalue(theirs, i, 0);
		if (strcmp(o, t) != 0 && ++bad <= 10)
			fprintf(stderr,
				"MISMATCH (seed %u) row %d of %.200s\n"
				"  want: %s\n  got:  %s\n",
				it_seed(), i, sql, t, o);
	}
	PQclear(ours);
	PQclear(theirs);

	/* Columns: names and type names. */
	char *dq = it_fmt("SELECT * FROM (%s) fpg_t__ LIMIT 0", sql);
	PGresult *desc = it_pg(dq, n, params);
	free(dq);
	PGresult *cols = it_pg("SELECT c->>'name', c->>'type' FROM"
			       " json_array_elements(($1::json)->'columns')"
			       " WITH ORDINALITY x(c, i) ORDER BY i",
			       1, bp);
	ck_assert_int_eq(PQntuples(cols), PQnfields(desc));
	for (int i = 0; i < PQnfields(desc); i++) {
		char oid[16];
		snprintf(oid, sizeof(oid), "%u", PQftype(desc, i));
		const char *op[1] = {oid};
		PGresult *tn = it_pg("SELECT typname FROM pg_type WHERE oid = $1",
				     1, op);
		if (strcmp(PQgetvalue(cols, i, 0), PQfname(desc, i)) != 0 ||
		    strcmp(PQgetvalue(cols, i, 1), PQgetvalue(tn, 0, 0)) != 0) {
			if (++bad <= 10)
				fprintf(stderr,
					"COLUMN MISMATCH %d of %.200s: got"
					" %s/%s, want %s/%s\n",
					i, sql, PQgetvalue(cols, i, 0),
					PQgetvalue(cols, i, 1), PQfname(desc, i),
					PQgetvalue(tn, 0, 0));
		}
		PQclear(tn);
	}
	PQclear(cols);
	PQclear(desc);
	http_resp_free(r);
	return bad;
}

static const char *const corpus[] = {
    /* numbers */
    "SELECT 1::int2 AS i2, (-32768)::int2 AS i2min, 2147483647 AS i4,"
    " '-9223372036854775808'::int8 AS i8, 4294967295::oid AS o,"
    " 'NaN'::float4 AS f4nan, '-Infinity'::float8 AS f8ninf,"
    " 'Infinity'::float4 AS f4inf, 1e-320::float8 AS denorm,"
    " 0.1::float4 AS f4, 1e300::float8 AS big, '-0'::float8 AS negz,"
    " 123456789012345678::float8 AS f8int, 'NaN'::numeric AS nnan,"
    " 'Infinity'::numeric AS ninf, '-Infinity'::numeric AS nninf,"
    " 1e-30::numeric AS tiny,"
    " 12345678901234567890123456789012345678.12345::numeric AS n40,"
    " '-0.000'::numeric AS nz, 1.50::numeric AS n150, 1e100::numeric AS"
    " e100, true AS t, false AS f, NULL::int4 AS nul, 12.34::money AS m",
    /* text-like */
    "SELECT 'plain'::text AS a, ''::text AS b,"
    " E'q \" b \\\\ nl \\n tab \\t ctl \\x01 \\x1f del \\x7f' AS c,"
    " 'ü é ß 😀 \xef\xbf\xbd' AS d, 'x'::varchar(3) AS e, 'ab'::char(4) AS f,"
    " 'pg_class'::name AS g, 'a'::\"char\" AS h, '\\x00ff5c22'::bytea AS i,"
    " NULL::bytea AS j, 'null'::text AS k, '{braces}'::text AS l,"
    " 'sad'::qt.mood AS m1, 'happy \"quoted\"'::qt.mood AS m2,"
    " ''::qt.mood AS m3, '</script>'::text AS html",
    /* dates and times, BC, infinities */
    "SELECT '2024-02-29'::date AS d1, 'infinity'::date AS d2,"
    " '-infinity'::date AS d3, '0044-03-15 BC'::date AS d4,"
    " '2024-01-01 12:34:56.789'::timestamp AS ts1,"
    " '-infinity'::timestamp AS ts2, '4713-01-01 00:00 BC'::timestamp AS ts3,"
    " '294276-12-31 23:59:59.999999'::timestamp AS ts4,"
    " '2024-06-01 12:00:00+05:30'::timestamptz AS tz1,"
    " 'infinity'::timestamptz AS tz2,"
    " '0044-03-15 12:00 UTC BC'::timestamptz AS tz3,"
    " '1890-06-30 12:00 UTC'::timestamptz AS tz4,"
    " '12:34:56.5'::time AS t1, '24:00'::time AS t2,"
    " '12:34:56+05:30'::timetz AS tt1,"
    " '1 year 2 mons 3 days 04:05:06.789'::interval AS i1,"
    " '-1 day'::interval AS i2, '0'::interval AS i3",
    /* arrays, with bounds, NULLs, escapes, every element type */
    "SELECT '{1,2,NULL}'::int[] AS a1, '[0:1]={5,6}'::int[] AS a2,"
    " '{{1,2},{3,4}}'::int[] AS a3,"
    " '[-2:-1][3:4]={{a,b},{\"c,d\",NULL}}'::text[] AS a4,"
    " '{}'::int[] AS a5, ARRAY['{x}', '\"q\"', '\\', 'NULL', '']::text[]"
    " AS a6, '{NaN,Infinity,-0}'::float8[] AS a7,"
    " '{1.50,NaN,-Infinity}'::numeric[] AS a8,"
    " '{\"2024-01-01 00:00+00\",infinity}'::timestamptz[] AS a9,"
    " ARRAY['{\"a\": 1}'::jsonb, 'null', '[1, \"x\"]'] AS a10,"
    " '{t,f,NULL}'::bool[] AS a11, '{\"\\\\x01\"}'::bytea[] AS a12,"
    " ARRAY['sad','ok']::qt.mood[] AS a13, '{1,2}'::qt.posint[] AS a14,"
    " '{a,\"b c\",NULL}'::qt.tags AS a15,"
    " '{\"(1,2)\",NULL}'::point[] AS a16, ARRAY['1 day'::interval] AS a17,"
    " '{9223372036854775807,-1}'::int8[] AS a18,"
    " '{{{1}},{{2}}}'::int2[] AS a19, '{\"a b\",\"\"}'::varchar[] AS a20",
    /* json and jsonb */
    "SELECT '{\"a\": [1, 2.50, {\"b\": null}], \"c\": \"\\u00e9\"}'::json"
    " AS j1, ' [ 1 , 2 ] '::json AS j2,"
    " '{\"z\":1,\"a\":2,\"n\":1e40,\"s\":\"\\\"\"}'::jsonb AS j3,"
    " 'null'::json AS j4, '\"str\"'::jsonb AS j5, '123.4500'::json AS j6,"
    " '[]'::jsonb AS j7, NULL::json AS j8, 'null'::jsonb AS j9",
    /* composites, enums, domains */
    "SELECT ROW(1,'x',ARRAY[1.5,NULL],true)::qt.inner_t AS c1,"
    " ROW(ROW(2,'y,\"z\"',NULL,NULL)::qt.inner_t,"
    " ARRAY[ROW(3,'(p)',NULL,false)::qt.inner_t, NULL], '', 5,"
    " E'a\\\\b', '{\"k\": 1}', 'infinity')::qt.outer_t AS c2,"
    " NULL::qt.inner_t AS c3, ROW(NULL,NULL,NULL,NULL)::qt.inner_t AS c4,"
    " 3::qt.posint AS dom, 2.5::qt.bignum AS bn,"
    " ARRAY[ROW(1,'a',NULL,NULL)::qt.inner_t] AS carr",
    /* everything else as text */
    "SELECT 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS u,"
    " '192.168.0.1/24'::inet AS i, '2001:db8::/32'::cidr AS c,"
    " '08:00:2b:01:02:03'::macaddr AS m, B'101'::bit(3) AS b,"
    " B'1010'::varbit AS vb, '(1,2)'::point AS p, '(1,1),(0,0)'::box AS bx,"
    " '[1,10)'::int4range AS r1, 'empty'::int4range AS r2,"
    " '[1.5,2.5]'::numrange AS r3,"
    " '[\"2020-01-01 00:00\",\"2021-01-01 00:00\")'::tsrange AS r4,"
    " '{[1,3),[5,7)}'::int4multirange AS mr, 'a fat cat'::tsvector AS tv,"
    " 'fat & rat'::tsquery AS tq, '<a>x &amp; y</a>'::xml AS x,"
    " '16/B374D848'::pg_lsn AS l, 'pg_class'::regclass AS rc,"
    " 'int4'::regtype AS rt, '(0,1)'::tid AS tid, '1 2'::int2vector AS iv",
    /* table rows and whole-row columns */
    "SELECT * FROM qt.tbl ORDER BY id",
    "SELECT t AS whole, t.o AS o, t.m AS m FROM qt.tbl t ORDER BY id",
    /* many rows */
    "SELECT g, g * 1.5 AS n, repeat('é', g) AS s, ARRAY[g, NULL] AS a,"
    " g::float8 / 3 AS f FROM generate_series(1, 50) g",
    NULL,
};

START_TEST(values_match_to_json)
{
	int bad = 0;
	for (const char *const *q = corpus; *q; q++)
		bad += compare_query(*q, 0, NULL);
	ck_assert_msg(bad == 0, "%d mismatches with to_json(), see stderr",
		      bad);
}
END_TEST

/* ---- random values ---- */

static unsigned rnd(unsigned n)
{
	return (unsigned)rand() % n;
}

static void put(char **p, const char *s)
{
	size_t n = strlen(s);
	memcpy(*p, s, n);
	*p += n;
}

/* One random UTF-8 character, never NUL. */
static void put_random_char(char **p)
{
	static const char *const specials[] = {
	    "\"", "\\", ",", "{", "}", " ", "'", "\t", "\n", "\x01", "\x1f",
	    "\x7f", "é", "ß", "€", "😀", "\xef\xbf\xbd", "\xf4\x8f\xbf\xbf",
	    "\xe2\x80\xa8", "NULL", "(", ")", "[", "]", ":", "<", "/"};
	if (rnd(3) == 0) {
		put(p, specials[rnd(sizeof(specials) / sizeof(specials[0]))]);
	} else {
		*(*p)++ = (char)(' ' + rnd(95));
	}
}

/* A random text element, quoted for an array literal. */
static void put_random_text(char **p)
{
	unsigned len = rnd(4) == 0 ? 0 : rnd(24);
	char tmp[24 * 8], *t = tmp;
	for (unsigned i = 0; i < len; i++)
		put_random_char(&t);
	*(*p)++ = '"';
	for (char *s = tmp; s < t; s++) {
		if (*s == '"' || *s == '\\')
			*(*p)++ = '\\';
		*(*p)++ = *s;
	}
	*(*p)++ = '"';
}

static void put_random_int8(char **p)
{
	uint64_t u = 0;
	for (int i = 0; i < 4; i++)
		u = u << 16 | rnd(65536);
	if (rnd(3) == 0)
		u >>= rnd(64);
	*p += sprintf(*p, "%lld", (long long)u);
}

static void put_random_numeric(char **p)
{
	unsigned k = rnd(20);
	if (k == 0) {
		put(p, "NaN");
		return;
	}
	if (k == 1) {
		put(p, rnd(2) ? "Infinity" : "-Infinity");
		return;
	}
	if (rnd(2))
		*(*p)++ = '-';
	unsigned ni = 1 + rnd(40), nf = rnd(3) ? rnd(20) : 0;
	for (unsigned i = 0; i < ni; i++)
		*(*p)++ = (char)('0' + rnd(10));
	if (nf) {
		*(*p)++ = '.';
		for (unsigned i = 0; i < nf; i++)
			*(*p)++ = (char)('0' + rnd(10));
	}
	if (rnd(5) == 0)
		*p += sprintf(*p, "e%d", (int)rnd(60) - 30);
}

static void put_random_float8(char **p)
{
	uint64_t u = 0;
	for (int i = 0; i < 4; i++)
		u = u << 16 | rnd(65536);
	double d;
	switch (rnd(4)) {
	case 0:
		d = (double)(int)rnd(2000) - 1000;
		break;
	case 1:
		d = (double)rnd(1000000) / 1000.0;
		break;
	default:
		memcpy(&d, &u, sizeof(d));
	}
	if (isnan(d))
		put(p, "NaN");
	else if (isinf(d))
		put(p, d > 0 ? "Infinity" : "-Infinity");
	else
		*p += sprintf(*p, "%.17g", d);
}

START_TEST(random_values_match_to_json)
{
	enum { ROWS = 150 };
	char *lits[5];
	int bad = 0;
	for (int round = 0; round < 4; round++) {
		for (int c = 0; c < 5; c++) {
			char *buf = malloc(ROWS * 256 + 16), *p = buf;
			*p++ = '{';
			for (int i = 0; i < ROWS; i++) {
				if (i)
					*p++ = ',';
				if (rnd(12) == 0) {
					put(&p, "NULL");
					continue;
				}
				switch (c) {
				case 0:
					put_random_int8(&p);
					break;
				case 1:
					put_random_numeric(&p);
					break;
				case 2:
					put_random_float8(&p);
					break;
				case 3:
					put_random_text(&p);
					break;
				case 4:
					p += sprintf(p, "%d",
						     (int)rnd(200000) - 100000);
					break;
				}
			}
			*p++ = '}';
			*p = '\0';
			lits[c] = buf;
		}
		bad += compare_query(
		    "SELECT i, a AS i8, b AS n, c AS f, d AS t,"
		    " e::int4 AS i4, ARRAY[a::numeric, b] AS arr,"
		    " ROW(e, d, ARRAY[b], NULL)::qt.inner_t AS comp"
		    " FROM unnest($1::int8[], $2::numeric[], $3::float8[],"
		    " $4::text[], $5::int4[]) WITH ORDINALITY AS u(a, b, c, d,"
		    " e, i) ORDER BY i",
		    5, (const char *const *)lits);
		/* And the same values as parameters of their own type. */
		bad += compare_query(
		    "SELECT $1::int8[] AS a, $2::numeric[] AS b,"
		    " $3::float8[] AS c, $4::text[] AS d",
		    4, (const char *const *)lits);
		for (int c = 0; c < 5; c++)
			free(lits[c]);
	}
	ck_assert_msg(bad == 0, "%d mismatches with to_json() (seed %u)", bad,
		      it_seed());
}
END_TEST

static const char schema_sql[] =
    "SET client_min_messages = warning;"
    "DROP SCHEMA IF EXISTS qt CASCADE;"
    "CREATE SCHEMA qt;"
    "CREATE TYPE qt.mood AS ENUM ('sad', 'ok', 'happy \"quoted\"', '');"
    "CREATE DOMAIN qt.posint AS int4 CHECK (VALUE > 0);"
    "CREATE DOMAIN qt.tags AS text[];"
    "CREATE DOMAIN qt.bignum AS numeric;"
    "CREATE TYPE qt.inner_t AS (a int4, b text, c numeric[], d bool);"
    "CREATE TYPE qt.outer_t AS (x qt.inner_t, y qt.inner_t[], z qt.mood,"
    " w qt.posint, \"we\"\"ird ü\" text, j jsonb, t timestamptz);"
    "CREATE TABLE qt.tbl (id int8 PRIMARY KEY, name text, at timestamptz,"
    " m qt.mood[], n qt.bignum, o qt.outer_t);"
    "INSERT INTO qt.tbl VALUES (1, 'one', '2024-01-01 00:00+00',"
    " '{sad,ok}', 1.50, NULL), (9223372036854775807, NULL, 'infinity',"
    " '{}', 'NaN', ROW(ROW(1,'x',ARRAY[1.5,NULL],true),"
    " ARRAY[ROW(2,'y',NULL,NULL)::qt.inner_t], 'happy \"quoted\"', 7,"
    " 'w', '{\"k\": [1, 2]}', '0044-03-15 12:00 UTC BC')::qt.outer_t);";

static void load_schema(void)
{
	pgh_exec(schema_sql);
}

static const struct test_case cases[] = {
    TEST_CASE(rows_as_objects_with_columns),
    TEST_CASE(rows_as_arrays),
    TEST_CASE(commands_and_row_counts),
    TEST_CASE(expect_one_first_scalar),
    TEST_CASE(big_numbers_as_strings),
    TEST_CASE(timeout_ms_gives_504),
    TEST_CASE(params_scalars),
    TEST_CASE(params_integer_beyond_int64),
    TEST_CASE(params_numeric_40_digits),
    TEST_CASE(params_arrays),
    TEST_CASE(params_object_as_jsonb),
    TEST_CASE(request_id_echoed_or_generated),
    TEST_CASE(large_result_streams),
    TEST_CASE(error_mid_stream),
    TEST_CASE(error_before_first_byte),
    TEST_CASE(values_match_to_json),
    TEST_CASE(random_values_match_to_json),
    {0},
};

static const struct it_server servers[] = {{&port, NULL}, {0}};

const struct it_program it_program = {
    .name = "query",
    .cases = cases,
    .servers = servers,
    .setup = load_schema,
    .schema_per_case = true,
};
