/*
 * Named queries marked "-- read-only": they run in a read-only
 * transaction that PostgreSQL enforces (a write answers 403 with 25006
 * and changes nothing, on POST and GET), and GET /q/NAME runs them with
 * the body's fields in the query string. And a role's streams=N
 * (--roles): at most N streaming answers or COPYs at once per worker,
 * 429 too_many_streams beyond, counted down however a request ends.
 *
 * The cluster trusts every login (the harness's pg_hba.conf), so the
 * passwords of --auth password are anything: what matters here is the
 * role a request runs as.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "http.h"
#include "it.h"
#include "pg_harness.h"

static unsigned port;	     /* no --auth: every request is the --db login */
static unsigned auth_port;   /* --auth password, --roles, one worker */
static char dir[64];	     /* the named queries and the roles file */

static const char *const query_files[][2] = {
	{"add_rw", "SELECT $1::int + $2::int\n"},
	{"add_ro", "-- adds two numbers\n\n-- read-only\nSELECT $1::int + "
		   "$2::int AS sum\n"},
	{"notes", "-- roles: alice, bob\n-- read-only\nSELECT n, note FROM "
		  "named_notes WHERE n >= $1::int ORDER BY n\n"},
	/* A data-modifying CTE and a volatile function that writes: only
	 * PostgreSQL can tell what they do. */
	{"cte_write", "-- read-only\n-- roles: alice\nWITH x AS (INSERT INTO "
		      "named_notes VALUES (100, 'cte') RETURNING 1) SELECT "
		      "count(*) FROM x\n"},
	{"fn_write", "-- read-only\nSELECT named_write($1)\n"},
	{"rw_write", "SELECT named_write($1)\n"},
	{"rw_alice", "-- roles: alice\nSELECT 1\n"},
};
#define N_QUERY_FILES (sizeof(query_files) / sizeof(query_files[0]))

static char *path_of(const char *name)
{
	return it_fmt("%s/%s", dir, name);
}

static void write_file(const char *name, const char *text)
{
	char *p = path_of(name);
	FILE *f = fopen(p, "w");
	if (!f)
		abort(); /* from setup(), where Check cannot */
	fputs(text, f);
	fclose(f);
	free(p);
}

static void setup(void)
{
	pgh_exec("CREATE ROLE alice LOGIN; CREATE ROLE carol LOGIN;"
		 "CREATE ROLE streamer LOGIN;"
		 "CREATE TABLE named_notes (n int, note text);"
		 "INSERT INTO named_notes VALUES (1, 'one'), (2, 'two');"
		 "GRANT SELECT, INSERT ON named_notes TO alice, carol, streamer;"
		 "CREATE FUNCTION named_write(t text) RETURNS int VOLATILE "
		 "LANGUAGE sql AS $$INSERT INTO named_notes VALUES (200, t) "
		 "RETURNING n$$;"
		 "GRANT EXECUTE ON FUNCTION named_write(text) TO PUBLIC");
	snprintf(dir, sizeof(dir), "/tmp/fpg_named_XXXXXX");
	if (!mkdtemp(dir))
		abort();
	for (size_t i = 0; i < N_QUERY_FILES; i++) {
		char *name = it_fmt("%s.sql", query_files[i][0]);
		write_file(name, query_files[i][1]);
		free(name);
	}
	write_file("roles", "# streams per worker\nstreamer streams=1\n");
}

__attribute__((destructor)) static void remove_files(void)
{
	if (!dir[0])
		return;
	for (size_t i = 0; i < N_QUERY_FILES; i++) {
		char *p = it_fmt("%s/%s.sql", dir, query_files[i][0]);
		unlink(p);
		free(p);
	}
	char *p = path_of("roles");
	unlink(p);
	free(p);
	rmdir(dir);
}

/* "Authorization: Basic base64(user:x)" (the thread's storage): the
 * cluster trusts the login, any password does. */
static const char *basic(const char *user)
{
	static _Thread_local char header[200];
	char plain[100];
	unsigned char b64[160];
	int n = snprintf(plain, sizeof(plain), "%s:x", user);
	EVP_EncodeBlock(b64, (const unsigned char *)plain, n);
	snprintf(header, sizeof(header), "Authorization: Basic %s", b64);
	return header;
}

static long rows_of(const char *note)
{
	char *sql = it_fmt("SELECT count(*) FROM named_notes WHERE note = '%s'",
			   note);
	char *n = pgh_scalar(sql);
	long v = atol(n);
	free(n);
	free(sql);
	return v;
}

/* GET path on p with X-Requested-With, and the extra header h (or NULL). */
static struct http_resp *get_with(unsigned p, const char *path, const char *h,
				  const char *h2)
{
	const char *hs[] = {"X-Requested-With: test", h, h2, NULL};
	return http_request(p, "GET", path, NULL, hs);
}

/* POST /q/name on p with body, as who ("Authorization: ..." or NULL). */
static struct http_resp *post_named(unsigned p, const char *name,
				    const char *body, const char *who)
{
	char *path = it_fmt("/q/%s", name);
	const char *hs[] = {"Content-Type: application/json", who, NULL};
	struct http_resp *r = http_request(p, "POST", path, body, hs);
	free(path);
	return r;
}

#define CHECK_25006(r)                                                       \
	ck_assert_msg((r)->status == 403 && strstr((r)->body, "25006"),      \
		      "%ld %s", (r)->status, (r)->body)

START_TEST(read_only_queries_cannot_write)
{
	char alice[200];
	snprintf(alice, sizeof(alice), "%s", basic("alice"));
	/* A data-modifying CTE: on POST, with a timeout (the setting then
	 * has a part of its own before the statement's), and on GET. */
	struct http_resp *r = post_named(auth_port, "cte_write", "{}", alice);
	CHECK_25006(r);
	http_resp_free(r);
	r = post_named(auth_port, "cte_write", "{\"timeout_ms\":5000}", alice);
	CHECK_25006(r);
	http_resp_free(r);
	r = get_with(auth_port, "/q/cte_write", alice, NULL);
	CHECK_25006(r);
	http_resp_free(r);
	r = get_with(auth_port, "/q/cte_write?stream=true", alice,
		     "Accept: application/x-ndjson");
	CHECK_25006(r);
	http_resp_free(r);
	ck_assert_int_eq(rows_of("cte"), 0);
	/* A function that writes, called by a SELECT. */
	r = post_named(port, "fn_write", "{\"params\":[\"fn\"]}", NULL);
	CHECK_25006(r);
	http_resp_free(r);
	r = get_with(port, "/q/fn_write?params=%5B%22fn%22%5D", NULL, NULL);
	CHECK_25006(r);
	http_resp_free(r);
	r = get_with(port, "/q/fn_write?params=%5B%22fn%22%5D", NULL,
		     "Accept: text/csv");
	CHECK_25006(r);
	http_resp_free(r);
	ck_assert_int_eq(rows_of("fn"), 0);
	/* The same SQL without the mark writes: it was the mark. */
	r = post_named(port, "rw_write", "{\"params\":[\"rw\"]}", NULL);
	ck_assert_msg(r->status == 200, "%ld %s", r->status, r->body);
	http_resp_free(r);
	ck_assert_int_eq(rows_of("rw"), 1);
	pgh_exec("DELETE FROM named_notes WHERE note = 'rw'");
	/* And the connections are not left read-only for others. */
	r = post_named(port, "rw_write", "{\"params\":[\"rw\"]}", NULL);
	ck_assert_msg(r->status == 200, "%ld %s", r->status, r->body);
	http_resp_free(r);
	pgh_exec("DELETE FROM named_notes WHERE note = 'rw'");
}
END_TEST

START_TEST(get_runs_read_only_queries)
{
	int a = rand() % 1000, b = rand() % 1000;
	char *path = it_fmt("/q/add_ro?params=%%5B%d%%2C%d%%5D&expect=scalar",
			    a, b);
	char *want = it_fmt("{\"value\":%d}", a + b);
	struct http_resp *r = get_with(port, path, NULL, NULL);
	ck_assert_msg(r->status == 200 && strstr(r->body, want), "%ld %s",
		      r->status, r->body);
	char *cc = http_header(r, "Cache-Control");
	ck_assert_msg(cc && strstr(cc, "no-store"), "%s", cc ? cc : "none");
	free(cc);
	http_resp_free(r);
	free(path);
	free(want);
	/* The formats of POST: CSV, NDJSON, rows as arrays. */
	r = get_with(port, "/q/add_ro?params=%5B2,3%5D", "Accept: text/csv",
		     NULL);
	ck_assert_msg(r->status == 200 && strcmp(r->body, "sum\r\n5\r\n") == 0,
		      "%ld [%s]", r->status, r->body);
	http_resp_free(r);
	r = get_with(port, "/q/add_ro?params=%5B2,3%5D",
		     "Accept: application/x-ndjson", NULL);
	ck_assert_msg(r->status == 200 && strstr(r->body, "{\"sum\":5}\n"),
		      "%ld %s", r->status, r->body);
	http_resp_free(r);
	r = get_with(port, "/q/add_ro?params=%5B2,3%5D&rows=array", NULL, NULL);
	ck_assert_msg(r->status == 200 && strstr(r->body, "[5]"), "%ld %s",
		      r->status, r->body);
	http_resp_free(r);
	/* A web page's GET (no X-Requested-With) runs nothing. */
	r = http_get(port, "/q/add_ro?params=%5B2,3%5D");
	ck_assert_msg(r->status == 403 && strstr(r->body, "cross_site_request"),
		      "%ld %s", r->status, r->body);
	http_resp_free(r);
	/* Not read-only: POST only. */
	r = get_with(port, "/q/add_rw?params=%5B2,3%5D", NULL, NULL);
	ck_assert_msg(r->status == 405 && strstr(r->body, "not read-only"),
		      "%ld %s", r->status, r->body);
	char *allow = http_header(r, "Allow");
	ck_assert_msg(allow && strcmp(allow, "POST") == 0, "Allow %s",
		      allow ? allow : "none");
	free(allow);
	http_resp_free(r);
	r = get_with(port, "/q/nope", NULL, NULL);
	ck_assert_msg(r->status == 404 && strstr(r->body, "query_not_found"),
		      "%ld %s", r->status, r->body);
	http_resp_free(r);
	/* What the query string may hold. */
	static const char *const bad[] = {
		"/q/add_ro?params=2",	     "/q/add_ro?params=%5B2,3%5D,1",
		"/q/add_ro?params=%5B2%5D&params=%5B3%5D",
		"/q/add_ro?sql=SELECT+1",   "/q/add_ro?expect=many",
		"/q/add_ro?timeout_ms=soon", "/q/add_ro?params",
		"/q/add_ro?params=%5B2,3%5D%2C%22sql%22:%22x%22",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		r = get_with(port, bad[i], NULL, NULL);
		ck_assert_msg(r->status == 400, "%s: %ld %s", bad[i], r->status,
			      r->body);
		http_resp_free(r);
	}
	r = get_with(port, "/q/add_ro?params=%5B2%5D", NULL, NULL);
	ck_assert_msg(r->status == 400 && strstr(r->body, "parameter"),
		      "%ld %s", r->status, r->body);
	http_resp_free(r);
	/* The same query by POST answers the same. */
	r = post_named(port, "add_ro", "{\"params\":[2,3],\"expect\":\"scalar\"}",
		       NULL);
	ck_assert_msg(r->status == 200 && strstr(r->body, "{\"value\":5}"),
		      "%ld %s", r->status, r->body);
	http_resp_free(r);
}
END_TEST

START_TEST(get_keeps_roles)
{
	char alice[200];
	snprintf(alice, sizeof(alice), "%s", basic("alice"));
	struct http_resp *r =
		get_with(auth_port, "/q/notes?params=%5B2%5D", alice, NULL);
	ck_assert_msg(r->status == 200 && strstr(r->body, "\"two\"") &&
			      !strstr(r->body, "\"one\""),
		      "%ld %s", r->status, r->body);
	http_resp_free(r);
	r = get_with(auth_port, "/q/notes?params=%5B2%5D", basic("carol"),
		     NULL);
	ck_assert_msg(r->status == 403 && strstr(r->body, "query_not_allowed"),
		      "%ld %s", r->status, r->body);
	http_resp_free(r);
	/* Not for carol, and not read-only: the roles answer first, and
	 * say nothing more about the query. */
	r = get_with(auth_port, "/q/rw_alice", basic("carol"), NULL);
	ck_assert_msg(r->status == 403 && strstr(r->body, "query_not_allowed"),
		      "%ld %s", r->status, r->body);
	http_resp_free(r);
	r = get_with(auth_port, "/q/rw_alice", basic("alice"), NULL);
	ck_assert_int_eq(r->status, 405);
	http_resp_free(r);
	/* Without a credential, nothing. */
	r = get_with(auth_port, "/q/add_ro?params=%5B1,1%5D", NULL, NULL);
	ck_assert_int_eq(r->status, 401);
	http_resp_free(r);
}
END_TEST

/* ---- streams=N ---- */

struct streamer {
	pthread_t th;
	const char *method, *path, *body, *accept, *ctype;
	char id[64];	   /* X-Request-Id, "" for none */
	long timeout_ms;   /* 0: http's default */
	struct http_resp *r;
};

static const char cancel_key[] = "named-test-cancel-key-0123456789";

static void *streamer_main(void *arg)
{
	struct streamer *s = arg;
	char hid[100], hkey[100], auth[200];
	snprintf(hid, sizeof(hid), "X-Request-Id: %s", s->id);
	snprintf(hkey, sizeof(hkey), "X-Cancel-Key: %s", cancel_key);
	snprintf(auth, sizeof(auth), "%s", basic("streamer"));
	const char *hs[] = {auth, "X-Requested-With: test",
			    s->accept ? s->accept : "Accept: application/x-ndjson",
			    s->ctype ? s->ctype : "Content-Type: application/json",
			    s->id[0] ? hid : NULL, hkey, NULL};
	struct http_opts o = {.timeout_ms = s->timeout_ms};
	s->r = http_request_opts(auth_port, s->method, s->path, s->body, hs,
				 &o);
	return NULL;
}

/* The streamer's request, as it answers (in this thread). */
static struct http_resp *stream_now(const char *sql)
{
	struct streamer s = {.method = "POST", .path = "/query"};
	char *body = it_fmt("{\"sql\":\"%s\"}", sql);
	s.body = body;
	streamer_main(&s);
	free(body);
	return s.r;
}

static void start_streamer(struct streamer *s)
{
	ck_assert_int_eq(pthread_create(&s->th, NULL, streamer_main, s), 0);
}

/* Until the streamer's pg_sleep runs on PostgreSQL (or 3 s). */
static void wait_running(const char *like)
{
	char *sql = it_fmt("SELECT count(*) FROM pg_stat_activity WHERE "
			   "usename = 'streamer' AND state = 'active' AND "
			   "query LIKE '%s'",
			   like);
	bool running = false;
	for (int i = 0; i < 300 && !running; i++) {
		usleep(10 * 1000);
		char *n = pgh_scalar(sql);
		running = strcmp(n, "0") != 0;
		free(n);
	}
	free(sql);
	ck_assert_msg(running, "%s never ran", like);
}

static void check_too_many(struct http_resp *r, const char *what)
{
	ck_assert_msg(r->status == 429 && strstr(r->body, "too_many_streams"),
		      "%s: %ld %s", what, r->status, r->body);
	char *ra = http_header(r, "Retry-After");
	ck_assert_msg(ra && strcmp(ra, "1") == 0, "%s: Retry-After %s", what,
		      ra ? ra : "(none)");
	free(ra);
	http_resp_free(r);
}

/* What a second streaming request of the role gets while one streams. */
static void check_refused_while_streaming(void)
{
	check_too_many(stream_now("SELECT 1"), "NDJSON");
	struct streamer s = {.method = "POST", .path = "/query?stream=true",
			     .body = "{\"sql\":\"SELECT 1\"}",
			     .accept = "Accept: application/json"};
	streamer_main(&s);
	check_too_many(s.r, "stream=true");
	s = (struct streamer){.method = "GET",
			      .path = "/copy?query=SELECT%201",
			      .accept = "Accept: text/csv"};
	streamer_main(&s);
	check_too_many(s.r, "GET /copy");
	s = (struct streamer){.method = "POST",
			      .path = "/copy?table=named_notes",
			      .body = "9,copied\n",
			      .ctype = "Content-Type: text/csv"};
	streamer_main(&s);
	check_too_many(s.r, "POST /copy");
	ck_assert_int_eq(rows_of("copied"), 0);
	/* A JSON answer needs no stream: it shares a connection, even
	 * where the lane memory would have given it one of its own (a
	 * statement never seen before). */
	char *sql = it_fmt("SELECT %d AS fresh", rand());
	s = (struct streamer){.method = "POST", .path = "/query",
			      .accept = "Accept: application/json"};
	char *body = it_fmt("{\"sql\":\"%s\"}", sql);
	s.body = body;
	streamer_main(&s);
	ck_assert_msg(s.r->status == 200 && strstr(s.r->body, "fresh"),
		      "%ld %s", s.r->status, s.r->body);
	http_resp_free(s.r);
	free(body);
	free(sql);
	/* Other roles are not counted with it. */
	const char *hs[] = {basic("alice"), "Accept: application/x-ndjson",
			    NULL};
	struct http_resp *r =
		http_request(auth_port, "POST", "/query",
			     "{\"sql\":\"SELECT 'alice' AS who\"}", hs);
	ck_assert_msg(r->status == 200 && strstr(r->body, "alice"), "%ld %s",
		      r->status, r->body);
	http_resp_free(r);
}

/* A new stream works after the last one ended (within a second: the
 * server may notice a client that left a little later). A count that
 * leaked would refuse it for good. */
static void check_one_stream_works(const char *after)
{
	struct http_resp *r = NULL;
	for (int i = 0; i < 50; i++) {
		http_resp_free(r);
		r = stream_now("SELECT 'again' AS v");
		if (r->status != 429)
			break;
		usleep(20 * 1000);
	}
	ck_assert_msg(r->status == 200 && strstr(r->body, "again"),
		      "after %s: %ld %s", after, r->status, r->body);
	http_resp_free(r);
}

START_TEST(streams_per_role)
{
	/* One stream at a time, whichever kind holds it. */
	struct streamer s = {.method = "POST", .path = "/query",
			     .body = "{\"sql\":\"SELECT pg_sleep(1.5) AS s\"}"};
	start_streamer(&s);
	wait_running("SELECT pg_sleep(1.5)%");
	check_refused_while_streaming();
	pthread_join(s.th, NULL);
	ck_assert_msg(s.r->status == 200 && strstr(s.r->body, "\"s\""),
		      "%ld %s", s.r->status, s.r->body);
	http_resp_free(s.r);
	/* Finished: the count is down, again and again. */
	for (int i = 0; i < 3; i++)
		check_one_stream_works("a stream that finished");
	s = (struct streamer){
		.method = "GET", .accept = "Accept: text/csv",
		.path = "/copy?query=SELECT%20pg_sleep(1.5)%20AS%20s"};
	start_streamer(&s);
	wait_running("%pg_sleep(1.5)%");
	check_too_many(stream_now("SELECT 1"), "NDJSON while a COPY");
	pthread_join(s.th, NULL);
	ck_assert_msg(s.r->status == 200, "%ld %s", s.r->status, s.r->body);
	http_resp_free(s.r);
	check_one_stream_works("a COPY");
	/* An error, */
	struct http_resp *r = stream_now("SELECT 1/0");
	ck_assert_msg(r->status == 400 || strstr(r->body, "22012"), "%ld %s",
		      r->status, r->body);
	http_resp_free(r);
	check_one_stream_works("an error");
	/* a client that left, */
	s = (struct streamer){.method = "POST", .path = "/query",
			      .body = "{\"sql\":\"SELECT pg_sleep(1.4)\"}",
			      .timeout_ms = 300};
	streamer_main(&s);
	ck_assert_int_ne(s.r->curl_code, 0);
	http_resp_free(s.r);
	check_one_stream_works("a client that left");
	/* a statement cancelled. */
	s = (struct streamer){.method = "POST", .path = "/query",
			      .body = "{\"sql\":\"SELECT pg_sleep(1.3)\"}"};
	snprintf(s.id, sizeof(s.id), "named-%u-%d", it_seed(), rand());
	start_streamer(&s);
	wait_running("SELECT pg_sleep(1.3)%");
	char *path = it_fmt("/query/%s", s.id);
	char hkey[100];
	snprintf(hkey, sizeof(hkey), "X-Cancel-Key: %s", cancel_key);
	const char *hs[] = {basic("streamer"), hkey, NULL};
	r = http_request(auth_port, "DELETE", path, NULL, hs);
	ck_assert_msg(r->status == 202, "%ld %s", r->status, r->body);
	http_resp_free(r);
	free(path);
	pthread_join(s.th, NULL);
	ck_assert_msg(strstr(s.r->body, "57014"), "%ld %s", s.r->status,
		      s.r->body);
	http_resp_free(s.r);
	check_one_stream_works("a cancel");
}
END_TEST

static void plain(struct fpg_options *o)
{
	o->queries = dir;
}

static void with_roles(struct fpg_options *o)
{
	static char roles[96];
	snprintf(roles, sizeof(roles), "%s/roles", dir);
	o->queries = dir;
	o->auth = "password";
	o->roles = roles;
	o->threads = 1; /* streams are counted per worker */
}

static const struct test_case cases[] = {
	TEST_CASE(read_only_queries_cannot_write),
	TEST_CASE(get_runs_read_only_queries),
	TEST_CASE(get_keeps_roles),
	TEST_CASE(streams_per_role),
	{0},
};

static const struct it_server servers[] = {
	{&port, plain},
	{&auth_port, with_roles},
	{0},
};

const struct it_program it_program = {
	.name = "named",
	.cases = cases,
	.servers = servers,
	.setup = setup,
};
