/*
 * PostgreSQL failing under the server: killed mid-load (no acknowledged
 * write lost, failures fast, recovery soon after it is back), frozen
 * (every request ends by its deadline, /readyz too), and out of
 * connections (503 with Retry-After within the acquire deadline, on both
 * lanes).
 */
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include "it_common.h"

static unsigned port; /* application_name fasterpg-faults */

static char *body_for(const char *sql, const char *extra)
{
	json_t *b = json_pack("{s:s}", "sql", sql);
	char *s = json_dumps(b, JSON_COMPACT);
	json_decref(b);
	if (extra) {
		char *more = it_fmt("%.*s,%s}", (int)strlen(s) - 1, s, extra);
		free(s);
		s = more;
	}
	return s;
}

static struct http_resp *run(const char *sql, const char *extra,
			     const char *accept, double *secs)
{
	char *body = body_for(sql, extra);
	char hdr[80];
	snprintf(hdr, sizeof(hdr), "Accept: %s",
		 accept ? accept : "application/json");
	const char *h[] = {hdr, NULL};
	CURL *c = curl_easy_init();
	double t0 = it_now();
	struct http_resp *r = it_request(c, port, "POST", "/query", body,
					 strlen(body), h, 30, NULL);
	if (secs)
		*secs = it_now() - t0;
	curl_easy_cleanup(c);
	free(body);
	return r;
}

/* The pids of the server's PostgreSQL backends. */
static int backends(int *pids, int max)
{
	PGresult *res = it_pg("SELECT pid FROM pg_stat_activity WHERE "
			      "application_name = 'fasterpg-faults'",
			      0, NULL);
	int n = PQntuples(res) < max ? PQntuples(res) : max;
	for (int i = 0; i < n; i++)
		pids[i] = atoi(PQgetvalue(res, i, 0));
	PQclear(res);
	return n;
}

/* ---- killed mid-load ---- */

struct writer {
	const char *table;
	int base, n;
	char *acked;
	double slowest_failure;
	int failures;
};

static void *write_loop(void *arg)
{
	struct writer *wr = arg;
	for (int k = 0; k < wr->n; k++) {
		char *sql = it_fmt("INSERT INTO %s VALUES (%d)", wr->table,
				   wr->base + k);
		double t;
		struct http_resp *r = run(sql, NULL, NULL, &t);
		wr->acked[k] = r->status == 200;
		if (r->status != 200) {
			wr->failures++;
			if (t > wr->slowest_failure)
				wr->slowest_failure = t;
		}
		http_resp_free(r);
		free(sql);
		usleep(2000);
	}
	return NULL;
}

START_TEST(killed_mid_load_loses_no_acknowledged_write)
{
	enum { WRITERS = 4, EACH = 400 };
	char *table = it_table("flt");
	char *ddl = it_fmt("CREATE TABLE %s (v int)", table);
	pgh_exec(ddl);
	free(ddl);
	struct writer w[WRITERS];
	pthread_t th[WRITERS];
	for (int i = 0; i < WRITERS; i++) {
		w[i] = (struct writer){.table = table, .base = i * 100000,
				       .n = EACH, .acked = calloc(EACH, 1)};
		pthread_create(&th[i], NULL, write_loop, &w[i]);
	}
	usleep(400000);
	/* One backend killed: PostgreSQL ends every session and recovers. */
	int pids[16];
	int n = backends(pids, 16);
	ck_assert_int_gt(n, 0);
	kill(pids[0], SIGKILL);
	for (int i = 0; i < WRITERS; i++)
		pthread_join(th[i], NULL);
	int acked = 0, failed = 0;
	double slowest = 0;
	char *q = it_fmt("SELECT v FROM %s ORDER BY v", table);
	PGresult *res = it_pg(q, 0, NULL);
	free(q);
	for (int i = 0; i < WRITERS; i++) {
		for (int k = 0; k < EACH; k++) {
			if (!w[i].acked[k])
				continue;
			acked++;
			int v = w[i].base + k;
			bool found = false;
			for (int r = 0; r < PQntuples(res) && !found; r++)
				found = atoi(PQgetvalue(res, r, 0)) == v;
			ck_assert_msg(found, "write %d was acknowledged but is "
					     "not in the table",
				      v);
		}
		failed += w[i].failures;
		if (w[i].slowest_failure > slowest)
			slowest = w[i].slowest_failure;
		free(w[i].acked);
	}
	PQclear(res);
	fprintf(stderr, "test_faults: kill: %d acknowledged, %d failed, "
			"slowest failure %.2f s\n",
		acked, failed, slowest);
	ck_assert_msg(failed > 0, "the kill went unnoticed");
	ck_assert_msg(slowest < 3.0, "a failure took %.2f s", slowest);
	/* Back within 2 s of PostgreSQL taking connections again. */
	double up = 0;
	for (int i = 0; i < 300 && !up; i++) {
		PGconn *c = PQconnectdb(pgh_conninfo());
		if (PQstatus(c) == CONNECTION_OK)
			up = it_now();
		PQfinish(c);
		if (!up)
			usleep(20000);
	}
	ck_assert_msg(up, "PostgreSQL did not come back");
	bool ok = false;
	double t = 0;
	while (!ok && (t = it_now() - up) < 2.0) {
		struct http_resp *r = run("SELECT 1", NULL, NULL, NULL);
		ok = r->status == 200;
		http_resp_free(r);
		if (!ok)
			usleep(20000);
	}
	ck_assert_msg(ok, "not answering %.2f s after PostgreSQL was back", t);
	free(table);
}
END_TEST

/* ---- frozen ---- */

static void signal_all(int sig)
{
	int pids[64];
	int n = backends(pids, 64);
	for (int i = 0; i < n; i++)
		kill(pids[i], sig);
}

START_TEST(frozen_postgres_every_request_ends_by_its_deadline)
{
	/* Make sure both lanes know their statements and connections. */
	for (int i = 0; i < 3; i++) {
		http_resp_free(run("SELECT 42", NULL, NULL, NULL));
		http_resp_free(run("SELECT 43", NULL, "application/x-ndjson",
				   NULL));
	}
	int pids[64];
	int n = backends(pids, 64);
	ck_assert_int_gt(n, 0);
	for (int i = 0; i < n; i++)
		kill(pids[i], SIGSTOP);
	double t;
	/* timeout_ms 300 + acquire 500 + 1 s: due by 1.8 s. */
	struct http_resp *r = run("SELECT 42", "\"timeout_ms\":300", NULL, &t);
	ck_assert_msg(r->status == 504 || r->status == 503,
		      "frozen fast lane: %ld %s", r->status, r->body);
	ck_assert_msg(t < 2.5, "fast lane answered after %.2f s", t);
	http_resp_free(r);
	r = run("SELECT 43", "\"timeout_ms\":300", "application/x-ndjson", &t);
	ck_assert_msg(t < 2.5, "slow lane answered after %.2f s", t);
	http_resp_free(r);
	CURL *c = curl_easy_init();
	double t0 = it_now();
	r = it_request(c, port, "GET", "/readyz", NULL, 0, NULL, 30, NULL);
	t = it_now() - t0;
	curl_easy_cleanup(c);
	ck_assert_msg(r->status >= 500, "/readyz while frozen: %ld", r->status);
	ck_assert_msg(t < 2.5, "/readyz answered after %.2f s", t);
	http_resp_free(r);
	for (int i = 0; i < n; i++)
		kill(pids[i], SIGCONT);
	signal_all(SIGCONT);
	/* And it works again. */
	bool ok = false;
	for (int i = 0; i < 200 && !ok; i++) {
		r = run("SELECT 42", NULL, NULL, NULL);
		ok = r->status == 200 && strstr(r->body, "42");
		http_resp_free(r);
		if (!ok)
			usleep(20000);
	}
	ck_assert(ok);
}
END_TEST

/* ---- out of connections ---- */

struct slow_arg {
	const char *accept;
	long status;
};

static void *slow_query(void *arg)
{
	struct slow_arg *a = arg;
	struct http_resp *r = run("SELECT pg_sleep(2.5)", NULL, a->accept, NULL);
	a->status = r->status;
	http_resp_free(r);
	return NULL;
}

START_TEST(exhausted_pool_answers_503_by_the_acquire_deadline)
{
	/* Both connections (pool_max 2) busy with slow statements, each on
	 * a connection of its own (NDJSON) or shared (JSON, known small). */
	http_resp_free(run("SELECT pg_sleep(2.5)", NULL, NULL, NULL));
	struct slow_arg a[6];
	pthread_t th[6];
	for (int i = 0; i < 6; i++) {
		a[i].accept = i < 1 ? "application/x-ndjson" : NULL;
		pthread_create(&th[i], NULL, slow_query, &a[i]);
	}
	usleep(300000);
	static const char *const accepts[] = {NULL, "application/x-ndjson"};
	for (int k = 0; k < 2; k++) {
		double t;
		struct http_resp *r = run("SELECT 7 AS v", NULL, accepts[k], &t);
		if (r->status == 200) {
			/* Served at once by a connection not stuck: fine. */
			ck_assert_msg(t < 1.5, "200 after %.2f s", t);
		} else {
			it_assert_error(r, 503, NULL);
			char *ra = http_header(r, "Retry-After");
			ck_assert_msg(ra != NULL, "503 without Retry-After");
			free(ra);
			/* acquire timeout 500 ms (+ one tick) */
			ck_assert_msg(t < 1.5, "503 after %.2f s", t);
		}
		http_resp_free(r);
	}
	for (int i = 0; i < 6; i++)
		pthread_join(th[i], NULL);
}
END_TEST

/*
 * The harness cluster commits asynchronously (fast tests), which loses
 * the last commits in a crash by design: this server's sessions wait for
 * their commits (the conninfo's options reach the server next to the
 * pool's own).
 */
static void synchronous_small_pool(struct fpg_options *o)
{
	static char db[512];
	snprintf(db, sizeof(db),
		 "%s application_name=fasterpg-faults "
		 "options='-c synchronous_commit=on'",
		 pgh_conninfo());
	o->db = db;
	o->threads = 1;
	o->pool_max = 2;
	o->acquire_timeout_ms = 500;
}

static const struct test_case cases[] = {
    TEST_CASE(exhausted_pool_answers_503_by_the_acquire_deadline),
    TEST_CASE(frozen_postgres_every_request_ends_by_its_deadline),
    TEST_CASE(killed_mid_load_loses_no_acknowledged_write),
    {0},
};

static const struct it_server servers[] = {
    {&port, synchronous_small_pool},
    {0},
};

const struct it_program it_program = {
    .name = "faults",
    .cases = cases,
    .schema_per_case = true,
    .servers = servers,
};
