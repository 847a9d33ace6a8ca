/*
 * Operations endpoints: /healthz, /readyz, /stats and /metrics agree with
 * each other and with the traffic sent.
 */
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include "it_common.h"
#include "raw.h"

static unsigned port;
static unsigned cors_port; /* a server with cors_origin set */
static unsigned tight_port; /* one connection, short acquire timeout */
static unsigned down_port;  /* its PostgreSQL does not exist */

#define Q_OK "fasterpg_requests_total{route=\"POST /query\",status=\"200\"}"
#define Q_400 "fasterpg_requests_total{route=\"POST /query\",status=\"400\"}"
#define Q_COUNT "fasterpg_request_duration_seconds_count{route=\"POST /query\"}"

/* The value of a metric line "name{labels} value", or -1. */
static double metric(const char *text, const char *series)
{
	size_t n = strlen(series);
	for (const char *p = text; p && *p; p = strchr(p, '\n')) {
		if (*p == '\n')
			p++;
		if (strncmp(p, series, n) == 0 && p[n] == ' ')
			return strtod(p + n + 1, NULL);
	}
	return -1;
}

START_TEST(health_and_ready)
{
	struct http_resp *r = http_get(port, "/healthz");
	ck_assert_int_eq(r->status, 200);
	ck_assert_str_eq(json_string_value(json_object_get(r->json, "status")),
			 "ok");
	http_resp_free(r);
	r = http_get(port, "/readyz");
	ck_assert_int_eq(r->status, 200);
	ck_assert_str_eq(json_string_value(json_object_get(r->json, "status")),
			 "ready");
	http_resp_free(r);
}
END_TEST

START_TEST(metrics_match_stats_and_traffic)
{
	int sent = 20 + rand() % 30;
	for (int i = 0; i < sent; i++) {
		struct http_resp *r = it_query(port, "{\"sql\":\"select 1\"}");
		ck_assert_int_eq(r->status, 200);
		http_resp_free(r);
	}
	struct http_resp *bad = it_query(port, "{\"sql\":1}");
	ck_assert_int_eq(bad->status, 400);
	http_resp_free(bad);

	/* A request is counted when libmicrohttpd reports it complete, which
	 * may be just after its client has the answer: wait for the count. */
	struct http_resp *m = NULL;
	for (int tries = 0; tries < 200; tries++) {
		http_resp_free(m);
		m = http_get(port, "/metrics");
		ck_assert_int_eq(m->status, 200);
		if (metric(m->body, "fasterpg_requests_total{route=\"POST "
				    "/query\",status=\"400\"}") >= 1)
			break;
		usleep(10000);
	}
	char *ctype = http_header(m, "Content-Type");
	ck_assert_ptr_nonnull(ctype);
	ck_assert(strncmp(ctype, "text/plain", 10) == 0);
	free(ctype);
	struct http_resp *s = http_get(port, "/stats");
	ck_assert_int_eq(s->status, 200);
	json_t *total = json_object_get(s->json, "total");
	json_t *q = json_object_get(json_object_get(total, "requests"),
				    "POST /query");
	double ok = metric(m->body, "fasterpg_requests_total{route=\"POST "
				    "/query\",status=\"200\"}");
	double bad400 = metric(m->body, "fasterpg_requests_total{route="
					"\"POST /query\",status=\"400\"}");
	ck_assert_msg(ok >= sent, "metrics count %g of %d", ok, sent);
	ck_assert_msg(bad400 >= 1, "400s: %g", bad400);
	/* /stats was read after /metrics: it saw at least as many. */
	ck_assert(json_number_value(json_object_get(q, "200")) >= ok);
	double count = metric(m->body, Q_COUNT);
	double inf = metric(m->body, "fasterpg_request_duration_seconds_bucket"
				     "{route=\"POST /query\",le=\"+Inf\"}");
	double le10 = metric(m->body, "fasterpg_request_duration_seconds_bucket"
				      "{route=\"POST /query\",le=\"10\"}");
	ck_assert(count >= ok + bad400 && inf == count && le10 <= inf);
	ck_assert(metric(m->body, "fasterpg_transactions_open") == 0);
	ck_assert(metric(m->body, "fasterpg_pool_connections{state=\"busy\"}") >=
		  0);
	/* every other line is "name[{labels}] number" */
	for (const char *p = m->body; *p;) {
		const char *e = strchr(p, '\n');
		ck_assert_ptr_nonnull(e);
		if (*p != '#') {
			/* the value follows the last space (label values
			 * may hold spaces) */
			const char *sp = memrchr(p, ' ', (size_t)(e - p));
			ck_assert_ptr_nonnull(sp);
			char *end;
			strtod(sp + 1, &end);
			ck_assert_msg(end == e, "bad line %.*s", (int)(e - p), p);
		}
		p = e + 1;
	}
	http_resp_free(m);
	http_resp_free(s);
}
END_TEST


/* The value of series in text, 0 when absent (a counter not yet moved). */
static double metric0(const char *text, const char *series)
{
	double v = metric(text, series);
	return v < 0 ? 0 : v;
}

static char *metrics_text(unsigned p)
{
	struct http_resp *r = http_get(p, "/metrics");
	ck_assert_int_eq(r->status, 200);
	char *s = strdup(r->body);
	http_resp_free(r);
	return s;
}

/*
 * The /metrics text once series has reached at least want: a request is
 * counted when libmicrohttpd reports it complete, which may be just after
 * its client has the answer.
 */
static char *metrics_when(unsigned p, const char *series, double want)
{
	char *m = NULL;
	for (int tries = 0; tries < 300; tries++) {
		free(m);
		m = metrics_text(p);
		if (metric0(m, series) >= want)
			return m;
		usleep(10000);
	}
	ck_abort_msg("%s stayed at %g, want %g", series, metric0(m, series),
		     want);
	return m;
}

START_TEST(metrics_move_with_traffic)
{
	char *before = metrics_text(port);
	double ok0 = metric0(before, Q_OK), bad0 = metric0(before, Q_400);
	double count0 = metric0(before, Q_COUNT);
	double in0 = metric0(before, "fasterpg_bytes_received_total");
	double out0 = metric0(before, "fasterpg_bytes_sent_total");
	double c22 = metric0(before, "fasterpg_pg_errors_total{class=\"22\"}");
	double c42 = metric0(before, "fasterpg_pg_errors_total{class=\"42\"}");
	double late0 = metric0(before, "fasterpg_stream_errors_total");
	double acq0 = metric0(before,
			      "fasterpg_pool_acquire_wait_seconds_count");
	double sent_in = 0, sent_out = 0;
	const char *oks[] = {"{\"sql\":\"select 1\"}",
			     "{\"sql\":\"select $1::int\",\"params\":[7]}",
			     "{\"sql\":\"select 'abc' as t\"}"};
	for (int i = 0; i < 3; i++) {
		struct http_resp *r = it_query(port, oks[i]);
		it_assert_resp(r, r->status == 200);
		sent_in += (double)strlen(oks[i]);
		sent_out += (double)r->body_len;
		http_resp_free(r);
	}
	/* 22012 division_by_zero, 42601 syntax_error: both 400 */
	const char *bad[] = {"{\"sql\":\"select 1/0\"}", "{\"sql\":\"selec 1\"}"};
	for (int i = 0; i < 2; i++) {
		struct http_resp *r = it_query(port, bad[i]);
		it_assert_error(r, 400, NULL);
		sent_in += (double)strlen(bad[i]);
		http_resp_free(r);
	}
	/* An error after the 200 and two rows went out (NDJSON streams at
	 * once): counted as the 400 it is, not as a 200. */
	const char *late = "{\"sql\":\"select case when g < 3 then g else "
			   "1/(g-g) end from generate_series(1,5) g\"}";
	const char *const nd[] = {"Accept: application/x-ndjson", NULL};
	struct http_resp *r = http_request(port, "POST", "/query", late, nd);
	it_assert_resp(r, r->status == 200 && strstr(r->body, "22012"));
	sent_in += (double)strlen(late);
	http_resp_free(r);

	char *after = metrics_when(port, Q_COUNT, count0 + 6);
	ck_assert_double_eq(metric0(after, Q_COUNT), count0 + 6);
	ck_assert_double_eq(metric0(after, Q_OK), ok0 + 3);
	ck_assert_double_eq(metric0(after, Q_400), bad0 + 3);
	ck_assert_double_eq(metric0(after, "fasterpg_stream_errors_total"),
			    late0 + 1);
	ck_assert_double_eq(
		metric0(after, "fasterpg_pg_errors_total{class=\"22\"}"), c22 + 2);
	ck_assert_double_eq(
		metric0(after, "fasterpg_pg_errors_total{class=\"42\"}"), c42 + 1);
	ck_assert_double_eq(metric0(after, "fasterpg_bytes_received_total"),
			    in0 + sent_in);
	ck_assert(metric0(after, "fasterpg_bytes_sent_total") >=
		  out0 + sent_out);
	ck_assert(metric0(after, "fasterpg_pool_acquire_wait_seconds_count") >=
		  acq0 + 6);
	ck_assert_double_eq(metric0(after, "fasterpg_postgresql_up"), 1);
	struct fpg_options o;
	fpg_options_init(&o);
	ck_assert_double_eq(metric0(after, "fasterpg_pool_connections_max"),
			    2.0 * o.pool_max); /* two workers, one login */
	/* /stats tells the same (nothing else ran meanwhile). */
	struct http_resp *st = http_get(port, "/stats");
	json_t *tot = json_object_get(st->json, "total");
	ck_assert_double_eq(
		(double)json_integer_value(json_object_get(
			json_object_get(tot, "pg_errors"), "22")),
		metric0(after, "fasterpg_pg_errors_total{class=\"22\"}"));
	ck_assert_double_eq(
		(double)json_integer_value(json_object_get(tot, "stream_errors")),
		metric0(after, "fasterpg_stream_errors_total"));
	ck_assert_double_eq(
		(double)json_integer_value(json_object_get(tot, "bytes_received")),
		metric0(after, "fasterpg_bytes_received_total"));
	json_t *pool = json_object_get(tot, "pool");
	ck_assert_double_eq(
		(double)json_integer_value(json_object_get(pool, "max")),
		metric0(after, "fasterpg_pool_connections_max"));
	ck_assert_int_eq(json_integer_value(json_object_get(tot, "postgresql_up")),
			 1);
	http_resp_free(st);
	/* The process's own, under their standard names. */
	ck_assert(metric0(after, "process_resident_memory_bytes") > 1e6);
	ck_assert(metric0(after, "process_open_fds") > 3);
	ck_assert(metric0(after, "process_max_fds") >=
		  metric0(after, "process_open_fds"));
	ck_assert(metric0(after, "process_cpu_seconds_total") >= 0);
	double start = metric0(after, "process_start_time_seconds");
	double now = (double)time(NULL);
	ck_assert_msg(start > now - 3600 && start <= now + 1,
		      "start %f now %f", start, now);
	ck_assert_double_eq(
		metric0(after, "fasterpg_build_info{version=\"" FPG_VERSION "\"}"),
		1);
	free(before);
	free(after);
}
END_TEST

/* A request run on its own thread. */
struct bg_req {
	pthread_t thread;
	unsigned port;
	const char *body;
	const char *const *headers;
	struct http_resp *resp;
};

static void *bg_run(void *arg)
{
	struct bg_req *b = arg;
	b->resp = http_request(b->port, "POST", "/query", b->body, b->headers);
	return NULL;
}

static void bg_start(struct bg_req *b)
{
	ck_assert_int_eq(pthread_create(&b->thread, NULL, bg_run, b), 0);
	for (int i = 0; i < 500 && it_active_statements() < 1; i++)
		usleep(10000);
}

START_TEST(cancel_counts_202_and_its_sqlstate)
{
	char *before = metrics_text(port);
	const char *c202 = "fasterpg_requests_total{route=\"DELETE "
			   "/query/{request_id}\",status=\"202\"}";
	const char *c57 = "fasterpg_pg_errors_total{class=\"57\"}";
	double a0 = metric0(before, c202), s0 = metric0(before, c57);
	const char *const hdrs[] = {"X-Request-Id: meta-cancel-1",
				    "X-Cancel-Key: meta-cancel-key-0123456789",
				    NULL};
	struct bg_req b = {.port = port,
			   .body = "{\"sql\":\"select pg_sleep(20)\"}",
			   .headers = hdrs};
	bg_start(&b);
	const char *const key[] = {"X-Cancel-Key: meta-cancel-key-0123456789",
				   NULL};
	struct http_resp *r =
		http_request(port, "DELETE", "/query/meta-cancel-1", NULL, key);
	it_assert_resp(r, r->status == 202);
	http_resp_free(r);
	pthread_join(b.thread, NULL);
	it_assert_error(b.resp, 504, "57014");
	http_resp_free(b.resp);
	char *after = metrics_when(port, c57, s0 + 1);
	ck_assert_double_eq(metric0(after, c202), a0 + 1);
	ck_assert_double_eq(metric0(after, c57), s0 + 1);
	free(before);
	free(after);
}
END_TEST

START_TEST(acquire_timeouts_are_counted)
{
	char *before = metrics_text(tight_port);
	double t0 = metric0(before, "fasterpg_pool_acquire_timeouts_total");
	struct bg_req b = {.port = tight_port,
			   .body = "{\"sql\":\"select pg_sleep(1.5)\"}"};
	bg_start(&b);
	struct http_resp *r = it_query(tight_port, "{\"sql\":\"select 1\"}");
	it_assert_error(r, 503, NULL);
	http_resp_free(r);
	pthread_join(b.thread, NULL);
	it_assert_resp(b.resp, b.resp->status == 200);
	http_resp_free(b.resp);
	char *after = metrics_text(tight_port);
	ck_assert_double_eq(metric0(after, "fasterpg_pool_acquire_timeouts_total"),
			    t0 + 1);
	ck_assert_double_eq(metric0(after, "fasterpg_pool_connections_max"), 1);
	free(before);
	free(after);
}
END_TEST

START_TEST(postgresql_up_is_zero_when_it_cannot_connect)
{
	struct http_resp *r = it_query(down_port, "{\"sql\":\"select 1\"}");
	it_assert_error(r, 503, NULL);
	http_resp_free(r);
	char *m = metrics_when(down_port, "fasterpg_pool_connect_failures_total",
			       1);
	ck_assert_double_eq(metric(m, "fasterpg_postgresql_up"), 0);
	free(m);
	m = metrics_text(port);
	ck_assert_double_eq(metric(m, "fasterpg_postgresql_up"), 1);
	free(m);
}
END_TEST

/* promtool (Debian's prometheus package) finds nothing to complain of,
 * after traffic that fills most families. */
START_TEST(metrics_pass_promtool)
{
	ck_assert_msg(system("command -v promtool >/dev/null") == 0,
		      "promtool not found: scripts/dev.sh deps installs it "
		      "(package prometheus)");
	struct http_resp *r = it_query(port, "{\"sql\":\"select 1/0\"}");
	http_resp_free(r);
	const char *const nd[] = {"Accept: application/x-ndjson", NULL};
	r = http_request(port, "POST", "/query",
			 "{\"sql\":\"select g from generate_series(1,3) g\"}",
			 nd);
	http_resp_free(r);
	r = http_get(port, "/nowhere");
	http_resp_free(r);
	char *m = metrics_text(port);
	char path[] = "/tmp/fpg-metrics-XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, m, strlen(m)), (ssize_t)strlen(m));
	close(fd);
	char *cmd = it_fmt("promtool check metrics < %s 2>&1", path);
	FILE *p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	char said[4096] = "";
	size_t n = fread(said, 1, sizeof(said) - 1, p);
	said[n] = '\0';
	int rc = pclose(p);
	unlink(path);
	ck_assert_msg(rc == 0 && n == 0, "promtool (exit %d): %s", rc, said);
	free(cmd);
	free(m);
}
END_TEST

/* HEAD answers as GET would, without the body; the request is counted
 * under GET's route. */
START_TEST(head_where_get_works)
{
	struct it_activity base = it_activity_now(port);
	char *before = metrics_text(port);
	const char *hz = "fasterpg_requests_total{route=\"GET /healthz\","
			 "status=\"200\"}";
	double h0 = metric0(before, hz);
	static const char *const paths[] = {"/healthz", "/readyz", "/stats",
					    "/metrics"};
	for (size_t i = 0; i < sizeof(paths) / sizeof(*paths); i++) {
		struct http_resp *r = http_request(port, "HEAD", paths[i], NULL,
						   NULL);
		ck_assert_msg(r->status == 200 && r->curl_code == 0,
			      "HEAD %s: %ld curl %d", paths[i], r->status,
			      r->curl_code);
		ck_assert_uint_eq(r->body_len, 0);
		char *id = http_header(r, "X-Request-Id");
		ck_assert_ptr_nonnull(id);
		free(id);
		http_resp_free(r);
	}
	/* a streamed answer (COPY TO): the headers, nothing left running */
	const char *const xrw[] = {"X-Requested-With: t", NULL};
	struct http_resp *r = http_request(
		port, "HEAD",
		"/copy?query=select%20g%20from%20generate_series(1,100000)%20g",
		NULL, xrw);
	ck_assert_msg(r->status == 200 && r->curl_code == 0, "%ld %d",
		      r->status, r->curl_code);
	ck_assert_uint_eq(r->body_len, 0);
	http_resp_free(r);
	r = http_request(port, "HEAD", "/query", NULL, NULL);
	ck_assert_int_eq(r->status, 405);
	char *allow = http_header(r, "Allow");
	ck_assert_str_eq(allow, "POST");
	free(allow);
	http_resp_free(r);
	char *after = metrics_when(port, hz, h0 + 1);
	ck_assert_double_eq(metric0(after, hz), h0 + 1);
	free(before);
	free(after);
	it_wait_quiet(port, &base, 10, "HEAD /copy");
}
END_TEST

/* One request on a raw connection; returns the answer's status. */
static int raw_answer(const char *request)
{
	int fd = raw_connect(port);
	raw_sends(fd, request);
	struct it_buf b = {0};
	raw_read(fd, &b, 5000);
	close(fd);
	int st = b.data ? raw_status(b.data) : 0;
	free(b.data);
	return st;
}

/* What libmicrohttpd answers itself (headers too large, a malformed
 * header line) is counted as unrouted with its status. */
START_TEST(own_answers_of_libmicrohttpd_are_counted)
{
	const char *s431 = "fasterpg_requests_total{route=\"unrouted\","
			   "status=\"431\"}";
	const char *s400 = "fasterpg_requests_total{route=\"unrouted\","
			   "status=\"400\"}";
	char *before = metrics_text(port);
	double a0 = metric0(before, s431), b0 = metric0(before, s400);
	struct it_buf big = {0};
	it_buf_puts(&big, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n");
	for (int i = 0; i < 40; i++) {
		it_buf_puts(&big, "X-Filler-");
		char n[16];
		snprintf(n, sizeof(n), "%d: ", i);
		it_buf_puts(&big, n);
		for (int j = 0; j < 1000; j++)
			it_buf_putc(&big, 'x');
		it_buf_puts(&big, "\r\n");
	}
	it_buf_puts(&big, "\r\n");
	ck_assert_int_eq(raw_answer(big.data), 431);
	free(big.data);
	ck_assert_int_eq(raw_answer("GET /healthz HTTP/1.1\r\nHost: localhost"
				    "\r\nno colon here\r\n\r\n"),
			 400);
	char *after = metrics_when(port, s400, b0 + 1);
	ck_assert_double_eq(metric0(after, s431), a0 + 1);
	ck_assert_double_eq(metric0(after, s400), b0 + 1);
	free(before);
	free(after);
}
END_TEST

START_TEST(cors_only_when_configured)
{
	/* Off by default: no header a browser would act on. */
	struct http_resp *r = it_query(port, "{\"sql\":\"select 1\"}");
	char *acao = http_header(r, "Access-Control-Allow-Origin");
	ck_assert_ptr_null(acao);
	http_resp_free(r);
	r = http_request(port, "OPTIONS", "/query", NULL, NULL);
	ck_assert_int_eq(r->status, 405);
	http_resp_free(r);

	const char *const hdrs[] = {"Origin: https://app.example",
				    "Access-Control-Request-Method: POST",
				    NULL};
	r = http_request(cors_port, "OPTIONS", "/query", NULL, hdrs);
	ck_assert_int_eq(r->status, 204);
	acao = http_header(r, "Access-Control-Allow-Origin");
	char *methods = http_header(r, "Access-Control-Allow-Methods");
	char *allowed = http_header(r, "Access-Control-Allow-Headers");
	char *vary = http_header(r, "Vary");
	ck_assert_str_eq(acao, "https://app.example");
	ck_assert_str_eq(methods, "POST");
	ck_assert_ptr_nonnull(strstr(allowed, "Content-Type"));
	ck_assert_str_eq(vary, "Origin");
	free(acao);
	free(methods);
	free(allowed);
	free(vary);
	http_resp_free(r);

	r = http_request(cors_port, "OPTIONS", "/tx/abc/query", NULL, hdrs);
	ck_assert_int_eq(r->status, 204);
	http_resp_free(r);
	r = http_request(cors_port, "OPTIONS", "/nowhere", NULL, hdrs);
	ck_assert_int_eq(r->status, 404);
	http_resp_free(r);

	r = it_query(cors_port, "{\"sql\":\"select 1\"}");
	ck_assert_int_eq(r->status, 200);
	acao = http_header(r, "Access-Control-Allow-Origin");
	char *expose = http_header(r, "Access-Control-Expose-Headers");
	ck_assert_str_eq(acao, "https://app.example");
	ck_assert_ptr_nonnull(strstr(expose, "X-Request-Id"));
	free(acao);
	free(expose);
	http_resp_free(r);
}
END_TEST

static void with_cors(struct fpg_options *o)
{
	o->threads = 1;
	o->cors_origin = "https://app.example";
}

static void tight(struct fpg_options *o)
{
	o->threads = 1;
	o->pool_min = 1;
	o->pool_max = 1;
	o->pipeline_depth = 1;
	o->acquire_timeout_ms = 200;
}

static void no_postgresql(struct fpg_options *o)
{
	o->threads = 1;
	/* port 1: nobody listens, the connect is refused at once */
	o->db = "host=127.0.0.1 port=1 dbname=none connect_timeout=2";
}

static const struct test_case cases[] = {
    TEST_CASE(health_and_ready),
    TEST_CASE(metrics_match_stats_and_traffic),
    TEST_CASE(metrics_move_with_traffic),
    TEST_CASE(cancel_counts_202_and_its_sqlstate),
    TEST_CASE(acquire_timeouts_are_counted),
    TEST_CASE(postgresql_up_is_zero_when_it_cannot_connect),
    TEST_CASE(metrics_pass_promtool),
    TEST_CASE(head_where_get_works),
    TEST_CASE(own_answers_of_libmicrohttpd_are_counted),
    TEST_CASE(cors_only_when_configured),
    {0},
};

static const struct it_server servers[] = {
    {&port, NULL},
    {&cors_port, with_cors},
    {&tight_port, tight},
    {&down_port, no_postgresql},
    {0},
};

const struct it_program it_program = {
    .name = "meta",
    .cases = cases,
    .servers = servers,
};
