/*
 * A worker's PostgreSQL connections. Every connection is non-blocking and
 * in pipeline mode: work is queued on it as "ops", each ending with its own
 * Sync, so that unrelated requests never share a transaction. Results come
 * back in order and are handed to the op at the head of the queue.
 *
 * Connections are opened with PQconnectStart/PQconnectPoll, set up (date
 * style, timeouts) by a first op, and replaced with back-off when they
 * break. Owned by one worker; nothing here is thread-safe.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "fasterpg.h"

struct fpg_canceller;
struct fpg_evsrc;
struct fpg_loop;
struct fpg_stats;
struct fpg_stmt_cache;
struct fpg_typecache;
struct fpg_conn;
struct fpg_pool;
struct fpg_pgop;

/*
 * Called for every result of the op except the PIPELINE_SYNC that ends it.
 * Takes ownership of res.
 */
typedef void (*fpg_pgop_result_fn)(struct fpg_pgop *op, PGresult *res);

/*
 * Called once when the op is over: its Sync arrived (broken == NULL), or
 * the connection broke first (broken = why). The op is freed right after.
 */
typedef void (*fpg_pgop_done_fn)(struct fpg_pgop *op, const char *broken);

struct fpg_pgop {
	struct fpg_pgop *next;	 /* queue order on the connection */
	fpg_pgop_result_fn on_result;
	fpg_pgop_done_fn on_done;
	void *ctx;		 /* owner; NULL once the owner went away */
	int single_row_query;	 /* query of the group to run in single-row
				    mode, -1 for none */
	int queries_done;	 /* NULL results seen so far */
	bool release;		 /* its end ends the connection's hold */
	/* Ops that ran client SQL (FPG_OP_RESET): the session reset that
	 * followed it, read by the pool (see fpg_conn_push_op). */
	bool resets;		 /* a reset segment follows the op's Sync */
	bool in_reset;		 /* the op's own Sync arrived */
	int reset_query;	 /* statements of the reset seen so far */
	bool opened_tx;		 /* the client SQL opened a transaction */
	bool reset_failed;	 /* set when on_done runs */
	bool barrier;		 /* FPG_OP_BARRIER */
	bool first_part;	 /* FPG_OP_TWO_PARTS, before the first Sync */
};

/* An op's callbacks for results nobody reads (DEALLOCATE, resets). */
void fpg_pgop_ignore_result(struct fpg_pgop *op, PGresult *res);
void fpg_pgop_ignore_done(struct fpg_pgop *op, const char *broken);

/* Flags of fpg_conn_push_op. */
enum {
	/* The op ran client SQL: reset the session right after its Sync
	 * (see fpg_conn_push_op). */
	FPG_OP_RESET = 1u << 0,
	/* No other work joins the connection's queue until this op ended:
	 * for a statement whose kind is not known yet (see query.c). */
	FPG_OP_BARRIER = 1u << 1,
	/* The caller ended a first part of the op's statements with a
	 * PQpipelineSync of its own: the op ends at the second Sync. */
	FPG_OP_TWO_PARTS = 1u << 2,
};

/*
 * Waits for a usable connection. ready() gets a connection with room in
 * its pipeline, or with exclusive set, an idle one held for the waiter
 * alone until fpg_conn_release() (or an op with release set ends); fail()
 * gets an error (503 unavailable or timeout). Exactly one of them is
 * called, unless the waiter is cancelled first.
 */
struct fpg_pool_waiter {
	struct fpg_pool_waiter *prev, *next;
	uint64_t deadline_ms;
	bool exclusive;		 /* wants a connection of its own */
	bool lend;		 /* ... for a transaction session (see
				    fpg_conn_detach): a bounded share */
	void (*ready)(struct fpg_pool_waiter *wt, struct fpg_conn *conn);
	void (*fail)(struct fpg_pool_waiter *wt, const struct fpg_error *err);
	bool queued;
};

/* What a pool is given: borrowed, every one outlives the pool. */
struct fpg_pool_deps {
	struct fpg_loop *loop;		 /* the owning thread's */
	const struct fpg_options *opts;
	struct fpg_stats *stats;	 /* the worker's counters */
	struct fpg_canceller *canceller;
	struct fpg_typecache *types;	 /* for the pool's users (query.c) */
	const bool *draining;		 /* no new connections once set */
	unsigned worker_id;		 /* for logs */
	/* The statement cache every connection carries (query.c's): made
	 * when a session starts, freed when it ends or was discarded. */
	struct fpg_stmt_cache *(*stmts_new)(struct fpg_pool *pool,
					    struct fpg_conn *conn);
	void (*stmts_free)(struct fpg_stmt_cache *cache);
};

/* A pool; deps is copied. Caller owns (fpg_pool_free). */
struct fpg_pool *fpg_pool_new(const struct fpg_pool_deps *deps,
			      struct fpg_error *err);

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

/*
 * Queues a new op on conn after the caller sent its statements (without
 * the Sync): adds the Sync and flushes. Returns the op (owned by the
 * connection, freed after on_done; if sending failed, on_done follows
 * with the reason). NULL only when no memory was left for the op: then
 * on_done has already been called.
 *
 * With FPG_OP_RESET (client SQL on a shared session), a reset segment
 * follows the op's Sync, whatever the statements did or whether they
 * failed: it restores every setting to the pool's (RESET ALL; the
 * pool's settings are startup options), forgets sequence values, drops
 * temporary objects, closes cursors, puts the role and session user back
 * to the login role and releases session advisory locks. The op's
 * on_result sees only its own results; on_done sees op->reset_failed
 * and op->opened_tx (the command tag says the statement opened a
 * transaction, so everything after it on the connection would run
 * inside it: such statements are run behind FPG_OP_BARRIER until their
 * kind is known). A connection whose reset failed, whose client SQL
 * opened a transaction or changed prepared statements, takes no new
 * work and is replaced once its ops are over.
 */
struct fpg_pgop *fpg_conn_push_op(struct fpg_conn *conn,
				  fpg_pgop_result_fn on_result,
				  fpg_pgop_done_fn on_done, void *ctx,
				  int single_row_query, unsigned flags);

/*
 * Queues DISCARD ALL: everything a transaction session may have left
 * (settings, temporary tables, prepared statements, ...) is gone before
 * the connection is shared again.
 */
void fpg_conn_push_discard(struct fpg_conn *conn);


/*
 * COPY cannot run in a pipeline: fpg_conn_raw_begin() takes a held, idle
 * connection out of pipeline mode (a pooled one is reset before its hold
 * ends, as after an FPG_OP_RESET op) and hands its socket events to ev (the
 * caller then drives libpq itself, choosing the events it waits for with
 * fpg_conn_raw_watch) until fpg_conn_raw_end() puts it back. A broken
 * connection is failed as usual (fpg_conn_fail).
 */
bool fpg_conn_raw_begin(struct fpg_conn *conn,
			struct fpg_evsrc *ev) FPG_MUST_CHECK;
void fpg_conn_raw_watch(struct fpg_conn *conn, uint32_t events);
void fpg_conn_raw_end(struct fpg_conn *conn);

/*
 * Client SQL left the session in a state the pool did not make: conn
 * takes no new work and is replaced once its ops are over.
 */
void fpg_conn_taint(struct fpg_conn *conn, const char *why);

/*
 * The session is known to be outside a transaction block (false while
 * libpq has more queued, when it cannot tell).
 */
bool fpg_conn_out_of_tx(const struct fpg_conn *conn);

/* New work from anyone may join conn's queue (see FPG_OP_BARRIER). */
bool fpg_conn_shareable(const struct fpg_conn *conn);

/* No op queued and no cancel pending. */
bool fpg_conn_idle(const struct fpg_conn *conn);

/* An exclusive waiter would get a connection at once. */
bool fpg_pool_can_hold(struct fpg_pool *pool);

/* Ends a hold taken by an exclusive waiter (after a reset of the session
 * if it ran COPY). */
void fpg_conn_release(struct fpg_conn *conn);

/*
 * Stops (or restarts) reading a held connection's results, so that
 * PostgreSQL waits while the client is slow: memory stays bounded.
 */
void fpg_conn_pause(struct fpg_conn *conn, bool pause);

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
void fpg_conn_set_idle(struct fpg_conn *conn,
		       void (*on_idle)(struct fpg_conn *c, void *ctx),
		       void *ctx);
void fpg_conn_guest_leave(struct fpg_conn *conn);
void fpg_conn_guest_enter(struct fpg_conn *conn, struct fpg_pool *pool);
bool fpg_conn_alive(const struct fpg_conn *conn);
void fpg_pool_adopt(struct fpg_pool *pool, struct fpg_conn *conn);
void fpg_conn_free(struct fpg_conn *conn);

/*
 * fpg_pool_adopt() on home's thread, for a parked guest: at once when
 * home is here (the caller's pool), else through home's loop (closed
 * instead if that loop ends first).
 */
void fpg_conn_send_home(struct fpg_conn *conn, struct fpg_pool *home,
			struct fpg_pool *here);

/* The libpq connection, for sending statements before fpg_conn_push_op. */
PGconn *fpg_conn_pg(struct fpg_conn *conn);

/*
 * Marks conn broken: no new work goes to it, and fpg_pool_reap() fails its
 * queued ops and closes it. Safe to call from inside op callbacks.
 */
void fpg_conn_fail(struct fpg_conn *conn, const char *why);

/* Sends what the loop turn queued; the worker calls it before waiting. */
void fpg_pool_uncork(struct fpg_pool *pool);

/* Closes broken connections; the worker calls it once per loop turn. */
void fpg_pool_reap(struct fpg_pool *pool);

/* The statement cache attached to the connection (see query.c). */
struct fpg_stmt_cache *fpg_conn_stmts(struct fpg_conn *conn);

/* What the pool was given. */
const struct fpg_pool_deps *fpg_pool_deps(const struct fpg_pool *pool);

/* Periodic work: reconnects, minimum size, waiter deadlines. */
void fpg_pool_tick(struct fpg_pool *pool);

