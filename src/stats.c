#include "stats.h"

#include <string.h>

static const int counted_status[FPG_STATS_STATUSES - 1] = {
	200, 201, 204, 400, 401, 403, 404, 405, 406, 409,
	410, 413, 415, 429, 500, 502, 503, 504, 499,
};

static unsigned status_index(int status)
{
	for (unsigned i = 0; i < FPG_STATS_STATUSES - 1; i++)
		if (counted_status[i] == status)
			return i;
	return FPG_STATS_STATUSES - 1;
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
		      uint64_t latency_us)
{
	if (route >= FPG_STATS_ROUTES)
		route = FPG_STATS_ROUTES - 1;
	FPG_STAT_ADD(st->requests[route][status_index(status)], 1);
	FPG_STAT_ADD(st->latency[latency_bucket(latency_us)], 1);
	FPG_STAT_ADD(st->latency_sum_us, latency_us);
}

struct totals {
	uint64_t requests[FPG_STATS_ROUTES][FPG_STATS_STATUSES];
	uint64_t latency[FPG_STATS_BUCKETS];
	uint64_t latency_sum_us;
	int64_t in_flight, open, connecting, busy, waiting;
	uint64_t rows, bytes, connect_failures, replaced;
	uint64_t commits, rollbacks, expired, retries;
	uint64_t header_timeouts, slow_bodies, evicted;
	int64_t logins;
	uint64_t refusals;
	int64_t subscribers, channels;
	uint64_t received, delivered, dropped, gaps;
};

static void add_worker(struct totals *t, struct fpg_stats *st)
{
	for (unsigned r = 0; r < FPG_STATS_ROUTES; r++)
		for (unsigned s = 0; s < FPG_STATS_STATUSES; s++)
			t->requests[r][s] += FPG_STAT_GET(st->requests[r][s]);
	for (unsigned b = 0; b < FPG_STATS_BUCKETS; b++)
		t->latency[b] += FPG_STAT_GET(st->latency[b]);
	t->latency_sum_us += FPG_STAT_GET(st->latency_sum_us);
	t->in_flight += FPG_STAT_GET(st->in_flight);
	t->open += FPG_STAT_GET(st->pool_open);
	t->connecting += FPG_STAT_GET(st->pool_connecting);
	t->busy += FPG_STAT_GET(st->pool_busy);
	t->waiting += FPG_STAT_GET(st->pool_waiting);
	t->rows += FPG_STAT_GET(st->rows_sent);
	t->bytes += FPG_STAT_GET(st->bytes_sent);
	t->connect_failures += FPG_STAT_GET(st->pool_connect_failures);
	t->replaced += FPG_STAT_GET(st->pool_sessions_replaced);
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

static void put_section(struct fpg_buf *out, const struct totals *t,
			const char *const *route_names, unsigned nroutes)
{
	uint64_t count = 0;
	for (unsigned b = 0; b < FPG_STATS_BUCKETS; b++)
		count += t->latency[b];
	int64_t idle = t->open - t->busy;
	fpg_buf_printf(out,
		       "{\"pool\":{\"open\":%lld,\"idle\":%lld,\"busy\":%lld,"
		       "\"connecting\":%lld,\"waiting\":%lld,"
		       "\"connect_failures\":%llu,\"sessions_replaced\":%llu},",
		       (long long)t->open, (long long)(idle < 0 ? 0 : idle),
		       (long long)t->busy, (long long)t->connecting,
		       (long long)t->waiting,
		       (unsigned long long)t->connect_failures,
		       (unsigned long long)t->replaced);
	fpg_buf_printf(out, "\"in_flight\":%lld,\"requests_total\":%llu,"
			    "\"rows_sent\":%llu,\"bytes_sent\":%llu,",
		       (long long)t->in_flight, (unsigned long long)count,
		       (unsigned long long)t->rows,
		       (unsigned long long)t->bytes);
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
			if (s < FPG_STATS_STATUSES - 1)
				fpg_buf_printf(out, "\"%d\":", counted_status[s]);
			else
				fpg_buf_puts(out, "\"other\":");
			fpg_buf_printf(out, "%llu",
				       (unsigned long long)t->requests[r][s]);
		}
		if (any)
			fpg_buf_putc(out, '}');
	}
	fpg_buf_printf(out,
		       "},\"latency_ms\":{\"mean\":%.3f,\"p50\":%.3f,"
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
	struct totals total, one;
	memset(&total, 0, sizeof(total));
	fpg_buf_puts(out, "{");
	if (extra_json) {
		fpg_buf_puts(out, extra_json);
		fpg_buf_putc(out, ',');
	}
	fpg_buf_puts(out, "\"workers\":[");
	for (unsigned i = 0; i < n; i++) {
		memset(&one, 0, sizeof(one));
		add_worker(&one, workers[i]);
		add_worker(&total, workers[i]);
		if (i)
			fpg_buf_putc(out, ',');
		put_section(out, &one, route_names, nroutes);
	}
	fpg_buf_puts(out, "],\"total\":");
	put_section(out, &total, route_names, nroutes);
	fpg_buf_puts(out, "}\n");
}

static void prom_counter(struct fpg_buf *out, const char *name,
			 const char *help, const char *type, uint64_t v)
{
	fpg_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name,
		       help, name, type, name, (unsigned long long)v);
}

/* Route names are ours ("POST /query"): no quote or backslash to escape. */
static void prom_requests(struct fpg_buf *out, const struct totals *t,
			  const char *const *route_names, unsigned nroutes)
{
	fpg_buf_puts(out, "# HELP fasterpg_requests_total HTTP requests by "
			  "route and status\n"
			  "# TYPE fasterpg_requests_total counter\n");
	for (unsigned r = 0; r < nroutes && r < FPG_STATS_ROUTES; r++) {
		for (unsigned s = 0; s < FPG_STATS_STATUSES; s++) {
			if (!t->requests[r][s])
				continue;
			fpg_buf_printf(out,
				       "fasterpg_requests_total{route=\"%s\","
				       "status=\"",
				       route_names[r]);
			if (s < FPG_STATS_STATUSES - 1)
				fpg_buf_printf(out, "%d", counted_status[s]);
			else
				fpg_buf_puts(out, "other");
			fpg_buf_printf(out, "\"} %llu\n",
				       (unsigned long long)t->requests[r][s]);
		}
	}
}

/*
 * Our fine buckets summed into Prometheus's cumulative ones: a request
 * counts under "le" when its bucket's upper bound is at most le.
 */
static void prom_latency(struct fpg_buf *out, const struct totals *t)
{
	static const double le[] = {0.0005, 0.001, 0.0025, 0.005, 0.01,
				    0.025,  0.05,  0.1,	   0.25,  0.5,
				    1,	    2.5,   5,	   10};
	fpg_buf_puts(out, "# HELP fasterpg_request_duration_seconds Time "
			  "from a request's headers to its end\n"
			  "# TYPE fasterpg_request_duration_seconds "
			  "histogram\n");
	uint64_t count = 0;
	for (unsigned b = 0; b < FPG_STATS_BUCKETS; b++)
		count += t->latency[b];
	for (size_t i = 0; i < sizeof(le) / sizeof(le[0]); i++) {
		uint64_t n = 0;
		for (unsigned b = 0; b < FPG_STATS_BUCKETS; b++)
			if ((double)bucket_upper(b) / 1e6 <= le[i])
				n += t->latency[b];
		fpg_buf_printf(out,
			       "fasterpg_request_duration_seconds_bucket"
			       "{le=\"%g\"} %llu\n",
			       le[i], (unsigned long long)n);
	}
	fpg_buf_printf(out,
		       "fasterpg_request_duration_seconds_bucket{le=\"+Inf\"} "
		       "%llu\n"
		       "fasterpg_request_duration_seconds_sum %.6f\n"
		       "fasterpg_request_duration_seconds_count %llu\n",
		       (unsigned long long)count,
		       (double)t->latency_sum_us / 1e6,
		       (unsigned long long)count);
}

void fpg_stats_prometheus(struct fpg_buf *out, struct fpg_stats *const *workers,
			  unsigned n, const char *const *route_names,
			  unsigned nroutes, unsigned tx_open)
{
	struct totals t;
	memset(&t, 0, sizeof(t));
	for (unsigned i = 0; i < n; i++)
		add_worker(&t, workers[i]);
	prom_requests(out, &t, route_names, nroutes);
	prom_latency(out, &t);
	int64_t idle = t.open - t.busy;
	fpg_buf_printf(out,
		       "# HELP fasterpg_pool_connections PostgreSQL connections "
		       "of the pools by state\n"
		       "# TYPE fasterpg_pool_connections gauge\n"
		       "fasterpg_pool_connections{state=\"idle\"} %lld\n"
		       "fasterpg_pool_connections{state=\"busy\"} %lld\n"
		       "fasterpg_pool_connections{state=\"connecting\"} %lld\n",
		       (long long)(idle < 0 ? 0 : idle), (long long)t.busy,
		       (long long)t.connecting);
	prom_counter(out, "fasterpg_pool_waiting",
		     "Requests waiting for a connection", "gauge",
		     (uint64_t)(t.waiting < 0 ? 0 : t.waiting));
	prom_counter(out, "fasterpg_pool_connect_failures_total",
		     "Failed connection attempts", "counter",
		     t.connect_failures);
	prom_counter(out, "fasterpg_pool_sessions_replaced_total",
		     "Connections replaced because client SQL left their "
		     "session in a state the pool could not reset",
		     "counter", t.replaced);
	prom_counter(out, "fasterpg_logins_open",
		     "Logins with a pool of their own (--auth)", "gauge",
		     (uint64_t)(t.logins < 0 ? 0 : t.logins));
	prom_counter(out, "fasterpg_login_refusals_total",
		     "Logins PostgreSQL refused (wrong password, no such role)",
		     "counter", t.refusals);
	prom_counter(out, "fasterpg_listen_subscribers",
		     "GET /listen streams open", "gauge",
		     (uint64_t)(t.subscribers < 0 ? 0 : t.subscribers));
	prom_counter(out, "fasterpg_listen_channels",
		     "Channels listened to (or lingering)", "gauge",
		     (uint64_t)(t.channels < 0 ? 0 : t.channels));
	prom_counter(out, "fasterpg_listen_notifications_received_total",
		     "Notifications PostgreSQL sent the workers", "counter",
		     t.received);
	prom_counter(out, "fasterpg_listen_events_delivered_total",
		     "Notifications passed to subscribers", "counter",
		     t.delivered);
	prom_counter(out, "fasterpg_listen_events_dropped_total",
		     "Notifications not sent to a subscriber that read too "
		     "slowly", "counter", t.dropped);
	prom_counter(out, "fasterpg_listen_gaps_total",
		     "Gap events (notifications may have been missed)",
		     "counter", t.gaps);
	prom_counter(out, "fasterpg_requests_in_flight",
		     "Requests being served", "gauge",
		     (uint64_t)(t.in_flight < 0 ? 0 : t.in_flight));
	prom_counter(out, "fasterpg_rows_sent_total", "Result rows sent",
		     "counter", t.rows);
	prom_counter(out, "fasterpg_bytes_sent_total",
		     "Response body bytes sent", "counter", t.bytes);
	prom_counter(out, "fasterpg_transactions_open",
		     "Open transaction sessions", "gauge", tx_open);
	fpg_buf_printf(out,
		       "# HELP fasterpg_transactions_total Ended transaction "
		       "sessions by outcome\n"
		       "# TYPE fasterpg_transactions_total counter\n"
		       "fasterpg_transactions_total{outcome=\"commit\"} %llu\n"
		       "fasterpg_transactions_total{outcome=\"rollback\"} "
		       "%llu\n"
		       "fasterpg_transactions_total{outcome=\"expired\"} "
		       "%llu\n",
		       (unsigned long long)t.commits,
		       (unsigned long long)t.rollbacks,
		       (unsigned long long)t.expired);
	prom_counter(out, "fasterpg_transaction_retries_total",
		     "Batch retries after serialization failures or deadlocks",
		     "counter", t.retries);
	fpg_buf_printf(out,
		       "# HELP fasterpg_slow_clients_closed_total HTTP "
		       "connections closed for being too slow, by reason\n"
		       "# TYPE fasterpg_slow_clients_closed_total counter\n"
		       "fasterpg_slow_clients_closed_total"
		       "{reason=\"header_timeout\"} %llu\n"
		       "fasterpg_slow_clients_closed_total"
		       "{reason=\"slow_body\"} %llu\n"
		       "fasterpg_slow_clients_closed_total"
		       "{reason=\"evicted\"} %llu\n",
		       (unsigned long long)t.header_timeouts,
		       (unsigned long long)t.slow_bodies,
		       (unsigned long long)t.evicted);
}
