/*
 * Per-worker counters. Each worker writes only its own struct fpg_stats
 * (single writer, so increments are plain relaxed load+store, no lock
 * prefix); readers on any thread sum all workers with relaxed loads.
 */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"

#define FPG_STATS_ROUTES 24
#define FPG_STATS_BUCKETS 128 /* fine latency buckets, see stats.c */

/* HTTP statuses: the codes fasterpg answers with, one slot each, then a
 * slot per class (1xx..5xx) for any other code and one for the rest. */
#define FPG_STATS_STATUSES 30

/* Prometheus buckets of a route's duration (the last is +Inf) and of
 * the wait for a PostgreSQL connection; not cumulative here. */
#define FPG_STATS_DURATION_BUCKETS 17
#define FPG_STATS_WAIT_BUCKETS 11

/* SQLSTATE classes: two characters of 0-9 A-Z. */
#define FPG_STATS_SQLSTATE_CLASSES (36 * 36)

struct fpg_stats {
	_Atomic uint64_t requests[FPG_STATS_ROUTES][FPG_STATS_STATUSES];
	_Atomic uint64_t duration[FPG_STATS_ROUTES][FPG_STATS_DURATION_BUCKETS];
	_Atomic uint64_t duration_sum_us[FPG_STATS_ROUTES];
	_Atomic uint64_t latency[FPG_STATS_BUCKETS]; /* all routes, fine */
	_Atomic uint64_t latency_sum_us;
	_Atomic int64_t in_flight;
	_Atomic int64_t copies;		 /* COPY requests under way */
	_Atomic uint64_t rows_sent;
	_Atomic uint64_t bytes_sent;
	_Atomic uint64_t bytes_received; /* request body bytes */
	_Atomic uint64_t stream_errors;	 /* errors after the status went out */
	_Atomic uint64_t pg_errors[FPG_STATS_SQLSTATE_CLASSES]; /* answered
						 with a SQLSTATE, by class */
	/* pool gauges, owned by pool.c */
	_Atomic int64_t pool_max;	 /* connections the pools may open */
	_Atomic int64_t pool_open;	 /* connected and usable */
	_Atomic int64_t pool_connecting; /* connect or setup under way */
	_Atomic int64_t pool_busy;	 /* open with requests in flight */
	_Atomic int64_t pool_waiting;	 /* requests waiting for a connection */
	_Atomic uint64_t pool_connect_failures;
	_Atomic uint64_t pool_sessions_replaced; /* sessions not trusted any
						    more after client SQL */
	/* coalesced reads (coalesce.h) */
	_Atomic uint64_t coalesced_groups;     /* groups sent */
	_Atomic uint64_t coalesced_statements; /* statements in them */
	_Atomic uint64_t coalesce_reruns;      /* statements run again alone */
	_Atomic uint64_t acquire_wait[FPG_STATS_WAIT_BUCKETS]; /* waits for
						 a connection that got one */
	_Atomic uint64_t acquire_wait_sum_us;
	_Atomic uint64_t acquire_timeouts; /* waits that ran out */
	/* PostgreSQL reached or not: (loop ms << 1) | up of the last connect
	 * or statement; 0: not tried yet (fpg_stats_pg_seen) */
	_Atomic uint64_t pg_seen;
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

/*
 * Counts one finished request. route is the router's index; sqlstate
 * (NULL or "": none) is the SQLSTATE it was answered with.
 */
void fpg_stats_record(struct fpg_stats *st, unsigned route, int status,
		      uint64_t latency_us, const char *sqlstate);

/* A wait for a PostgreSQL connection ended with one, after wait_us. */
void fpg_stats_acquired(struct fpg_stats *st, uint64_t wait_us);

/* PostgreSQL answered (up) or could not be reached, at now_ms. */
static inline void fpg_stats_pg_seen(struct fpg_stats *st, bool up,
				     uint64_t now_ms)
{
	atomic_store_explicit(&st->pg_seen, (now_ms << 1) | (up ? 1u : 0u),
			      memory_order_relaxed);
}

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

/*
 * Appends the process's own metrics under their standard names
 * (process_cpu_seconds_total, process_resident_memory_bytes,
 * process_open_fds, process_max_fds, process_virtual_memory_bytes,
 * process_start_time_seconds, read from /proc) and
 * fasterpg_build_info{version}. Lines it cannot read are left out.
 */
void fpg_stats_process(struct fpg_buf *out);
