/*
 * Every bad request gets a clear JSON error with the right status
 * (docs/api.md, "Errors"), and the keep-alive connection
 * that carried it still serves the next, good request: each test sends
 * the bad request and then `select 1` on the same curl handle and checks
 * that curl did not have to open a new connection.
 *
 * Three servers: the main one, one with a 1 KiB body limit, and one
 * connected as an unprivileged login role.
 */
#include "it_common.h"

static unsigned port;	    /* main server */
static unsigned small_port; /* max_body_bytes = 1024 */
static unsigned low_port;   /* connected as fpg_low */

/* A good request on c: 200, the right answer, and no new connection. */
static void assert_still_works(CURL *c, unsigned p)
{
	long conns = -1;
	static const char body[] = "{\"sql\":\"select 41 + 1 as answer\"}";
	struct http_resp *r = it_request(c, p, "POST", "/query", body,
					 strlen(body), NULL, 0, &conns);
	ck_assert_msg(r->curl_code == 0 && r->status == 200,
		      "follow-up request: curl %d status %ld %.500s",
		      r->curl_code, r->status, r->body);
	ck_assert_msg(strstr(r->body, "\"rows\":[{\"answer\":42}]"),
		      "follow-up answer: %.500s", r->body);
	ck_assert_msg(conns == 0,
		      "the connection was not kept alive after the error "
		      "(%ld new connections)",
		      conns);
	http_resp_free(r);
}

/* A good request on a new connection, then one more on it. */
static void fresh_works(unsigned p)
{
	CURL *c = curl_easy_init();
	static const char body[] = "{\"sql\":\"select 1\"}";
	struct http_resp *r = it_request(c, p, "POST", "/query", body,
					 strlen(body), NULL, 0, NULL);
	ck_assert_int_eq(r->status, 200);
	http_resp_free(r);
	assert_still_works(c, p);
	curl_easy_cleanup(c);
}

/*
 * Sends one request on a fresh handle (after a warm-up request, so that
 * the connection exists), checks the error contract and then that the
 * connection still works.
 */
static void check_bad_on(unsigned p, const char *method, const char *path,
			 const char *body, size_t body_len,
			 const char *const *headers, long status,
			 const char *code)
{
	CURL *c = curl_easy_init();
	{
		static const char warm[] = "{\"sql\":\"select 1\"}";
		struct http_resp *w = it_request(c, p, "POST", "/query", warm,
						 strlen(warm), NULL, 0, NULL);
		ck_assert_int_eq(w->status, 200);
		http_resp_free(w);
	}
	long conns = -1;
	struct http_resp *r = it_request(c, p, method, path, body, body_len,
					 headers, 0, &conns);
	it_assert_error(r, status, code);
	ck_assert_msg(conns == 0, "the bad request needed a new connection");
	http_resp_free(r);
	assert_still_works(c, p);
	/* Twice more: nothing accumulates on the connection. */
	r = it_request(c, p, method, path, body, body_len, headers, 0, NULL);
	it_assert_error(r, status, code);
	http_resp_free(r);
	assert_still_works(c, p);
	curl_easy_cleanup(c);
}

static void check_bad(const char *body, long status, const char *code)
{
	check_bad_on(port, "POST", "/query", body, body ? strlen(body) : 0,
		     NULL, status, code);
}

/* ---- the request body ---- */

START_TEST(invalid_json)
{
	check_bad("{\"sql\": \"select 1\"", 400, NULL);
	check_bad("{\"sql\": 'select 1'}", 400, NULL);
	check_bad("{\"sql\":\"select 1\"} trailing", 400, NULL);
	check_bad("{\"sql\":\"select 1\",\"sql\":\"select 2\"}", 400, NULL);
	/* Invalid UTF-8 inside a string. */
	check_bad("{\"sql\":\"select '\xff\xfe'\"}", 400, NULL);
}
END_TEST

START_TEST(body_not_an_object)
{
	check_bad("[\"select 1\"]", 400, NULL);
	check_bad("\"select 1\"", 400, NULL);
	check_bad("null", 400, NULL);
	check_bad("42", 400, NULL);
}
END_TEST

START_TEST(empty_body)
{
	check_bad("", 400, NULL);
	check_bad_on(port, "POST", "/query", NULL, 0, NULL, 400, NULL);
	check_bad("   \n", 400, NULL);
}
END_TEST

START_TEST(sql_missing_empty_or_not_string)
{
	check_bad("{}", 400, NULL);
	check_bad("{\"params\":[1]}", 400, NULL);
	check_bad("{\"sql\":\"\"}", 400, NULL);
	check_bad("{\"sql\":\"   \\n\\t \"}", 400, NULL);
	check_bad("{\"sql\":42}", 400, NULL);
	check_bad("{\"sql\":null}", 400, NULL);
	check_bad("{\"sql\":[\"select 1\"]}", 400, NULL);
}
END_TEST

START_TEST(params_not_an_array)
{
	check_bad("{\"sql\":\"select $1::int\",\"params\":1}", 400, NULL);
	check_bad("{\"sql\":\"select $1::int\",\"params\":{\"a\":1}}", 400,
		  NULL);
	check_bad("{\"sql\":\"select $1::int\",\"params\":\"1\"}", 400, NULL);
}
END_TEST

START_TEST(wrong_parameter_count)
{
	check_bad("{\"sql\":\"select $1::int\"}", 400, NULL);
	check_bad("{\"sql\":\"select $1::int\",\"params\":[]}", 400, NULL);
	check_bad("{\"sql\":\"select $1::int\",\"params\":[1,2]}", 400, NULL);
	check_bad("{\"sql\":\"select 1\",\"params\":[1]}", 400, NULL);
}
END_TEST

START_TEST(two_statements)
{
	check_bad("{\"sql\":\"select 1; select 2\"}", 400, "42601");
	check_bad("{\"sql\":\"select 1; delete from pg_class\"}", 400,
		  "42601");
}
END_TEST

START_TEST(unknown_field)
{
	check_bad("{\"sql\":\"select 1\",\"foo\":1}", 400, NULL);
	check_bad("{\"sql\":\"select 1\",\"Rows\":\"array\"}", 400, NULL);
}
END_TEST

START_TEST(bad_option_values)
{
	check_bad("{\"sql\":\"select 1\",\"rows\":\"table\"}", 400, NULL);
	check_bad("{\"sql\":\"select 1\",\"rows\":1}", 400, NULL);
	check_bad("{\"sql\":\"select 1\",\"expect\":\"many\"}", 400, NULL);
	check_bad("{\"sql\":\"select 1\",\"expect\":null}", 400, NULL);
	check_bad("{\"sql\":\"select 1\",\"big_numbers\":\"yes\"}", 400,
		  NULL);
	check_bad("{\"sql\":\"select 1\",\"big_numbers\":true}", 400, NULL);
}
END_TEST

START_TEST(bad_timeout)
{
	check_bad("{\"sql\":\"select 1\",\"timeout_ms\":-1}", 400, NULL);
	check_bad("{\"sql\":\"select 1\",\"timeout_ms\":0}", 400, NULL);
	check_bad("{\"sql\":\"select 1\",\"timeout_ms\":\"100\"}", 400, NULL);
	check_bad("{\"sql\":\"select 1\",\"timeout_ms\":1.5}", 400, NULL);
	check_bad("{\"sql\":\"select 1\",\"timeout_ms\":99999999999}", 400,
		  NULL);
	check_bad("{\"sql\":\"select 1\",\"timeout_ms\":null}", 400, NULL);
}
END_TEST

START_TEST(body_too_large)
{
	size_t n = 4096;
	char *body = malloc(n + 64);
	ck_assert_ptr_nonnull(body);
	static const char head[] = "{\"sql\":\"select '";
	size_t k = sizeof(head) - 1;
	memcpy(body, head, k);
	memset(body + k, 'x', n);
	memcpy(body + k + n, "'\"}", 4);
	check_bad_on(small_port, "POST", "/query", body, strlen(body), NULL,
		     413, NULL);
	free(body);
	/* Under the limit, the same server answers. */
	fresh_works(small_port);
}
END_TEST

/* ---- media types, routes, methods ---- */

START_TEST(unsupported_content_type)
{
	static const char *const text[] = {"Content-Type: text/plain", NULL};
	static const char body[] = "{\"sql\":\"select 1\"}";
	check_bad_on(port, "POST", "/query", body, strlen(body), text, 415,
		     NULL);
	static const char *const form[] = {
	    "Content-Type: application/x-www-form-urlencoded", NULL};
	check_bad_on(port, "POST", "/query", body, strlen(body), form, 415,
		     NULL);
}
END_TEST

START_TEST(not_acceptable)
{
	static const char *const html[] = {"Accept: text/html", NULL};
	static const char body[] = "{\"sql\":\"select 1\"}";
	check_bad_on(port, "POST", "/query", body, strlen(body), html, 406,
		     NULL);
	/* A list that includes JSON is fine. */
	static const char *const mixed[] = {
	    "Accept: text/html, application/json;q=0.9", NULL};
	CURL *c = curl_easy_init();
	struct http_resp *r = it_request(c, port, "POST", "/query", body,
					 strlen(body), mixed, 0, NULL);
	ck_assert_int_eq(r->status, 200);
	http_resp_free(r);
	curl_easy_cleanup(c);
}
END_TEST

START_TEST(unknown_route)
{
	check_bad_on(port, "GET", "/nowhere", NULL, 0, NULL, 404, NULL);
	static const char body[] = "{\"sql\":\"select 1\"}";
	check_bad_on(port, "POST", "/querys", body, strlen(body), NULL, 404,
		     NULL);
	check_bad_on(port, "POST", "/Query", body, strlen(body), NULL, 404,
		     NULL);
}
END_TEST

START_TEST(wrong_method)
{
	check_bad_on(port, "GET", "/query", NULL, 0, NULL, 405, NULL);
	CURL *c = curl_easy_init();
	struct http_resp *r =
	    it_request(c, port, "GET", "/query", NULL, 0, NULL, 0, NULL);
	char *allow = http_header(r, "Allow");
	ck_assert_msg(allow && strcmp(allow, "POST") == 0, "Allow: %s",
		      allow ? allow : "(none)");
	free(allow);
	http_resp_free(r);

	static const char body[] = "{\"sql\":\"select 1\"}";
	r = it_request(c, port, "PUT", "/query", body, strlen(body), NULL, 0,
		       NULL);
	it_assert_error(r, 405, NULL);
	allow = http_header(r, "Allow");
	ck_assert_msg(allow && strcmp(allow, "POST") == 0, "Allow: %s",
		      allow ? allow : "(none)");
	free(allow);
	http_resp_free(r);

	r = it_request(c, port, "POST", "/healthz", body, strlen(body), NULL,
		       0, NULL);
	it_assert_error(r, 405, NULL);
	allow = http_header(r, "Allow");
	ck_assert_msg(allow && strstr(allow, "GET"), "Allow: %s",
		      allow ? allow : "(none)");
	free(allow);
	http_resp_free(r);
	assert_still_works(c, port);
	curl_easy_cleanup(c);
}
END_TEST

/* ---- errors from PostgreSQL ---- */

START_TEST(unknown_table)
{
	check_bad("{\"sql\":\"select * from no_such_table_here\"}", 400,
		  "42P01");
}
END_TEST

START_TEST(unique_violation)
{
	char *uv = it_table("uv"), *ck = it_table("ck"), *sql;
	sql = it_fmt("create table %s (id int primary key);"
		     " insert into %s values (1)",
		     uv, uv);
	pgh_exec(sql);
	free(sql);
	sql = it_fmt("{\"sql\":\"insert into %s values ($1)\",\"params\":[1]}",
		     uv);
	check_bad(sql, 409, "23505");
	free(sql);
	/* The failed inserts left nothing behind; a good one commits. */
	sql = it_fmt("{\"sql\":\"insert into %s values ($1)\",\"params\":[2]}",
		     uv);
	struct http_resp *r = it_query(port, sql);
	ck_assert_int_eq(r->status, 200);
	http_resp_free(r);
	free(sql);
	sql = it_fmt("select count(*) from %s", uv);
	char *v = pgh_scalar(sql);
	ck_assert_str_eq(v, "2");
	free(v);
	free(sql);
	/* A check violation is class 23 as well. */
	sql = it_fmt("create table %s (v int check (v > 0))", ck);
	pgh_exec(sql);
	free(sql);
	sql = it_fmt("{\"sql\":\"insert into %s values (-1)\"}", ck);
	check_bad(sql, 409, "23514");
	free(sql);
	free(uv);
	free(ck);
}
END_TEST

START_TEST(permission_denied)
{
	static const char body[] = "{\"sql\":\"select * from fpg_secret\"}";
	check_bad_on(low_port, "POST", "/query", body, strlen(body), NULL, 403,
		     "42501");
	/* The same query as the owner works. */
	struct http_resp *r = it_query(port, body);
	ck_assert_int_eq(r->status, 200);
	http_resp_free(r);
	/* And the low role can still do what it may. */
	fresh_works(low_port);
}
END_TEST

START_TEST(session_statements_rejected)
{
	static const char *const sqls[] = {
	    "BEGIN",
	    "begin isolation level serializable",
	    "START TRANSACTION",
	    "commit",
	    "ROLLBACK",
	    "SET search_path = evil",
	    "set local statement_timeout = 1",
	    "  /* comment */ SET TimeZone = 'UTC'",
	    "-- line\\nreset all",
	    "COPY pg_class TO STDOUT",
	    "copy (select 1) to stdout",
	    "LISTEN chan",
	    "PREPARE p AS select 1",
	    "DISCARD ALL",
	    "savepoint s",
	    NULL,
	};
	for (const char *const *s = sqls; *s; s++) {
		char *body = it_fmt("{\"sql\":\"%s\"}", *s);
		check_bad(body, 400, NULL);
		free(body);
	}
}
END_TEST

/*
 * SET is refused because it would change a shared connection; the same
 * change through set_config(..., false) must not reach other requests
 * either (refused, or undone after the statement).
 */
START_TEST(session_state_does_not_leak)
{
	struct http_resp *r = it_query(
	    port, "{\"sql\":\"select set_config('application_name',"
		  " 'leaked', false)\"}");
	long st = r->status;
	http_resp_free(r);
	int leaked = 0;
	for (int i = 0; st == 200 && i < 20; i++) {
		r = it_query(port, "{\"sql\":\"select"
				   " current_setting('application_name') as a\","
				   "\"expect\":\"scalar\"}");
		ck_assert_int_eq(r->status, 200);
		leaked += strstr(r->body, "leaked") != NULL;
		http_resp_free(r);
	}
	ck_assert_msg(leaked == 0,
		      "set_config(..., false) in one request changed the"
		      " session of %d of 20 later requests",
		      leaked);
}
END_TEST

/* Errors of any kind, one after another on one connection. */
START_TEST(error_storm_on_one_connection)
{
	static const char *const bad[] = {
	    "{\"sql\":\"select 1/0\"}",
	    "{bad json",
	    "{\"sql\":\"select * from nowhere_x\"}",
	    "{\"sql\":\"select $1::int\",\"params\":[\"abc\"]}",
	    "{\"sql\":\"begin\"}",
	};
	CURL *c = curl_easy_init();
	for (int i = 0; i < 50; i++) {
		const char *b = bad[i % 5];
		struct http_resp *r = it_request(c, port, "POST", "/query", b,
						 strlen(b), NULL, 0, NULL);
		it_assert_error(r, 400, NULL);
		http_resp_free(r);
		assert_still_works(c, port);
	}
	curl_easy_cleanup(c);
}
END_TEST

static void create_secret_and_role(void)
{
	pgh_exec("SET client_min_messages = warning;"
		 "DROP TABLE IF EXISTS fpg_secret;"
		 "CREATE TABLE fpg_secret (v int);"
		 "INSERT INTO fpg_secret VALUES (1);"
		 "REVOKE ALL ON fpg_secret FROM PUBLIC;"
		 "DROP ROLE IF EXISTS fpg_low;"
		 "CREATE ROLE fpg_low LOGIN;");
}

static void small_body_limit(struct fpg_options *o)
{
	o->threads = 1;
	o->max_body_bytes = 1024;
}

static void as_low_role(struct fpg_options *o)
{
	static char db[256];
	snprintf(db, sizeof(db),
		 "host=127.0.0.1 port=%u user=fpg_low dbname=postgres",
		 pgh_port());
	o->threads = 1;
	o->db = db;
}

static const struct test_case cases[] = {
    TEST_CASE(invalid_json),
    TEST_CASE(body_not_an_object),
    TEST_CASE(empty_body),
    TEST_CASE(sql_missing_empty_or_not_string),
    TEST_CASE(params_not_an_array),
    TEST_CASE(wrong_parameter_count),
    TEST_CASE(two_statements),
    TEST_CASE(unknown_field),
    TEST_CASE(bad_option_values),
    TEST_CASE(bad_timeout),
    TEST_CASE(body_too_large),
    TEST_CASE(unsupported_content_type),
    TEST_CASE(not_acceptable),
    TEST_CASE(unknown_route),
    TEST_CASE(wrong_method),
    TEST_CASE(unknown_table),
    TEST_CASE(unique_violation),
    TEST_CASE(permission_denied),
    TEST_CASE(session_statements_rejected),
    TEST_CASE(session_state_does_not_leak),
    TEST_CASE(error_storm_on_one_connection),
    {0},
};

static const struct it_server servers[] = {
    {&port, NULL},
    {&small_port, small_body_limit},
    {&low_port, as_low_role},
    {0},
};

const struct it_program it_program = {
    .name = "errors",
    .cases = cases,
    .schema_per_case = true,
    .servers = servers,
    .setup = create_secret_and_role,
};
