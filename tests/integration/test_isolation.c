/*
 * Nothing one request does changes another request's answer, whatever
 * its SQL hides (leading semicolons, comments that end at \r, DO blocks,
 * functions), and an acknowledged write is committed while an
 * unacknowledged one is not.
 *
 * The servers under test have one worker with one PostgreSQL connection,
 * so every request shares the session of the one before it; one more
 * with two connections takes the concurrent attack mix. The friendly
 * textual check is off on all but the first: the guarantees must not
 * depend on it, so the attacks are sent as plainly as possible.
 */
#include <pthread.h>

#include "it_common.h"

static unsigned port;	   /* 1 worker, 1 connection */
static unsigned raw_port;  /* the same, without the SQL pre-check */
static unsigned pool_port; /* 2 connections, without the pre-check */
static unsigned share_port; /* 3 connections, short acquire timeout */
static unsigned nocache_port; /* --statement-cache=0, no pre-check */

/* The server the next helpers talk to. */
static unsigned cur;

/* POST /query {"sql": sql} (JSON-escaped) on a fresh connection to p. */
static struct http_resp *sql_on(unsigned p, const char *sql,
				const char *extra)
{
	json_t *b = json_pack("{s:s}", "sql", sql);
	char *body = json_dumps(b, JSON_COMPACT);
	size_t n = strlen(body);
	if (extra) {
		/* extra: more members, e.g. "\"timeout_ms\":1000" */
		char *more = it_fmt("%.*s,%s}", (int)(n - 1), body, extra);
		free(body);
		body = more;
	}
	struct http_resp *r = http_post_json(p, "/query", body);
	free(body);
	json_decref(b);
	return r;
}

static struct http_resp *sql(const char *s)
{
	return sql_on(cur, s, NULL);
}

/* Runs s and requires a 200. */
static void ok(const char *s)
{
	struct http_resp *r = sql(s);
	it_assert_resp(r, r->status == 200);
	http_resp_free(r);
}

/* The first value of the first row of s's answer, as text (caller frees). */
static char *scalar(const char *s)
{
	json_t *b = json_pack("{s:s,s:s}", "sql", s, "expect", "scalar");
	char *body = json_dumps(b, JSON_COMPACT);
	struct http_resp *r = http_post_json(cur, "/query", body);
	it_assert_resp(r, r->status == 200 && json_is_object(r->json));
	json_t *v = json_object_get(r->json, "value");
	char *out = json_is_string(v) ? strdup(json_string_value(v))
					 : json_dumps(v, JSON_ENCODE_ANY);
	http_resp_free(r);
	free(body);
	json_decref(b);
	return out;
}

static void assert_scalar(const char *s, const char *want)
{
	char *got = scalar(s);
	ck_assert_msg(strcmp(got, want) == 0, "%s -> %s, want %s", s, got,
		      want);
	free(got);
}

/* The server still answers a plain statement correctly. */
static void assert_healthy(void)
{
	assert_scalar("SELECT 40 + 2", "42");
}

/* ---- empty statements ---- */

START_TEST(empty_statements)
{
	cur = port;
	static const char *const empties[] = {
		";", ";;", "-- x", "/* c */", "--\r", "; -- x\r\n;", "/* a /* b */ */"};
	static const char *const accepts[] = {
		"application/json", "application/x-ndjson", "text/csv"};
	for (size_t i = 0; i < sizeof(empties) / sizeof(*empties); i++) {
		for (size_t a = 0; a < 3; a++) {
			json_t *b = json_pack("{s:s}", "sql", empties[i]);
			char *body = json_dumps(b, JSON_COMPACT);
			char hdr[64];
			snprintf(hdr, sizeof(hdr), "Accept: %s", accepts[a]);
			const char *h[] = {hdr, NULL};
			CURL *c = curl_easy_init();
			struct http_resp *r =
				it_request(c, port, "POST", "/query", body,
					   strlen(body), h, 10, NULL);
			it_assert_error(r, 400, "empty_query");
			http_resp_free(r);
			curl_easy_cleanup(c);
			free(body);
			json_decref(b);
		}
	}
	/* In a transaction session and in a batch too. */
	struct http_resp *r = http_post_json(port, "/tx", "{}");
	it_assert_resp(r, r->status == 201);
	const char *tok = json_string_value(json_object_get(r->json, "tx"));
	char *path = it_fmt("/tx/%s/query", tok);
	struct http_resp *e = http_post_json(port, path, "{\"sql\":\";\"}");
	it_assert_error(e, 400, "empty_query");
	http_resp_free(e);
	e = http_post_json(port, path, "{\"sql\":\"select 7\"}");
	it_assert_resp(e, e->status == 200);
	http_resp_free(e);
	free(path);
	path = it_fmt("/tx/%s/rollback", tok);
	http_resp_free(http_post_json(port, path, ""));
	free(path);
	http_resp_free(r);
	r = http_post_json(port, "/tx",
			   "{\"statements\":[{\"sql\":\"select 1\"},"
			   "{\"sql\":\"-- nothing\\r\"}]}");
	ck_assert_msg(r->status == 400 && strstr(r->body, "empty_query"),
		      "batch with an empty statement: %ld %s", r->status,
		      r->body);
	http_resp_free(r);
	assert_healthy();
}
END_TEST

/* ---- transactions opened behind the filter's back ---- */

static long count_rows(const char *table)
{
	char *q = it_fmt("SELECT count(*) FROM %s", table);
	PGresult *res = it_pg(q, 0, NULL);
	long n = strtol(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	free(q);
	return n;
}

START_TEST(sneaked_begin_loses_no_write)
{
	static const char *const begins[] = {"BEGIN", ";BEGIN", "-- x\rBEGIN",
					     "START TRANSACTION READ ONLY"};
	cur = raw_port;
	char *table = it_table("iso_w");
	char *ddl = it_fmt("CREATE TABLE %s (v int)", table);
	pgh_exec(ddl);
	free(ddl);
	for (size_t i = 0; i < sizeof(begins) / sizeof(*begins); i++) {
		struct http_resp *r = sql(begins[i]);
		ck_assert_msg(r->status >= 400 && r->status < 500,
			      "%s answered %ld %s", begins[i], r->status,
			      r->body);
		http_resp_free(r);
		/* One failing statement: it must not poison what follows. */
		http_resp_free(sql("SELECT 1/0"));
		for (int k = 0; k < 20; k++) {
			char *ins = it_fmt("INSERT INTO %s VALUES (%d)", table, k);
			ok(ins);
			free(ins);
		}
	}
	ck_assert_int_eq(count_rows(table), 80);
	assert_healthy();
	/* The friendly check says so before PostgreSQL sees it. */
	cur = port;
	struct http_resp *r = sql(";BEGIN");
	it_assert_error(r, 400, "bad_request");
	http_resp_free(r);
	free(table);
}
END_TEST

/*
 * Several clients at once on two shared connections: writers, and
 * attackers that open transactions, commit them and fail statements.
 * Afterwards the table holds exactly the acknowledged writes.
 */
struct mix {
	unsigned p;
	const char *table;
	int base, n;
	char *acked; /* acked[k]: write base + k answered 200 */
};

static void *mix_client(void *arg)
{
	struct mix *m = arg;
	static const char *const attacks[] = {
		"BEGIN", "COMMIT", "-- x\rBEGIN", "ROLLBACK", "SELECT 1/0",
		"DO $$BEGIN PERFORM pg_advisory_lock(7); END$$",
		"SET default_transaction_read_only = on",
		"SET statement_timeout = 1", "LISTEN iso_mix",
		"START TRANSACTION ISOLATION LEVEL SERIALIZABLE"};
	unsigned seed = (unsigned)m->base;
	for (int k = 0; k < m->n; k++) {
		struct http_resp *r;
		if (rand_r(&seed) % 3 == 0) {
			r = sql_on(m->p, attacks[rand_r(&seed) % 10], NULL);
			http_resp_free(r);
		}
		char *ins = it_fmt("INSERT INTO %s VALUES (%d)", m->table,
				   m->base + k);
		r = sql_on(m->p, ins, NULL);
		m->acked[k] = r->status == 200;
		http_resp_free(r);
		free(ins);
	}
	return NULL;
}

static void attack_mix(unsigned p)
{
	enum { CLIENTS = 6, EACH = 60 };
	char *table = it_table("iso_c");
	char *ddl = it_fmt("CREATE TABLE %s (v int)", table);
	pgh_exec(ddl);
	free(ddl);
	struct mix m[CLIENTS];
	pthread_t t[CLIENTS];
	for (int i = 0; i < CLIENTS; i++) {
		m[i] = (struct mix){.p = p, .table = table,
				    .base = i * 1000 + (int)(it_seed() % 7),
				    .n = EACH, .acked = calloc(EACH, 1)};
		pthread_create(&t[i], NULL, mix_client, &m[i]);
	}
	for (int i = 0; i < CLIENTS; i++)
		pthread_join(t[i], NULL);
	char *q = it_fmt("SELECT v FROM %s", table);
	PGresult *res = it_pg(q, 0, NULL);
	free(q);
	int acked = 0;
	for (int i = 0; i < CLIENTS; i++)
		for (int k = 0; k < EACH; k++) {
			int v = m[i].base + k;
			bool found = false;
			for (int r = 0; r < PQntuples(res) && !found; r++)
				found = atoi(PQgetvalue(res, r, 0)) == v;
			ck_assert_msg(found == (m[i].acked[k] != 0),
				      "write %d: answered %s but %s", v,
				      m[i].acked[k] ? "200" : "an error",
				      found ? "committed" : "not committed");
			acked += m[i].acked[k];
		}
	ck_assert_int_eq(PQntuples(res), acked);
	/* Most writes get through: attackers cost others little. */
	ck_assert_msg(acked > CLIENTS * EACH * 3 / 4, "only %d of %d acked",
		      acked, CLIENTS * EACH);
	PQclear(res);
	for (int i = 0; i < CLIENTS; i++)
		free(m[i].acked);
	/* No session lock stays behind on the pool's connections. */
	res = it_pg("SELECT pg_try_advisory_lock(7)", 0, NULL);
	ck_assert_str_eq(PQgetvalue(res, 0, 0), "t");
	PQclear(res);
	free(table);
}

START_TEST(concurrent_attacks_keep_acknowledged_writes)
{
	attack_mix(pool_port);
}
END_TEST

START_TEST(concurrent_attacks_without_statement_cache)
{
	attack_mix(nocache_port);
}
END_TEST

/* A statement that ends a transaction session's transaction ends the
 * session, and the answer says what became of what ran before it. */
START_TEST(commit_inside_a_session)
{
	char *table = it_table("iso_t");
	char *ddl = it_fmt("CREATE TABLE %s (v int)", table);
	pgh_exec(ddl);
	free(ddl);
	struct http_resp *r = http_post_json(raw_port, "/tx", "{}");
	it_assert_resp(r, r->status == 201);
	char *tok = strdup(json_string_value(json_object_get(r->json, "tx")));
	http_resp_free(r);
	char *path = it_fmt("/tx/%s/query", tok);
	char *ins = it_fmt("{\"sql\":\"INSERT INTO %s VALUES (1)\"}", table);
	r = http_post_json(raw_port, path, ins);
	it_assert_resp(r, r->status == 200);
	http_resp_free(r);
	r = http_post_json(raw_port, path, "{\"sql\":\"COMMIT\"}");
	it_assert_error(r, 409, "transaction_ended");
	it_assert_resp(r, strstr(r->body, "committed") != NULL);
	http_resp_free(r);
	/* Nothing more runs outside the transaction it was meant for. */
	r = http_post_json(raw_port, path, ins);
	ck_assert_msg(r->status == 410, "after the end: %ld %s", r->status,
		      r->body);
	http_resp_free(r);
	ck_assert_int_eq(count_rows(table), 1);
	/* A batch: the answer says the first statement was committed. */
	char *batch = it_fmt("{\"statements\":[{\"sql\":\"INSERT INTO %s "
			     "VALUES (2)\"},{\"sql\":\"COMMIT\"},{\"sql\":"
			     "\"INSERT INTO %s VALUES (3)\"}]}",
			     table, table);
	r = http_post_json(raw_port, "/tx", batch);
	ck_assert_msg(r->status == 409 && strstr(r->body, "transaction_ended") &&
			      strstr(r->body, "committed"),
		      "batch with COMMIT: %ld %s", r->status, r->body);
	http_resp_free(r);
	ck_assert_int_eq(count_rows(table), 2);
	free(batch);
	free(ins);
	free(path);
	free(tok);
	free(table);
}
END_TEST

/* ---- session state set by functions and DO blocks ---- */

START_TEST(settings_do_not_leak)
{
	cur = raw_port;
	/* search_path: a lower() of our own would answer "PWNED". */
	pgh_exec("CREATE SCHEMA IF NOT EXISTS iso_evil;"
		 "CREATE OR REPLACE FUNCTION iso_evil.lower(text) RETURNS text"
		 " LANGUAGE sql AS $$SELECT 'PWNED'::text$$");
	ok("SELECT set_config('search_path', 'iso_evil, pg_catalog', false)");
	assert_scalar("SELECT lower('ABC')", "abc");
	ok("SET search_path = iso_evil, pg_catalog");
	assert_scalar("SELECT lower('ABC')", "abc");
	ok("DO $$BEGIN PERFORM set_config('search_path', 'iso_evil, "
	   "pg_catalog', false); END$$");
	assert_scalar("SELECT lower('ABC')", "abc");
	assert_scalar("SELECT current_setting('search_path')",
		      "\"$user\", public");

	/* The server's statement timeout cannot be switched off. */
	char *want = scalar("SELECT current_setting('statement_timeout')");
	ok("SELECT set_config('statement_timeout', '0', false)");
	char *got = scalar("SELECT current_setting('statement_timeout')");
	ck_assert_str_eq(got, want);
	free(got);
	free(want);

	/* Output formats the encoder relies on. */
	ok("DO $$BEGIN PERFORM set_config('DateStyle', 'German', false); "
	   "PERFORM set_config('extra_float_digits', '-15', false); "
	   "PERFORM set_config('IntervalStyle', 'sql_standard', false); "
	   "PERFORM set_config('bytea_output', 'escape', false); END$$");
	assert_scalar("SELECT date '2026-11-27'", "2026-11-27");
	assert_scalar("SELECT 0.1::float8 * 3", "0.30000000000000004");
	assert_scalar("SELECT interval '1 day 2 hours'", "1 day 02:00:00");
	assert_scalar("SELECT '\\x00ff'::bytea", "\\x00ff");
	/* The text checks read '' strings as PostgreSQL does by default. */
	ok("SELECT set_config('standard_conforming_strings', 'off', false)");
	assert_scalar("SELECT current_setting('standard_conforming_strings')",
		      "on");
	ok("SELECT 1");

	/* A client encoding other than UTF-8 would break the JSON. */
	ok("SELECT set_config('client_encoding', 'LATIN1', false)");
	assert_scalar("SELECT 'caf' || chr(233)", "caf\xc3\xa9");

	/* A change made by a failing statement rolls back with it. */
	struct http_resp *r = sql("SELECT set_config('search_path', 'iso_evil, "
				  "pg_catalog', false), 1/0");
	ck_assert_int_eq(r->status, 400);
	http_resp_free(r);
	assert_scalar("SELECT lower('ABC')", "abc");

	/* Streaming (a held connection) is reset the same way. */
	r = sql_on(cur, "SELECT set_config('search_path', 'iso_evil, "
			"pg_catalog', false)",
		   NULL);
	http_resp_free(r);
	json_t *b = json_pack("{s:s}", "sql", "SELECT lower('ABC') AS v");
	char *body = json_dumps(b, JSON_COMPACT);
	const char *h[] = {"Accept: application/x-ndjson", NULL};
	CURL *c = curl_easy_init();
	r = it_request(c, cur, "POST", "/query?stream=true", body,
		       strlen(body), h, 10, NULL);
	it_assert_resp(r, r->status == 200 && strstr(r->body, "\"abc\""));
	http_resp_free(r);
	curl_easy_cleanup(c);
	free(body);
	json_decref(b);
}
END_TEST

START_TEST(role_does_not_leak)
{
	cur = raw_port;
	pgh_exec("DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE "
		 "rolname = 'iso_other') THEN CREATE ROLE iso_other; END IF; "
		 "END$$");
	char *me = scalar("SELECT current_user");
	ok("SELECT set_config('role', 'iso_other', false)");
	char *now = scalar("SELECT current_user");
	ck_assert_str_eq(now, me);
	free(now);
	ok("DO $$BEGIN PERFORM set_config('role', 'iso_other', false); "
	   "END$$");
	now = scalar("SELECT current_user");
	ck_assert_str_eq(now, me);
	free(now);
	ok("SET ROLE iso_other");
	now = scalar("SELECT current_user");
	ck_assert_str_eq(now, me);
	free(now);
	ok("SET SESSION AUTHORIZATION iso_other");
	now = scalar("SELECT session_user");
	ck_assert_str_eq(now, me);
	free(now);
	ok("SELECT set_config('session_authorization', 'iso_other', false)");
	now = scalar("SELECT session_user");
	ck_assert_str_eq(now, me);
	free(now);
	now = scalar("SELECT current_user");
	ck_assert_str_eq(now, me);
	free(now);
	free(me);
}
END_TEST

START_TEST(session_objects_do_not_leak)
{
	cur = raw_port;
	/* Temporary tables. */
	ok("DO $$BEGIN CREATE TEMP TABLE iso_tmp AS SELECT 'secret' AS s; "
	   "END$$");
	struct http_resp *r = sql("SELECT s FROM iso_tmp");
	it_assert_error(r, 400, "42P01");
	http_resp_free(r);
	/* Session advisory locks, also from a statement that then failed. */
	ok("SELECT pg_advisory_lock(4242)");
	r = sql("DO $$BEGIN PERFORM pg_advisory_lock(4343); RAISE 'no'; END$$");
	ck_assert_int_ne(r->status, 200);
	http_resp_free(r);
	PGresult *res = it_pg("SELECT pg_try_advisory_lock(4242), "
			      "pg_try_advisory_lock(4343)",
			      0, NULL);
	ck_assert_str_eq(PQgetvalue(res, 0, 0), "t");
	ck_assert_str_eq(PQgetvalue(res, 0, 1), "t");
	PQclear(res);
	/* LISTEN. */
	ok("DO $$BEGIN EXECUTE 'LISTEN iso_chan'; END$$");
	assert_scalar("SELECT count(*) FROM pg_listening_channels()", "0");
	/* Cursors kept past their transaction. */
	ok("DO $$BEGIN EXECUTE 'DECLARE iso_cur CURSOR WITH HOLD FOR "
	   "SELECT 1'; END$$");
	assert_scalar("SELECT count(*) FROM pg_cursors WHERE name = 'iso_cur'", "0");
	/* Sequence values of the session. */
	pgh_exec("CREATE SEQUENCE IF NOT EXISTS iso_seq");
	ok("SELECT nextval('iso_seq')");
	r = sql("SELECT lastval()");
	it_assert_error(r, 500, "55000");
	http_resp_free(r);
	ok("LISTEN iso_chan2");
	assert_scalar("SELECT count(*) FROM pg_listening_channels()", "0");
	ok("CREATE TEMP TABLE iso_tmp2 AS SELECT 1 AS s");
	r = sql("SELECT s FROM iso_tmp2");
	it_assert_error(r, 400, "42P01");
	http_resp_free(r);
	/* Statements prepared from SQL do not survive their request. */
	ok("PREPARE iso_p AS SELECT 1");
	r = sql("EXECUTE iso_p");
	it_assert_error(r, 400, "26000");
	http_resp_free(r);
	/* The friendly check refuses them, however dressed up. */
	cur = port;
	static const char *const prepares[] = {
		";PREPARE iso_q AS SELECT 1", "-- x\rPREPARE iso_q AS SELECT 1",
		"/* a /* b */ */ ; PREPARE iso_q AS SELECT 1"};
	for (size_t i = 0; i < 3; i++) {
		r = sql(prepares[i]);
		it_assert_error(r, 400, "bad_request");
		http_resp_free(r);
	}
	assert_healthy();
}
END_TEST

/*
 * No reset undoes setseed(): without a new seed after every request, the
 * next request's random() would be the sequence its neighbour chose.
 */
START_TEST(random_seed_does_not_leak)
{
	/* What random() gives after setseed(0.25), PostgreSQL says. */
	PGconn *c = PQconnectdb(pgh_conninfo());
	ck_assert_int_eq(PQstatus(c), CONNECTION_OK);
	PQclear(PQexec(c, "SELECT setseed(0.25)"));
	PGresult *res = PQexec(c, "SELECT random()::text");
	ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
	char *seeded = strdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	PQfinish(c);
	const unsigned ports[] = {raw_port, nocache_port};
	for (size_t p = 0; p < 2; p++) {
		cur = ports[p];
		for (int i = 0; i < 4; i++) {
			ok("SELECT setseed(0.25)");
			char *got = scalar("SELECT random()::text");
			ck_assert_msg(strcmp(got, seeded) != 0,
				      "random() after a neighbour's setseed(0.25) "
				      "is %s, the seeded value", got);
			free(got);
		}
	}
	/* Nor after a transaction session on the one connection. */
	cur = raw_port;
	struct http_resp *r = http_post_json(
		raw_port, "/tx",
		"{\"statements\":[{\"sql\":\"SELECT setseed(0.25)\"}]}");
	it_assert_resp(r, r->status == 200);
	http_resp_free(r);
	char *got = scalar("SELECT random()::text");
	ck_assert_msg(strcmp(got, seeded) != 0,
		      "random() after a session's setseed(0.25) is %s, the "
		      "seeded value", got);
	free(got);
	free(seeded);
	assert_healthy();
}
END_TEST

START_TEST(deallocate_all_recovers)
{
	cur = raw_port;
	static const char *const deallocs[] = {
		"DEALLOCATE ALL", ";DEALLOCATE ALL",
		"DO $$BEGIN EXECUTE 'DEALLOCATE ALL'; END$$"};
	for (size_t i = 0; i < 3; i++) {
		/* Cached statements, with and without a timeout. */
		assert_scalar("SELECT 6 * 7", "42");
		struct http_resp *r =
			sql_on(cur, "SELECT 'x' AS v", "\"timeout_ms\":5000");
		it_assert_resp(r, r->status == 200);
		http_resp_free(r);
		http_resp_free(sql(deallocs[i]));
		for (int k = 0; k < 3; k++) {
			assert_scalar("SELECT 6 * 7", "42");
			r = sql_on(cur, "SELECT 'x' AS v", "\"timeout_ms\":5000");
			it_assert_resp(r, r->status == 200 &&
						  strstr(r->body, "\"x\""));
			http_resp_free(r);
		}
	}
}
END_TEST

/* timeout_ms applies to its statement alone, and VACUUM takes it. */
START_TEST(timeouts_stay_with_their_statement)
{
	cur = port;
	char *dflt = scalar("SELECT current_setting('statement_timeout')");
	for (int k = 0; k < 2; k++) {
		/* k = 1: the statement is known by now (fast lane). */
		struct http_resp *r = sql_on(cur, "VACUUM pg_class",
					     "\"timeout_ms\":60000");
		it_assert_resp(r, r->status == 200);
		http_resp_free(r);
		r = sql_on(cur, "SELECT current_setting('statement_timeout') AS t",
			   "\"timeout_ms\":1234");
		it_assert_resp(r, r->status == 200 && strstr(r->body, "1234ms"));
		http_resp_free(r);
		char *now = scalar("SELECT current_setting('statement_timeout')");
		ck_assert_str_eq(now, dflt);
		free(now);
		r = sql_on(cur, "SELECT pg_sleep(2)", "\"timeout_ms\":100");
		it_assert_error(r, 504, "57014");
		http_resp_free(r);
	}
	/* In a transaction session: only the statement that asked. */
	struct http_resp *r = http_post_json(cur, "/tx", "{}");
	it_assert_resp(r, r->status == 201);
	char *path = it_fmt("/tx/%s/query",
			    json_string_value(json_object_get(r->json, "tx")));
	http_resp_free(r);
	r = http_post_json(cur, path,
			   "{\"sql\":\"SELECT current_setting('statement_timeout')"
			   " AS t\",\"timeout_ms\":777}");
	it_assert_resp(r, r->status == 200 && strstr(r->body, "777ms"));
	http_resp_free(r);
	r = http_post_json(cur, path,
			   "{\"sql\":\"SELECT current_setting('statement_timeout')"
			   " AS t\"}");
	it_assert_resp(r, r->status == 200 && strstr(r->body, dflt));
	http_resp_free(r);
	free(path);
	free(dflt);
}
END_TEST

/*
 * Transaction sessions take connections from the pool, never its last
 * one, and never more than the pool holds: a client opening sessions as
 * fast as it can cannot take PostgreSQL's connections.
 */
START_TEST(sessions_are_a_bounded_share)
{
	enum { TRIES = 12 };
	char *toks[TRIES];
	int open = 0;
	for (int i = 0; i < TRIES; i++) {
		struct http_resp *r = http_post_json(share_port, "/tx", "{}");
		toks[i] = NULL;
		if (r->status == 201) {
			toks[i] = strdup(json_string_value(
				json_object_get(r->json, "tx")));
			open++;
		} else {
			it_assert_error(r, 503, NULL);
		}
		http_resp_free(r);
	}
	ck_assert_int_eq(open, 2); /* pool_max 3: all but one */
	/* /query still has its connection. */
	for (int k = 0; k < 5; k++) {
		struct http_resp *r = sql_on(share_port, "SELECT 1", NULL);
		it_assert_resp(r, r->status == 200);
		http_resp_free(r);
	}
	PGresult *res = it_pg("SELECT count(*) FROM pg_stat_activity WHERE "
			      "application_name = 'fasterpg-share'",
			      0, NULL);
	ck_assert_msg(atoi(PQgetvalue(res, 0, 0)) <= 3, "%s backends",
		      PQgetvalue(res, 0, 0));
	PQclear(res);
	/* A session that ends gives its connection back. */
	for (int i = 0; i < TRIES; i++) {
		if (!toks[i])
			continue;
		char *path = it_fmt("/tx/%s/rollback", toks[i]);
		struct http_resp *r = http_post_json(share_port, path, "");
		it_assert_resp(r, r->status == 200);
		http_resp_free(r);
		free(path);
		free(toks[i]);
	}
	struct http_resp *r = http_post_json(share_port, "/tx", "{}");
	it_assert_resp(r, r->status == 201);
	char *path = it_fmt("/tx/%s/rollback",
			    json_string_value(json_object_get(r->json, "tx")));
	http_resp_free(r);
	http_resp_free(http_post_json(share_port, path, ""));
	free(path);
}
END_TEST

/* ALTER TYPE under the same OID: answers follow the catalog, as to_json. */
START_TEST(type_changes_are_seen)
{
	cur = raw_port;
	char *ty = it_table("iso_ty"), *tt = it_table("iso_tt");
	char *ddl = it_fmt("CREATE TYPE %s AS (a int, b text);"
			   "CREATE TABLE %s (v %s, w %s[]);"
			   "INSERT INTO %s VALUES (ROW(1, 'x'), "
			   "ARRAY[ROW(2, 'y')::%s])",
			   ty, tt, ty, ty, tt, ty);
	pgh_exec(ddl);
	free(ddl);
	static const char *const alters[] = {
		"", "ALTER TYPE %s RENAME ATTRIBUTE a TO renamed",
		"ALTER TYPE %s ADD ATTRIBUTE c int",
		"ALTER TYPE %s DROP ATTRIBUTE b",
		"ALTER TYPE %s ADD ATTRIBUTE d int[]"};
	char *sel = it_fmt("SELECT v, w FROM %s", tt);
	char *want_sql = it_fmt("SELECT to_json(v)::text, to_json(w)::text "
				"FROM %s",
				tt);
	for (size_t i = 0; i < sizeof(alters) / sizeof(*alters); i++) {
		if (*alters[i]) {
			char *alter = it_fmt(alters[i], ty);
			pgh_exec(alter);
			free(alter);
		}
		struct http_resp *r = sql(sel);
		it_assert_resp(r, r->status == 200);
		json_t *row = json_array_get(json_object_get(r->json, "rows"), 0);
		PGresult *want = it_pg(want_sql, 0, NULL);
		for (int c = 0; c < 2; c++) {
			json_t *w = json_loads(PQgetvalue(want, 0, c), 0, NULL);
			json_t *got = json_object_get(row, c ? "w" : "v");
			ck_assert_msg(json_equal(got, w),
				      "after \"%s\": column %d is %s, to_json "
				      "says %s",
				      alters[i], c, json_dumps(got, JSON_COMPACT),
				      PQgetvalue(want, 0, c));
			json_decref(w);
		}
		PQclear(want);
		http_resp_free(r);
	}
	free(sel);
	free(want_sql);
	free(ty);
	free(tt);
}
END_TEST

/*
 * Client SQL can put its own statement under the name of one of the
 * reset's, but only a plannable one, whose tag gives it away: that
 * session is replaced before anyone else uses it.
 */
START_TEST(replaced_reset_is_noticed)
{
	cur = raw_port;
	pgh_exec("CREATE SCHEMA IF NOT EXISTS iso_evil;"
		 "CREATE OR REPLACE FUNCTION iso_evil.lower(text) RETURNS text"
		 " LANGUAGE sql AS $$SELECT 'PWNED'::text$$");
	static const char *const names[] = {"fpg_reset_all", "fpg_reset_role",
					    "fpg_reset_temp"};
	for (size_t i = 0; i < 3; i++) {
		char *tamper = it_fmt(
			"DO $$BEGIN EXECUTE 'DEALLOCATE %s'; "
			"EXECUTE 'PREPARE %s AS SELECT 1'; "
			"PERFORM set_config('search_path', 'iso_evil, "
			"pg_catalog', false); END$$",
			names[i], names[i]);
		ok(tamper);
		free(tamper);
		assert_scalar("SELECT lower('ABC')", "abc");
		assert_scalar("SELECT current_setting('search_path')",
			      "\"$user\", public");
	}
}
END_TEST

/* A statement prepared from SQL under the name the pool would use next
 * costs nobody an answer: the request runs on another connection. */
START_TEST(taken_statement_name)
{
	cur = raw_port;
	for (int i = 0; i < 3; i++) {
		ok("DO $$BEGIN EXECUTE format('PREPARE %I AS SELECT 1', 'fpg_' "
		   "|| (SELECT coalesce(max(substr(name, 5)::int), -1) + 1 FROM "
		   "pg_prepared_statements WHERE name ~ '^fpg_[0-9]+$')); END$$");
		char *q = it_fmt("SELECT %d + %d", i, 40);
		char *want = it_fmt("%d", i + 40);
		assert_scalar(q, want);
		free(q);
		free(want);
	}
}
END_TEST

/*
 * Without a statement cache, what SQL prepares does not outlive its
 * request, even from inside a DO block, and the rest holds as well.
 */
START_TEST(no_statement_cache_undoes_prepare)
{
	cur = nocache_port;
	pgh_exec("CREATE SCHEMA IF NOT EXISTS iso_evil;"
		 "CREATE OR REPLACE FUNCTION iso_evil.lower(text) RETURNS text"
		 " LANGUAGE sql AS $$SELECT 'PWNED'::text$$");
	ok("DO $$BEGIN EXECUTE 'PREPARE iso_np AS SELECT 1'; END$$");
	struct http_resp *r = sql("EXECUTE iso_np");
	it_assert_error(r, 400, "26000");
	http_resp_free(r);
	ok("PREPARE iso_np2 AS SELECT 2");
	r = sql("EXECUTE iso_np2");
	it_assert_error(r, 400, "26000");
	http_resp_free(r);
	/* Replacing everything prepared changes nothing for the next. */
	ok("DO $$BEGIN EXECUTE 'DEALLOCATE ALL'; EXECUTE 'PREPARE fpg_0 AS "
	   "SELECT 666'; PERFORM set_config('search_path', 'iso_evil, "
	   "pg_catalog', false); END$$");
	for (int i = 0; i < 3; i++) {
		assert_scalar("SELECT lower('ABC')", "abc");
		assert_scalar("SELECT 6 * 7", "42");
		r = sql_on(cur, "SELECT 'x' AS v", "\"timeout_ms\":5000");
		it_assert_resp(r, r->status == 200 && strstr(r->body, "\"x\""));
		http_resp_free(r);
	}
	ok("SELECT pg_advisory_lock(4545)");
	PGresult *res = it_pg("SELECT pg_try_advisory_lock(4545)", 0, NULL);
	ck_assert_str_eq(PQgetvalue(res, 0, 0), "t");
	PQclear(res);
	r = sql("BEGIN");
	ck_assert_int_eq(r->status, 400);
	http_resp_free(r);
	assert_scalar("SELECT 40 + 2", "42");
	assert_scalar("SELECT count(*) FROM pg_prepared_statements WHERE "
		      "from_sql",
		      "0");
	assert_scalar("SELECT current_setting('standard_conforming_strings')",
		      "on");
	/* The one DISCARD ALL also drops temporary tables and listens. */
	ok("DO $$BEGIN EXECUTE 'CREATE TEMP TABLE iso_np_t (a int)';"
	   " EXECUTE 'LISTEN iso_np_ch'; END$$");
	for (int i = 0; i < 3; i++) {
		assert_scalar("SELECT count(*) FROM pg_class WHERE relname = "
			      "'iso_np_t'",
			      "0");
		assert_scalar("SELECT count(*) FROM pg_listening_channels()",
			      "0");
	}
}
END_TEST

static void one_connection(struct fpg_options *o)
{
	o->threads = 1;
	o->pool_min = 1;
	o->pool_max = 1;
}

static void one_connection_no_precheck(struct fpg_options *o)
{
	one_connection(o);
	o->sql_precheck = 0;
}

static void two_connections_no_precheck(struct fpg_options *o)
{
	one_connection_no_precheck(o);
	o->pool_min = 2;
	o->pool_max = 2;
}

static void short_acquire(struct fpg_options *o)
{
	static char db[512];
	snprintf(db, sizeof(db), "%s application_name=fasterpg-share",
		 pgh_conninfo());
	o->db = db;
	o->threads = 1;
	o->pool_max = 3;
	o->acquire_timeout_ms = 300;
}

/* Its conninfo asks for standard_conforming_strings=off: the pool's own
 * settings come after it and win. */
static void no_statement_cache(struct fpg_options *o)
{
	static char db[512];
	snprintf(db, sizeof(db),
		 "%s options='-c standard_conforming_strings=off'",
		 pgh_conninfo());
	o->db = db;
	o->threads = 1;
	o->pool_max = 2;
	o->sql_precheck = 0;
	o->statement_cache = 0;
}

static const struct test_case cases[] = {
    TEST_CASE(empty_statements),
    TEST_CASE(sneaked_begin_loses_no_write),
    TEST_CASE(concurrent_attacks_keep_acknowledged_writes),
    TEST_CASE(concurrent_attacks_without_statement_cache),
    TEST_CASE(commit_inside_a_session),
    TEST_CASE(settings_do_not_leak),
    TEST_CASE(role_does_not_leak),
    TEST_CASE(session_objects_do_not_leak),
    TEST_CASE(random_seed_does_not_leak),
    TEST_CASE(deallocate_all_recovers),
    TEST_CASE(timeouts_stay_with_their_statement),
    TEST_CASE(sessions_are_a_bounded_share),
    TEST_CASE(type_changes_are_seen),
    TEST_CASE(replaced_reset_is_noticed),
    TEST_CASE(taken_statement_name),
    TEST_CASE(no_statement_cache_undoes_prepare),
    {0},
};

static const struct it_server servers[] = {
    {&port, one_connection},
    {&raw_port, one_connection_no_precheck},
    {&pool_port, two_connections_no_precheck},
    {&share_port, short_acquire},
    {&nocache_port, no_statement_cache},
    {0},
};

const struct it_program it_program = {
    .name = "isolation",
    .cases = cases,
    .schema_per_case = true,
    .servers = servers,
};
