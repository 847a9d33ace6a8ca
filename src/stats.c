#include "stats.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* The codes fasterpg answers with; the slots after them are 1xx..5xx
 * (any other code of the class) and last anything else. */
#define COUNTED 24
static const int counted_status[COUNTED] = {
	200, 201, 202, 204, 400, 401, 403, 404, 405, 406, 408, 409,
	410, 413, 415, 421, 429, 431, 499, 500, 502, 503, 504, 507,
};
_Static_assert(COUNTED + 6 == FPG_STATS_STATUSES, "one slot per class");

static unsigned status_index(int status)
{
	for (unsigned i = 0; i < COUNTED; i++)
		if (counted_status[i] == status)
			return i;
	if (status >= 100 && status < 600)
		return COUNTED + (unsigned)(status / 100 - 1);
	return FPG_STATS_STATUSES - 1;
}

/* The label of a status slot: "200", ..., "4xx", "other". */
static void status_label(unsigned s, char *buf, size_t n)
{
	if (s < COUNTED)
		snprintf(buf, n, "%d", counted_status[s]);
	else if (s < FPG_STATS_STATUSES - 1)
		snprintf(buf, n, "%uxx", s - COUNTED + 1);
	else
		snprintf(buf, n, "other");
}

/* Upper bounds (le, inclusive) of the Prometheus buckets, in us; the
 * last bucket is +Inf. */
static const uint64_t duration_le_us[FPG_STATS_DURATION_BUCKETS - 1] = {
	500,	 1000,	  2500,	   5000,    10000,    25000,
	50000,	 100000,  250000,  500000,  1000000,  2500000,
	5000000, 10000000, 30000000, 60000000,
};
static const uint64_t wait_le_us[FPG_STATS_WAIT_BUCKETS - 1] = {
	100, 500, 1000, 5000, 10000, 50000, 100000, 500000, 1000000, 5000000,
};

static unsigned le_index(const uint64_t *le, unsigned n, uint64_t us)
{
	unsigned i = 0;
	while (i < n && us > le[i])
		i++;
	return i;
}

/* "AB" of a SQLSTATE as an index, or -1. */
static int class_index(const char *s)
{
	int v = 0;
	for (int i = 0; i < 2; i++) {
		char c = s[i];
		if (c >= '0' && c <= '9')
			v = v * 36 + (c - '0');
		else if (c >= 'A' && c <= 'Z')
			v = v * 36 + 10 + (c - 'A');
		else
			return -1;
	}
	return v;
}

static void class_name(unsigned i, char out[3])
{
	static const char digits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
	out[0] = digits[i / 36];
	out[1] = digits[i % 36];
	out[2] = '\0';
}

/*
 * Latency buckets: four per power of two of microseconds, so a bucket's
 * upper bound is at most 19% above its lower bound; 128 buckets reach past
 * 2^31 us (35 minutes).
 */
static unsigned latency_bucket(uint64_t us)
{
	if (us < 4)
		return (unsigned)us;
	unsigned msb = 63u - (unsigned)__builtin_clzll(us);
	unsigned sub = (unsigned)(us >> (msb - 2)) & 3u;
	unsigned b = (msb - 1) * 4 + sub;
	return b < FPG_STATS_BUCKETS ? b : FPG_STATS_BUCKETS - 1;
}

/* The upper bound of a bucket, in microseconds. */
static uint64_t bucket_upper(unsigned b)
{
	if (b < 4)
		return b;
	unsigned msb = b / 4 + 1, sub = b % 4;
	return ((uint64_t)(4 + sub + 1) << (msb - 2)) - 1;
}

void fpg_stats_record(struct fpg_stats *st, unsigned route, int status,
		      uint64_t latency_us, const char *sqlstate)
{
	if (route >= FPG_STATS_ROUTES)
		route = FPG_STATS_ROUTES - 1;
	FPG_STAT_ADD(st->requests[route][status_index(status)], 1);
	FPG_STAT_ADD(st->duration[route][le_index(
			     duration_le_us, FPG_STATS_DURATION_BUCKETS - 1,
			     latency_us)],
		     1);
	FPG_STAT_ADD(st->duration_sum_us[route], latency_us);
	FPG_STAT_ADD(st->latency[latency_bucket(latency_us)], 1);
	FPG_STAT_ADD(st->latency_sum_us, latency_us);
	int c = sqlstate && sqlstate[0] ? class_index(sqlstate) : -1;
	if (c >= 0)
		FPG_STAT_ADD(st->pg_errors[c], 1);
}

void fpg_stats_acquired(struct fpg_stats *st, uint64_t wait_us)
{
	FPG_STAT_ADD(st->acquire_wait[le_index(wait_le_us,
					       FPG_STATS_WAIT_BUCKETS - 1,
					       wait_us)],
		     1);
	FPG_STAT_ADD(st->acquire_wait_sum_us, wait_us);
}

struct totals {
	uint64_t requests[FPG_STATS_ROUTES][FPG_STATS_STATUSES];
	uint64_t duration[FPG_STATS_ROUTES][FPG_STATS_DURATION_BUCKETS];
	uint64_t duration_sum_us[FPG_STATS_ROUTES];
	uint64_t latency[FPG_STATS_BUCKETS];
	uint64_t latency_sum_us;
	int64_t in_flight, copies, max, open, connecting, busy, waiting;
	uint64_t rows, bytes, bytes_in, stream_errors, connect_failures;
	uint64_t replaced;
	uint64_t groups, grouped, reruns;
	uint64_t pg_errors[FPG_STATS_SQLSTATE_CLASSES];
	uint64_t wait[FPG_STATS_WAIT_BUCKETS];
	uint64_t wait_sum_us, acquire_timeouts;
	uint64_t pg_seen; /* the latest of the workers' */
	uint64_t commits, rollbacks, expired, retries;
	uint64_t header_timeouts, slow_bodies, evicted;
	int64_t logins;
	uint64_t refusals;
	int64_t subscribers, channels;
	uint64_t received, delivered, dropped, gaps;
};

static void add_worker(struct totals *t, struct fpg_stats *st)
{
	for (unsigned r = 0; r < FPG_STATS_ROUTES; r++) {
		for (unsigned s = 0; s < FPG_STATS_STATUSES; s++)
			t->requests[r][s] += FPG_STAT_GET(st->requests[r][s]);
		for (unsigned b = 0; b < FPG_STATS_DURATION_BUCKETS; b++)
			t->duration[r][b] += FPG_STAT_GET(st->duration[r][b]);
		t->duration_sum_us[r] += FPG_STAT_GET(st->duration_sum_us[r]);
	}
	for (unsigned b = 0; b < FPG_STATS_BUCKETS; b++)
		t->latency[b] += FPG_STAT_GET(st->latency[b]);
	t->latency_sum_us += FPG_STAT_GET(st->latency_sum_us);
	t->in_flight += FPG_STAT_GET(st->in_flight);
	t->copies += FPG_STAT_GET(st->copies);
	t->max += FPG_STAT_GET(st->pool_max);
	t->open += FPG_STAT_GET(st->pool_open);
	t->connecting += FPG_STAT_GET(st->pool_connecting);
	t->busy += FPG_STAT_GET(st->pool_busy);
	t->waiting += FPG_STAT_GET(st->pool_waiting);
	t->rows += FPG_STAT_GET(st->rows_sent);
	t->bytes += FPG_STAT_GET(st->bytes_sent);
	t->bytes_in += FPG_STAT_GET(st->bytes_received);
	t->stream_errors += FPG_STAT_GET(st->stream_errors);
	t->connect_failures += FPG_STAT_GET(st->pool_connect_failures);
	t->replaced += FPG_STAT_GET(st->pool_sessions_replaced);
	t->groups += FPG_STAT_GET(st->coalesced_groups);
	t->grouped += FPG_STAT_GET(st->coalesced_statements);
	t->reruns += FPG_STAT_GET(st->coalesce_reruns);
	for (unsigned c = 0; c < FPG_STATS_SQLSTATE_CLASSES; c++)
		t->pg_errors[c] += FPG_STAT_GET(st->pg_errors[c]);
	for (unsigned b = 0; b < FPG_STATS_WAIT_BUCKETS; b++)
		t->wait[b] += FPG_STAT_GET(st->acquire_wait[b]);
	t->wait_sum_us += FPG_STAT_GET(st->acquire_wait_sum_us);
	t->acquire_timeouts += FPG_STAT_GET(st->acquire_timeouts);
	uint64_t seen = FPG_STAT_GET(st->pg_seen);
	if (seen >> 1 >= t->pg_seen >> 1)
		t->pg_seen = seen;
	t->commits += FPG_STAT_GET(st->tx_commits);
	t->rollbacks += FPG_STAT_GET(st->tx_rollbacks);
	t->expired += FPG_STAT_GET(st->tx_expired);
	t->retries += FPG_STAT_GET(st->tx_retries);
	t->header_timeouts += FPG_STAT_GET(st->http_header_timeouts);
	t->slow_bodies += FPG_STAT_GET(st->http_slow_bodies);
	t->evicted += FPG_STAT_GET(st->http_evicted);
	t->logins += FPG_STAT_GET(st->logins_open);
	t->refusals += FPG_STAT_GET(st->login_refusals);
	t->subscribers += FPG_STAT_GET(st->listen_subscribers);
	t->channels += FPG_STAT_GET(st->listen_channels);
	t->received += FPG_STAT_GET(st->listen_received);
	t->delivered += FPG_STAT_GET(st->listen_delivered);
	t->dropped += FPG_STAT_GET(st->listen_dropped);
	t->gaps += FPG_STAT_GET(st->listen_gaps);
}

/* 1 when the last connect or statement (of any worker) reached
 * PostgreSQL; 0 when it failed, or before the first. */
static int pg_up(const struct totals *t)
{
	return (int)(t->pg_seen & 1u);
}

static uint64_t sum_of(const uint64_t *v, unsigned n)
{
	uint64_t sum = 0;
	for (unsigned i = 0; i < n; i++)
		sum += v[i];
	return sum;
}

static double percentile_ms(const struct totals *t, uint64_t count, double p)
{
	if (count == 0)
		return 0;
	uint64_t rank = (uint64_t)(p * (double)count + 0.5);
	if (rank == 0)
		rank = 1;
	uint64_t seen = 0;
	for (unsigned b = 0; b < FPG_STATS_BUCKETS; b++) {
		seen += t->latency[b];
		if (seen >= rank)
			return (double)bucket_upper(b) / 1000.0;
	}
	return (double)bucket_upper(FPG_STATS_BUCKETS - 1) / 1000.0;
}

static void put_pg_errors(struct fpg_buf *out, const struct totals *t)
{
	fpg_buf_puts(out, "\"pg_errors\":{");
	bool first = true;
	for (unsigned c = 0; c < FPG_STATS_SQLSTATE_CLASSES; c++) {
		if (!t->pg_errors[c])
			continue;
		char name[3];
		class_name(c, name);
		fpg_buf_printf(out, "%s\"%s\":%llu", first ? "" : ",", name,
			       (unsigned long long)t->pg_errors[c]);
		first = false;
	}
	fpg_buf_puts(out, "},");
}

static void put_requests(struct fpg_buf *out, const struct totals *t,
			 const char *const *route_names, unsigned nroutes)
{
	fpg_buf_puts(out, "\"requests\":{");
	bool first_route = true;
	for (unsigned r = 0; r < nroutes && r < FPG_STATS_ROUTES; r++) {
		bool any = false;
		for (unsigned s = 0; s < FPG_STATS_STATUSES; s++) {
			if (!t->requests[r][s])
				continue;
			if (!any) {
				if (!first_route)
					fpg_buf_putc(out, ',');
				first_route = false;
				fpg_buf_json_str(out, route_names[r],
						 strlen(route_names[r]));
				fpg_buf_puts(out, ":{");
			} else {
				fpg_buf_putc(out, ',');
			}
			any = true;
			char label[8];
			status_label(s, label, sizeof(label));
			fpg_buf_printf(out, "\"%s\":%llu", label,
				       (unsigned long long)t->requests[r][s]);
		}
		if (any)
			fpg_buf_putc(out, '}');
	}
	fpg_buf_puts(out, "},");
}

static void put_section(struct fpg_buf *out, const struct totals *t,
			const char *const *route_names, unsigned nroutes)
{
	uint64_t count = sum_of(t->latency, FPG_STATS_BUCKETS);
	uint64_t acquired = sum_of(t->wait, FPG_STATS_WAIT_BUCKETS);
	int64_t idle = t->open - t->busy;
	fpg_buf_printf(out,
		       "{\"pool\":{\"max\":%lld,\"open\":%lld,\"idle\":%lld,"
		       "\"busy\":%lld,\"connecting\":%lld,\"waiting\":%lld,"
		       "\"connect_failures\":%llu,\"sessions_replaced\":%llu,"
		       "\"acquired\":%llu,\"acquire_wait_ms_mean\":%.3f,"
		       "\"acquire_timeouts\":%llu},",
		       (long long)t->max, (long long)t->open,
		       (long long)(idle < 0 ? 0 : idle), (long long)t->busy,
		       (long long)t->connecting, (long long)t->waiting,
		       (unsigned long long)t->connect_failures,
		       (unsigned long long)t->replaced,
		       (unsigned long long)acquired,
		       acquired ? (double)t->wait_sum_us / 1000.0 /
					  (double)acquired
				: 0.0,
		       (unsigned long long)t->acquire_timeouts);
	fpg_buf_printf(out,
		       "\"coalesced\":{\"groups\":%llu,\"statements\":%llu,"
		       "\"reruns\":%llu},",
		       (unsigned long long)t->groups,
		       (unsigned long long)t->grouped,
		       (unsigned long long)t->reruns);
	fpg_buf_printf(out, "\"postgresql_up\":%d,", pg_up(t));
	fpg_buf_printf(out, "\"copies_in_flight\":%lld,", (long long)t->copies);
	fpg_buf_printf(out, "\"in_flight\":%lld,\"requests_total\":%llu,"
			    "\"rows_sent\":%llu,\"bytes_sent\":%llu,"
			    "\"bytes_received\":%llu,\"stream_errors\":%llu,",
		       (long long)t->in_flight, (unsigned long long)count,
		       (unsigned long long)t->rows,
		       (unsigned long long)t->bytes,
		       (unsigned long long)t->bytes_in,
		       (unsigned long long)t->stream_errors);
	put_pg_errors(out, t);
	fpg_buf_printf(out, "\"transactions\":{\"commits\":%llu,"
			    "\"rollbacks\":%llu,\"expired\":%llu,"
			    "\"retries\":%llu},",
		       (unsigned long long)t->commits,
		       (unsigned long long)t->rollbacks,
		       (unsigned long long)t->expired,
		       (unsigned long long)t->retries);
	fpg_buf_printf(out, "\"logins\":{\"open\":%lld,\"refused\":%llu},",
		       (long long)t->logins, (unsigned long long)t->refusals);
	fpg_buf_printf(out, "\"listen\":{\"subscribers\":%lld,\"channels\":%lld,"
			    "\"received\":%llu,\"delivered\":%llu,"
			    "\"dropped\":%llu,\"gaps\":%llu},",
		       (long long)t->subscribers, (long long)t->channels,
		       (unsigned long long)t->received,
		       (unsigned long long)t->delivered,
		       (unsigned long long)t->dropped,
		       (unsigned long long)t->gaps);
	fpg_buf_printf(out, "\"slow_clients_closed\":{\"header_timeout\":%llu,"
			    "\"slow_body\":%llu,\"evicted\":%llu},",
		       (unsigned long long)t->header_timeouts,
		       (unsigned long long)t->slow_bodies,
		       (unsigned long long)t->evicted);
	put_requests(out, t, route_names, nroutes);
	fpg_buf_printf(out,
		       "\"latency_ms\":{\"mean\":%.3f,\"p50\":%.3f,"
		       "\"p90\":%.3f,\"p99\":%.3f,\"max_bucket\":%.3f}}",
		       count ? (double)t->latency_sum_us / 1000.0 /
				       (double)count
			     : 0.0,
		       percentile_ms(t, count, 0.50),
		       percentile_ms(t, count, 0.90),
		       percentile_ms(t, count, 0.99),
		       percentile_ms(t, count, 1.0));
}

void fpg_stats_json(struct fpg_buf *out, struct fpg_stats *const *workers,
		    unsigned n, const char *const *route_names,
		    unsigned nroutes, const char *extra_json)
{
	/* Large (the per-route tables): on the heap, not the stack. */
	struct totals *total = calloc(1, sizeof(*total));
	struct totals *one = malloc(sizeof(*one));
	if (!total || !one) {
		out->failed = true;
		goto out;
	}
	fpg_buf_puts(out, "{");
	if (extra_json) {
		fpg_buf_puts(out, extra_json);
		fpg_buf_putc(out, ',');
	}
	fpg_buf_puts(out, "\"workers\":[");
	for (unsigned i = 0; i < n; i++) {
		memset(one, 0, sizeof(*one));
		add_worker(one, workers[i]);
		add_worker(total, workers[i]);
		if (i)
			fpg_buf_putc(out, ',');
		put_section(out, one, route_names, nroutes);
	}
	fpg_buf_puts(out, "],\"total\":");
	put_section(out, total, route_names, nroutes);
	fpg_buf_puts(out, "}\n");
out:
	free(total);
	free(one);
}

/* HELP and TYPE of a family. */
static void prom_family(struct fpg_buf *out, const char *name,
			const char *type, const char *help)
{
	fpg_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
		       type);
}

static void prom_counter(struct fpg_buf *out, const char *name,
			 const char *help, const char *type, uint64_t v)
{
	prom_family(out, name, type, help);
	fpg_buf_printf(out, "%s %llu\n", name, (unsigned long long)v);
}

/* Route names are ours ("POST /query"): no quote or backslash to escape. */
static void prom_requests(struct fpg_buf *out, const struct totals *t,
			  const char *const *route_names, unsigned nroutes)
{
	prom_family(out, "fasterpg_requests_total", "counter",
		    "HTTP requests by route and status (an error after the "
		    "status went out counts as that error's status)");
	for (unsigned r = 0; r < nroutes && r < FPG_STATS_ROUTES; r++) {
		for (unsigned s = 0; s < FPG_STATS_STATUSES; s++) {
			if (!t->requests[r][s])
				continue;
			char label[8];
			status_label(s, label, sizeof(label));
			fpg_buf_printf(out,
				       "fasterpg_requests_total{route=\"%s\","
				       "status=\"%s\"} %llu\n",
				       route_names[r], label,
				       (unsigned long long)t->requests[r][s]);
		}
	}
}

/*
 * One histogram series: counts[n] per bucket (not cumulative, the last
 * one +Inf) with upper bounds le_us[n - 1]; labels ("route=\"...\",", may
 * be "") go before le.
 */
static void prom_histogram(struct fpg_buf *out, const char *name,
			   const char *labels, const uint64_t *counts,
			   const uint64_t *le_us, unsigned n, uint64_t sum_us)
{
	uint64_t cum = 0;
	for (unsigned i = 0; i + 1 < n; i++) {
		cum += counts[i];
		fpg_buf_printf(out, "%s_bucket{%sle=\"%g\"} %llu\n", name, labels,
			       (double)le_us[i] / 1e6, (unsigned long long)cum);
	}
	cum += counts[n - 1];
	size_t ln = strlen(labels);
	fpg_buf_printf(out,
		       "%s_bucket{%sle=\"+Inf\"} %llu\n"
		       "%s_sum%s%.*s%s %.6f\n"
		       "%s_count%s%.*s%s %llu\n",
		       name, labels, (unsigned long long)cum, name,
		       ln ? "{" : "", (int)(ln ? ln - 1 : 0), labels,
		       ln ? "}" : "", (double)sum_us / 1e6, name,
		       ln ? "{" : "", (int)(ln ? ln - 1 : 0), labels,
		       ln ? "}" : "", (unsigned long long)cum);
}

/* The routes that saw requests, each its own series. */
static void prom_durations(struct fpg_buf *out, const struct totals *t,
			   const char *const *route_names, unsigned nroutes)
{
	prom_family(out, "fasterpg_request_duration_seconds", "histogram",
		    "Time from a request's headers to its end, by route");
	for (unsigned r = 0; r < nroutes && r < FPG_STATS_ROUTES; r++) {
		if (!sum_of(t->duration[r], FPG_STATS_DURATION_BUCKETS))
			continue;
		char labels[128];
		snprintf(labels, sizeof(labels), "route=\"%s\",",
			 route_names[r]);
		prom_histogram(out, "fasterpg_request_duration_seconds", labels,
			       t->duration[r], duration_le_us,
			       FPG_STATS_DURATION_BUCKETS,
			       t->duration_sum_us[r]);
	}
}

static void prom_pg_errors(struct fpg_buf *out, const struct totals *t)
{
	prom_family(out, "fasterpg_pg_errors_total", "counter",
		    "Requests answered with a PostgreSQL error, by SQLSTATE "
		    "class (its first two characters)");
	for (unsigned c = 0; c < FPG_STATS_SQLSTATE_CLASSES; c++) {
		if (!t->pg_errors[c])
			continue;
		char name[3];
		class_name(c, name);
		fpg_buf_printf(out, "fasterpg_pg_errors_total{class=\"%s\"} %llu\n",
			       name, (unsigned long long)t->pg_errors[c]);
	}
}

static uint64_t nonneg(int64_t v)
{
	return v < 0 ? 0 : (uint64_t)v;
}

static void prom_pool(struct fpg_buf *out, const struct totals *t)
{
	int64_t idle = t->open - t->busy;
	prom_family(out, "fasterpg_pool_connections", "gauge",
		    "PostgreSQL connections of the pools by state");
	fpg_buf_printf(out,
		       "fasterpg_pool_connections{state=\"idle\"} %llu\n"
		       "fasterpg_pool_connections{state=\"busy\"} %llu\n"
		       "fasterpg_pool_connections{state=\"connecting\"} %llu\n",
		       (unsigned long long)nonneg(idle),
		       (unsigned long long)nonneg(t->busy),
		       (unsigned long long)nonneg(t->connecting));
	prom_counter(out, "fasterpg_pool_connections_max",
		     "PostgreSQL connections the pools may open (pool-max per "
		     "worker and login)",
		     "gauge", nonneg(t->max));
	prom_counter(out, "fasterpg_pool_waiting",
		     "Requests waiting for a connection", "gauge",
		     nonneg(t->waiting));
	prom_family(out, "fasterpg_pool_acquire_wait_seconds", "histogram",
		    "Time a statement waited for a PostgreSQL connection "
		    "(0 when one was free)");
	prom_histogram(out, "fasterpg_pool_acquire_wait_seconds", "", t->wait,
		       wait_le_us, FPG_STATS_WAIT_BUCKETS, t->wait_sum_us);
	prom_counter(out, "fasterpg_pool_acquire_timeouts_total",
		     "Waits for a PostgreSQL connection that ran out "
		     "(acquire-timeout-ms, answered 503)",
		     "counter", t->acquire_timeouts);
	prom_counter(out, "fasterpg_pool_connect_failures_total",
		     "Failed connection attempts", "counter",
		     t->connect_failures);
	prom_counter(out, "fasterpg_pool_sessions_replaced_total",
		     "Connections replaced because client SQL left their "
		     "session in a state the pool could not reset",
		     "counter", t->replaced);
	prom_counter(out, "fasterpg_coalesced_groups_total",
		     "Groups of read-only statements that shared one "
		     "transaction on a connection", "counter", t->groups);
	prom_counter(out, "fasterpg_coalesced_statements_total",
		     "Statements that ran in such a group", "counter",
		     t->grouped);
	prom_counter(out, "fasterpg_coalesce_reruns_total",
		     "Statements of a group run again alone (they wrote, or "
		     "another statement of the group failed)",
		     "counter", t->reruns);
	prom_counter(out, "fasterpg_postgresql_up",
		     "1 when the last connect or statement reached PostgreSQL, "
		     "0 when it failed (or none was tried yet)",
		     "gauge", (uint64_t)pg_up(t));
}

void fpg_stats_prometheus(struct fpg_buf *out, struct fpg_stats *const *workers,
			  unsigned n, const char *const *route_names,
			  unsigned nroutes, unsigned tx_open)
{
	struct totals *t = calloc(1, sizeof(*t));
	if (!t) {
		out->failed = true;
		return;
	}
	for (unsigned i = 0; i < n; i++)
		add_worker(t, workers[i]);
	prom_requests(out, t, route_names, nroutes);
	prom_durations(out, t, route_names, nroutes);
	prom_counter(out, "fasterpg_stream_errors_total",
		     "Errors after the status line went out (told in the body, "
		     "or the stream cut short)",
		     "counter", t->stream_errors);
	prom_pg_errors(out, t);
	prom_pool(out, t);
	prom_counter(out, "fasterpg_logins_open",
		     "Logins with a pool of their own (--auth)", "gauge",
		     nonneg(t->logins));
	prom_counter(out, "fasterpg_login_refusals_total",
		     "Logins PostgreSQL refused (wrong password, no such role)",
		     "counter", t->refusals);
	prom_counter(out, "fasterpg_listen_subscribers",
		     "GET /listen streams open", "gauge",
		     nonneg(t->subscribers));
	prom_counter(out, "fasterpg_listen_channels",
		     "Channels listened to (or lingering)", "gauge",
		     nonneg(t->channels));
	prom_counter(out, "fasterpg_listen_notifications_received_total",
		     "Notifications PostgreSQL sent the workers", "counter",
		     t->received);
	prom_counter(out, "fasterpg_listen_events_delivered_total",
		     "Notifications passed to subscribers", "counter",
		     t->delivered);
	prom_counter(out, "fasterpg_listen_events_dropped_total",
		     "Notifications not sent to a subscriber that read too "
		     "slowly", "counter", t->dropped);
	prom_counter(out, "fasterpg_listen_gaps_total",
		     "Gap events (notifications may have been missed)",
		     "counter", t->gaps);
	prom_counter(out, "fasterpg_requests_in_flight",
		     "Requests being served", "gauge", nonneg(t->in_flight));
	prom_counter(out, "fasterpg_copies_in_flight", "COPY requests under way",
		     "gauge", nonneg(t->copies));
	prom_counter(out, "fasterpg_rows_sent_total", "Result rows sent",
		     "counter", t->rows);
	prom_counter(out, "fasterpg_bytes_sent_total",
		     "Response body bytes sent", "counter", t->bytes);
	prom_counter(out, "fasterpg_bytes_received_total",
		     "Request body bytes received", "counter", t->bytes_in);
	prom_counter(out, "fasterpg_transactions_open",
		     "Open transaction sessions", "gauge", tx_open);
	prom_family(out, "fasterpg_transactions_total", "counter",
		    "Ended transaction sessions by outcome");
	fpg_buf_printf(out,
		       "fasterpg_transactions_total{outcome=\"commit\"} %llu\n"
		       "fasterpg_transactions_total{outcome=\"rollback\"} "
		       "%llu\n"
		       "fasterpg_transactions_total{outcome=\"expired\"} "
		       "%llu\n",
		       (unsigned long long)t->commits,
		       (unsigned long long)t->rollbacks,
		       (unsigned long long)t->expired);
	prom_counter(out, "fasterpg_transaction_retries_total",
		     "Batch retries after serialization failures or deadlocks",
		     "counter", t->retries);
	prom_family(out, "fasterpg_slow_clients_closed_total", "counter",
		    "HTTP connections closed for being too slow, by reason");
	fpg_buf_printf(out,
		       "fasterpg_slow_clients_closed_total"
		       "{reason=\"header_timeout\"} %llu\n"
		       "fasterpg_slow_clients_closed_total"
		       "{reason=\"slow_body\"} %llu\n"
		       "fasterpg_slow_clients_closed_total"
		       "{reason=\"evicted\"} %llu\n",
		       (unsigned long long)t->header_timeouts,
		       (unsigned long long)t->slow_bodies,
		       (unsigned long long)t->evicted);
	free(t);
}

/* ---- the process ---- */

/* The first line of path that starts with key, its number after key. */
static bool read_proc_number(const char *path, const char *key,
			     unsigned long long *v)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	char line[256];
	bool found = false;
	size_t n = strlen(key);
	while (!found && fgets(line, sizeof(line), f))
		if (strncmp(line, key, n) == 0)
			found = sscanf(line + n, "%llu", v) == 1;
	fclose(f);
	return found;
}

static long count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	long n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own */
}

/* From /proc/self/stat (proc(5)): after the name in parentheses come the
 * fields from state (3) on; utime is 14, stime 15, starttime 22, vsize
 * 23 and rss 24. */
static bool read_stat(unsigned long long *utime, unsigned long long *stime,
		      unsigned long long *start, unsigned long long *vsize,
		      long long *rss)
{
	char buf[1024];
	FILE *f = fopen("/proc/self/stat", "re");
	if (!f)
		return false;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	const char *p = strrchr(buf, ')');
	return p && sscanf(p + 2,
			   "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
			   "%llu %llu %*d %*d %*d %*d %*d %*d %llu %llu %lld",
			   utime, stime, start, vsize, rss) == 5;
}

void fpg_stats_process(struct fpg_buf *out)
{
	unsigned long long utime, stime, start, vsize, btime;
	long long rss;
	long hz = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	if (hz > 0 && page > 0 && read_stat(&utime, &stime, &start, &vsize, &rss)) {
		prom_family(out, "process_cpu_seconds_total", "counter",
			    "Total user and system CPU time spent in seconds");
		fpg_buf_printf(out, "process_cpu_seconds_total %.2f\n",
			       (double)(utime + stime) / (double)hz);
		prom_counter(out, "process_virtual_memory_bytes",
			     "Virtual memory size in bytes", "gauge", vsize);
		prom_counter(out, "process_resident_memory_bytes",
			     "Resident memory size in bytes", "gauge",
			     (uint64_t)(rss < 0 ? 0 : rss) * (uint64_t)page);
		if (read_proc_number("/proc/stat", "btime ", &btime)) {
			prom_family(out, "process_start_time_seconds", "gauge",
				    "Start time of the process since unix "
				    "epoch in seconds");
			fpg_buf_printf(out, "process_start_time_seconds %.2f\n",
				       (double)btime +
					       (double)start / (double)hz);
		}
	}
	long fds = count_fds();
	if (fds >= 0)
		prom_counter(out, "process_open_fds",
			     "Number of open file descriptors", "gauge",
			     (uint64_t)fds);
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		prom_counter(out, "process_max_fds",
			     "Maximum number of open file descriptors", "gauge",
			     rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX
							  : (uint64_t)rl.rlim_cur);
	prom_family(out, "fasterpg_build_info", "gauge",
		    "Always 1; the version of fasterpg in its label");
	fpg_buf_printf(out, "fasterpg_build_info{version=\"%s\"} 1\n",
		       FPG_VERSION);
}
