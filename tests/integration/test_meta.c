/*
 * Operations endpoints: /healthz, /readyz, /stats and /metrics agree with
 * each other and with the traffic sent.
 */
#include <unistd.h>

#include "it_common.h"

static unsigned port;
static unsigned cors_port; /* a server with cors_origin set */

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
	double count = metric(m->body, "fasterpg_request_duration_seconds_count");
	double inf = metric(m->body, "fasterpg_request_duration_seconds_bucket"
				     "{le=\"+Inf\"}");
	double le10 = metric(m->body, "fasterpg_request_duration_seconds_bucket"
				      "{le=\"10\"}");
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

static const struct test_case cases[] = {
    TEST_CASE(health_and_ready),
    TEST_CASE(metrics_match_stats_and_traffic),
    TEST_CASE(cors_only_when_configured),
    {0},
};

static const struct it_server servers[] = {
    {&port, NULL},
    {&cors_port, with_cors},
    {0},
};

const struct it_program it_program = {
    .name = "meta",
    .cases = cases,
    .servers = servers,
};
