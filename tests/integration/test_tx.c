/*
 * Transaction sessions end to end (docs/api.md "Transactions"; keyed by
 * token", §3 "Transactions"): POST /tx, /tx/{token}/query, commit,
 * rollback, DELETE; visibility, isolation levels, serialization failures,
 * read-only sessions, idle timeout, busy tokens, forged tokens, sessions
 * hopping between workers, errors and client disconnects inside a
 * session, refused statements and savepoints, session state not leaking
 * into the pool, no connection leaks after many sessions, max_transactions
 * and shutdown with open sessions.
 *
 * One throwaway cluster; one in-process server with 2 workers for most
 * tests (plus short-lived ones for the limit and shutdown tests). Every
 * request uses a fresh TCP connection so that requests of one session
 * land on random workers (SO_REUSEPORT). CK_NOFORK: the server's threads
 * live in this process. Random choices use a seed printed at start
 * (FPG_TEST_SEED replays it).
 */
#include <limits.h>
#include <pthread.h>
#include <unistd.h>

#include "it_common.h"

#if defined(__SANITIZE_ADDRESS__)
#define IT_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define IT_SANITIZED 1
#endif
#endif
#ifndef IT_SANITIZED
#define IT_SANITIZED 0
#endif

static unsigned port;
static struct fpg_options main_opts;

/* Time allowances grow under sanitizers (about 3x slower). */
static double slow(void)
{
	return IT_SANITIZED || getenv("FPG_TEST_SLOW") ? 3.0 : 1.0;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* ---- HTTP: one fresh connection per request ---- */

static struct http_resp *treq_on(unsigned p, const char *method,
				 const char *path, const char *body,
				 long timeout_ms)
{
	struct http_opts o = {.timeout_ms = timeout_ms, .fresh_connect = true};
	struct http_resp *r = http_request_opts(p, method, path, body, NULL, &o);
	if (!r)
		abort();
	return r;
}

static struct http_resp *treq(const char *method, const char *path,
			      const char *body)
{
	return treq_on(port, method, path, body, 0);
}

/* {"sql": sql} as JSON text (malloc'd). */
static char *sql_body(const char *sql)
{
	json_t *o = json_pack("{s:s}", "sql", sql);
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}

static bool is_hex_token(const char *t)
{
	if (!t || strlen(t) != 46)
		return false;
	for (const char *p = t; *p; p++)
		if (!strchr("0123456789abcdef", *p))
			return false;
	return true;
}

/* POST /tx with body (NULL: none); requires 201; returns the token. */
static char *tx_begin_on(unsigned p, const char *body)
{
	struct http_resp *r = treq_on(p, "POST", "/tx", body, 0);
	it_assert_resp(r, r->curl_code == 0 && r->status == 201);
	ck_assert_msg(json_is_object(r->json), "not JSON: %s", r->body);
	const char *tok = json_string_value(json_object_get(r->json, "tx"));
	ck_assert_msg(is_hex_token(tok), "bad token in %s", r->body);
	ck_assert_msg(json_is_integer(json_object_get(r->json,
						      "idle_timeout_ms")) &&
			  json_is_integer(json_object_get(r->json,
							  "expires_in_ms")),
		      "begin answer: %s", r->body);
	char *t = strdup(tok);
	http_resp_free(r);
	return t;
}

static char *tx_begin(const char *body)
{
	return tx_begin_on(port, body);
}

static struct http_resp *txq_on(unsigned p, const char *tok, const char *sql,
				long timeout_ms)
{
	char path[128];
	snprintf(path, sizeof(path), "/tx/%s/query", tok);
	char *b = sql_body(sql);
	struct http_resp *r = treq_on(p, "POST", path, b, timeout_ms);
	free(b);
	return r;
}

static struct http_resp *txq(const char *tok, const char *sql)
{
	return txq_on(port, tok, sql, 0);
}

/* A statement in the session that must answer 200. */
static struct http_resp *txq_ok(const char *tok, const char *sql)
{
	struct http_resp *r = txq(tok, sql);
	ck_assert_msg(r->curl_code == 0 && r->status == 200 &&
			  json_is_object(r->json) &&
			  !json_object_get(r->json, "error"),
		      "tx %s: %s -> status %ld curl %d: %.1000s", tok, sql,
		      r->status, r->curl_code, r->body);
	return r;
}

static void txq_ok_free(const char *tok, const char *sql)
{
	http_resp_free(txq_ok(tok, sql));
}

/* The first column of the first row of a 200 answer, as text. */
static char *first_value(const struct http_resp *r)
{
	json_t *rows = json_object_get(r->json, "rows");
	ck_assert_msg(json_array_size(rows) >= 1, "no rows: %s", r->body);
	json_t *row = json_array_get(rows, 0);
	const char *k;
	json_t *v;
	json_object_foreach(row, k, v) {
		if (json_is_string(v))
			return strdup(json_string_value(v));
		return json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
	}
	ck_abort_msg("empty row: %s", r->body);
	return NULL;
}

static long tx_scalar_int(const char *tok, const char *sql)
{
	struct http_resp *r = txq_ok(tok, sql);
	char *v = first_value(r);
	long n = strtol(v, NULL, 10);
	free(v);
	http_resp_free(r);
	return n;
}

/* Autocommit /query outside any session. */
static long q_scalar_int_on(unsigned p, const char *sql)
{
	char *b = sql_body(sql);
	struct http_resp *r = treq_on(p, "POST", "/query", b, 0);
	free(b);
	it_assert_resp(r, r->curl_code == 0 && r->status == 200 &&
			      json_is_object(r->json));
	char *v = first_value(r);
	long n = strtol(v, NULL, 10);
	free(v);
	http_resp_free(r);
	return n;
}

static long q_scalar_int(const char *sql)
{
	return q_scalar_int_on(port, sql);
}

static char *q_scalar_str(const char *sql)
{
	char *b = sql_body(sql);
	struct http_resp *r = treq("POST", "/query", b);
	free(b);
	it_assert_resp(r, r->curl_code == 0 && r->status == 200 &&
			      json_is_object(r->json));
	char *v = first_value(r);
	http_resp_free(r);
	return v;
}

static long pg_int(const char *sql)
{
	char *v = pgh_scalar(sql);
	long n = v ? strtol(v, NULL, 10) : -1;
	free(v);
	return n;
}

/* POST /tx/{tok}/{what} (commit, rollback) or DELETE /tx/{tok}. */
static struct http_resp *tx_end_on(unsigned p, const char *tok,
				   const char *what)
{
	char path[128];
	if (strcmp(what, "delete") == 0) {
		snprintf(path, sizeof(path), "/tx/%s", tok);
		return treq_on(p, "DELETE", path, NULL, 0);
	}
	snprintf(path, sizeof(path), "/tx/%s/%s", tok, what);
	return treq_on(p, "POST", path, NULL, 0);
}

static struct http_resp *tx_end(const char *tok, const char *what)
{
	return tx_end_on(port, tok, what);
}

static void tx_end_ok_on(unsigned p, const char *tok, const char *what)
{
	struct http_resp *r = tx_end_on(p, tok, what);
	const char *want = strcmp(what, "commit") == 0 ? "committed"
						       : "rolled back";
	ck_assert_msg(r->curl_code == 0 && r->status == 200 &&
			  json_is_object(r->json) &&
			  json_string_value(json_object_get(r->json,
							    "status")) &&
			  strcmp(json_string_value(json_object_get(
				     r->json, "status")),
				 want) == 0,
		      "%s of %s: status %ld curl %d body %.1000s", what, tok,
		      r->status, r->curl_code, r->body);
	http_resp_free(r);
}

static void tx_end_ok(const char *tok, const char *what)
{
	tx_end_ok_on(port, tok, what);
}

/* An error answer whose message contains needle (NULL: any). */
static void assert_error_msg(const struct http_resp *r, long status,
			     const char *code, const char *needle)
{
	it_assert_error(r, status, code);
	const char *m = json_string_value(
	    json_object_get(json_object_get(r->json, "error"), "message"));
	if (needle)
		ck_assert_msg(m && strstr(m, needle),
			      "message lacks \"%s\": %.1000s", needle, r->body);
}

/* ---- /stats ---- */

struct stats {
	long long tx_open, commits, rollbacks, expired;
	long long pool_open, pool_busy, pool_waiting, in_flight;
};

static long long jint(json_t *o, const char *path)
{
	/* a.b.c */
	char buf[128];
	snprintf(buf, sizeof(buf), "%s", path);
	json_t *cur = o;
	for (char *save = NULL, *k = strtok_r(buf, ".", &save); k;
	     k = strtok_r(NULL, ".", &save))
		cur = json_object_get(cur, k);
	ck_assert_msg(json_is_integer(cur), "/stats has no integer %s", path);
	return (long long)json_integer_value(cur);
}

static struct stats get_stats_on(unsigned p)
{
	struct http_resp *r = treq_on(p, "GET", "/stats", NULL, 0);
	it_assert_resp(r, r->status == 200 && json_is_object(r->json));
	struct stats s;
	s.tx_open = jint(r->json, "transactions_open");
	s.commits = jint(r->json, "total.transactions.commits");
	s.rollbacks = jint(r->json, "total.transactions.rollbacks");
	s.expired = jint(r->json, "total.transactions.expired");
	(void)jint(r->json, "total.transactions.retries");
	s.pool_open = jint(r->json, "total.pool.open");
	s.pool_busy = jint(r->json, "total.pool.busy");
	s.pool_waiting = jint(r->json, "total.pool.waiting");
	s.in_flight = jint(r->json, "total.in_flight");
	http_resp_free(r);
	return s;
}

static struct stats get_stats(void)
{
	return get_stats_on(port);
}

static char *new_table(const char *prefix, const char *cols)
{
	char *name = it_table(prefix);
	char *sql = it_fmt("CREATE TABLE %s (%s)", name, cols);
	pgh_exec(sql);
	free(sql);
	return name;
}

/* ---- 1. visibility ---- */

START_TEST(commit_visible_only_after_commit)
{
	char *t = new_table("tx_vis", "id int");
	char *sql;
	struct stats s0 = get_stats();

	char *tok = tx_begin(NULL);
	sql = it_fmt("INSERT INTO %s VALUES (1)", t);
	txq_ok_free(tok, sql);
	free(sql);
	sql = it_fmt("SELECT count(*) FROM %s", t);
	ck_assert_int_eq(q_scalar_int(sql), 0);	  /* others: not yet */
	ck_assert_int_eq(tx_scalar_int(tok, sql), 1); /* the session: yes */
	ck_assert_int_eq(q_scalar_int(sql), 0);
	tx_end_ok(tok, "commit");
	ck_assert_int_eq(q_scalar_int(sql), 1);
	free(tok);

	/* rollback (POST) and DELETE leave nothing */
	const char *ends[] = {"rollback", "delete"};
	for (int i = 0; i < 2; i++) {
		tok = tx_begin("{}");
		char *ins = it_fmt("INSERT INTO %s VALUES (%d)", t, 10 + i);
		txq_ok_free(tok, ins);
		free(ins);
		ck_assert_int_eq(tx_scalar_int(tok, sql), 2);
		tx_end_ok(tok, ends[i]);
		ck_assert_int_eq(q_scalar_int(sql), 1);
		free(tok);
	}
	free(sql);
	sql = it_fmt("SELECT count(*) FROM %s WHERE id = 1", t);
	ck_assert_int_eq(pg_int(sql), 1);
	free(sql);

	struct stats s1 = get_stats();
	ck_assert_int_eq(s1.commits - s0.commits, 1);
	ck_assert_int_eq(s1.rollbacks - s0.rollbacks, 2);
	ck_assert_int_eq(s1.tx_open, 0);
	free(t);
}
END_TEST

/* Begin options are validated: unknown field, bad values → 400. */
START_TEST(begin_options_validated)
{
	const char *bad[] = {
	    "{\"isolation\":\"chaos\"}",
	    "{\"isolation\":1}",
	    "{\"read_only\":\"yes\"}",
	    "{\"deferrable\":1}",
	    "{\"idle_timeout_ms\":-5}",
	    "{\"idle_timeout_ms\":\"300\"}",
	    "{\"idle_timeout_ms\":999999999999}",
	    "{\"bogus\":true}",
	    "[1]",
	    "{\"isolation\":",
	};
	struct stats s0 = get_stats();
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct http_resp *r = treq("POST", "/tx", bad[i]);
		ck_assert_msg(r->status == 400, "%s -> %ld %s", bad[i],
			      r->status, r->body);
		it_assert_error(r, 400, NULL);
		http_resp_free(r);
	}
	ck_assert_int_eq(get_stats().tx_open, s0.tx_open);

	/* Every isolation level names itself in PostgreSQL. */
	const char *lv[] = {"read committed", "repeatable read",
			    "serializable"};
	for (int i = 0; i < 3; i++) {
		char *b = it_fmt("{\"isolation\":\"%s\",\"read_only\":false,"
				 "\"deferrable\":false,"
				 "\"idle_timeout_ms\":5000}",
				 lv[i]);
		struct http_resp *r = treq("POST", "/tx", b);
		it_assert_resp(r, r->status == 201);
		ck_assert_int_eq(jint(r->json, "idle_timeout_ms"), 5000);
		ck_assert_msg(jint(r->json, "expires_in_ms") > 0, "%s",
			      r->body);
		char *tok = strdup(json_string_value(json_object_get(r->json,
								     "tx")));
		http_resp_free(r);
		struct http_resp *q =
		    txq_ok(tok, "SELECT current_setting("
				"'transaction_isolation') AS l");
		char *v = first_value(q);
		ck_assert_str_eq(v, lv[i]);
		free(v);
		http_resp_free(q);
		tx_end_ok(tok, "rollback");
		free(tok);
		free(b);
	}
}
END_TEST

/* ---- 2. isolation levels ---- */

START_TEST(isolation_levels)
{
	char *t = new_table("tx_iso", "id int primary key, v int");
	char *sql = it_fmt("INSERT INTO %s VALUES (1, 1)", t);
	pgh_exec(sql);
	free(sql);
	char *sel = it_fmt("SELECT v FROM %s WHERE id = 1", t);

	/* read committed: sees another session's commit mid-transaction */
	char *rc = tx_begin("{\"isolation\":\"read committed\"}");
	ck_assert_int_eq(tx_scalar_int(rc, sel), 1);
	sql = it_fmt("UPDATE %s SET v = 2 WHERE id = 1", t);
	{
		char *b = sql_body(sql);
		struct http_resp *r = treq("POST", "/query", b);
		it_assert_resp(r, r->status == 200);
		http_resp_free(r);
		free(b);
	}
	free(sql);
	ck_assert_int_eq(tx_scalar_int(rc, sel), 2);
	tx_end_ok(rc, "commit");
	free(rc);

	/* repeatable read: keeps its snapshot */
	char *rr = tx_begin("{\"isolation\":\"repeatable read\"}");
	ck_assert_int_eq(tx_scalar_int(rr, sel), 2);
	sql = it_fmt("UPDATE %s SET v = 3 WHERE id = 1", t);
	{
		char *b = sql_body(sql);
		struct http_resp *r = treq("POST", "/query", b);
		it_assert_resp(r, r->status == 200);
		http_resp_free(r);
		free(b);
	}
	free(sql);
	ck_assert_int_eq(tx_scalar_int(rr, sel), 2);
	/* writing the row changed since the snapshot: 40001 → 409 */
	sql = it_fmt("UPDATE %s SET v = 10 WHERE id = 1", t);
	struct http_resp *r = txq(rr, sql);
	free(sql);
	it_assert_error(r, 409, "40001");
	http_resp_free(r);
	tx_end_ok(rr, "rollback");
	free(rr);
	ck_assert_int_eq(q_scalar_int(sel), 3);
	free(sel);
	free(t);
}
END_TEST

/* Doctors on call: each session reads both rows and takes a different
 * one off call; serializable lets only one commit. */
START_TEST(serializable_write_skew)
{
	char *t = new_table("tx_doc", "id int primary key, on_call bool");
	char *sql = it_fmt("INSERT INTO %s VALUES (1, true), (2, true)", t);
	pgh_exec(sql);
	free(sql);
	char *cnt = it_fmt("SELECT count(*) FROM %s WHERE on_call", t);
	struct stats s0 = get_stats();

	char *a = tx_begin("{\"isolation\":\"serializable\"}");
	char *b = tx_begin("{\"isolation\":\"serializable\"}");
	ck_assert_int_eq(tx_scalar_int(a, cnt), 2);
	ck_assert_int_eq(tx_scalar_int(b, cnt), 2);
	char *ua = it_fmt("UPDATE %s SET on_call = false WHERE id = 1", t);
	char *ub = it_fmt("UPDATE %s SET on_call = false WHERE id = 2", t);
	txq_ok_free(a, ua);
	txq_ok_free(b, ub);

	double t0 = it_now();
	struct http_resp *ca = tx_end(a, "commit");
	struct http_resp *cb = tx_end(b, "commit");
	double el = it_now() - t0;
	ck_assert_msg(el < 5.0 * slow(), "commits took %.2f s", el);
	ck_assert_msg(ca->curl_code == 0 && cb->curl_code == 0,
		      "curl %d / %d", ca->curl_code, cb->curl_code);
	struct http_resp *ok = ca->status == 200 ? ca : cb;
	struct http_resp *bad = ca->status == 200 ? cb : ca;
	const char *bad_tok = ca->status == 200 ? b : a;
	ck_assert_msg(ok->status == 200,
		      "no commit succeeded: %ld %s / %ld %s", ca->status,
		      ca->body, cb->status, cb->body);
	assert_error_msg(bad, 409, "40001", NULL);
	http_resp_free(ca);
	http_resp_free(cb);

	/* The failed session is over. */
	{
		struct http_resp *r = txq(bad_tok, "SELECT 1");
		assert_error_msg(r, 410, "transaction_ended", "commit failed");
		http_resp_free(r);
	}
	ck_assert_int_eq(q_scalar_int(cnt), 1);
	struct stats s1 = get_stats();
	ck_assert_int_eq(s1.commits - s0.commits, 1);
	ck_assert_int_eq(s1.tx_open, 0);
	free(a);
	free(b);
	free(ua);
	free(ub);
	free(cnt);
	free(t);
}
END_TEST

/* ---- 3. read-only and deferrable ---- */

START_TEST(read_only_and_deferrable)
{
	char *t = new_table("tx_ro", "id int");
	char *tok = tx_begin("{\"read_only\":true}");
	char *ins = it_fmt("INSERT INTO %s VALUES (1)", t);
	struct http_resp *r = txq(tok, ins);
	ck_assert_msg(r->status >= 400, "read-only insert: %ld %s", r->status,
		      r->body);
	it_assert_error(r, r->status, "25006");
	http_resp_free(r);
	tx_end_ok(tok, "rollback");
	free(tok);

	tok = tx_begin("{\"isolation\":\"serializable\",\"read_only\":true,"
		       "\"deferrable\":true}");
	struct http_resp *q =
	    txq_ok(tok, "SELECT current_setting('transaction_deferrable') "
			"|| ' ' || current_setting('transaction_read_only') "
			"AS s");
	char *v = first_value(q);
	ck_assert_str_eq(v, "on on");
	free(v);
	http_resp_free(q);
	char *cnt = it_fmt("SELECT count(*) FROM %s", t);
	ck_assert_int_eq(tx_scalar_int(tok, cnt), 0);
	tx_end_ok(tok, "commit");
	free(tok);
	free(cnt);
	free(ins);
	free(t);
}
END_TEST

/* ---- 4. idle timeout ---- */

START_TEST(idle_timeout_rolls_back)
{
	char *t = new_table("tx_idle", "id int");
	struct stats s0 = get_stats();
	struct http_resp *r = treq("POST", "/tx", "{\"idle_timeout_ms\":300}");
	it_assert_resp(r, r->status == 201);
	ck_assert_int_eq(jint(r->json, "idle_timeout_ms"), 300);
	char *tok = strdup(json_string_value(json_object_get(r->json, "tx")));
	http_resp_free(r);
	char *ins = it_fmt("INSERT INTO %s VALUES (1)", t);
	txq_ok_free(tok, ins);
	free(ins);
	/* Activity resets the idle clock: 3 statements 150 ms apart. */
	for (int i = 0; i < 3; i++) {
		sleep_ms(150);
		txq_ok_free(tok, "SELECT 1");
	}
	sleep_ms(1000);
	r = txq(tok, "SELECT 1");
	assert_error_msg(r, 410, "transaction_ended", "idle timeout");
	http_resp_free(r);
	r = tx_end(tok, "commit");
	assert_error_msg(r, 410, "transaction_ended", "idle timeout");
	http_resp_free(r);
	char *cnt = it_fmt("SELECT count(*) FROM %s", t);
	ck_assert_int_eq(q_scalar_int(cnt), 0);
	ck_assert_int_eq(pg_int(cnt), 0);
	free(cnt);
	struct stats s1 = get_stats();
	ck_assert_int_eq(s1.expired - s0.expired, 1);
	ck_assert_int_eq(s1.tx_open, 0);
	free(tok);
	free(t);
}
END_TEST

/* ---- 5. one token, two requests at once ---- */

struct bg_req {
	pthread_t th;
	char tok[64];
	const char *sql;
	struct http_resp *r;
	double took;
};

static void *bg_run(void *arg)
{
	struct bg_req *b = arg;
	double t0 = it_now();
	b->r = txq(b->tok, b->sql);
	b->took = it_now() - t0;
	return NULL;
}

START_TEST(busy_token_409_at_once)
{
	char *tok = tx_begin(NULL);
	struct bg_req bg = {.sql = "SELECT pg_sleep(1)"};
	snprintf(bg.tok, sizeof(bg.tok), "%s", tok);
	ck_assert_int_eq(pthread_create(&bg.th, NULL, bg_run, &bg), 0);
	sleep_ms(300);
	const char *what[] = {"query", "commit", "rollback", "delete"};
	for (int i = 0; i < 4; i++) {
		double t0 = it_now();
		struct http_resp *r = i == 0 ? txq(tok, "SELECT 2")
					     : tx_end(tok, what[i]);
		double el = it_now() - t0;
		assert_error_msg(r, 409, "transaction_busy", NULL);
		ck_assert_msg(el < 0.2 * slow(), "busy %s answered in %.3f s",
			      what[i], el);
		http_resp_free(r);
	}
	pthread_join(bg.th, NULL);
	it_assert_resp(bg.r, bg.r->status == 200);
	http_resp_free(bg.r);
	/* still usable */
	ck_assert_int_eq(tx_scalar_int(tok, "SELECT 42"), 42);
	tx_end_ok(tok, "commit");
	free(tok);
}
END_TEST

/* ---- 6. unknown, forged and ended tokens ---- */

static void expect_404(const char *tok)
{
	char path[256];
	struct http_resp *r = txq(tok, "SELECT 1");
	assert_error_msg(r, 404, "transaction_not_found", NULL);
	http_resp_free(r);
	r = tx_end(tok, "commit");
	assert_error_msg(r, 404, "transaction_not_found", NULL);
	http_resp_free(r);
	snprintf(path, sizeof(path), "/tx/%s", tok);
	r = treq("DELETE", path, NULL);
	assert_error_msg(r, 404, "transaction_not_found", NULL);
	http_resp_free(r);
}

START_TEST(unknown_forged_and_ended_tokens)
{
	char rnd[47];
	for (int i = 0; i < 46; i++)
		rnd[i] = "0123456789abcdef"[rand() % 16];
	rnd[46] = 0;
	expect_404(rnd);
	expect_404("abc");
	expect_404("0000000000000000000000000000000000000000000000");
	expect_404("zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz");

	char *tok = tx_begin(NULL);
	txq_ok_free(tok, "SELECT 1");
	char forged[47];
	/* last hex digit (secret), first byte (worker), generation */
	int pos[] = {45, 1, 13, 20};
	for (size_t i = 0; i < sizeof(pos) / sizeof(pos[0]); i++) {
		memcpy(forged, tok, 47);
		forged[pos[i]] = forged[pos[i]] == '0' ? '1' : '0';
		if (pos[i] == 1)
			forged[0] = '0', forged[1] = 'f'; /* worker 15 */
		expect_404(forged);
	}
	/* the real one was not disturbed */
	txq_ok_free(tok, "SELECT 1");
	tx_end_ok(tok, "commit");
	struct http_resp *r = txq(tok, "SELECT 1");
	assert_error_msg(r, 410, "transaction_ended", "committed");
	http_resp_free(r);
	r = tx_end(tok, "rollback");
	assert_error_msg(r, 410, "transaction_ended", "committed");
	http_resp_free(r);
	free(tok);

	tok = tx_begin(NULL);
	tx_end_ok(tok, "delete");
	r = tx_end(tok, "commit");
	assert_error_msg(r, 410, "transaction_ended", "rolled back");
	http_resp_free(r);
	free(tok);
}
END_TEST

/* ---- 7. sessions hopping between workers ---- */

#define HOP_SESSIONS 20
#define HOP_STMTS 10
#define HOP_THREADS 4

struct hop_arg {
	pthread_t th;
	const char *table;
	int first, n; /* sessions [first, first + n) */
	unsigned seed;
	char toks[HOP_SESSIONS][64];
	char err[512];
};

static void *hop_run(void *arg)
{
	struct hop_arg *h = arg;
	int left[HOP_SESSIONS];
	int total = 0;
	for (int i = 0; i < h->n; i++) {
		left[i] = HOP_STMTS;
		total += HOP_STMTS;
	}
	while (total > 0) {
		int k = (int)(rand_r(&h->seed) % (unsigned)h->n);
		if (left[k] == 0)
			continue;
		int sess = h->first + k;
		int stmt = HOP_STMTS - left[k];
		char sql[256];
		snprintf(sql, sizeof(sql),
			 "INSERT INTO %s VALUES (%d, %d, pg_backend_pid())",
			 h->table, sess, stmt);
		struct http_resp *r = txq(h->toks[k], sql);
		if (r->status != 200) {
			snprintf(h->err, sizeof(h->err),
				 "session %d stmt %d: %ld curl %d %.300s", sess,
				 stmt, r->status, r->curl_code, r->body);
			http_resp_free(r);
			return NULL;
		}
		http_resp_free(r);
		left[k]--;
		total--;
	}
	return NULL;
}

START_TEST(sessions_hop_between_workers)
{
	char *t = new_table("tx_hop", "s int, i int, pid int");
	struct hop_arg args[HOP_THREADS];
	int per = HOP_SESSIONS / HOP_THREADS;
	char *toks[HOP_SESSIONS];
	for (int i = 0; i < HOP_SESSIONS; i++)
		toks[i] = tx_begin(i % 3 == 0 ? "{\"isolation\":\"repeatable "
						"read\"}"
					      : NULL);
	for (int k = 0; k < HOP_THREADS; k++) {
		memset(&args[k], 0, sizeof(args[k]));
		args[k].table = t;
		args[k].first = k * per;
		args[k].n = per;
		args[k].seed = it_seed() + (unsigned)k;
		for (int i = 0; i < per; i++)
			snprintf(args[k].toks[i], 64, "%s", toks[k * per + i]);
		ck_assert_int_eq(
		    pthread_create(&args[k].th, NULL, hop_run, &args[k]), 0);
	}
	for (int k = 0; k < HOP_THREADS; k++)
		pthread_join(args[k].th, NULL);
	for (int k = 0; k < HOP_THREADS; k++)
		ck_assert_msg(args[k].err[0] == 0, "%s", args[k].err);

	/* Each session ran on one backend, and saw exactly its own rows. */
	for (int i = 0; i < HOP_SESSIONS; i++) {
		char *sql = it_fmt("SELECT count(DISTINCT pid) * 1000 + "
				   "count(*) FILTER (WHERE s = %d) * 100 + "
				   "count(*) FILTER (WHERE s <> %d) FROM %s",
				   i, i, t);
		ck_assert_int_eq(tx_scalar_int(toks[i], sql), 1000 + 100 * HOP_STMTS);
		free(sql);
	}
	/* End them in random order, half committed. */
	bool committed[HOP_SESSIONS];
	int order[HOP_SESSIONS];
	for (int i = 0; i < HOP_SESSIONS; i++) {
		order[i] = i;
		committed[i] = (i % 2) == 0;
	}
	for (int i = HOP_SESSIONS - 1; i > 0; i--) {
		int j = rand() % (i + 1);
		int x = order[i];
		order[i] = order[j];
		order[j] = x;
	}
	for (int i = 0; i < HOP_SESSIONS; i++) {
		int s = order[i];
		tx_end_ok(toks[s], committed[s] ? "commit"
						: (s % 4 == 1 ? "delete"
							      : "rollback"));
	}
	/* Exactly the committed sessions' rows, each statement once. */
	char *sql = it_fmt(
	    "SELECT coalesce(string_agg(s || ':' || n || ':' || d, ',' "
	    "ORDER BY s), '') FROM (SELECT s, count(*) n, count(DISTINCT i) d "
	    "FROM %s GROUP BY s) x",
	    t);
	char *got = pgh_scalar(sql);
	free(sql);
	char want[1024] = "";
	for (int i = 0; i < HOP_SESSIONS; i++)
		if (committed[i])
			snprintf(want + strlen(want), sizeof(want) - strlen(want),
				 "%s%d:%d:%d", want[0] ? "," : "", i, HOP_STMTS,
				 HOP_STMTS);
	ck_assert_str_eq(got, want);
	free(got);
	for (int i = 0; i < HOP_SESSIONS; i++)
		free(toks[i]);
	ck_assert_int_eq(get_stats().tx_open, 0);
	free(t);
}
END_TEST

/* ---- 8. errors inside a session ---- */

START_TEST(error_aborts_session)
{
	char *t = new_table("tx_err", "id int");
	char *ins = it_fmt("INSERT INTO %s VALUES (1)", t);
	char *cnt = it_fmt("SELECT count(*) FROM %s", t);

	/* commit after an error: 409, session over */
	char *tok = tx_begin(NULL);
	txq_ok_free(tok, ins);
	struct http_resp *r = txq(tok, "SELECT 1/0");
	it_assert_error(r, 400, "22012");
	http_resp_free(r);
	r = txq(tok, "SELECT 1");
	it_assert_error(r, 409, "25P02");
	http_resp_free(r);
	r = txq(tok, ins);
	it_assert_error(r, 409, "25P02");
	http_resp_free(r);
	r = tx_end(tok, "commit");
	it_assert_error(r, 409, NULL);
	http_resp_free(r);
	r = txq(tok, "SELECT 1");
	assert_error_msg(r, 410, "transaction_ended", NULL);
	http_resp_free(r);
	r = tx_end(tok, "rollback");
	assert_error_msg(r, 410, "transaction_ended", NULL);
	http_resp_free(r);
	free(tok);
	ck_assert_int_eq(q_scalar_int(cnt), 0);

	/* rollback after an error: 200 */
	tok = tx_begin(NULL);
	txq_ok_free(tok, ins);
	r = txq(tok, "SELECT * FROM no_such_table_tx");
	it_assert_error(r, 400, "42P01");
	http_resp_free(r);
	r = txq(tok, "SELECT 1");
	it_assert_error(r, 409, "25P02");
	http_resp_free(r);
	tx_end_ok(tok, "rollback");
	free(tok);

	/* a bad request (not sent to PostgreSQL) does not abort it */
	tok = tx_begin(NULL);
	txq_ok_free(tok, ins);
	char path[128];
	snprintf(path, sizeof(path), "/tx/%s/query", tok);
	r = treq("POST", path, "{\"sql\":\"SELECT $1\",\"params\":[]}");
	ck_assert_msg(r->status == 400, "%ld %s", r->status, r->body);
	http_resp_free(r);
	r = treq("POST", path, "{not json");
	ck_assert_msg(r->status == 400, "%ld %s", r->status, r->body);
	http_resp_free(r);
	r = treq("POST", path, "{\"sql\":\"SELECT 1\",\"bogus\":1}");
	ck_assert_msg(r->status == 400, "%ld %s", r->status, r->body);
	http_resp_free(r);
	ck_assert_int_eq(tx_scalar_int(tok, cnt), 1);
	tx_end_ok(tok, "commit");
	free(tok);
	ck_assert_int_eq(q_scalar_int(cnt), 1);
	ck_assert_int_eq(get_stats().tx_open, 0);
	free(ins);
	free(cnt);
	free(t);
}
END_TEST

/*
 * The session's backend is terminated while its COMMIT is on its way:
 * the answer tells what happened. 200 only when the row is there; a 503
 * that carries PostgreSQL's 57P01 only when it is not (the backend died
 * before it committed); never a 500 with no message (a connection found
 * broken before COMMIT was sent), never a 503 for a commit PostgreSQL
 * had acknowledged (the connection broke in the DISCARD ALL behind it).
 * A race: each run hits the narrow windows a few times.
 */
START_TEST(commit_beside_a_terminated_backend_tells_what_happened)
{
	char *t = new_table("tx_term", "tag int");
	PGconn *killer = PQconnectdb(pgh_conninfo());
	ck_assert_int_eq(PQstatus(killer), CONNECTION_OK);
	int answers[600] = {0};
	for (int i = 0; i < 400; i++) {
		/* A session's connection the last kill reached after its
		 * commit went back to the pool alive; a BEGIN that gets it
		 * before its end is read answers 503: begin again. */
		struct http_resp *b = NULL;
		for (int k = 0; k < 5; k++) {
			http_resp_free(b);
			b = treq("POST", "/tx", NULL);
			if (b->status != 503)
				break;
			sleep_ms(10);
		}
		it_assert_resp(b, b->status == 201);
		char *tok = strdup(json_string_value(json_object_get(b->json, "tx")));
		http_resp_free(b);
		char *ins = it_fmt("INSERT INTO %s VALUES (%d)", t, i);
		txq_ok_free(tok, ins);
		free(ins);
		long pid = tx_scalar_int(tok, "SELECT pg_backend_pid()");
		char *kill = it_fmt("SELECT pg_terminate_backend(%ld)", pid);
		ck_assert(PQsendQuery(killer, kill));
		free(kill);
		sleep_ms((unsigned)(rand() % 4));
		struct http_resp *r = tx_end(tok, "commit");
		PGresult *res;
		while ((res = PQgetResult(killer)))
			PQclear(res);
		char *cnt = it_fmt("SELECT count(*) FROM %s WHERE tag = %d", t, i);
		res = PQexec(killer, cnt);
		free(cnt);
		ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
		int there = atoi(PQgetvalue(res, 0, 0));
		PQclear(res);
		json_t *err = json_object_get(r->json, "error");
		const char *code =
			json_string_value(json_object_get(err, "code"));
		const char *msg =
			json_string_value(json_object_get(err, "message"));
		ck_assert_msg(r->status == 200 || r->status == 503,
			      "commit %d: %ld %s", i, r->status, r->body);
		if (r->status == 200)
			ck_assert_msg(there == 1, "commit %d answered 200, "
						  "row missing", i);
		else
			ck_assert_msg(code && msg && *msg &&
					      (strcmp(code, "57P01") != 0 ||
					       there == 0),
				      "commit %d: %s, row %s", i, r->body,
				      there ? "there" : "missing");
		answers[r->status - 200 < 600 ? r->status - 200 : 0]++;
		http_resp_free(r);
		free(tok);
	}
	PQfinish(killer);
	/* Both outcomes happened, or the race tested nothing. */
	ck_assert_msg(answers[0] > 0 && answers[303] > 0,
		      "%d committed, %d lost", answers[0], answers[303]);
	free(t);
}
END_TEST

/* A terminated session's backend, noticed only by the step that ends it. */
static char *terminated_session(PGconn *killer)
{
	char *tok = tx_begin(NULL);
	long pid = tx_scalar_int(tok, "SELECT pg_backend_pid()");
	char *kill = it_fmt("SELECT pg_terminate_backend(%ld)", pid);
	PQclear(PQexec(killer, kill));
	free(kill);
	sleep_ms(100);
	return tok;
}

/*
 * Ending a session whose backend is gone: a rollback did roll back
 * (200); a commit is refused with PostgreSQL's reason, and the token
 * says afterwards that the outcome of the COMMIT is not known to us.
 */
START_TEST(ending_a_session_whose_backend_is_gone)
{
	PGconn *killer = PQconnectdb(pgh_conninfo());
	ck_assert_int_eq(PQstatus(killer), CONNECTION_OK);
	char *tok = terminated_session(killer);
	tx_end_ok(tok, "rollback");
	free(tok);
	tok = terminated_session(killer);
	struct http_resp *r = tx_end(tok, "commit");
	it_assert_error(r, 503, "57P01");
	http_resp_free(r);
	r = txq(tok, "SELECT 1");
	assert_error_msg(r, 410, "transaction_ended", "outcome unknown");
	http_resp_free(r);
	free(tok);
	PQfinish(killer);
}
END_TEST

/* ---- 9. client gone during a statement ---- */

START_TEST(client_disconnect_cancels_statement)
{
	char sfx[32];
	it_suffix(sfx, sizeof(sfx));
	char *tok = tx_begin(NULL);
	txq_ok_free(tok, "SELECT 1");
	char *sql = it_fmt("SELECT pg_sleep(5) /* it_tx_gone_%s */", sfx);
	char *probe = it_fmt("SELECT count(*) FROM pg_stat_activity WHERE "
			     "state = 'active' AND query LIKE "
			     "'%%it_tx_gone_%s%%' AND pid <> pg_backend_pid()",
			     sfx);
	double t0 = it_now();
	struct http_resp *r = txq_on(port, tok, sql, 300);
	ck_assert_msg(r->curl_code == CURLE_OPERATION_TIMEDOUT,
		      "curl %d status %ld", r->curl_code, r->status);
	http_resp_free(r);
	ck_assert_msg(pg_int(probe) >= 0, "probe");
	double deadline = it_now() + 1.0 * slow();
	long active = 1;
	while (it_now() < deadline && (active = pg_int(probe)) > 0)
		sleep_ms(20);
	ck_assert_msg(active == 0,
		      "pg_sleep(5) still running %.2f s after the client left",
		      it_now() - t0);
	/* The session is aborted, not gone. It may stay busy while the
	 * cancel is drained: allow a short while. */
	int busy = 0;
	for (;;) {
		r = txq(tok, "SELECT 1");
		if (r->status == 409 && strstr(r->body, "transaction_busy") &&
		    busy < 50) {
			busy++;
			http_resp_free(r);
			sleep_ms(20);
			continue;
		}
		break;
	}
	if (busy)
		fprintf(stderr, "test_tx: session busy for %d x 20 ms after "
				"the cancel\n", busy);
	it_assert_error(r, 409, "25P02");
	http_resp_free(r);
	tx_end_ok(tok, "rollback");
	ck_assert_int_eq(get_stats().tx_open, 0);
	free(probe);
	free(sql);
	free(tok);
}
END_TEST

/* ---- 10. refused statements and savepoints ---- */

START_TEST(refused_statements_and_savepoints)
{
	char *t = new_table("tx_sp", "id int");
	char *tok = tx_begin(NULL);
	const char *refused[] = {
	    "BEGIN",
	    "begin transaction",
	    "START TRANSACTION",
	    "COMMIT",
	    "  /* hi */ commit",
	    "-- c\nEND",
	    "ROLLBACK",
	    "rollback work",
	    "ABORT",
	    "PREPARE TRANSACTION 'x'",
	    "COMMIT PREPARED 'x'",
	    "COPY pg_class TO STDOUT",
	};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		struct http_resp *r = txq(tok, refused[i]);
		ck_assert_msg(r->status == 400, "%s -> %ld %s", refused[i],
			      r->status, r->body);
		it_assert_error(r, 400, NULL);
		http_resp_free(r);
	}
	char *cnt = it_fmt("SELECT count(*) FROM %s", t);
	char *ins1 = it_fmt("INSERT INTO %s VALUES (1)", t);
	char *ins2 = it_fmt("INSERT INTO %s VALUES (2)", t);
	/* the refusals did not abort the transaction */
	ck_assert_int_eq(tx_scalar_int(tok, cnt), 0);
	txq_ok_free(tok, "SAVEPOINT s1");
	txq_ok_free(tok, ins1);
	ck_assert_int_eq(tx_scalar_int(tok, cnt), 1);
	txq_ok_free(tok, "ROLLBACK TO SAVEPOINT s1");
	ck_assert_int_eq(tx_scalar_int(tok, cnt), 0);
	txq_ok_free(tok, "RELEASE SAVEPOINT s1");
	/* a savepoint recovers from an error */
	txq_ok_free(tok, "savepoint s2");
	struct http_resp *r = txq(tok, "SELECT 1/0");
	it_assert_error(r, 400, "22012");
	http_resp_free(r);
	r = txq(tok, "SELECT 1");
	it_assert_error(r, 409, "25P02");
	http_resp_free(r);
	txq_ok_free(tok, "rollback to s2");
	txq_ok_free(tok, ins2);
	txq_ok_free(tok, "SET LOCAL work_mem = '8MB'");
	char *v;
	{
		struct http_resp *q = txq_ok(tok, "SHOW work_mem");
		v = first_value(q);
		http_resp_free(q);
	}
	ck_assert_str_eq(v, "8MB");
	free(v);
	/* PREPARE name AS ... is a statement, not 2PC */
	txq_ok_free(tok, "PREPARE it_tx_p AS SELECT 7");
	ck_assert_int_eq(tx_scalar_int(tok, "EXECUTE it_tx_p"), 7);
	tx_end_ok(tok, "commit");
	free(tok);
	char *ids = it_fmt("SELECT string_agg(id::text, ',') FROM %s", t);
	char *got = pgh_scalar(ids);
	ck_assert_str_eq(got, "2");
	free(got);
	free(ids);
	free(cnt);
	free(ins1);
	free(ins2);
	free(t);
}
END_TEST

/* ---- 11. session state stays in the session ---- */

#define STATE_SQL                                                             \
	"SELECT current_setting('application_name') || '|' || "               \
	"current_setting('search_path') || '|' || "                          \
	"current_setting('statement_timeout') || '|' || "                    \
	"current_setting('work_mem') || '|' || "                             \
	"(SELECT count(*) FROM pg_prepared_statements WHERE name = "         \
	"'it_leak') || '|' || "                                              \
	"(SELECT count(*) FROM pg_listening_channels() c WHERE c = "         \
	"'it_leak_chan') || '|' || "                                          \
	"(to_regclass('pg_temp.it_leak_tmp') IS NULL) AS v"

START_TEST(session_state_does_not_leak)
{
	char *app0 = q_scalar_str("SELECT current_setting('application_name') "
				  "AS a");
	ck_assert_str_eq(app0, "fasterpg");
	free(app0);
	char *base = q_scalar_str(STATE_SQL);
	for (int i = 0; i < 10; i++) {
		char *v = q_scalar_str(STATE_SQL);
		ck_assert_msg(strcmp(v, base) == 0,
			      "baseline differs between requests: %s / %s", v,
			      base);
		free(v);
	}
	const char *ends[] = {"commit", "rollback", "delete"};
	for (int e = 0; e < 3; e++) {
		char *tok = tx_begin(NULL);
		txq_ok_free(tok, "SET search_path = nowhere");
		txq_ok_free(tok, "SET application_name = 'leak'");
		txq_ok_free(tok, "SET statement_timeout = 1234");
		txq_ok_free(tok, "SELECT set_config('work_mem', '7MB', false)");
		txq_ok_free(tok, "PREPARE it_leak AS SELECT 1");
		txq_ok_free(tok, "CREATE TEMP TABLE it_leak_tmp (x int)");
		txq_ok_free(tok, "LISTEN it_leak_chan");
		struct http_resp *q = txq_ok(tok, STATE_SQL);
		char *v = first_value(q);
		/* LISTEN takes effect at commit */
		ck_assert_str_eq(v, "leak|nowhere|1234ms|7MB|1|0|false");
		free(v);
		http_resp_free(q);
		tx_end_ok(tok, ends[e]);
		free(tok);

		for (int i = 0; i < 20; i++) {
			v = q_scalar_str(STATE_SQL);
			ck_assert_msg(strcmp(v, base) == 0,
				      "after %s, /query #%d sees %s (want %s)",
				      ends[e], i, v, base);
			free(v);
		}
	}
	ck_assert_int_eq(pg_int("SELECT count(*) FROM pg_stat_activity WHERE "
				"application_name = 'leak'"),
			 0);
	free(base);
}
END_TEST

/* ---- 12. many random sessions: nothing leaks ---- */

struct mix_arg {
	pthread_t th;
	const char *table;
	int first, n;
	unsigned seed;
	int *committed; /* per session: rows expected, or 0 */
	int idle_left;
	char err[512];
};

static void *mix_run(void *arg)
{
	struct mix_arg *m = arg;
	for (int k = 0; k < m->n && !m->err[0]; k++) {
		int sess = m->first + k;
		int kind = (int)(rand_r(&m->seed) % 7);
		int nst = 1 + (int)(rand_r(&m->seed) % 3);
		const char *body = kind == 5 ? "{\"idle_timeout_ms\":100}"
			: (rand_r(&m->seed) % 2 ? "{\"isolation\":\"serializable\"}"
						 : NULL);
		struct http_resp *r = treq("POST", "/tx", body);
		if (r->status != 201 || !json_is_object(r->json)) {
			snprintf(m->err, sizeof(m->err), "begin: %ld %d %.300s",
				 r->status, r->curl_code, r->body);
			http_resp_free(r);
			break;
		}
		char tok[64];
		snprintf(tok, sizeof(tok), "%s",
			 json_string_value(json_object_get(r->json, "tx")));
		http_resp_free(r);
		for (int i = 0; i < nst; i++) {
			char sql[256];
			snprintf(sql, sizeof(sql),
				 "INSERT INTO %s VALUES (%d, %d)", m->table,
				 sess, i);
			r = txq(tok, sql);
			if (kind == 5 && r->status != 200 &&
			    (strstr(r->body, "idle timeout") ||
			     strstr(r->body, "transaction_busy"))) {
				/* A 100 ms session may expire between two
				 * statements on a loaded machine (while its
				 * rollback runs it answers "busy"). */
				http_resp_free(r);
				break;
			}
			if (r->status != 200) {
				snprintf(m->err, sizeof(m->err),
					 "session %d (kind %d) statement %d "
					 "of %d, run sequentially by one "
					 "client: %ld %.300s",
					 sess, kind, i + 1, nst, r->status,
					 r->body);
				http_resp_free(r);
				goto next;
			}
			http_resp_free(r);
		}
		long want = 200;
		const char *end = "commit";
		switch (kind) {
		case 0:
		case 1:
			m->committed[sess] = nst;
			break;
		case 2:
			end = "rollback";
			break;
		case 3:
			end = "delete";
			break;
		case 4: /* error, then commit (409) or rollback */
			r = txq(tok, "SELECT 1/0");
			http_resp_free(r);
			if (rand_r(&m->seed) % 2) {
				want = 409;
			} else {
				end = "rollback";
			}
			break;
		case 5: /* left to the idle timeout */
			m->idle_left++;
			goto next;
		case 6: /* client leaves mid-statement, then rollback */
			r = txq_on(port, tok, "SELECT pg_sleep(0.5)", 50);
			http_resp_free(r);
			end = "rollback";
			break;
		}
		for (int tries = 0;; tries++) {
			r = tx_end(tok, end);
			/* a cancelled statement may keep it busy a moment */
			if (r->status == 409 && kind == 6 && tries < 100 &&
			    strstr(r->body, "transaction_busy")) {
				http_resp_free(r);
				sleep_ms(10);
				continue;
			}
			break;
		}
		if (r->status != want)
			snprintf(m->err, sizeof(m->err),
				 "session %d kind %d %s: %ld (want %ld) %.300s",
				 sess, kind, end, r->status, want, r->body);
		http_resp_free(r);
	next:;
	}
	return NULL;
}

START_TEST(many_sessions_no_leaks)
{
	int total = IT_SANITIZED || getenv("FPG_TEST_SLOW") ? 300 : 1000;
	if (getenv("FPG_TX_SESSIONS"))
		total = atoi(getenv("FPG_TX_SESSIONS"));
	enum { NT = 4 };
	char *t = new_table("tx_mix", "s int, i int");
	int *committed = calloc((size_t)total, sizeof(int));
	struct mix_arg args[NT];
	struct stats s0 = get_stats();
	double t0 = it_now();
	for (int k = 0; k < NT; k++) {
		memset(&args[k], 0, sizeof(args[k]));
		args[k].table = t;
		args[k].first = k * (total / NT);
		args[k].n = k == NT - 1 ? total - k * (total / NT) : total / NT;
		args[k].seed = it_seed() * 31u + (unsigned)k;
		args[k].committed = committed;
		ck_assert_int_eq(
		    pthread_create(&args[k].th, NULL, mix_run, &args[k]), 0);
	}
	for (int k = 0; k < NT; k++)
		pthread_join(args[k].th, NULL);
	fprintf(stderr, "test_tx: %d random sessions in %.2f s\n", total,
		it_now() - t0);
	for (int k = 0; k < NT; k++)
		ck_assert_msg(args[k].err[0] == 0, "%s", args[k].err);

	/* The idle ones expire; then nothing is open or busy. */
	struct stats s;
	double deadline = it_now() + 3.0 * slow();
	do {
		sleep_ms(50);
		s = get_stats();
	} while ((s.tx_open != 0 || s.pool_busy != 0) && it_now() < deadline);
	ck_assert_msg(s.tx_open == 0, "transactions_open %lld", s.tx_open);
	ck_assert_msg(s.pool_busy == 0, "pool busy %lld", s.pool_busy);
	ck_assert_msg(s.pool_waiting == 0, "pool waiting %lld",
		      s.pool_waiting);
	long long cap = (long long)main_opts.pool_max * main_opts.threads;
	ck_assert_msg(s.pool_open <= cap, "pool open %lld > %lld", s.pool_open,
		      cap);
	long backends = pg_int("SELECT count(*) FROM pg_stat_activity WHERE "
			       "application_name = 'fasterpg'");
	ck_assert_msg(backends <= cap, "%ld fasterpg backends > %lld",
		      backends, cap);
	int idle = 0;
	for (int k = 0; k < NT; k++)
		idle += args[k].idle_left;
	ck_assert_int_eq(s.expired - s0.expired, idle);
	ck_assert_int_eq((s.commits - s0.commits) + (s.rollbacks - s0.rollbacks) +
			     (s.expired - s0.expired),
			 total);

	/* Exactly the committed rows. */
	long want_rows = 0, want_sum = 0;
	for (int i = 0; i < total; i++) {
		want_rows += committed[i];
		want_sum += (long)committed[i] * i;
	}
	char *sql = it_fmt("SELECT count(*) FROM %s", t);
	ck_assert_int_eq(pg_int(sql), want_rows);
	free(sql);
	sql = it_fmt("SELECT coalesce(sum(s), 0) FROM %s", t);
	ck_assert_int_eq(pg_int(sql), want_sum);
	free(sql);
	/* still serving */
	ck_assert_int_eq(q_scalar_int("SELECT 5"), 5);
	char *tok = tx_begin(NULL);
	tx_end_ok(tok, "commit");
	free(tok);
	free(committed);
	free(t);
}
END_TEST

/* ---- 13. max_transactions ---- */

/* Extra servers a test starts: stopped even when the test fails. */
static struct fpg_server *extra_srv;

static void stop_extra(void)
{
	if (extra_srv) {
		fpg_server_stop(extra_srv, 1000);
		fpg_server_free(extra_srv);
		extra_srv = NULL;
	}
}


START_TEST(max_transactions_limit)
{
	struct fpg_options o;
	it_options(&o);
	o.max_transactions = 3;
	unsigned p2;
	extra_srv = it_server_start(&o, &p2);
	char *toks[3];
	for (int i = 0; i < 3; i++)
		toks[i] = tx_begin_on(p2, NULL);
	struct http_resp *r = treq_on(p2, "POST", "/tx", NULL, 0);
	it_assert_error(r, 503, NULL);
	char *ra = http_header(r, "Retry-After");
	ck_assert_msg(ra != NULL, "503 without Retry-After");
	free(ra);
	http_resp_free(r);
	tx_end_ok_on(p2, toks[1], "rollback");
	char *again = tx_begin_on(p2, NULL);
	r = treq_on(p2, "POST", "/tx", NULL, 0);
	it_assert_error(r, 503, NULL);
	http_resp_free(r);
	tx_end_ok_on(p2, toks[0], "commit");
	tx_end_ok_on(p2, toks[2], "delete");
	tx_end_ok_on(p2, again, "commit");
	ck_assert_int_eq(get_stats_on(p2).tx_open, 0);
	for (int i = 0; i < 3; i++)
		free(toks[i]);
	free(again);
	stop_extra();
}
END_TEST

/*
 * A BEGIN that fails answers its error, also in a session slot whose last
 * session had its COMMIT answered (the slot kept that step's state, and
 * the failing BEGIN got a token for an aborted transaction). BEGIN's
 * first query waits for a safe snapshot (serializable, read-only,
 * deferrable) beside a serializable transaction the test holds, and the
 * server's statement timeout ends it.
 */
START_TEST(a_failed_begin_in_a_reused_slot_answers_its_error)
{
	struct fpg_options o;
	it_options(&o);
	o.threads = 1;
	o.max_transactions = 1;
	o.statement_timeout_ms = 300;
	unsigned p2;
	extra_srv = it_server_start(&o, &p2);
	char *tok = tx_begin_on(p2, NULL);
	tx_end_ok_on(p2, tok, "commit");
	free(tok);
	PGconn *rw = PQconnectdb(pgh_conninfo());
	ck_assert_int_eq(PQstatus(rw), CONNECTION_OK);
	PGresult *res = PQexec(rw, "BEGIN ISOLATION LEVEL SERIALIZABLE");
	PQclear(res);
	res = PQexec(rw, "SELECT count(*) FROM pg_class");
	ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
	PQclear(res);
	struct http_resp *r = treq_on(p2, "POST", "/tx",
				      "{\"isolation\":\"serializable\","
				      "\"read_only\":true,\"deferrable\":true}",
				      0);
	it_assert_error(r, 504, "57014");
	http_resp_free(r);
	PQclear(PQexec(rw, "COMMIT"));
	PQfinish(rw);
	/* The slot serves a session again. */
	tok = tx_begin_on(p2, NULL);
	tx_end_ok_on(p2, tok, "commit");
	free(tok);
	ck_assert_int_eq(get_stats_on(p2).tx_open, 0);
	stop_extra();
}
END_TEST

/* tx_max_lifetime_ms ends even a busy-looking session: statements every
 * 150 ms keep it from idling, but it dies at its lifetime. */
START_TEST(max_lifetime_ends_session)
{
	char *t = new_table("tx_life", "id int");
	struct fpg_options o;
	it_options(&o);
	o.tx_max_lifetime_ms = 1000;
	unsigned p2;
	extra_srv = it_server_start(&o, &p2);
	struct http_resp *r = treq_on(p2, "POST", "/tx", NULL, 0);
	it_assert_resp(r, r->status == 201);
	long long exp = jint(r->json, "expires_in_ms");
	ck_assert_msg(exp > 500 && exp <= 1000, "expires_in_ms %lld", exp);
	char *tok = strdup(json_string_value(json_object_get(r->json, "tx")));
	http_resp_free(r);
	char *ins = it_fmt("INSERT INTO %s VALUES (1)", t);
	r = txq_on(p2, tok, ins, 0);
	it_assert_resp(r, r->status == 200);
	http_resp_free(r);
	free(ins);
	double t0 = it_now();
	long st = 200;
	while (it_now() - t0 < 3.0 * slow()) {
		sleep_ms(150);
		r = txq_on(p2, tok, "SELECT 1", 0);
		st = r->status;
		if (st != 200) {
			assert_error_msg(r, 410, "transaction_ended",
					 "lifetime");
			http_resp_free(r);
			break;
		}
		http_resp_free(r);
	}
	ck_assert_msg(st == 410, "session alive %.2f s past a 1 s lifetime",
		      it_now() - t0);
	char *cnt = it_fmt("SELECT count(*) FROM %s", t);
	ck_assert_int_eq(pg_int(cnt), 0);
	free(cnt);
	struct stats s = get_stats_on(p2);
	ck_assert_int_eq(s.expired, 1);
	free(tok);
	stop_extra();
	free(t);
}
END_TEST

/* The limit and transactions_open belong to one server: sessions open on
 * another server in the same process do not count. */
START_TEST(max_transactions_is_per_server)
{
	char *other[2];
	for (int i = 0; i < 2; i++)
		other[i] = tx_begin(NULL); /* on the main server */
	struct fpg_options o;
	it_options(&o);
	o.max_transactions = 3;
	unsigned p2;
	extra_srv = it_server_start(&o, &p2);
	struct stats s = get_stats_on(p2);
	long long open_b = s.tx_open;
	char *toks[3] = {NULL, NULL, NULL};
	long got[3];
	for (int i = 0; i < 3; i++) {
		struct http_resp *r = treq_on(p2, "POST", "/tx", NULL, 0);
		got[i] = r->status;
		if (r->status == 201)
			toks[i] = strdup(json_string_value(
			    json_object_get(r->json, "tx")));
		http_resp_free(r);
	}
	for (int i = 0; i < 3; i++)
		if (toks[i]) {
			tx_end_ok_on(p2, toks[i], "rollback");
			free(toks[i]);
		}
	stop_extra();
	for (int i = 0; i < 2; i++) {
		tx_end_ok(other[i], "rollback");
		free(other[i]);
	}
	ck_assert_msg(open_b == 0 && got[0] == 201 && got[1] == 201 &&
			  got[2] == 201,
		      "with 2 sessions open on another server in the process, "
		      "a fresh server (max_transactions 3) shows "
		      "transactions_open %lld and answers POST /tx x3 with "
		      "%ld %ld %ld (want 0 and 201 201 201)",
		      open_b, got[0], got[1], got[2]);
}
END_TEST

/* ---- 14. shutdown with open sessions ---- */

struct stop_arg {
	pthread_t th;
	unsigned port;
	char tok[64];
	struct http_resp *r;
};

static void *stop_bg(void *arg)
{
	struct stop_arg *a = arg;
	a->r = txq_on(a->port, a->tok, "SELECT pg_sleep(3)", 20000);
	return NULL;
}

START_TEST(shutdown_rolls_back_open_sessions)
{
	char *t = new_table("tx_shut", "id int primary key, v int");
	char *sql = it_fmt("INSERT INTO %s VALUES (0, 0)", t);
	pgh_exec(sql);
	free(sql);
	long long open0 = get_stats().tx_open;
	struct fpg_options o;
	it_options(&o);
	unsigned p2;
	struct fpg_server *srv = it_server_start(&o, &p2);
	char *toks[3];
	for (int i = 0; i < 3; i++) {
		toks[i] = tx_begin_on(p2, NULL);
		sql = it_fmt("INSERT INTO %s VALUES (%d, %d)", t, i + 1, i);
		struct http_resp *r = txq_on(p2, toks[i], sql, 0);
		it_assert_resp(r, r->status == 200);
		http_resp_free(r);
		free(sql);
	}
	/* the first also holds a row lock on row 0 */
	sql = it_fmt("UPDATE %s SET v = 100 WHERE id = 0", t);
	struct http_resp *r = txq_on(p2, toks[0], sql, 0);
	it_assert_resp(r, r->status == 200);
	http_resp_free(r);
	free(sql);
	/* the third is busy when the server stops */
	struct stop_arg bg = {.port = p2};
	snprintf(bg.tok, sizeof(bg.tok), "%s", toks[2]);
	ck_assert_int_eq(pthread_create(&bg.th, NULL, stop_bg, &bg), 0);
	sleep_ms(300);

	double t0 = it_now();
	fpg_server_stop(srv, 300);
	fpg_server_free(srv);
	double took = it_now() - t0;
	pthread_join(bg.th, NULL);
	fprintf(stderr, "test_tx: shutdown with 3 sessions took %.2f s; busy "
			"request got %ld curl %d\n",
		took, bg.r->status, bg.r->curl_code);
	http_resp_free(bg.r);
	ck_assert_msg(took < 3.0 * slow(), "shutdown took %.2f s", took);

	sql = it_fmt("SELECT count(*) FROM %s WHERE id > 0", t);
	ck_assert_int_eq(pg_int(sql), 0);
	free(sql);
	/* The transactions are gone, not just invisible: the row lock is
	 * free and no backend stays idle in transaction. */
	PGconn *c = PQconnectdb(pgh_conninfo());
	ck_assert_int_eq(PQstatus(c), CONNECTION_OK);
	PGresult *res = PQexec(c, "SET lock_timeout = '3s'");
	PQclear(res);
	sql = it_fmt("UPDATE %s SET v = 1 WHERE id = 0", t);
	res = PQexec(c, sql);
	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK,
		      "row lock still held after shutdown: %s",
		      PQresultErrorMessage(res));
	PQclear(res);
	free(sql);
	PQfinish(c);
	sql = it_fmt("SELECT v FROM %s WHERE id = 0", t);
	ck_assert_int_eq(pg_int(sql), 1);
	free(sql);
	double deadline = it_now() + 2.0 * slow();
	long n;
	while ((n = pg_int("SELECT count(*) FROM pg_stat_activity WHERE "
			   "state LIKE 'idle in transaction%' AND "
			   "application_name = 'fasterpg'")) > 0 &&
	       it_now() < deadline)
		sleep_ms(50);
	ck_assert_msg(n == 0, "%ld backends idle in transaction", n);
	for (int i = 0; i < 3; i++)
		free(toks[i]);
	free(t);
	/* The stopped server's sessions are no longer counted anywhere. */
	long long open1 = get_stats().tx_open;
	ck_assert_msg(open1 == open0,
		      "after stopping another server with 3 open sessions, "
		      "this server's transactions_open went %lld -> %lld",
		      open0, open1);
}
END_TEST

/* After each test: nothing of it may stay open on the main server. */
static void teardown(void)
{
	stop_extra();
	/* Only sessions are judged here: the other fields may be anything. */
	struct it_activity open_none = {.active = LONG_MAX,
					.copies = LONG_MAX,
					.busy = LLONG_MAX,
					.waiting = LLONG_MAX,
					.in_flight = LLONG_MAX,
					.tx_open = 0};
	it_wait_quiet(port, &open_none, 2.0 * slow(), "after the test");
}

/*
 * Sessions take pool connections (all but one per worker): room for the
 * tests that hold many at once: all 20 of the hopping test may land on
 * one worker. The extra servers of some tests start from these options.
 */
static void main_server(struct fpg_options *o)
{
	o->pool_max = 24;
	main_opts = *o;
}

static const struct test_case cases[] = {
    TEST_CASE(commit_visible_only_after_commit),
    TEST_CASE(begin_options_validated),
    TEST_CASE(isolation_levels),
    TEST_CASE(serializable_write_skew),
    TEST_CASE(read_only_and_deferrable),
    TEST_CASE(idle_timeout_rolls_back),
    TEST_CASE(busy_token_409_at_once),
    TEST_CASE(unknown_forged_and_ended_tokens),
    TEST_CASE(sessions_hop_between_workers),
    TEST_CASE(error_aborts_session),
    TEST_CASE(commit_beside_a_terminated_backend_tells_what_happened),
    TEST_CASE(ending_a_session_whose_backend_is_gone),
    TEST_CASE(client_disconnect_cancels_statement),
    TEST_CASE(refused_statements_and_savepoints),
    TEST_CASE(session_state_does_not_leak),
    TEST_CASE(many_sessions_no_leaks),
    TEST_CASE(max_transactions_limit),
    TEST_CASE(a_failed_begin_in_a_reused_slot_answers_its_error),
    TEST_CASE(max_lifetime_ends_session),
    TEST_CASE(max_transactions_is_per_server),
    TEST_CASE(shutdown_rolls_back_open_sessions),
    {0},
};

static const struct it_server servers[] = {{&port, main_server}, {0}};

const struct it_program it_program = {
    .name = "tx",
    .cases = cases,
    .schema_per_case = true,
    .servers = servers,
    .after_each = teardown,
    .timeout_s = 120,
};
