/*
 * Helpers of the integration spine that are not main(): the server under
 * test and the "quiet again" check (it.h).
 */
#include "it.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "http.h"
#include "pg_harness.h"

double it_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

char *it_fmt(const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		abort();
	return s;
}

void it_options(struct fpg_options *o)
{
	fpg_options_init(o);
	o->db = it_db();
	o->listen_port = 0;
	o->threads = 2;
	o->log_level = getenv("FPG_TEST_LOG") ? getenv("FPG_TEST_LOG") : "error";
}

struct fpg_server *it_server_start(const struct fpg_options *o,
				   unsigned *port)
{
	struct fpg_error err = {0};
	struct fpg_server *srv = fpg_server_new(o, &err);
	if (!srv) {
		fprintf(stderr, "fpg_server_new: %s\n", err.message);
		exit(1);
	}
	if (!fpg_server_start(srv, &err)) {
		fprintf(stderr, "fpg_server_start: %s\n", err.message);
		exit(1);
	}
	*port = fpg_server_port(srv);
	return srv;
}

static long scalar_long(const char *sql)
{
	char *v = pgh_scalar(sql);
	long n = v ? strtol(v, NULL, 10) : -1;
	free(v);
	return n;
}

long it_active_statements(void)
{
	/* The checker's own query is active while it counts. */
	return scalar_long(
	    "select count(*) from pg_stat_activity where"
	    " application_name like 'fasterpg%' and state = 'active'"
	    " and query not like '%pg_stat_activity%'");
}

bool it_activity_read(unsigned port, struct it_activity *a, char *text,
		      size_t n)
{
	a->active = it_active_statements();
	a->copies = scalar_long("select count(*) from pg_stat_activity where"
				" state <> 'idle' and query ilike 'copy%'");
	struct http_resp *r = http_get(port, "/stats");
	json_t *t = r && r->json ? json_object_get(r->json, "total") : NULL;
	json_t *pool = json_object_get(t, "pool");
	bool ok = r && r->status == 200 && json_is_object(pool);
	if (ok) {
		a->busy = json_integer_value(json_object_get(pool, "busy"));
		a->waiting =
		    json_integer_value(json_object_get(pool, "waiting"));
		a->in_flight =
		    json_integer_value(json_object_get(t, "in_flight"));
		a->tx_open = json_integer_value(
		    json_object_get(r->json, "transactions_open"));
	}
	if (text && ok) {
		char *pj = json_dumps(pool, JSON_COMPACT);
		snprintf(text, n,
			 "%ld active, %ld COPY on PostgreSQL; pool %s, "
			 "in_flight %lld, transactions_open %lld",
			 a->active, a->copies, pj ? pj : "?", a->in_flight,
			 a->tx_open);
		free(pj);
	} else if (text) {
		snprintf(text, n, "/stats: %ld %.400s", r ? r->status : 0,
			 r ? r->body : "(no memory)");
	}
	http_resp_free(r);
	return ok;
}

struct it_activity it_activity_now(unsigned port)
{
	struct it_activity a = {0};
	char text[800];
	ck_assert_msg(it_activity_read(port, &a, text, sizeof(text)), "%s",
		      text);
	return a;
}

static bool at_or_below(const struct it_activity *a,
			const struct it_activity *base)
{
	return a->active <= base->active && a->copies <= base->copies &&
	       a->busy <= base->busy && a->waiting <= base->waiting &&
	       a->in_flight <= base->in_flight &&
	       a->tx_open <= base->tx_open;
}

double it_wait_quiet(unsigned port, const struct it_activity *base,
		     double limit_s, const char *what)
{
	double t0 = it_now();
	struct it_activity a = {0};
	char text[800];
	for (;;) {
		if (it_activity_read(port, &a, text, sizeof(text)) &&
		    at_or_below(&a, base))
			return it_now() - t0;
		if (it_now() - t0 > limit_s)
			break;
		usleep(25 * 1000);
	}
	char *q = pgh_scalar(
	    "select coalesce(string_agg(application_name || ' ' || state ||"
	    " ' ' || coalesce(wait_event, '-') || ': ' || left(query, 80),"
	    " ' | '), '') from pg_stat_activity where"
	    " application_name like 'fasterpg%'");
	ck_abort_msg("%s: not quiet after %.2f s: %s (backends: %s); want at "
		     "most %ld active, %ld COPY, busy %lld, waiting %lld, "
		     "in_flight %lld, transactions_open %lld",
		     what, it_now() - t0, text, q ? q : "", base->active,
		     base->copies, base->busy, base->waiting, base->in_flight,
		     base->tx_open);
	free(q);
	return 0;
}

bool it_buf_append(struct it_buf *b, const char *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 4096;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *d = realloc(b->data, cap);
		if (!d)
			return false;
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return true;
}

void it_buf_put(struct it_buf *b, const char *p, size_t n)
{
	if (!it_buf_append(b, p, n))
		abort();
}

void it_buf_puts(struct it_buf *b, const char *s)
{
	it_buf_put(b, s, strlen(s));
}

void it_buf_putc(struct it_buf *b, char c)
{
	it_buf_put(b, &c, 1);
}
