/*
 * Many clients at once: 64 keep-alive clients each check their own random
 * answers; long statements next to short ones; /stats adds up afterwards;
 * PostgreSQL stopped and restarted under load (clean 503s, never a hang,
 * recovery without restarting our server); and PostgreSQL down when the
 * server starts.
 *
 * Tests run in order in one process (CK_NOFORK) against one server.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "it_common.h"
#include "raw.h"

static unsigned port;
static atomic_long sent_ok; /* POST /query 200s seen by clients */

/* ---- one client ---- */

struct client {
	pthread_t th;
	unsigned id;
	unsigned seed;
	int requests;
	const char *sql;    /* NULL: the default checked query */
	volatile bool *stop; /* run until set, when requests == 0 */
	long timeout_s;
	/* results */
	int ok, wrong, failed_clean, failed_dirty, timeouts;
	double max_latency;
	char first_problem[512];
};

static void note(struct client *cl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void note(struct client *cl, const char *fmt, ...)
{
	if (cl->first_problem[0])
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cl->first_problem, sizeof(cl->first_problem), fmt, ap);
	va_end(ap);
}

/* A clean failure: 500/502/503 with the error JSON. */
static bool clean_failure(const struct http_resp *r)
{
	if (r->status != 503 && r->status != 500 && r->status != 502)
		return false;
	json_t *e = r->json ? json_object_get(r->json, "error") : NULL;
	return json_is_string(json_object_get(e, "code")) &&
	       json_is_string(json_object_get(e, "message"));
}

static void *client_main(void *arg)
{
	struct client *cl = arg;
	CURL *c = curl_easy_init();
	unsigned rs = cl->seed;
	for (int i = 0; cl->requests ? i < cl->requests : !*cl->stop; i++) {
		int n = (int)(rand_r(&rs) % 2000000) - 1000000;
		char s[40];
		snprintf(s, sizeof(s), "c%u-%d-%u \\\"q\\\" é", cl->id, i,
			 (unsigned)rand_r(&rs));
		char body[512];
		snprintf(body, sizeof(body),
			 "{\"sql\":\"%s\",\"params\":[%d,\"%s\"],"
			 "\"rows\":\"array\"}",
			 cl->sql ? cl->sql
				 : "select $1::int * 2 as d, $2::text as s",
			 n, s);
		double t0 = it_now();
		struct http_resp *r = it_request(c, port, "POST", "/query", body,
						 strlen(body), NULL,
						 cl->timeout_s, NULL);
		double took = it_now() - t0;
		if (took > cl->max_latency)
			cl->max_latency = took;
		if (r->curl_code == CURLE_OPERATION_TIMEDOUT) {
			cl->timeouts++;
			note(cl, "request %d timed out", i);
		} else if (r->curl_code != 0) {
			cl->failed_dirty++;
			note(cl, "request %d: curl error %d (%s)", i,
			     r->curl_code,
			     curl_easy_strerror((CURLcode)r->curl_code));
		} else if (r->status == 200) {
			/* Our own answer: [[2n, s]] with s unescaped. */
			char want[256];
			snprintf(want, sizeof(want), "\"rows\":[[%lld,\"%s\"",
				 2LL * n, s);
			if (strstr(r->body, want)) {
				cl->ok++;
				atomic_fetch_add(&sent_ok, 1);
			} else {
				cl->wrong++;
				note(cl, "request %d: want %s in %.300s", i,
				     want, r->body);
			}
		} else if (clean_failure(r)) {
			cl->failed_clean++;
			/* Like a real client told Retry-After: don't spin. 64
			 * threads retrying at once would starve PostgreSQL's
			 * restart of the two CPUs. */
			usleep(20 * 1000);
		} else {
			cl->failed_dirty++;
			note(cl, "request %d: status %ld %.300s", i, r->status,
			     r->body);
		}
		http_resp_free(r);
	}
	curl_easy_cleanup(c);
	return NULL;
}

static void start_clients(struct client *cls, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		cls[i].id = i;
		cls[i].seed = it_seed() + i * 7919u;
		ck_assert_int_eq(
		    pthread_create(&cls[i].th, NULL, client_main, &cls[i]), 0);
	}
}

static void join_clients(struct client *cls, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		pthread_join(cls[i].th, NULL);
}

/* ---- /stats ---- */

static json_t *get_stats(void)
{
	struct http_resp *r = http_get(port, "/stats");
	ck_assert_msg(r->status == 200 && r->json, "/stats: %ld %.500s",
		      r->status, r->body);
	json_t *j = json_incref(r->json);
	http_resp_free(r);
	return j;
}

static long long total_int(json_t *stats, const char *a, const char *b)
{
	json_t *t = json_object_get(stats, "total");
	json_t *v = json_object_get(t, a);
	if (b)
		v = json_object_get(v, b);
	return json_integer_value(v);
}

/* ---- tests ---- */

START_TEST(many_clients_own_answers)
{
	enum { N = 64, REQ = 200 };
	struct client *cls = calloc(N, sizeof(*cls));
	for (unsigned i = 0; i < N; i++) {
		cls[i].requests = REQ;
		cls[i].timeout_s = 60;
	}
	double t0 = it_now();
	start_clients(cls, N);
	join_clients(cls, N);
	double took = it_now() - t0;
	int ok = 0, bad = 0;
	for (unsigned i = 0; i < N; i++) {
		ok += cls[i].ok;
		bad += cls[i].wrong + cls[i].failed_clean +
		       cls[i].failed_dirty + cls[i].timeouts;
		if (cls[i].first_problem[0])
			fprintf(stderr, "client %u: %s\n", i,
				cls[i].first_problem);
	}
	fprintf(stderr, "%d requests from %d clients in %.2f s (%.0f/s)\n",
		N * REQ, N, took, N * REQ / took);
	free(cls);
	ck_assert_msg(bad == 0 && ok == N * REQ,
		      "%d good answers of %d, %d bad (seed %u)", ok, N * REQ,
		      bad, it_seed());
}
END_TEST

START_TEST(long_and_short_mixed)
{
	enum { NL = 8, NS = 16 };
	struct client *cls = calloc(NL + NS, sizeof(*cls));
	for (unsigned i = 0; i < NL + NS; i++) {
		cls[i].timeout_s = 30;
		cls[i].requests = i < NL ? 5 : 40;
		if (i < NL)
			cls[i].sql = "select $1::int * 2 as d, $2::text as s,"
				     " pg_sleep(0.2)";
	}
	start_clients(cls, NL + NS);
	join_clients(cls, NL + NS);
	int bad = 0;
	double short_max = 0;
	for (unsigned i = 0; i < NL + NS; i++) {
		bad += cls[i].wrong + cls[i].failed_clean +
		       cls[i].failed_dirty + cls[i].timeouts;
		if (cls[i].first_problem[0])
			fprintf(stderr, "client %u: %s\n", i,
				cls[i].first_problem);
		if (i >= NL && cls[i].max_latency > short_max)
			short_max = cls[i].max_latency;
	}
	fprintf(stderr, "short requests next to pg_sleep(0.2): max %.3f s\n",
		short_max);
	free(cls);
	ck_assert_msg(bad == 0, "%d requests failed", bad);
}
END_TEST

START_TEST(stats_add_up)
{
	/* Completion callbacks may trail the last responses a little. */
	struct it_activity idle = {.in_flight = 1};
	it_wait_quiet(port, &idle, 2.0, "after the load");
	/* The /stats request before (another worker's, maybe) may not
	 * have completed when this one is answered: a moment later it has,
	 * and a request that never completes stays counted. */
	json_t *st = NULL;
	for (int i = 0; i < 20; i++) {
		usleep(50 * 1000);
		json_decref(st);
		st = get_stats();
		if (total_int(st, "in_flight", NULL) <= 1)
			break;
	}
	char *dump = json_dumps(st, JSON_COMPACT);
	/* The /stats request itself is in flight while it is answered. */
	ck_assert_msg(total_int(st, "in_flight", NULL) <= 1,
		      "in_flight: %s", dump);
	ck_assert_msg(total_int(st, "pool", "waiting") == 0, "waiting: %s",
		      dump);
	ck_assert_msg(total_int(st, "pool", "busy") == 0, "busy: %s", dump);
	long long q200 = json_integer_value(json_object_get(
	    json_object_get(json_object_get(json_object_get(st, "total"),
					    "requests"),
			    "POST /query"),
	    "200"));
	ck_assert_msg(q200 >= atomic_load(&sent_ok),
		      "POST /query 200s: server %lld, clients %ld: %s", q200,
		      atomic_load(&sent_ok), dump);
	/* The per-worker numbers add up to the total. */
	long long sum = 0;
	json_t *ws = json_object_get(st, "workers");
	ck_assert_int_eq(json_array_size(ws), 2);
	for (size_t i = 0; i < json_array_size(ws); i++)
		sum += json_integer_value(json_object_get(json_object_get(
		    json_object_get(json_array_get(ws, i), "requests"),
		    "POST /query"), "200"));
	ck_assert_msg(sum == q200, "workers %lld, total %lld", sum, q200);
	ck_assert_msg(total_int(st, "requests_total", NULL) >= q200,
		      "requests_total: %s", dump);
	free(dump);
	json_decref(st);
}
END_TEST

static long get_status(const char *path)
{
	struct http_resp *r = http_get(port, path);
	long s = r->curl_code ? -r->curl_code : r->status;
	http_resp_free(r);
	return s;
}

START_TEST(postgres_restart_under_load)
{
	enum { N = 16 };
	volatile bool stop = false;
	struct client *cls = calloc(N, sizeof(*cls));
	for (unsigned i = 0; i < N; i++) {
		cls[i].stop = &stop;
		cls[i].timeout_s = 20;
		/* some are in the middle of a statement when PG stops */
		if (i % 4 == 0)
			cls[i].sql = "select $1::int * 2 as d, $2::text as s,"
				     " pg_sleep(0.3)";
	}
	start_clients(cls, N);
	usleep(500 * 1000);
	ck_assert(pgh_server_stop());
	usleep(300 * 1000);
	long down = get_status("/readyz");
	double t0 = it_now();
	struct http_resp *r = it_query(port, "{\"sql\":\"select 1\"}");
	double took = it_now() - t0;
	char *ra = http_header(r, "Retry-After");
	long qstatus = r->status;
	http_resp_free(r);
	usleep(700 * 1000);
	ck_assert(pgh_server_start());
	t0 = it_now();
	double recovered = -1;
	while (it_now() - t0 < 10) {
		r = it_query(port, "{\"sql\":\"select 1 as x\"}");
		bool ok = r->status == 200;
		http_resp_free(r);
		if (ok) {
			recovered = it_now() - t0;
			break;
		}
		usleep(50 * 1000);
	}
	/* Every worker's pool recovers, not only one: 20 successes in a
	 * row (new connections land on either worker). */
	int later_ok = 0;
	double full = -1;
	while (it_now() - t0 < 10) {
		r = it_query(port, "{\"sql\":\"select 1 as x\"}");
		later_ok = r->status == 200 ? later_ok + 1 : 0;
		http_resp_free(r);
		if (later_ok == 20) {
			full = it_now() - t0;
			break;
		}
		usleep(10 * 1000);
	}
	long up = get_status("/readyz");
	usleep(500 * 1000);
	stop = true;
	join_clients(cls, N);

	int ok = 0, clean = 0, dirty = 0, timeouts = 0, wrong = 0;
	for (unsigned i = 0; i < N; i++) {
		ok += cls[i].ok;
		clean += cls[i].failed_clean;
		dirty += cls[i].failed_dirty;
		timeouts += cls[i].timeouts;
		wrong += cls[i].wrong;
		if (cls[i].first_problem[0])
			fprintf(stderr, "client %u: %s\n", i,
				cls[i].first_problem);
	}
	fprintf(stderr,
		"restart: %d ok, %d clean failures, %d other failures, %d "
		"timeouts; /query while down %ld in %.3f s (Retry-After %s);"
		" first success after %.2f s, all workers after %.2f s\n",
		ok, clean, dirty, timeouts, qstatus, took, ra ? ra : "-",
		recovered, full);
	free(cls);
	ck_assert_msg(timeouts == 0, "%d requests hung", timeouts);
	ck_assert_msg(dirty == 0 && wrong == 0,
		      "%d requests failed without a clean error, %d wrong",
		      dirty, wrong);
	ck_assert_msg(clean > 0, "stopping PostgreSQL failed no request");
	ck_assert_msg(down == 503, "/readyz while PostgreSQL is down: %ld",
		      down);
	ck_assert_msg(qstatus == 503, "/query while down: %ld", qstatus);
	ck_assert_msg(ra != NULL, "no Retry-After on the 503");
	ck_assert_msg(took < 2.0, "/query while down took %.2f s", took);
	free(ra);
	ck_assert_msg(recovered >= 0 && recovered < 5.0,
		      "not recovered 5 s after PostgreSQL came back (%.2f)",
		      recovered);
	ck_assert_msg(full >= 0 && full < 5.0,
		      "not every worker recovered within 5 s (%.2f)", full);
	ck_assert_msg(up == 200, "/readyz after the restart: %ld", up);
}
END_TEST

START_TEST(postgres_down_at_start)
{
	int fd;
	unsigned pgport = raw_refused_port(&fd);
	char *db = it_fmt("host=127.0.0.1 port=%u user=postgres"
			  " dbname=postgres connect_timeout=2",
			  pgport);
	struct fpg_options o;
	it_options(&o);
	o.db = db;
	struct fpg_error err = {0};
	struct fpg_server *srv = fpg_server_new(&o, &err);
	ck_assert_msg(srv, "fpg_server_new: %s", err.message);
	ck_assert_msg(fpg_server_start(srv, &err), "start: %s", err.message);
	unsigned p = fpg_server_port(srv);
	usleep(200 * 1000);

	struct http_resp *r = http_get(p, "/healthz");
	ck_assert_int_eq(r->status, 200);
	http_resp_free(r);
	r = http_get(p, "/readyz");
	it_assert_error(r, 503, NULL);
	http_resp_free(r);
	for (int i = 0; i < 4; i++) {
		double t0 = it_now();
		r = it_query(p, "{\"sql\":\"select 1\"}");
		double took = it_now() - t0;
		it_assert_error(r, 503, NULL);
		char *ra = http_header(r, "Retry-After");
		ck_assert_msg(ra && atoi(ra) > 0, "Retry-After: %s",
			      ra ? ra : "(none)");
		free(ra);
		ck_assert_msg(took < 1.0, "503 took %.2f s", took);
		http_resp_free(r);
	}
	fpg_server_stop(srv, 500);
	fpg_server_free(srv);
	free(db);
	close(fd);
}
END_TEST

static const struct test_case cases[] = {
    TEST_CASE(many_clients_own_answers),
    TEST_CASE(long_and_short_mixed),
    TEST_CASE(stats_add_up),
    TEST_CASE(postgres_restart_under_load),
    TEST_CASE(postgres_down_at_start),
    {0},
};

static const struct it_server servers[] = {{&port, NULL}, {0}};

const struct it_program it_program = {
    .name = "concurrency",
    .cases = cases,
    .servers = servers,
};
