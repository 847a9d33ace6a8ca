/*
 * A worker's set of PostgreSQL connections (conn.h): it opens them up to
 * pool-max, replaces broken ones with back-off, and hands them to waiters
 * (shared ones to pipeline on, or held ones for one request alone), lends
 * a bounded share to transaction sessions and takes them back. Owned by
 * one worker; nothing here is thread-safe except fpg_conn_send_home.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "conn.h"
#include "fasterpg.h"

struct fpg_pool;

/*
 * Waits for a usable connection. ready() gets a connection with room in
 * its pipeline, or with exclusive set, an idle one held for the waiter
 * alone until fpg_conn_release() (or an op with release set ends); fail()
 * gets an error (503 unavailable or timeout). Exactly one of them is
 * called, unless the waiter is cancelled first.
 */
struct fpg_pool_waiter {
	struct fpg_list link;	 /* in the pool's waiters while queued */
	uint64_t deadline_ms;
	uint64_t queued_us;	 /* when it queued (the wait's statistics) */
	bool exclusive;		 /* wants a connection of its own */
	bool lend;		 /* ... for a transaction session (see
				    fpg_conn_detach): a bounded share */
	bool reads;		 /* likely to join a coalesced group of
				    reads: goes where groups run */
	void (*ready)(struct fpg_pool_waiter *wt, struct fpg_conn *conn);
	void (*fail)(struct fpg_pool_waiter *wt, const struct fpg_error *err);
	bool queued;
};


/* Who made a pool (logins.c), and what it wants to hear. */
struct fpg_pool_owner {
	unsigned min;	/* connections kept open */
	/* A connection logged in (its credential is good), or PostgreSQL
	 * refused the login (the waiters got 401). Either may be NULL. */
	void (*logged_in)(struct fpg_pool *pool, void *ctx);
	void (*refused)(struct fpg_pool *pool, void *ctx);
	void *ctx;
};

/*
 * A pool; env and owner are copied. owner NULL: nobody listens, and
 * env->opts->pool_min connections are kept open. Caller owns
 * (fpg_pool_free).
 */
struct fpg_pool *fpg_pool_new(const struct fpg_conn_env *env,
			      const struct fpg_pool_owner *owner,
			      struct fpg_error *err);

/* Nobody waits, nothing runs, nothing is lent: freeing it loses nothing. */
bool fpg_pool_quiet(const struct fpg_pool *pool);

/* Closes every connection (ops get on_done with broken set). NULL ok. */
void fpg_pool_free(struct fpg_pool *pool);

/*
 * Finds a connection for one more op: ready() is called at once when there
 * is one, else the waiter queues until one frees up, its deadline passes
 * or the database is known to be down (fail()).
 */
void fpg_pool_acquire(struct fpg_pool *pool, struct fpg_pool_waiter *wt);

/* Removes a queued waiter (no callback follows). */
void fpg_pool_cancel_wait(struct fpg_pool *pool, struct fpg_pool_waiter *wt);




/* An exclusive waiter would get a connection at once. */
bool fpg_pool_can_hold(struct fpg_pool *pool);

/* Ends a hold taken by an exclusive waiter (after a reset of the session
 * if it ran COPY). */
void fpg_conn_release(struct fpg_conn *conn);


/*
 * Asks PostgreSQL to cancel what runs on a held connection (through the
 * canceller thread). The connection takes no new work until the cancel
 * was sent and its ops ended.
 */
void fpg_conn_cancel(struct fpg_conn *conn);

/*
 * Guests: a connection that left its pool (an open transaction)
 * and is run, one statement at a time, by whichever worker serves it.
 *
 * fpg_conn_detach() takes a held connection out of its pool (its slot
 * stays empty until it comes back, so sessions never add connections to
 * PostgreSQL; waiters with lend set get one only while fewer than
 * pool_max - 1 are out) and makes it a guest of that worker. on_idle (set with
 * fpg_conn_set_idle) is called on the running worker each time the guest
 * has no op left (and no cancel pending), and once more if it breaks
 * (fpg_conn_alive() is then false). Between statements the owner parks it
 * with fpg_conn_guest_leave() (out of every epoll set: no thread touches
 * it) and the next worker takes it with fpg_conn_guest_enter(). At the
 * end it goes back with fpg_pool_adopt() on its home worker, broken or
 * not (then it is closed); fpg_conn_free() only at shutdown.
 */
struct fpg_conn *fpg_conn_detach(struct fpg_conn *conn,
				 struct fpg_error *err) FPG_MUST_CHECK;
void fpg_conn_guest_leave(struct fpg_conn *conn);
void fpg_conn_guest_enter(struct fpg_conn *conn, struct fpg_pool *pool);
void fpg_pool_adopt(struct fpg_pool *pool, struct fpg_conn *conn);

/*
 * fpg_pool_adopt() on home's thread, for a parked guest: at once when
 * the caller runs in home's loop (here), else through that loop (closed
 * instead if that loop ends first).
 */
void fpg_conn_send_home(struct fpg_conn *conn, struct fpg_pool *home,
			struct fpg_loop *here);


/* Sends what the loop turn queued; the worker calls it before waiting. */
void fpg_pool_end_turn(struct fpg_pool *pool);

/* Closes broken connections; the worker calls it once per loop turn. */
void fpg_pool_reap(struct fpg_pool *pool);


/* The ctx of the pool's owner (NULL without one). */
void *fpg_pool_owner_ctx(const struct fpg_pool *pool);

/* Connections out as transaction sessions now. */
unsigned fpg_pool_lent(const struct fpg_pool *pool);

/*
 * Streams (--roles streams=N): requests of the pool's login that hold a
 * connection of their own while they stream. begin counts one more and
 * returns true, or false when cap are counted already (cap 0: no limit);
 * each true is ended by exactly one fpg_pool_stream_end. The pool is not
 * quiet while one is counted, so it outlives the requests counted on it.
 */
bool fpg_pool_stream_begin(struct fpg_pool *pool, unsigned cap) FPG_MUST_CHECK;
void fpg_pool_stream_end(struct fpg_pool *pool);

/* The user of the pool's login, "" for the --db login's. */
const char *fpg_pool_login(const struct fpg_pool *pool);

/* What the pool and its connections were given. */
const struct fpg_conn_env *fpg_pool_env(const struct fpg_pool *pool);

/* Periodic work: reconnects, minimum size, waiter deadlines. */
void fpg_pool_tick(struct fpg_pool *pool);

