/*
 * POST /sql, Neon's HTTP protocol, at the byte level: the answer's shape
 * (fields with their table, column, size and modifier; rows as arrays or
 * objects; raw text or to_json values; command and rowCount), errors with
 * node-postgres' fields and the statuses Neon's drivers read, batches in
 * one transaction with the Neon-Batch-* options, the checks on the
 * connection string, its login with --auth password, browsers' rules,
 * and large answers. tests/js/ runs the real npm drivers against it.
 *
 * Servers: one without --auth (the --db login, postgres, with
 * --cors-origin) and one with --auth password,api-key, whose clients are
 * alice (a SCRAM password) or carol (an API key's role).
 */
#include <unistd.h>

#include <openssl/evp.h>

#include "it_common.h"

static unsigned port;	   /* no --auth, --cors-origin */
static unsigned auth_port; /* --auth password,api-key */
static char alice_pw[40], carol_pw[40], api_key[40];
static char keys_path[64], pgpass_path[64];

#define OPEN_LOGIN "postgresql://postgres:unused@db.example/postgres"

/* ---- helpers ---- */

/*
 * POST /sql as the driver sends it (text/plain, the Neon headers); cs is
 * the connection string (NULL: none), extra more headers or NULL.
 */
static struct http_resp *sql_on(unsigned p, const char *cs, const char *body,
				const char *const *extra)
{
	const char *h[16];
	size_t n = 0;
	char csh[600];
	h[n++] = "Content-Type: text/plain;charset=UTF-8";
	if (cs) {
		snprintf(csh, sizeof(csh), "Neon-Connection-String: %s", cs);
		h[n++] = csh;
	}
	for (; extra && *extra && n < 15; extra++)
		h[n++] = *extra;
	h[n] = NULL;
	struct http_resp *r = http_request(p, "POST", "/sql", body, h);
	ck_assert_ptr_nonnull(r);
	ck_assert_msg(r->curl_code == 0, "curl error %d for %s", r->curl_code,
		      body);
	return r;
}

static const char *const driver[] = {"Neon-Raw-Text-Output: true",
				     "Neon-Array-Mode: true", NULL};

/* The driver's request on the open server; must answer 200 with JSON. */
static struct http_resp *sql_ok(const char *body)
{
	struct http_resp *r = sql_on(port, OPEN_LOGIN, body, driver);
	ck_assert_msg(r->status == 200 && json_is_object(r->json),
		      "status %ld for %s: %.2000s", r->status, body, r->body);
	return r;
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

static const char *str(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* A Neon error: status, a message and, when code is given, that code. */
static void assert_neon_error(const struct http_resp *r, long status,
			      const char *code)
{
	ck_assert_msg(r->status == status, "status %ld, want %ld: %.1000s",
		      r->status, status, r->body);
	ck_assert_msg(json_is_object(r->json) && str(r->json, "message"),
		      "not a Neon error: %.1000s", r->body);
	ck_assert_ptr_null(json_object_get(r->json, "error"));
	if (code)
		ck_assert_msg(str(r->json, "code") &&
				      strcmp(str(r->json, "code"), code) == 0,
			      "code, want %s: %.1000s", code, r->body);
}

/* ---- shapes ---- */

START_TEST(fields_rows_and_tag)
{
	char *t = it_table("items");
	char sql[512];
	snprintf(sql, sizeof(sql),
		 "CREATE TABLE %s (id int PRIMARY KEY, name varchar(20),"
		 " amount numeric(10,2)); INSERT INTO %s VALUES (1, 'x', 1.5),"
		 " (2, NULL, 20)",
		 t, t);
	pgh_exec(sql);
	char body[512];
	snprintf(body, sizeof(body),
		 "{\"query\":\"SELECT id, name, amount, 7 AS k FROM %s ORDER "
		 "BY id\",\"params\":[]}",
		 t);
	struct http_resp *r = sql_ok(body);
	snprintf(sql, sizeof(sql), "SELECT '%s'::regclass::oid", t);
	char *oid = pgh_scalar(sql);
	json_t *fields = json_object_get(r->json, "fields");
	ck_assert_int_eq(json_array_size(fields), 4);
	char want[1024];
	snprintf(want, sizeof(want),
		 "[{\"name\":\"id\",\"dataTypeID\":23,\"tableID\":%s,"
		 "\"columnID\":1,\"dataTypeSize\":4,\"dataTypeModifier\":-1,"
		 "\"format\":\"text\"},"
		 "{\"name\":\"name\",\"dataTypeID\":1043,\"tableID\":%s,"
		 "\"columnID\":2,\"dataTypeSize\":-1,\"dataTypeModifier\":24,"
		 "\"format\":\"text\"},"
		 "{\"name\":\"amount\",\"dataTypeID\":1700,\"tableID\":%s,"
		 "\"columnID\":3,\"dataTypeSize\":-1,"
		 "\"dataTypeModifier\":655366,\"format\":\"text\"},"
		 "{\"name\":\"k\",\"dataTypeID\":23,\"tableID\":0,"
		 "\"columnID\":0,\"dataTypeSize\":4,\"dataTypeModifier\":-1,"
		 "\"format\":\"text\"}]",
		 oid, oid, oid);
	assert_json_eq(fields, want);
	assert_json_eq(json_object_get(r->json, "rows"),
		       "[[\"1\",\"x\",\"1.50\",\"7\"],[\"2\",null,\"20.00\","
		       "\"7\"]]");
	ck_assert_str_eq(str(r->json, "command"), "SELECT");
	assert_json_eq(json_object_get(r->json, "rowCount"), "2");
	assert_json_eq(json_object_get(r->json, "rowAsArray"), "true");
	/* Every answer of /sql names the request as Neon's does. */
	char *nid = http_header(r, "Neon-Request-Id");
	char *xid = http_header(r, "X-Request-Id");
	ck_assert_ptr_nonnull(nid);
	ck_assert_str_eq(nid, xid);
	free(nid);
	free(xid);
	free(oid);
	free(t);
	http_resp_free(r);
}
END_TEST

/* Without the two headers: rows as objects, values as to_json() has
 * them; "arrayMode" in the body wins over the header. */
START_TEST(objects_and_json_values)
{
	const char *body =
	    "{\"query\":\"SELECT 1 AS a, 'x' AS b, NULL::int AS c, "
	    "'{\\\"k\\\":[1,2]}'::jsonb AS j, true AS t, 1.50 AS n\"}";
	struct http_resp *r = sql_on(port, OPEN_LOGIN, body, NULL);
	ck_assert_int_eq(r->status, 200);
	assert_json_eq(json_object_get(r->json, "rows"),
		       "[{\"a\":1,\"b\":\"x\",\"c\":null,\"j\":{\"k\":[1,2]},"
		       "\"t\":true,\"n\":1.50}]");
	assert_json_eq(json_object_get(r->json, "rowAsArray"), "false");
	http_resp_free(r);
	const char *const array[] = {"Neon-Array-Mode: true", NULL};
	r = sql_on(port, OPEN_LOGIN,
		   "{\"query\":\"SELECT 1 AS a\",\"arrayMode\":false}", array);
	assert_json_eq(json_object_get(r->json, "rows"), "[{\"a\":1}]");
	http_resp_free(r);
	r = sql_on(port, OPEN_LOGIN,
		   "{\"query\":\"SELECT 1 AS a\",\"arrayMode\":true,"
		   "\"someday\":1}",
		   NULL);
	assert_json_eq(json_object_get(r->json, "rows"), "[[1]]");
	http_resp_free(r);
}
END_TEST

/* Raw text output is PostgreSQL's own text of each value. */
START_TEST(raw_text_is_postgres_text)
{
	static const char *const exprs[] = {
	    "true", "'2024-02-29 13:14:15.5+02'::timestamptz",
	    "'\\\\x00ff'::bytea", "ARRAY[1,NULL,3]", "ARRAY['a b','\\\"q\\\"']",
	    "'{\\\"b\\\": 1, \\\"a\\\": [true]}'::json", "'Infinity'::float8",
	    "'1 day 02:03:04'::interval", "9223372036854775807::int8",
	    "'12345678901234567890.000001'::numeric", "'2024-01-01'::date",
	    "ROW(1,'x')", "'a\\nb\\u00e9'::text", "point(1,2)",
	};
	for (size_t i = 0; i < sizeof(exprs) / sizeof(*exprs); i++) {
		char body[512], sql[512];
		snprintf(body, sizeof(body), "{\"query\":\"SELECT %s AS v\"}",
			 exprs[i]);
		struct http_resp *r = sql_ok(body);
		json_t *v = json_array_get(
		    json_array_get(json_object_get(r->json, "rows"), 0), 0);
		ck_assert_msg(json_is_string(v), "%s: %s", exprs[i], r->body);
		/* The same expression through libpq, unescaped from JSON. */
		json_t *q = json_loads(body, 0, NULL);
		snprintf(sql, sizeof(sql),
			 "SET DateStyle = ISO; %s",
			 str(q, "query"));
		json_decref(q);
		char *want = pgh_scalar(sql);
		ck_assert_msg(strcmp(json_string_value(v), want) == 0,
			      "%s: got %s, want %s", exprs[i],
			      json_string_value(v), want);
		free(want);
		http_resp_free(r);
	}
}
END_TEST

START_TEST(commands_and_counts)
{
	char *t = it_table("c");
	char body[512];
	snprintf(body, sizeof(body),
		 "{\"query\":\"CREATE TABLE %s (x int)\"}", t);
	struct http_resp *r = sql_ok(body);
	ck_assert_str_eq(str(r->json, "command"), "CREATE");
	assert_json_eq(json_object_get(r->json, "rowCount"), "null");
	assert_json_eq(json_object_get(r->json, "fields"), "[]");
	assert_json_eq(json_object_get(r->json, "rows"), "[]");
	http_resp_free(r);
	snprintf(body, sizeof(body),
		 "{\"query\":\"INSERT INTO %s SELECT generate_series(1, $1)\","
		 "\"params\":[\"3\"]}",
		 t);
	r = sql_ok(body);
	ck_assert_str_eq(str(r->json, "command"), "INSERT");
	assert_json_eq(json_object_get(r->json, "rowCount"), "3");
	http_resp_free(r);
	snprintf(body, sizeof(body),
		 "{\"query\":\"UPDATE %s SET x = x + 1 WHERE x > $1 "
		 "RETURNING x\",\"params\":[1]}",
		 t);
	r = sql_ok(body);
	ck_assert_str_eq(str(r->json, "command"), "UPDATE");
	assert_json_eq(json_object_get(r->json, "rowCount"), "2");
	assert_json_eq(json_object_get(r->json, "rows"), "[[\"3\"],[\"4\"]]");
	http_resp_free(r);
	free(t);
}
END_TEST

/* What the driver sends: strings, nulls, "\x.." for bytea, array
 * literals; other clients may send JSON numbers, booleans, objects. */
START_TEST(params)
{
	struct http_resp *r = sql_ok(
	    "{\"query\":\"SELECT $1::int8 + 1, $2::text, $3::bytea, "
	    "$4::int[], $5::jsonb->>'k', $6::bool, $7::numeric * 2, "
	    "$8::text[]\",\"params\":[\"9007199254740993\",null,\"\\\\x0102\","
	    "\"{1,2}\",{\"k\":\"v\"},true,1.25,[\"a,b\",null]]}");
	assert_json_eq(json_object_get(r->json, "rows"),
		       "[[\"9007199254740994\",null,\"\\\\x0102\",\"{1,2}\","
		       "\"v\",\"t\",\"2.50\",\"{\\\"a,b\\\",NULL}\"]]");
	http_resp_free(r);
	/* A wrong number of parameters is found before anything runs. */
	r = sql_on(port, OPEN_LOGIN, "{\"query\":\"SELECT $1::int\"}", driver);
	assert_neon_error(r, 400, NULL);
	ck_assert_ptr_nonnull(strstr(str(r->json, "message"), "parameter"));
	http_resp_free(r);
}
END_TEST

/* ---- errors ---- */

START_TEST(errors_carry_the_fields)
{
	char *t = it_table("u");
	char sql[256], body[512];
	snprintf(sql, sizeof(sql),
		 "CREATE TABLE %s (id int CONSTRAINT u_pk PRIMARY KEY);"
		 " INSERT INTO %s VALUES (1)",
		 t, t);
	pgh_exec(sql);
	snprintf(body, sizeof(body),
		 "{\"query\":\"INSERT INTO %s VALUES ($1)\",\"params\":[\"1\"]}",
		 t);
	struct http_resp *r = sql_on(port, OPEN_LOGIN, body, driver);
	assert_neon_error(r, 400, "23505");
	ck_assert_str_eq(str(r->json, "constraint"), "u_pk");
	ck_assert_str_eq(str(r->json, "schema"), it_schema());
	ck_assert_str_eq(str(r->json, "table"), strchr(t, '.') + 1);
	ck_assert_str_eq(str(r->json, "severity"), "ERROR");
	ck_assert_str_eq(str(r->json, "detail"),
			 "Key (id)=(1) already exists.");
	ck_assert_ptr_nonnull(str(r->json, "file"));
	ck_assert_ptr_nonnull(str(r->json, "line"));
	ck_assert_ptr_nonnull(str(r->json, "routine"));
	ck_assert_ptr_null(json_object_get(r->json, "hint"));
	http_resp_free(r);
	r = sql_on(port, OPEN_LOGIN, "{\"query\":\"SELECT nope FROM x_y_z\"}",
		   driver);
	assert_neon_error(r, 400, "42P01");
	ck_assert_str_eq(str(r->json, "position"), "18");
	http_resp_free(r);
	/* An error inside a function: where, internalQuery/-Position. */
	r = sql_on(port, OPEN_LOGIN,
		   "{\"query\":\"DO $$BEGIN EXECUTE 'SELECT 1 +'; END$$\"}",
		   driver);
	assert_neon_error(r, 400, "42601");
	ck_assert_ptr_nonnull(str(r->json, "where"));
	ck_assert_str_eq(str(r->json, "internalQuery"), "SELECT 1 +");
	ck_assert_ptr_nonnull(str(r->json, "internalPosition"));
	http_resp_free(r);
	free(t);
}
END_TEST

START_TEST(requests_refused_clearly)
{
	static const struct {
		const char *cs, *body, *header, *code;
	} bad[] = {
	    {OPEN_LOGIN, "{\"query\":", NULL, NULL},
	    {OPEN_LOGIN, "[1]", NULL, NULL},
	    {OPEN_LOGIN, "{\"params\":[]}", NULL, NULL},
	    {OPEN_LOGIN, "{\"query\":1}", NULL, NULL},
	    {OPEN_LOGIN, "{\"queries\":[]}", NULL, NULL},
	    {OPEN_LOGIN, "{\"query\":\"SELECT 1\"}", "Neon-Array-Mode: yes",
	     NULL},
	    {"host=x dbname=postgres", "{\"query\":\"SELECT 1\"}", NULL, NULL},
	    {"postgresql://postgres@x/postgres?sslmode=bogus&schema=a",
	     "{\"query\":\"SELECT 1\"}", NULL, ""},
	    {"postgresql://postgres@x/other", "{\"query\":\"SELECT 1\"}",
	     NULL, "3D000"},
	    {"postgresql://alice:pw@x/postgres", "{\"query\":\"SELECT 1\"}",
	     NULL, "28000"},
	    /* statements that would outlive the request */
	    {OPEN_LOGIN, "{\"query\":\"BEGIN\"}", NULL, NULL},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		const char *const h[] = {bad[i].header, NULL};
		struct http_resp *r = sql_on(port, bad[i].cs, bad[i].body, h);
		if (bad[i].code && !*bad[i].code) {
			/* parameters are ignored: this one works */
			ck_assert_msg(r->status == 200, "%zu: %s", i, r->body);
		} else {
			assert_neon_error(r, 400, bad[i].code);
		}
		http_resp_free(r);
	}
}
END_TEST

/* /sql runs SQL: a web page must not reach it without a preflight. The
 * driver's header is what proves one (its Content-Type is text/plain). */
START_TEST(browsers_need_a_preflight)
{
	struct http_resp *r =
	    sql_on(port, NULL, "{\"query\":\"SELECT 1\"}", NULL);
	assert_neon_error(r, 400, NULL);
	ck_assert_ptr_nonnull(strstr(str(r->json, "message"),
				     "Neon-Connection-String"));
	http_resp_free(r);
	/* A preflight, and the headers an answer lets a page read. */
	const char *const pre[] = {
	    "Origin: https://app.example",
	    "Access-Control-Request-Method: POST",
	    "Access-Control-Request-Headers: neon-connection-string", NULL};
	r = http_request(port, "OPTIONS", "/sql", NULL, pre);
	ck_assert_int_eq(r->status, 204);
	char *allow = http_header(r, "Access-Control-Allow-Headers");
	ck_assert_ptr_nonnull(allow);
	ck_assert_ptr_nonnull(strstr(allow, "Neon-Connection-String"));
	ck_assert_ptr_nonnull(strstr(allow, "Neon-Batch-Isolation-Level"));
	free(allow);
	http_resp_free(r);
	r = sql_ok("{\"query\":\"SELECT 1\"}");
	char *expose = http_header(r, "Access-Control-Expose-Headers");
	ck_assert_ptr_nonnull(expose);
	ck_assert_ptr_nonnull(strstr(expose, "Neon-Request-Id"));
	free(expose);
	http_resp_free(r);
}
END_TEST

/* ---- batches ---- */

START_TEST(batch_in_one_transaction)
{
	char *t = it_table("b");
	char body[1024];
	snprintf(body, sizeof(body),
		 "{\"queries\":[{\"query\":\"CREATE TABLE %s (x int)\"},"
		 "{\"query\":\"INSERT INTO %s VALUES ($1), ($2) RETURNING x\","
		 "\"params\":[\"1\",\"2\"]},"
		 "{\"query\":\"SELECT count(*) AS n FROM %s\",\"arrayMode\":"
		 "false},"
		 "{\"query\":\"SELECT current_setting('transaction_isolation'),"
		 " current_setting('transaction_read_only'),"
		 " current_setting('transaction_deferrable'), txid_current() ="
		 " txid_current_if_assigned()\"}]}",
		 t, t, t);
	const char *const h[] = {"Neon-Raw-Text-Output: true",
				 "Neon-Array-Mode: true",
				 "Neon-Batch-Isolation-Level: RepeatableRead",
				 "Neon-Batch-Deferrable: true", NULL};
	struct http_resp *r = sql_on(port, OPEN_LOGIN, body, h);
	ck_assert_msg(r->status == 200, "%s", r->body);
	json_t *res = json_object_get(r->json, "results");
	ck_assert_int_eq(json_array_size(res), 4);
	ck_assert_str_eq(str(json_array_get(res, 0), "command"), "CREATE");
	assert_json_eq(json_object_get(json_array_get(res, 1), "rows"),
		       "[[\"1\"],[\"2\"]]");
	assert_json_eq(json_object_get(json_array_get(res, 2), "rows"),
		       "[{\"n\":\"2\"}]");
	assert_json_eq(json_object_get(json_array_get(res, 3), "rows"),
		       "[[\"repeatable read\",\"off\",\"on\",\"t\"]]");
	http_resp_free(r);
	/* Serializable, read only */
	const char *const ro[] = {"Neon-Batch-Isolation-Level: Serializable",
				  "Neon-Batch-Read-Only: true", NULL};
	snprintf(body, sizeof(body),
		 "{\"queries\":[{\"query\":\"SELECT current_setting("
		 "'transaction_isolation') AS i\"},{\"query\":\"INSERT INTO %s"
		 " VALUES (3)\"}]}",
		 t);
	r = sql_on(port, OPEN_LOGIN, body, ro);
	assert_neon_error(r, 400, "25006");
	http_resp_free(r);
	free(t);
}
END_TEST

/* The first error rolls the whole batch back, and is the answer. */
START_TEST(batch_error_rolls_back)
{
	char *t = it_table("rb");
	char sql[256], body[1024];
	snprintf(sql, sizeof(sql), "CREATE TABLE %s (x int)", t);
	pgh_exec(sql);
	snprintf(body, sizeof(body),
		 "{\"queries\":[{\"query\":\"INSERT INTO %s VALUES (1)\"},"
		 "{\"query\":\"SELECT 1 / (x - 1) FROM %s\"},"
		 "{\"query\":\"INSERT INTO %s VALUES (2)\"}]}",
		 t, t, t);
	struct http_resp *r = sql_on(port, OPEN_LOGIN, body, driver);
	assert_neon_error(r, 400, "22012");
	ck_assert_str_eq(str(r->json, "routine"), "int4div");
	http_resp_free(r);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", t);
	char *n = pgh_scalar(sql);
	ck_assert_str_eq(n, "0");
	free(n);
	/* Transaction control has no place in a batch; options are checked. */
	r = sql_on(port, OPEN_LOGIN,
		   "{\"queries\":[{\"query\":\"SELECT 1\"},{\"query\":"
		   "\"COMMIT\"}]}",
		   driver);
	assert_neon_error(r, 400, NULL);
	http_resp_free(r);
	const char *const iso[] = {"Neon-Batch-Isolation-Level: Chaos", NULL};
	r = sql_on(port, OPEN_LOGIN, "{\"queries\":[{\"query\":\"SELECT 1\"}]}",
		   iso);
	assert_neon_error(r, 400, NULL);
	http_resp_free(r);
	free(t);
}
END_TEST

/* ---- large answers ---- */

START_TEST(large_answers_stream)
{
	struct http_resp *r = sql_ok(
	    "{\"query\":\"SELECT g, repeat('x', 20) FROM "
	    "generate_series(1, 100000) g\"}");
	json_t *rows = json_object_get(r->json, "rows");
	ck_assert_int_eq(json_array_size(rows), 100000);
	assert_json_eq(json_array_get(rows, 99999),
		       "[\"100000\",\"xxxxxxxxxxxxxxxxxxxx\"]");
	assert_json_eq(json_object_get(r->json, "rowCount"), "100000");
	http_resp_free(r);
	/* An error after the 200 went out cuts the transfer: no driver may
	 * take the rows before it for the whole result. */
	r = http_request(port, "POST", "/sql",
			 "{\"query\":\"SELECT g, 1/(g-150000) FROM "
			 "generate_series(1,200000) g\"}",
			 (const char *const[]){
			     "Neon-Connection-String: " OPEN_LOGIN, NULL});
	ck_assert_int_eq(r->status, 200);
	ck_assert_msg(r->curl_code != 0 && !r->json,
		      "a failed stream ended cleanly: curl %d", r->curl_code);
	http_resp_free(r);
	r = sql_ok("{\"query\":\"SELECT 5\"}");
	assert_json_eq(json_object_get(r->json, "rows"), "[[\"5\"]]");
	http_resp_free(r);
}
END_TEST

/* ---- logins ---- */

static char *login_of(const char *user, const char *pw)
{
	char *s = it_fmt("postgresql://%s:%s@db.example:5432/postgres?"
			 "sslmode=require",
			 user, pw);
	return s;
}

START_TEST(connection_string_logs_in)
{
	char *cs = login_of("alice", alice_pw);
	struct http_resp *r = sql_on(auth_port, cs,
				     "{\"query\":\"SELECT current_user\"}",
				     driver);
	ck_assert_msg(r->status == 200, "%s", r->body);
	assert_json_eq(json_object_get(r->json, "rows"), "[[\"alice\"]]");
	http_resp_free(r);
	/* a batch too */
	r = sql_on(auth_port, cs,
		   "{\"queries\":[{\"query\":\"SELECT current_user\"}]}",
		   driver);
	ck_assert_msg(r->status == 200, "%s", r->body);
	assert_json_eq(json_object_get(json_array_get(
				   json_object_get(r->json, "results"), 0),
				       "rows"),
		       "[[\"alice\"]]");
	http_resp_free(r);
	free(cs);
	/* A wrong password is PostgreSQL's to refuse; the driver reads a
	 * 400 (its code and message), never which part was wrong. */
	cs = login_of("alice", "wrong");
	r = sql_on(auth_port, cs, "{\"query\":\"SELECT 1\"}", driver);
	assert_neon_error(r, 400, "28P01");
	http_resp_free(r);
	free(cs);
	cs = login_of("nobody", "x");
	r = sql_on(auth_port, cs, "{\"query\":\"SELECT 1\"}", driver);
	assert_neon_error(r, 400, "28P01");
	http_resp_free(r);
	free(cs);
	/* No password: nothing to log in with. */
	r = sql_on(auth_port, "postgresql://alice@x/postgres",
		   "{\"query\":\"SELECT 1\"}", driver);
	assert_neon_error(r, 400, "28P01");
	http_resp_free(r);
	/* The database is checked with --auth too. */
	cs = it_fmt("postgresql://alice:%s@x/elsewhere", alice_pw);
	r = sql_on(auth_port, cs, "{\"query\":\"SELECT 1\"}", driver);
	assert_neon_error(r, 400, "3D000");
	http_resp_free(r);
	free(cs);
}
END_TEST

/* An Authorization header decides over the connection string (a Bearer
 * token is how the driver's authToken arrives). */
START_TEST(authorization_header_wins)
{
	char bearer[80];
	snprintf(bearer, sizeof(bearer), "Authorization: Bearer %s", api_key);
	const char *const h[] = {bearer, "Neon-Array-Mode: true", NULL};
	struct http_resp *r =
	    sql_on(auth_port, "postgresql://authenticated@x/postgres",
		   "{\"query\":\"SELECT current_user\"}", h);
	ck_assert_msg(r->status == 200, "%s", r->body);
	assert_json_eq(json_object_get(r->json, "rows"), "[[\"carol\"]]");
	http_resp_free(r);
	const char *const bad[] = {"Authorization: Bearer not-a-key", NULL};
	char *cs = login_of("alice", alice_pw);
	r = sql_on(auth_port, cs, "{\"query\":\"SELECT 1\"}", bad);
	assert_neon_error(r, 400, "28P01");
	http_resp_free(r);
	free(cs);
}
END_TEST

/* ---- setup ---- */

static void random_password(char *out, size_t n)
{
	static const char chars[] = "abcdefghijkmnopqrstuvwxyzABCDEFGH23456789";
	for (size_t i = 0; i + 1 < n; i++)
		out[i] = chars[(size_t)rand() % (sizeof(chars) - 1)];
	out[n - 1] = '\0';
}

/* alice logs in with a password, carol is an API key's role (found in
 * PGPASSFILE); pg_hba.conf asks both for their passwords. */
static void setup(void)
{
	random_password(alice_pw, 24);
	random_password(carol_pw, 24);
	random_password(api_key, 32);
	char sql[512];
	snprintf(sql, sizeof(sql),
		 "SET password_encryption = 'scram-sha-256';"
		 "CREATE ROLE alice LOGIN PASSWORD '%s';"
		 "CREATE ROLE carol LOGIN PASSWORD '%s'",
		 alice_pw, carol_pw);
	pgh_exec(sql);
	snprintf(pgpass_path, sizeof(pgpass_path), "/tmp/fpg_pgpass_XXXXXX");
	int fd = mkstemp(pgpass_path);
	if (fd < 0)
		abort(); /* in setup(), where Check cannot */
	FILE *f = fdopen(fd, "w");
	fprintf(f, "127.0.0.1:%u:*:carol:%s\n", pgh_port(), carol_pw);
	fclose(f);
	setenv("PGPASSFILE", pgpass_path, 1);
	snprintf(keys_path, sizeof(keys_path), "/tmp/fpg_keys_XXXXXX");
	fd = mkstemp(keys_path);
	if (fd < 0)
		abort();
	f = fdopen(fd, "w");
	unsigned char d[32];
	unsigned int n = 0;
	EVP_Digest(api_key, strlen(api_key), d, &n, EVP_sha256(), NULL);
	for (unsigned i = 0; i < n; i++)
		fprintf(f, "%02x", d[i]);
	fprintf(f, " carol\n");
	fclose(f);
	pgh_exec("CREATE TEMP TABLE hba AS SELECT 1 AS n, 'host all alice,carol "
		 "127.0.0.1/32 scram-sha-256' AS line UNION ALL SELECT 2, "
		 "'host all alice,carol ::1/128 scram-sha-256' UNION ALL SELECT "
		 "2 + o, translate(l, chr(9), ' ') FROM regexp_split_to_table("
		 "pg_read_file(current_setting('hba_file')), E'\\n') WITH "
		 "ORDINALITY AS t(l, o);"
		 "DO $$BEGIN EXECUTE format('COPY (SELECT line FROM hba ORDER "
		 "BY n) TO %L', current_setting('hba_file')); END$$;"
		 "SELECT pg_reload_conf()");
}

__attribute__((destructor)) static void remove_files(void)
{
	if (keys_path[0])
		unlink(keys_path);
	if (pgpass_path[0])
		unlink(pgpass_path);
}

static void with_cors(struct fpg_options *o)
{
	o->cors_origin = "https://app.example";
}

static void with_auth(struct fpg_options *o)
{
	o->auth = "password,api-key";
	o->api_keys = keys_path;
}

static const struct test_case cases[] = {
    TEST_CASE(fields_rows_and_tag),
    TEST_CASE(objects_and_json_values),
    TEST_CASE(raw_text_is_postgres_text),
    TEST_CASE(commands_and_counts),
    TEST_CASE(params),
    TEST_CASE(errors_carry_the_fields),
    TEST_CASE(requests_refused_clearly),
    TEST_CASE(browsers_need_a_preflight),
    TEST_CASE(batch_in_one_transaction),
    TEST_CASE(batch_error_rolls_back),
    TEST_CASE(large_answers_stream),
    TEST_CASE(connection_string_logs_in),
    TEST_CASE(authorization_header_wins),
    {0},
};

static const struct it_server servers[] = {
    {&port, with_cors},
    {&auth_port, with_auth},
    {0},
};

const struct it_program it_program = {
    .name = "sql",
    .cases = cases,
    .servers = servers,
    .setup = setup,
    .schema_per_case = true,
};
