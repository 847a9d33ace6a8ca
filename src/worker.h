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
#include "stats.h"

struct fpg_canceller;
struct fpg_server;
struct fpg_pool;
struct fpg_request;
struct fpg_typecache;
struct fpg_lanes;
struct fpg_conn;
struct fpg_tx_registry;
struct fpg_tx_table;


/*
 * An intrusive first-in first-out list with O(1) removal: when every
 * entry waits for the same length of time, the oldest (the head) is the
 * only one a deadline check needs to look at.
 */
struct fpg_fifo_link {
	struct fpg_fifo_link *prev, *next;
	uint64_t since_ms;	/* when it was appended */
	bool linked;
};

struct fpg_fifo {
	struct fpg_fifo_link *head, *tail;
	unsigned n;
};

struct fpg_worker {
	struct fpg_server *srv;
	const struct fpg_options *opts; /* the server's, immutable */
	unsigned id;
	pthread_t thread;
	bool thread_started;
	struct fpg_loop loop;
	struct fpg_evsrc mhd_ev;
	struct MHD_Daemon *mhd;
	struct fpg_pool *pool;
	struct fpg_typecache *types;
	struct fpg_lanes *lanes;    /* lane choice of /query (query.h) */
	struct fpg_tx_table *tx_table; /* sessions this worker began */
	struct fpg_stats stats;	    /* read by any thread (atomics) */
	size_t buffered;	    /* answer bytes waiting for clients
				       (handler_query.c) */
	atomic_bool stop_requested; /* set by any thread */
	bool draining;		    /* no longer accepting; finishing */
	uint64_t drain_deadline_ms;
	bool resumed;		    /* a connection was resumed: run MHD again */
	bool locks_ready;	    /* requests_lock initialised */
	pthread_mutex_t requests_lock; /* guards the links of requests:
					  other workers read ids to cancel */
	struct fpg_request *requests; /* live requests */
	struct fpg_request *flush_list; /* see fpg_request_flush_streams */
	/* slow clients (request.c): connections waiting for a request's
	 * headers, and requests whose body is being read */
	struct fpg_fifo pending_clients; /* of fpg_client.pending */
	struct fpg_fifo unsure_clients;	 /* of fpg_client.unsure */
	struct fpg_fifo uploads;	   /* of fpg_request.upload */
	/* getrandom() bytes not yet handed out (see fpg_worker_random):
	 * one system call serves many request ids, and no lock is shared */
	unsigned char random_pool[256];
	unsigned random_left;	    /* unused bytes at the end of the pool */
};

/*
 * Sets up the worker: epoll, eventfd, timerfd, MHD daemon bound to
 * host:*port (a 0 port is replaced by the one bound) and its pool.
 */
bool fpg_worker_init(struct fpg_worker *w, struct fpg_server *srv,
		     struct fpg_canceller *canceller,
		     struct fpg_tx_registry *tx_reg, unsigned id,
		     unsigned *port, struct fpg_error *err) FPG_MUST_CHECK;

bool fpg_worker_start(struct fpg_worker *w, struct fpg_error *err) FPG_MUST_CHECK;

/* Asks the worker to drain and stop within grace_ms. Any thread. */
void fpg_worker_request_stop(struct fpg_worker *w, unsigned grace_ms);

void fpg_worker_join(struct fpg_worker *w);

/* Frees what init created; the thread must have been joined. */
void fpg_worker_deinit(struct fpg_worker *w);

/*
 * Fills out with n (at most 256) bytes from the kernel's CSPRNG, drawn in
 * 256-byte batches. The worker's thread only. False when getrandom()
 * fails (it does not on Linux >= 3.17 once the pool is seeded).
 */
bool fpg_worker_random(struct fpg_worker *w, void *out,
		       size_t n) FPG_MUST_CHECK;

/* host:port as the address to listen on (first of getaddrinfo). */
bool fpg_listen_address(const char *host, unsigned port,
			struct sockaddr_storage *addr, socklen_t *len,
			struct fpg_error *err) FPG_MUST_CHECK;
