/*
 * One worker thread: an epoll loop holding its own libmicrohttpd daemon
 * (external-epoll mode, sharing the port with the other workers through
 * SO_REUSEPORT), its own PostgreSQL pool, a timerfd tick and an eventfd
 * mailbox. Everything a worker owns is touched only by its thread, except
 * the fields marked otherwise.
 */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>
#include <sys/socket.h>

#include "fasterpg.h"
#include "loop.h"
#include "request.h"
#include "services.h"
#include "stats.h"

struct fpg_apikeys;
struct fpg_canceller;
struct fpg_jwt;
struct fpg_lanes;
struct fpg_logins;
struct fpg_pool;
struct fpg_tls;
struct fpg_tx_table;
struct fpg_typecache;

struct fpg_worker {
	const struct fpg_options *opts; /* the server's, immutable */
	unsigned id;
	pthread_t thread;
	bool thread_started;
	struct fpg_loop loop;
	struct fpg_evsrc mhd_ev;
	struct MHD_Daemon *mhd;
	struct fpg_logins *logins; /* its pools, one per login */
	struct fpg_pool *pool;	    /* the --db login's */
	struct fpg_typecache *types;
	struct fpg_lanes *lanes;    /* lane choice of /query (query.h) */
	struct fpg_tx_table *tx_table; /* sessions this worker began */
	struct fpg_stats stats;	    /* read by any thread (atomics) */
	atomic_bool stop_requested; /* set by any thread */
	bool draining;		    /* no longer accepting; finishing */
	_Atomic uint64_t drain_deadline_ms; /* lowered by any thread */
	atomic_bool finished;	    /* its thread is about to return */
	struct fpg_services svc;    /* what its requests are given */
	struct fpg_requests reqs;   /* its requests (request.c) */
};

/*
 * Sets up the worker: its loop, MHD daemon bound to host:*port (a 0 port
 * is replaced by the one bound), pool, session table and requests. The
 * whole-server fields of shared (see services.h) are copied, and the
 * worker takes its own references to keys and tls; with tls it serves
 * HTTPS.
 */
bool fpg_worker_init(struct fpg_worker *w, const struct fpg_options *opts,
		     struct fpg_canceller *canceller,
		     const struct fpg_services *shared, unsigned id,
		     unsigned *port, struct fpg_error *err) FPG_MUST_CHECK;

bool fpg_worker_start(struct fpg_worker *w, struct fpg_error *err) FPG_MUST_CHECK;

/* Asks the worker to drain and stop within grace_ms (a second call can
 * only shorten it; 0: end what is left at once). Any thread. */
void fpg_worker_request_stop(struct fpg_worker *w, unsigned grace_ms);

/* The thread is done (or never ran): joining it will not wait long. */
bool fpg_worker_finished(struct fpg_worker *w);

void fpg_worker_join(struct fpg_worker *w);

/* Switches the worker to keys, jwt and tls (it takes a reference of each;
 * NULL: keeps its own) at its next loop turn; connections open then keep
 * the TLS pair they began with. Any thread. */
void fpg_worker_swap(struct fpg_worker *w, struct fpg_apikeys *keys,
		     struct fpg_jwt *jwt, struct fpg_tls *tls);

/* Frees what init created; the thread must have been joined. */
void fpg_worker_deinit(struct fpg_worker *w);


/* host:port as the address to listen on (first of getaddrinfo). */
bool fpg_listen_address(const char *host, unsigned port,
			struct sockaddr_storage *addr, socklen_t *len,
			struct fpg_error *err) FPG_MUST_CHECK;
