/*
 * Large and long answers of POST /query end to end: 1,000,000 rows in
 * every format, back-pressure against a slow reader (constant memory,
 * PostgreSQL left waiting in ClientWrite), cancellation by disconnect,
 * timeout_ms and DELETE /query/{id} (PostgreSQL's pg_stat_activity as the
 * judge), errors in the middle of a stream, result limits, and random
 * sizes.
 *
 * One throwaway cluster and one in-process server (2 workers) for the
 * binary, plus short-lived servers with limits; CK_NOFORK because the
 * server's threads live in this process (its RSS is ours). Random values
 * use a seed printed at start (FPG_TEST_SEED replays it).
 */
#include <errno.h>

#include "stream_util.h"

#if defined(__SANITIZE_ADDRESS__)
#define ST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ST_ASAN 1
#endif
#endif
#ifndef ST_ASAN
#define ST_ASAN 0
#endif

static unsigned port;
static long long busy_baseline;

#define BIG_SQL                                                              \
	"select g, md5(g::text) as h, now() as t, g*1.5::numeric as n,"      \
	" g%2=0 as b from generate_series(1,1000000) g"

/* ---- PostgreSQL and /stats as judges ---- */

/*
 * Waits up to limit_s for: no fasterpg statement active on PostgreSQL,
 * pool busy back to busy0, nothing waiting for a connection, only the
 * /stats request in flight. Fails the
 * test with what was seen last; returns the time it took.
 */
static double wait_quiet_on(unsigned p, long long busy0, double limit_s,
			    const char *what)
{
	struct it_activity base = {.busy = busy0, .in_flight = 1};
	return it_wait_quiet(p, &base, limit_s, what);
}

static double wait_quiet(double limit_s, const char *what)
{
	return wait_quiet_on(port, busy_baseline, limit_s, what);
}

/* Waits until at least one fasterpg statement runs (max limit_s). */
static void wait_active(double limit_s, const char *what)
{
	double t0 = it_now();
	while (it_active_statements() < 1) {
		ck_assert_msg(it_now() - t0 < limit_s,
			      "%s: the statement never showed up as active",
			      what);
		usleep(20 * 1000);
	}
}

/* ---- helpers ---- */

static json_t *parse(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, JSON_DECODE_ANY, &e);
	ck_assert_msg(j, "not JSON (%s): %.500s", e.text, text);
	return j;
}

static void assert_json_eq(const json_t *got, const char *want_text)
{
	json_t *want = parse(want_text);
	char *g = json_dumps(got, JSON_ENCODE_ANY | JSON_COMPACT);
	ck_assert_msg(json_equal(got, want), "got %s, want %s",
		      g ? g : "(null)", want_text);
	free(g);
	json_decref(want);
}

static const char *err_code_of(const json_t *o)
{
	return json_string_value(
	    json_object_get(json_object_get(o, "error"), "code"));
}

static char *body_json(const char *sql, const char *extra)
{
	json_t *o = json_pack("{s:s}", "sql", sql);
	char *t = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (extra && *extra) {
		/* "{...}" + ",extra}" */
		char *u = it_fmt("%.*s,%s}", (int)strlen(t) - 1, t, extra);
		free(t);
		t = u;
	}
	return t;
}

static void random_id(char *out, size_t n)
{
	static unsigned k;
	snprintf(out, n, "st-%08x%08x-%u", (unsigned)rand(), (unsigned)rand(),
		 ++k);
}

/* A streamed request in a thread. */
struct bg {
	struct st_req rq;
	struct st_sink s;
	pthread_t th;
};

static void *bg_main(void *arg)
{
	struct bg *b = arg;
	st_run(&b->rq, &b->s);
	return NULL;
}

static void bg_start(struct bg *b)
{
	ck_assert_int_eq(pthread_create(&b->th, NULL, bg_main, b), 0);
}

static void bg_join(struct bg *b)
{
	pthread_join(b->th, NULL);
}

/* DELETE /query/{id} with its key; returns the response (caller frees). */
static struct http_resp *cancel_id(unsigned p, const char *id)
{
	char path[300], key[300];
	snprintf(path, sizeof(path), "/query/%s", id);
	snprintf(key, sizeof(key), "X-Cancel-Key: %s", st_cancel_key(id));
	const char *const hdrs[] = {key, NULL};
	return http_request(p, "DELETE", path, NULL, hdrs);
}

/* ---- 1. 1,000,000 rows in every format ---- */

/* PostgreSQL's values for a row of BIG_SQL (without t). */
static json_t *pg_big_row(long g, char *n_text, size_t n_len)
{
	char gs[32];
	snprintf(gs, sizeof(gs), "%ld", g);
	const char *p[1] = {gs};
	PGresult *res = it_pg(
	    "select json_build_object('g', g, 'h', md5(g::text),"
	    " 'n', g*1.5::numeric, 'b', g%2=0)::text,"
	    " (g*1.5::numeric)::text from (select $1::int as g) s",
	    1, p);
	json_t *j = parse(PQgetvalue(res, 0, 0));
	snprintf(n_text, n_len, "%s", PQgetvalue(res, 0, 1));
	PQclear(res);
	return j;
}

static void check_big_json_row(const char *row, long g)
{
	char n_text[64];
	json_t *want = pg_big_row(g, n_text, sizeof(n_text));
	json_t *got = parse(row);
	const char *keys[] = {"g", "h", "n", "b"};
	for (size_t i = 0; i < 4; i++)
		ck_assert_msg(json_equal(json_object_get(got, keys[i]),
					 json_object_get(want, keys[i])),
			      "row %ld: %s differs: %.300s", g, keys[i], row);
	char *raw = it_fmt("\"n\":%s,", n_text);
	ck_assert_msg(strstr(row, raw), "row %ld lacks %s: %.300s", g, raw,
		      row);
	free(raw);
	ck_assert_msg(json_object_size(got) == 5, "row %ld: %.300s", g, row);
	json_decref(want);
	json_decref(got);
}

/* t of a JSON row must be to_json(t) of PostgreSQL. */
static char *check_json_t(const char *row)
{
	json_t *got = parse(row);
	const char *t = json_string_value(json_object_get(got, "t"));
	ck_assert_msg(t, "t is not a string: %.300s", row);
	const char *p[1] = {t};
	PGresult *res = it_pg("select to_json($1::timestamptz)::text", 1, p);
	char *want = it_fmt("\"%s\"", t);
	ck_assert_msg(strcmp(PQgetvalue(res, 0, 0), want) == 0,
		      "t %s is not to_json's %s", t, PQgetvalue(res, 0, 0));
	PQclear(res);
	free(want);
	char *out = strdup(t);
	json_decref(got);
	return out;
}

static const char *big_columns =
    "[{\"name\":\"g\",\"type\":\"int4\"},{\"name\":\"h\",\"type\":\"text\"},"
    "{\"name\":\"t\",\"type\":\"timestamptz\"},"
    "{\"name\":\"n\",\"type\":\"numeric\"},{\"name\":\"b\",\"type\":\"bool\"}]";

static void big_json(const char *path, const char *tag)
{
	char *sql = it_fmt("%s /* %s */", BIG_SQL, tag);
	char *body = body_json(sql, NULL);
	struct st_req rq = {.port = port, .path = path, .body = body,
			    .mode = ST_JSON};
	struct st_sink s;
	st_run(&rq, &s);
	fprintf(stderr, "  %s: %zu bytes in %.2f s\n", tag, s.bytes,
		s.t_end - s.t_start);
	ck_assert_msg(s.curl_code == 0 && s.status == 200, "%s", st_desc(&s));
	char *frame_text = NULL;
	json_t *frame = st_json_frame(&s, &frame_text);
	ck_assert_msg(frame, "the answer around the rows is not JSON: %.1000s",
		      frame_text);
	ck_assert_msg(!json_object_get(frame, "error"), "error: %.1000s",
		      frame_text);
	assert_json_eq(json_object_get(frame, "columns"), big_columns);
	ck_assert_msg(s.rows == 1000000, "%llu rows; %s",
		      (unsigned long long)s.rows, st_desc(&s));
	ck_assert_str_eq(json_string_value(json_object_get(frame, "command")),
			 "SELECT");
	ck_assert_msg(json_integer_value(json_object_get(frame, "row_count")) ==
			  1000000,
		      "row_count: %.500s", frame_text);
	check_big_json_row(s.first_row, 1);
	check_big_json_row(s.last_row, 1000000);
	char *t1 = check_json_t(s.first_row), *t2 = check_json_t(s.last_row);
	ck_assert_str_eq(t1, t2); /* now() is one per statement */
	free(t1);
	free(t2);
	char *te = st_header_value(&s, "Transfer-Encoding");
	ck_assert_msg(te && strcasecmp(te, "chunked") == 0, "Transfer-Encoding %s",
		      te ? te : "(none)");
	free(te);
	json_decref(frame);
	free(frame_text);
	st_free(&s);
	free(body);
	free(sql);
}

START_TEST(million_rows_json_default_lane)
{
	big_json("/query", "json-default");
	wait_quiet(2.0, "after 1M rows");
}
END_TEST

START_TEST(million_rows_json_stream_true)
{
	big_json("/query?stream=true", "json-stream");
	wait_quiet(2.0, "after 1M rows");
}
END_TEST

START_TEST(million_rows_ndjson)
{
	char *body = body_json(BIG_SQL " /* ndjson */", NULL);
	struct st_req rq = {.port = port, .body = body, .mode = ST_LINES,
			    .accept = "application/x-ndjson"};
	struct st_sink s;
	st_run(&rq, &s);
	fprintf(stderr, "  ndjson: %zu bytes in %.2f s\n", s.bytes,
		s.t_end - s.t_start);
	ck_assert_msg(s.curl_code == 0 && s.status == 200, "%s", st_desc(&s));
	char *ct = st_header_value(&s, "Content-Type");
	ck_assert_msg(ct && strncmp(ct, "application/x-ndjson", 20) == 0,
		      "Content-Type %s", ct ? ct : "(none)");
	free(ct);
	ck_assert_msg(s.lines == 1000002 && s.cur.len == 0, "%s", st_desc(&s));
	json_t *head = parse(s.first[0]);
	assert_json_eq(json_object_get(head, "columns"), big_columns);
	ck_assert_int_eq(json_object_size(head), 1);
	json_decref(head);
	check_big_json_row(s.first[1], 1);
	check_big_json_row(s.prev, 1000000);
	char *t1 = check_json_t(s.first[1]), *t2 = check_json_t(s.prev);
	ck_assert_str_eq(t1, t2);
	free(t1);
	free(t2);
	json_t *tr = parse(s.last);
	assert_json_eq(tr, "{\"command\":\"SELECT\",\"row_count\":1000000}");
	json_decref(tr);
	st_free(&s);
	free(body);
	wait_quiet(2.0, "after 1M rows");
}
END_TEST

/* "1,<md5>,<t>,1.5,f" from PostgreSQL, with t put in as the server gave. */
static void check_csv_row(const char *line, long g)
{
	/* t is the third field, never quoted (no comma or quote in it). */
	const char *c1 = strchr(line, ','), *c2 = c1 ? strchr(c1 + 1, ',') : 0,
		   *c3 = c2 ? strchr(c2 + 1, ',') : 0;
	ck_assert_msg(c3, "CSV row %ld: %.300s", g, line);
	char *t = st_dup(c2 + 1, (size_t)(c3 - c2 - 1));
	char gs[32];
	snprintf(gs, sizeof(gs), "%ld", g);
	const char *p[2] = {gs, t};
	PGresult *res = it_pg(
	    "select concat_ws(',', g, md5(g::text), $2::timestamptz,"
	    " g*1.5::numeric, g%2=0) from (select $1::int as g) s",
	    2, p);
	ck_assert_msg(strcmp(PQgetvalue(res, 0, 0), line) == 0,
		      "CSV row %ld: got %s, want %s", g, line,
		      PQgetvalue(res, 0, 0));
	PQclear(res);
	free(t);
}

START_TEST(million_rows_csv)
{
	char *body = body_json(BIG_SQL " /* csv */", NULL);
	struct st_req rq = {.port = port, .body = body, .mode = ST_LINES,
			    .accept = "text/csv"};
	struct st_sink s;
	st_run(&rq, &s);
	fprintf(stderr, "  csv: %zu bytes in %.2f s\n", s.bytes,
		s.t_end - s.t_start);
	ck_assert_msg(s.curl_code == 0 && s.status == 200, "%s", st_desc(&s));
	char *ct = st_header_value(&s, "Content-Type");
	ck_assert_msg(ct && strncmp(ct, "text/csv", 8) == 0, "Content-Type %s",
		      ct ? ct : "(none)");
	free(ct);
	ck_assert_msg(s.lines == 1000001 && s.cur.len == 0, "%s", st_desc(&s));
	ck_assert_msg(s.lines_without_cr == 0, "%llu lines end in LF only",
		      (unsigned long long)s.lines_without_cr);
	ck_assert_str_eq(s.first[0], "g,h,t,n,b");
	check_csv_row(s.first[1], 1);
	check_csv_row(s.last, 1000000);
	/* The same now() in both. */
	ck_assert_msg(strncmp(s.first[1] + 35, s.last + 41, 20) == 0,
		      "t differs: %s / %s", s.first[1], s.last);
	st_free(&s);
	free(body);
	wait_quiet(2.0, "after 1M rows");
}
END_TEST

/* ---- 2. a slow reader: back-pressure ---- */

struct sampler {
	pthread_t th;
	volatile bool stop;
	long max_rss;
	int samples;
	int client_write; /* samples where PostgreSQL waited in ClientWrite */
	char waits[512];
};

static void *sampler_main(void *arg)
{
	struct sampler *sm = arg;
	PGconn *c = PQconnectdb(pgh_conninfo());
	while (!sm->stop) {
		long r = it_rss_kib();
		if (r > sm->max_rss)
			sm->max_rss = r;
		sm->samples++;
		if (PQstatus(c) == CONNECTION_OK) {
			PGresult *res = PQexec(
			    c, "select coalesce(string_agg(coalesce(wait_event,"
			       " '-'), ','), '') from pg_stat_activity where"
			       " application_name = 'fasterpg' and state ="
			       " 'active' and query like '%3000000%'");
			if (PQresultStatus(res) == PGRES_TUPLES_OK) {
				const char *w = PQgetvalue(res, 0, 0);
				if (strstr(w, "ClientWrite"))
					sm->client_write++;
				size_t l = strlen(sm->waits);
				if (l + strlen(w) + 2 < sizeof(sm->waits))
					snprintf(sm->waits + l,
						 sizeof(sm->waits) - l, "%s;",
						 w);
			}
			PQclear(res);
		}
		usleep(200 * 1000);
	}
	PQfinish(c);
	return NULL;
}

START_TEST(slow_reader_constant_memory)
{
	const char *sql = "select g, md5(g::text) as h, g*1.5::numeric as n"
			  " from generate_series(1,3000000) g";
	char *body = body_json(sql, NULL);
	/* Warm-up, so that first-use allocations are in the baseline. */
	struct st_req warm = {.port = port, .body = body, .mode = ST_LINES,
			      .accept = "application/x-ndjson",
			      .abort_after_bytes = 4 << 20};
	struct st_sink s;
	st_run(&warm, &s);
	st_free(&s);
	wait_quiet(2.0, "after the warm-up");

	long base = it_rss_kib();
	struct sampler sm = {.max_rss = base};
	ck_assert_int_eq(pthread_create(&sm.th, NULL, sampler_main, &sm), 0);
	struct st_req rq = {.port = port, .body = body, .mode = ST_LINES,
			    .accept = "application/x-ndjson",
			    .max_recv_speed = 2 << 20, .abort_after_s = 3.5};
	st_run(&rq, &s);
	sm.stop = true;
	pthread_join(sm.th, NULL);
	double t_abort = it_now();
	long growth_mib = (sm.max_rss - base) / 1024;
	fprintf(stderr,
		"  slow reader: %zu bytes in %.2f s, RSS base %ld KiB, growth "
		"%ld MiB, %d samples, ClientWrite in %d; waits %s\n",
		s.bytes, s.t_end - s.t_start, base, growth_mib, sm.samples,
		sm.client_write, sm.waits);
	ck_assert_msg(s.status == 200 && s.aborted &&
			  s.curl_code == CURLE_WRITE_ERROR,
		      "%s", st_desc(&s));
	/* It flowed, at about the rate asked. */
	ck_assert_msg(s.bytes > (4u << 20), "only %zu bytes", s.bytes);
	ck_assert_msg(s.lines > 40000, "%s", st_desc(&s));
	/*
	 * Without back-pressure the server would read the ~200 MB result
	 * from PostgreSQL within these seconds. ASan's quarantine keeps
	 * freed memory resident: allow more there.
	 */
	long limit = ST_ASAN ? 96 : 32;
	ck_assert_msg(growth_mib < limit,
		      "RSS grew by %ld MiB (limit %ld) while %zu bytes went out",
		      growth_mib, limit, s.bytes);
	/* PostgreSQL itself was made to wait for the client. */
	ck_assert_msg(sm.client_write >= 2,
		      "PostgreSQL never waited in ClientWrite (%d of %d "
		      "samples): %s",
		      sm.client_write, sm.samples, sm.waits);
	st_free(&s);
	free(body);
	/* The abort was a disconnect: the statement ends on PostgreSQL. */
	wait_quiet(1.0, "after aborting the slow reader");
	fprintf(stderr, "  quiet %.2f s after the abort\n",
		it_now() - t_abort);
}
END_TEST

/* ---- 3. the client leaves ---- */

static void hook_count_active(struct st_sink *s, void *ud)
{
	(void)s;
	*(long *)ud = it_active_statements();
}

static void disconnect_mid_stream(const char *path, const char *accept,
				  enum st_mode mode)
{
	char *body = body_json("select g, md5(g::text) as h"
			       " from generate_series(1,3000000) g",
			       NULL);
	long act = -1;
	struct st_req rq = {.port = port, .path = path, .body = body,
			    .mode = mode, .accept = accept,
			    .abort_after_bytes = 1 << 20,
			    .hook_after_bytes = 512 << 10,
			    .hook = hook_count_active, .hook_ud = &act};
	struct st_sink s;
	st_run(&rq, &s);
	ck_assert_msg(s.status == 200 && s.aborted &&
			  s.curl_code == CURLE_WRITE_ERROR,
		      "%s %s: %s", path, accept ? accept : "", st_desc(&s));
	ck_assert_msg(act >= 1,
		      "%s %s: the statement was not running mid-stream",
		      path, accept ? accept : "");
	st_free(&s);
	free(body);
	char what[200];
	snprintf(what, sizeof(what), "disconnect mid-stream %s %s", path,
		 accept ? accept : "");
	wait_quiet(1.0, what);
}

START_TEST(disconnect_mid_stream_cancels)
{
	disconnect_mid_stream("/query", "application/x-ndjson", ST_LINES);
	disconnect_mid_stream("/query", "text/csv", ST_LINES);
	disconnect_mid_stream("/query?stream=true", NULL, ST_JSON);
}
END_TEST

START_TEST(disconnect_while_waiting_cancels)
{
	const char *paths[] = {"/query?stream=true", "/query"};
	const char *accepts[] = {NULL, "application/x-ndjson"};
	for (int i = 0; i < 2; i++) {
		struct bg b = {.rq = {.port = port,
				      .path = paths[i],
				      .accept = accepts[i],
				      .body = "{\"sql\":\"select pg_sleep(10)\"}",
				      .mode = ST_JSON,
				      .timeout_ms = 600}};
		bg_start(&b);
		wait_active(0.5, "pg_sleep(10)");
		bg_join(&b);
		ck_assert_msg(b.s.curl_code == CURLE_OPERATION_TIMEDOUT,
			      "%s", st_desc(&b.s));
		st_free(&b.s);
		wait_quiet(1.0, "disconnect while waiting");
	}
}
END_TEST

/* ---- 4. timeout_ms ---- */

START_TEST(timeout_ms_every_lane)
{
	const char *paths[] = {"/query?stream=true", "/query", "/query"};
	const char *accepts[] = {NULL, NULL, "application/x-ndjson"};
	for (int i = 0; i < 3; i++) {
		char *body = it_fmt("{\"sql\":\"select pg_sleep(5) /* %d */\","
				    "\"timeout_ms\":200}",
				    i);
		struct st_req rq = {.port = port, .path = paths[i],
				    .accept = accepts[i], .body = body,
				    .mode = ST_JSON};
		struct st_sink s;
		st_run(&rq, &s);
		double took = s.t_end - s.t_start;
		ck_assert_msg(s.curl_code == 0 && s.status == 504,
			      "%s %s: %s", paths[i],
			      accepts[i] ? accepts[i] : "", st_desc(&s));
		json_t *j = parse(s.head.data);
		ck_assert_msg(err_code_of(j) &&
				  strcmp(err_code_of(j), "57014") == 0,
			      "%s", s.head.data);
		json_decref(j);
		char *ct = st_header_value(&s, "Content-Type");
		ck_assert_msg(ct && strncmp(ct, "application/json", 16) == 0,
			      "504 Content-Type %s", ct ? ct : "(none)");
		free(ct);
		ck_assert_msg(took < 1.5, "%s: the timeout took %.2f s",
			      paths[i], took);
		st_free(&s);
		free(body);
		wait_quiet(1.0, "after timeout_ms");
	}
}
END_TEST

/* ---- 5. DELETE /query/{id} ---- */

START_TEST(cancel_by_id_slow_lane)
{
	char id[64];
	random_id(id, sizeof(id));
	struct bg b = {.rq = {.port = port,
			      .path = "/query?stream=true",
			      .body = "{\"sql\":\"select pg_sleep(10)\"}",
			      .request_id = id,
			      .mode = ST_JSON}};
	bg_start(&b);
	usleep(300 * 1000);
	wait_active(1.0, "pg_sleep(10) before DELETE");
	double t0 = it_now();
	struct http_resp *r = cancel_id(port, id);
	ck_assert_msg(r->status == 202, "DELETE: %ld %.500s", r->status,
		      r->body);
	ck_assert_msg(r->json && json_is_object(r->json),
		      "DELETE body: %.500s", r->body);
	ck_assert_str_eq(json_string_value(json_object_get(r->json,
							   "request_id")),
			 id);
	http_resp_free(r);
	bg_join(&b);
	double took = b.s.t_end - t0;
	ck_assert_msg(b.s.curl_code == 0 && b.s.status == 504, "%s",
		      st_desc(&b.s));
	json_t *j = parse(b.s.head.data);
	ck_assert_msg(err_code_of(j) && strcmp(err_code_of(j), "57014") == 0,
		      "%s", b.s.head.data);
	json_decref(j);
	char *rid = st_header_value(&b.s, "X-Request-Id");
	ck_assert_msg(rid && strcmp(rid, id) == 0, "X-Request-Id %s",
		      rid ? rid : "(none)");
	free(rid);
	ck_assert_msg(took < 1.0, "the cancelled request ended %.2f s after "
				  "the DELETE",
		      took);
	st_free(&b.s);
	wait_quiet(1.0, "after DELETE");

	/* It is over: the id is unknown now, like one never used. */
	r = cancel_id(port, id);
	ck_assert_msg(r->status == 404, "DELETE of an ended id: %ld %.300s",
		      r->status, r->body);
	http_resp_free(r);
	random_id(id, sizeof(id));
	r = cancel_id(port, id);
	ck_assert_msg(r->status == 404, "DELETE of an unknown id: %ld %.300s",
		      r->status, r->body);
	ck_assert_msg(r->json && err_code_of(r->json), "404 body: %.300s",
		      r->body);
	http_resp_free(r);
}
END_TEST

struct del {
	const char *id;
	long status;
};

static void hook_delete(struct st_sink *s, void *ud)
{
	(void)s;
	struct del *d = ud;
	struct http_resp *r = cancel_id(port, d->id);
	d->status = r->status;
	http_resp_free(r);
}

START_TEST(cancel_by_id_mid_stream)
{
	char id[64];
	random_id(id, sizeof(id));
	struct del d = {.id = id};
	char *body = body_json("select g, md5(g::text) as h"
			       " from generate_series(1,3000000) g",
			       NULL);
	struct st_req rq = {.port = port, .body = body, .request_id = id,
			    .accept = "application/x-ndjson", .mode = ST_LINES,
			    .max_recv_speed = 8 << 20,
			    .hook_after_bytes = 1 << 20, .hook = hook_delete,
			    .hook_ud = &d, .timeout_ms = 30000};
	struct st_sink s;
	st_run(&rq, &s);
	ck_assert_msg(d.status == 202, "DELETE mid-stream: %ld", d.status);
	ck_assert_msg(s.curl_code == 0 && s.status == 200, "%s", st_desc(&s));
	ck_assert_msg(s.lines < 3000000, "not cancelled: %s", st_desc(&s));
	json_t *last = parse(s.last);
	ck_assert_msg(err_code_of(last) &&
			  strcmp(err_code_of(last), "57014") == 0,
		      "last line: %s", s.last);
	json_decref(last);
	/* Rows before it were whole: the line before is row lines-2. */
	json_t *prev = parse(s.prev);
	ck_assert_int_eq(json_integer_value(json_object_get(prev, "g")),
			 (long long)s.lines - 2);
	json_decref(prev);
	st_free(&s);
	free(body);
	wait_quiet(1.0, "after DELETE mid-stream");
}
END_TEST

START_TEST(cancel_by_id_default_lane)
{
	char id[64];
	random_id(id, sizeof(id));
	struct bg b = {.rq = {.port = port,
			      .body = "{\"sql\":\"select pg_sleep(3) /* dl */\"}",
			      .request_id = id,
			      .mode = ST_JSON}};
	bg_start(&b);
	usleep(300 * 1000);
	wait_active(1.0, "pg_sleep(3) before DELETE");
	double t0 = it_now();
	struct http_resp *r = cancel_id(port, id);
	ck_assert_msg(r->status == 202, "DELETE: %ld %.500s", r->status,
		      r->body);
	http_resp_free(r);
	bg_join(&b);
	double took = b.s.t_end - t0;
	ck_assert_msg(b.s.curl_code == 0 && b.s.status == 504, "%s",
		      st_desc(&b.s));
	json_t *j = parse(b.s.head.data);
	ck_assert_msg(err_code_of(j) && strcmp(err_code_of(j), "57014") == 0,
		      "%s", b.s.head.data);
	json_decref(j);
	ck_assert_msg(took < 0.8, "the cancelled request ended %.2f s after "
				  "the DELETE",
		      took);
	st_free(&b.s);
	/* The shared connection finishes the statement, then is usable. */
	wait_quiet(5.0, "after the shared statement ended");
	struct http_resp *ok = it_query(port, "{\"sql\":\"select 7 as x\"}");
	ck_assert_msg(ok->status == 200 && strstr(ok->body, "\"x\":7"),
		      "%ld %.300s", ok->status, ok->body);
	http_resp_free(ok);
}
END_TEST

/* ---- 6. an error half-way ---- */

#define ERR_SQL "select g, 1/(g-500000) as q from generate_series(1,1000000) g"

static void error_mid_json(const char *path, const char *tag)
{
	char *b2 = it_fmt("{\"sql\":\"%s /* %s */\"}", ERR_SQL, tag);
	struct st_req rq = {.port = port, .path = path, .body = b2,
			    .mode = ST_JSON};
	struct st_sink s;
	st_run(&rq, &s);
	ck_assert_msg(s.curl_code == 0 && s.status == 200, "%s: %s", tag,
		      st_desc(&s));
	char *text = NULL;
	json_t *f = st_json_frame(&s, &text);
	ck_assert_msg(f, "%s: not JSON around the rows: %.1000s", tag, text);
	ck_assert_msg(err_code_of(f) && strcmp(err_code_of(f), "22012") == 0,
		      "%s: %.1000s", tag, text);
	ck_assert_msg(json_is_string(json_object_get(
			  json_object_get(f, "error"), "message")),
		      "%s: %.1000s", tag, text);
	ck_assert_msg(!json_object_get(f, "command") &&
			  !json_object_get(f, "row_count"),
		      "%s: %.1000s", tag, text);
	ck_assert_msg(s.rows == 499999, "%s: %s", tag, st_desc(&s));
	json_t *lr = parse(s.last_row);
	assert_json_eq(lr, "{\"g\":499999,\"q\":-1}");
	json_decref(lr);
	/* The error is the last member. */
	ck_assert_msg(strncmp(s.tail.data, ",\"error\":", 9) == 0,
		      "%s: tail %.300s", tag, s.tail.data);
	json_decref(f);
	free(text);
	st_free(&s);
	free(b2);
}

START_TEST(error_mid_stream_every_format)
{
	error_mid_json("/query", "default");
	error_mid_json("/query?stream=true", "stream");

	char *body = body_json(ERR_SQL, NULL);
	struct st_req rq = {.port = port, .body = body, .mode = ST_LINES,
			    .accept = "application/x-ndjson"};
	struct st_sink s;
	st_run(&rq, &s);
	ck_assert_msg(s.curl_code == 0 && s.status == 200, "%s", st_desc(&s));
	ck_assert_msg(s.lines == 1 + 499999 + 1 && s.cur.len == 0, "%s",
		      st_desc(&s));
	json_t *last = parse(s.last);
	ck_assert_msg(err_code_of(last) &&
			  strcmp(err_code_of(last), "22012") == 0 &&
			  json_object_size(last) == 1,
		      "last line %s", s.last);
	json_decref(last);
	json_t *pr = parse(s.prev);
	assert_json_eq(pr, "{\"g\":499999,\"q\":-1}");
	json_decref(pr);
	st_free(&s);

	rq.accept = "text/csv";
	st_run(&rq, &s);
	ck_assert_msg(s.status == 200, "%s", st_desc(&s));
	/* No final chunk: curl must see an incomplete transfer. */
	ck_assert_msg(s.curl_code == CURLE_PARTIAL_FILE ||
			  s.curl_code == CURLE_RECV_ERROR,
		      "CSV after an error: the transfer looked complete: %s",
		      st_desc(&s));
	ck_assert_msg(s.lines <= 500000, "%s", st_desc(&s));
	ck_assert_msg(!s.last || strncmp(s.last, "1000000,", 8) != 0, "%s",
		      st_desc(&s));
	st_free(&s);
	free(body);

	/* The connections are fine afterwards, on both lanes. */
	for (int i = 0; i < 4; i++) {
		struct http_resp *r =
		    it_query(port, "{\"sql\":\"select 5 as five\"}");
		ck_assert_msg(r->status == 200 && strstr(r->body, "\"five\":5"),
			      "%ld %.300s", r->status, r->body);
		http_resp_free(r);
	}
	wait_quiet(1.0, "after the errors");
}
END_TEST

/* ---- 7. limits ---- */

static struct fpg_server *limit_server(uint64_t rows, size_t bytes,
				       size_t buffered, unsigned *p)
{
	struct fpg_options o;
	it_options(&o);
	o.threads = 1;
	o.max_result_rows = rows;
	o.max_result_bytes = bytes;
	if (buffered)
		o.max_buffered_bytes = buffered;
	return it_server_start(&o, p);
}

/*
 * A streamed answer that must end in-band with code after at most max_rows
 * rows and (NDJSON, CSV; when not 0) max_bytes bytes of rows.
 */
static void expect_inband_b(unsigned p, const char *path, const char *accept,
			    const char *sql, const char *code,
			    uint64_t max_rows, size_t max_bytes)
{
	char *body = body_json(sql, NULL);
	struct st_req rq = {.port = p, .path = path, .accept = accept,
			    .body = body,
			    .mode = accept ? ST_LINES : ST_JSON};
	struct st_sink s;
	st_run(&rq, &s);
	const char *fmt = accept ? accept : "json";
	ck_assert_msg(s.status == 200, "%s %s %s: %s", path, fmt, sql,
		      st_desc(&s));
	if (accept && strcmp(accept, "text/csv") == 0) {
		ck_assert_msg(s.curl_code == CURLE_PARTIAL_FILE ||
				  s.curl_code == CURLE_RECV_ERROR,
			      "CSV past a limit looked complete: %s",
			      st_desc(&s));
		ck_assert_msg(s.lines - 1 <= max_rows, "%s", st_desc(&s));
		size_t rb = s.bytes - (s.first[0] ? strlen(s.first[0]) + 2 : 0);
		ck_assert_msg(!max_bytes || rb <= max_bytes,
			      "CSV: %zu bytes of rows went out, the limit is %zu",
			      rb, max_bytes);
	} else if (accept) {
		ck_assert_msg(s.curl_code == 0, "%s", st_desc(&s));
		json_t *last = parse(s.last);
		ck_assert_msg(err_code_of(last) &&
				  strcmp(err_code_of(last), code) == 0,
			      "%s %s: last line %s", path, fmt, s.last);
		json_decref(last);
		ck_assert_msg(s.lines - 2 <= max_rows, "%s", st_desc(&s));
		size_t rb = s.bytes - strlen(s.first[0]) - strlen(s.last) - 2;
		ck_assert_msg(!max_bytes || rb <= max_bytes,
			      "NDJSON: %zu bytes of rows went out, the limit is "
			      "%zu",
			      rb, max_bytes);
	} else {
		ck_assert_msg(s.curl_code == 0, "%s", st_desc(&s));
		char *text = NULL;
		json_t *f = st_json_frame(&s, &text);
		ck_assert_msg(f && err_code_of(f) &&
				  strcmp(err_code_of(f), code) == 0 &&
				  !json_object_get(f, "row_count"),
			      "%s: %.1000s", path, text);
		ck_assert_msg(s.rows <= max_rows, "%s", st_desc(&s));
		json_decref(f);
		free(text);
	}
	st_free(&s);
	free(body);
}

static void expect_inband(unsigned p, const char *path, const char *accept,
			  const char *sql, const char *code, uint64_t max_rows)
{
	expect_inband_b(p, path, accept, sql, code, max_rows, 0);
}

static void expect_usable(unsigned p, const char *what)
{
	struct http_resp *r = it_query(p, "{\"sql\":\"select 42 as x\"}");
	ck_assert_msg(r->status == 200 && strstr(r->body, "\"x\":42"),
		      "%s: next query: %ld %.300s", what, r->status, r->body);
	http_resp_free(r);
	char *body = body_json("select g from generate_series(1,500) g", NULL);
	struct st_req rq = {.port = p, .body = body, .mode = ST_LINES,
			    .accept = "application/x-ndjson"};
	struct st_sink s;
	st_run(&rq, &s);
	ck_assert_msg(s.curl_code == 0 && s.status == 200 && s.lines == 502,
		      "%s: next NDJSON query: %s", what, st_desc(&s));
	st_free(&s);
	free(body);
	wait_quiet_on(p, 0, 1.0, what);
}

START_TEST(limit_rows)
{
	unsigned p;
	struct fpg_server *srv = limit_server(1000, 0, 0, &p);
	const char *wide = "select g, repeat('x', 100) as x"
			   " from generate_series(1,5000) g";

	/* Hit before the first byte (5000 short rows < 64 KiB): 413. */
	struct http_resp *r = it_query(
	    p, "{\"sql\":\"select g from generate_series(1,5000) g\"}");
	it_assert_error(r, 413, "result_too_large");
	http_resp_free(r);
	r = it_query(p, "{\"sql\":\"select g from generate_series(1,1000) g\"}");
	ck_assert_msg(r->status == 200 && r->json &&
			  json_array_size(json_object_get(r->json, "rows")) ==
			      1000,
		      "exactly the limit: %ld %.300s", r->status, r->body);
	http_resp_free(r);

	/* After the first byte: in-band, in every format (how exactly the
	 * cut falls is limit_cut_exactly's business). */
	expect_inband(p, "/query", NULL, wide, "result_too_large", 1001);
	expect_inband(p, "/query?stream=true", NULL,
		      "select g, repeat('x', 100) as x /* s */"
		      " from generate_series(1,5000) g",
		      "result_too_large", 1001);
	expect_inband(p, "/query", "application/x-ndjson", wide,
		      "result_too_large", 1001);
	expect_inband(p, "/query", "text/csv", wide, "result_too_large", 1001);
	expect_usable(p, "after result_too_large (rows)");

	/* On the slow lane the statement is cancelled, not read to its end
	 * (in the target list, generate_series streams: reading all of it
	 * would take many seconds). */
	double t0 = it_now();
	expect_inband(p, "/query", "application/x-ndjson",
		      "select generate_series(1,100000000) as g",
		      "result_too_large", 1001);
	double took = it_now() - t0;
	ck_assert_msg(took < 5.0, "100M rows past the limit took %.2f s", took);
	expect_usable(p, "after a cancelled statement past the limit");

	fpg_server_stop(srv, 1000);
	fpg_server_free(srv);
}
END_TEST

START_TEST(limit_bytes)
{
	unsigned p;
	struct fpg_server *srv = limit_server(0, 200000, 0, &p);
	const char *wide = "select g, repeat('x', 100) as x"
			   " from generate_series(1,5000) g";
	/* ~45 KB: fine. */
	struct http_resp *r = it_query(
	    p, "{\"sql\":\"select g from generate_series(1,5000) g\"}");
	ck_assert_msg(r->status == 200 && r->json &&
			  json_array_size(json_object_get(r->json, "rows")) ==
			      5000,
		      "under the limit: %ld %.300s", r->status, r->body);
	http_resp_free(r);

	/* ~600 KB: cut off in-band, the rows sent stay under the limit. */
	expect_inband(p, "/query", NULL, wide, "result_too_large", 2000);
	expect_inband_b(p, "/query", "application/x-ndjson", wide,
			"result_too_large", 2000, 200200);
	expect_inband_b(p, "/query", "text/csv", wide, "result_too_large", 2000,
			200200);
	expect_usable(p, "after result_too_large (bytes)");

	fpg_server_stop(srv, 1000);
	fpg_server_free(srv);
}
END_TEST

/*
 * No row past a limit goes out: with max_result_rows = 1000 a client gets
 * at most 1000 rows, with max_result_bytes = 200000 at most 200000 bytes
 * of rows, then the error. Every format is tried before failing.
 */
struct cut {
	char fails[2000];
};

static void cut_check(struct cut *c, unsigned p, const char *path,
		      const char *accept, const char *sql, uint64_t max_rows,
		      size_t max_bytes)
{
	char *body = body_json(sql, NULL);
	struct st_req rq = {.port = p, .path = path, .accept = accept,
			    .body = body,
			    .mode = accept ? ST_LINES : ST_JSON};
	struct st_sink s;
	st_run(&rq, &s);
	uint64_t rows;
	size_t rb;
	if (!accept) {
		rows = s.rows;
		/* "[" + rows, with their commas */
		rb = 0;
	} else if (strcmp(accept, "text/csv") == 0) {
		rows = s.lines ? s.lines - 1 : 0;
		rb = s.bytes - (s.first[0] ? strlen(s.first[0]) + 2 : 0);
	} else {
		rows = s.lines >= 2 ? s.lines - 2 : 0;
		rb = s.bytes - (s.first[0] ? strlen(s.first[0]) + 1 : 0) -
		     (s.last ? strlen(s.last) + 1 : 0);
	}
	size_t l = strlen(c->fails);
	if ((max_rows && rows > max_rows) || (max_bytes && rb > max_bytes))
		snprintf(c->fails + l, sizeof(c->fails) - l,
			 "[%s %s: %llu rows, %zu bytes of rows] ", path,
			 accept ? accept : "json", (unsigned long long)rows,
			 rb);
	st_free(&s);
	free(body);
}

START_TEST(limit_cut_exactly)
{
	struct cut c = {{0}};
	const char *wide = "select g, repeat('x', 100) as x"
			   " from generate_series(1,5000) g";
	unsigned p;
	struct fpg_server *srv = limit_server(1000, 0, 0, &p);
	cut_check(&c, p, "/query", NULL, wide, 1000, 0);
	cut_check(&c, p, "/query?stream=true", NULL, wide, 1000, 0);
	cut_check(&c, p, "/query", "application/x-ndjson", wide, 1000, 0);
	cut_check(&c, p, "/query", "text/csv", wide, 1000, 0);
	fpg_server_stop(srv, 1000);
	fpg_server_free(srv);
	srv = limit_server(0, 200000, 0, &p);
	cut_check(&c, p, "/query", "application/x-ndjson", wide, 0, 200000);
	cut_check(&c, p, "/query", "text/csv", wide, 0, 200000);
	fpg_server_stop(srv, 1000);
	fpg_server_free(srv);
	ck_assert_msg(!c.fails[0], "rows past the limit went out: %s",
		      c.fails);
}
END_TEST

/* All answers together: one stalled client is cut by the server-wide
 * cap although its own (16 MiB) is far away. */
START_TEST(limit_buffered_total)
{
	unsigned p;
	struct fpg_options o;
	it_options(&o);
	o.threads = 1;
	o.max_buffered_total = 1024 * 1024;
	struct fpg_server *srv = it_server_start(&o, &p);
	char *body = body_json("select g, md5(g::text) as h /* total */"
			       " from generate_series(1,500000) g",
			       NULL);
	struct st_req rq = {.port = p, .body = body, .mode = ST_JSON,
			    .first_sleep_ms = 1500};
	struct st_sink s;
	st_run(&rq, &s);
	ck_assert_msg(s.curl_code == 0 && s.status == 200, "%s", st_desc(&s));
	char *text = NULL;
	json_t *f = st_json_frame(&s, &text);
	ck_assert_msg(f && err_code_of(f) &&
			  strcmp(err_code_of(f), "result_not_read") == 0 &&
			  strstr(text, "all clients together"),
		      "a stalled client: %.1000s (%s)", text, st_desc(&s));
	ck_assert_msg(s.rows < 500000, "%s", st_desc(&s));
	json_decref(f);
	free(text);
	st_free(&s);
	free(body);
	double t0 = it_now();
	while (it_active_statements() > 0 && it_now() - t0 < 10)
		usleep(50 * 1000);
	/* The count went back down: a large answer fits again. */
	expect_usable(p, "after the total cap");
	fpg_server_stop(srv, 1000);
	fpg_server_free(srv);
}
END_TEST

START_TEST(limit_buffered_slow_client)
{
	unsigned p;
	struct fpg_server *srv = limit_server(0, 0, 65536, &p);
	char *body = body_json("select g, md5(g::text) as h /* buffered */"
			       " from generate_series(1,500000) g",
			       NULL);
	/* A default-lane JSON answer, and a client that stalls. */
	struct st_req rq = {.port = p, .body = body, .mode = ST_JSON,
			    .first_sleep_ms = 1500};
	struct st_sink s;
	st_run(&rq, &s);
	ck_assert_msg(s.curl_code == 0 && s.status == 200, "%s", st_desc(&s));
	char *text = NULL;
	json_t *f = st_json_frame(&s, &text);
	ck_assert_msg(f && err_code_of(f) &&
			  strcmp(err_code_of(f), "result_not_read") == 0 &&
			  !json_object_get(f, "row_count"),
		      "a stalled client: %.1000s (%s)", text, st_desc(&s));
	ck_assert_msg(s.rows < 500000, "%s", st_desc(&s));
	/* The rows that came are whole and in order. */
	json_t *last = parse(s.last_row);
	ck_assert_int_eq(json_integer_value(json_object_get(last, "g")),
			 (long long)s.rows);
	json_decref(last);
	json_decref(f);
	free(text);
	st_free(&s);
	free(body);
	/* The shared connection reads the rest and drops it, then serves. */
	double t0 = it_now();
	while (it_active_statements() > 0 && it_now() - t0 < 10)
		usleep(50 * 1000);
	expect_usable(p, "after result_not_read");
	fpg_server_stop(srv, 1000);
	fpg_server_free(srv);
}
END_TEST

/* ---- 8. random sizes and formats ---- */

START_TEST(random_sizes_and_formats)
{
	const char *paths[] = {"/query", "/query?stream=true", "/query",
			       "/query"};
	const char *accepts[] = {NULL, NULL, "application/x-ndjson",
				 "text/csv"};
	for (int i = 0; i < 8; i++) {
		long n = rand() % 200001;
		if (i == 0)
			n = 0;
		int f = rand() % 4;
		char *sql = it_fmt("select g, 'r' || g as s, null::int as z"
				   " from generate_series(1,%ld) g /* %d */",
				   n, i);
		char *body = body_json(sql, NULL);
		struct st_req rq = {.port = port, .path = paths[f],
				    .accept = accepts[f], .body = body,
				    .mode = f >= 2 ? ST_LINES : ST_JSON};
		struct st_sink s;
		st_run(&rq, &s);
		fprintf(stderr, "  random %d: %ld rows, %s %s: %zu bytes\n", i,
			n, paths[f], accepts[f] ? accepts[f] : "json", s.bytes);
		ck_assert_msg(s.curl_code == 0 && s.status == 200,
			      "seed %u, %ld rows, format %d: %s", it_seed(), n, f,
			      st_desc(&s));
		char *want_last = NULL;
		if (f < 2) {
			json_t *fr = st_json_frame(&s, NULL);
			ck_assert_msg(fr && json_integer_value(json_object_get(
						fr, "row_count")) == n &&
					  s.rows == (uint64_t)n,
				      "seed %u, %ld rows: %s", it_seed(), n,
				      st_desc(&s));
			json_decref(fr);
			if (n) {
				want_last = it_fmt("{\"g\":%ld,\"s\":\"r%ld\","
						   "\"z\":null}",
						   n, n);
				ck_assert_str_eq(s.last_row, want_last);
			}
		} else if (f == 2) {
			ck_assert_msg(s.lines == (uint64_t)n + 2, "seed %u: %s",
				      it_seed(), st_desc(&s));
			char *tr = it_fmt("{\"command\":\"SELECT\","
					  "\"row_count\":%ld}",
					  n);
			ck_assert_str_eq(s.last, tr);
			free(tr);
			if (n) {
				want_last = it_fmt("{\"g\":%ld,\"s\":\"r%ld\","
						   "\"z\":null}",
						   n, n);
				ck_assert_str_eq(s.prev, want_last);
			}
		} else {
			ck_assert_msg(s.lines == (uint64_t)n + 1 &&
					  s.lines_without_cr == 0,
				      "seed %u: %s", it_seed(), st_desc(&s));
			ck_assert_str_eq(s.first[0], "g,s,z");
			if (n) {
				want_last = it_fmt("%ld,r%ld,", n, n);
				ck_assert_str_eq(s.last, want_last);
			}
		}
		free(want_last);
		st_free(&s);
		free(body);
		free(sql);
	}
	wait_quiet(1.0, "after random sizes");
}
END_TEST

/* Lets the pool open, then takes the idle state as the baseline. */
static void take_baseline(void)
{
	struct http_resp *r = it_query(port, "{\"sql\":\"select 1\"}");
	if (!r || r->status != 200) {
		fprintf(stderr, "test_stream: the server does not answer\n");
		exit(1);
	}
	http_resp_free(r);
	usleep(200 * 1000);
	struct it_activity a;
	char text[800];
	if (!it_activity_read(port, &a, text, sizeof(text))) {
		fprintf(stderr, "test_stream: %s\n", text);
		exit(1);
	}
	busy_baseline = a.busy;
	fprintf(stderr, "test_stream: baseline %s%s\n", text,
		ST_ASAN ? " (ASan)" : "");
}

static const struct test_case cases[] = {
    TEST_CASE(million_rows_json_default_lane),
    TEST_CASE(million_rows_json_stream_true),
    TEST_CASE(million_rows_ndjson),
    TEST_CASE(million_rows_csv),
    TEST_CASE(slow_reader_constant_memory),
    TEST_CASE(disconnect_mid_stream_cancels),
    TEST_CASE(disconnect_while_waiting_cancels),
    TEST_CASE(timeout_ms_every_lane),
    TEST_CASE(cancel_by_id_slow_lane),
    TEST_CASE(cancel_by_id_mid_stream),
    TEST_CASE(cancel_by_id_default_lane),
    TEST_CASE(error_mid_stream_every_format),
    TEST_CASE(limit_rows),
    TEST_CASE(limit_bytes),
    TEST_CASE(limit_cut_exactly),
    TEST_CASE(limit_buffered_slow_client),
    TEST_CASE(limit_buffered_total),
    TEST_CASE(random_sizes_and_formats),
    {0},
};

static const struct it_server servers[] = {{&port, NULL}, {0}};

const struct it_program it_program = {
    .name = "stream",
    .cases = cases,
    .servers = servers,
    .started = take_baseline,
    .timeout_s = 120,
};
