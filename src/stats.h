/*
 * Per-worker counters. Each worker writes only its own struct fpg_stats
 * (single writer, so increments are plain relaxed load+store, no lock
 * prefix); readers on any thread sum all workers with relaxed loads.
 */
#pragma once

#include <stdatomic.h>
#include <stdint.h>

#include "buf.h"

#define FPG_STATS_ROUTES 24
#define FPG_STATS_BUCKETS 128 /* latency buckets, see stats.c */

/* HTTP statuses counted one by one; anything else lands in "other". */
#define FPG_STATS_STATUSES 20

struct fpg_stats {
	_Atomic uint64_t requests[FPG_STATS_ROUTES][FPG_STATS_STATUSES];
	_Atomic uint64_t latency[FPG_STATS_BUCKETS];
	_Atomic uint64_t latency_sum_us;
	_Atomic int64_t in_flight;
	_Atomic uint64_t rows_sent;
	_Atomic uint64_t bytes_sent;
	/* pool gauges, owned by pool.c */
	_Atomic int64_t pool_open;	 /* connected and usable */
	_Atomic int64_t pool_connecting; /* connect or setup under way */
	_Atomic int64_t pool_busy;	 /* open with requests in flight */
	_Atomic int64_t pool_waiting;	 /* requests waiting for a connection */
	_Atomic uint64_t pool_connect_failures;
	_Atomic uint64_t pool_sessions_replaced; /* sessions not trusted any
						    more after client SQL */
	/* transactions, counted by the worker that ended them */
	_Atomic uint64_t tx_commits;
	_Atomic uint64_t tx_rollbacks;	 /* rolled back, or failed to commit */
	_Atomic uint64_t tx_expired;	 /* idle timeout or lifetime */
	_Atomic uint64_t tx_retries;	 /* batch retries */
	/* slow HTTP clients closed (request.c) */
	_Atomic uint64_t http_header_timeouts; /* headers past the deadline */
	_Atomic uint64_t http_slow_bodies;     /* body below min-upload-rate */
	_Atomic uint64_t http_evicted;	       /* too many waiting for headers */
	_Atomic int64_t logins_open;	       /* logins with a pool (--auth) */
	_Atomic uint64_t login_refusals;       /* logins PostgreSQL refused */
	/* GET /listen (listen.c, handler_listen.c) */
	_Atomic int64_t listen_subscribers;
	_Atomic int64_t listen_channels;       /* listened to, or lingering */
	_Atomic uint64_t listen_received;      /* notifications PostgreSQL sent */
	_Atomic uint64_t listen_delivered;     /* events for subscribers */
	_Atomic uint64_t listen_dropped;       /* not sent: too slow a reader */
	_Atomic uint64_t listen_gaps;	       /* gap events */
};

#define FPG_STAT_ADD(field, n)                                             \
	atomic_store_explicit(&(field),                                    \
			      atomic_load_explicit(&(field),               \
						   memory_order_relaxed) + \
				      (n),                                 \
			      memory_order_relaxed)

#define FPG_STAT_GET(field) atomic_load_explicit(&(field), memory_order_relaxed)

/* Counts one finished request. route is the router's index. */
void fpg_stats_record(struct fpg_stats *st, unsigned route, int status,
		      uint64_t latency_us);

/*
 * Appends the /stats JSON document for n workers. route_names has
 * nroutes entries, indexed like fpg_stats_record's route.
 */
void fpg_stats_json(struct fpg_buf *out, struct fpg_stats *const *workers,
		    unsigned n, const char *const *route_names,
		    unsigned nroutes, const char *extra_json);

/*
 * Appends the same counters, summed over the workers, in the Prometheus
 * text exposition format (version 0.0.4).
 */
void fpg_stats_prometheus(struct fpg_buf *out, struct fpg_stats *const *workers,
			  unsigned n, const char *const *route_names,
			  unsigned nroutes, unsigned tx_open);
