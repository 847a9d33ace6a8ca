/*
 * One PostgreSQL connection: non-blocking and in pipeline mode. Work is
 * queued on it as "ops", each ending with its own Sync, so that unrelated
 * requests never share a transaction; results come back in order and go
 * to the op at the head of the queue. It connects (PQconnectStart/Poll),
 * sets its session up, resets it after client SQL, pauses, goes raw for
 * COPY, and tells its owner (a pool, see pool.h) what happened through
 * the callbacks it was made with. Run by one loop at a time; nothing here
 * is thread-safe.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "fasterpg.h"
#include "loop.h"

struct fpg_canceller;
struct fpg_conn;
struct fpg_pgop;
struct fpg_pool;
struct fpg_random;
struct fpg_stats;
struct fpg_stmt_cache;
struct fpg_typecache;

/*
 * What the connections of one worker (and their pool) are given:
 * borrowed, every one outlives them.
 */
struct fpg_conn_env {
	struct fpg_loop *loop;		 /* the owning thread's */
	const struct fpg_options *opts;
	struct fpg_stats *stats;	 /* the worker's counters */
	struct fpg_canceller *canceller;
	struct fpg_typecache *types;	 /* for the pool's users (query.c) */
	const bool *draining;		 /* no new connections once set */
	unsigned worker_id;		 /* for logs */
	struct fpg_random *random;	 /* the owning thread's (the reset's
					    seeds for random()) */
	/* The login, when not the one of opts->db (NULL: that one). */
	const char *user;
	const char *password;		 /* with user; NULL: none */
	bool read_only;			 /* its sessions start read-only
					    (--read-only, or its role's) */
	unsigned statement_timeout_ms;	 /* its statements' cap (0: none) */
	/* The statement cache every connection carries (query.c's): made
	 * when a session starts, freed when it ends or was discarded. */
	struct fpg_stmt_cache *(*stmts_new)(struct fpg_pool *pool,
					    struct fpg_conn *conn);
	void (*stmts_free)(struct fpg_stmt_cache *cache);
	/* Statements of the pool's own that every session prepares with
	 * its reset, when prepared statements outlive requests
	 * (--statement-cache=1); borrowed, static. */
	const struct fpg_conn_stmt *session_stmts;
	size_t nsession_stmts;
};

struct fpg_conn_stmt {
	const char *name, *sql;
};

/* What a connection tells its owner; each gets the connection. */
struct fpg_conn_events {
	/* Its number of ops reached or left 0, or its state changed. */
	void (*busy)(struct fpg_conn *c);
	/* An op ended (after its on_done), or a cancel was sent. False:
	 * stop reading its results now (it was failed, or went to another
	 * loop). */
	bool (*op_ended)(struct fpg_conn *c);
	/* Set up and ready for work (op_ended follows). */
	void (*ready)(struct fpg_conn *c);
	/* Connecting or setting up failed (why, tidied); it is DOWN.
	 * refused: PostgreSQL turned the login itself down. */
	void (*connect_failed)(struct fpg_conn *c, const char *why,
			       bool refused);
	/* Marked BROKEN: the owner closes it at the end of the loop turn. */
	void (*broken)(struct fpg_conn *c);
	/* Something waits for the end of this loop turn (a cork, deferred
	 * work): the owner calls fpg_conn_end_turn before waiting. */
	void (*end_turn)(struct fpg_conn *c);
};

enum fpg_conn_state {
	FPG_CONN_DOWN,	     /* no PGconn; may be (re)opened */
	FPG_CONN_CONNECTING, /* PQconnectPoll in progress */
	FPG_CONN_SETUP,	     /* session settings being applied */
	FPG_CONN_READY,	     /* usable */
	FPG_CONN_BROKEN,     /* failed; closed by its owner (fpg_conn_close) */
};

/*
 * Work put off on a connection (a coalesced group, see coalesce.h) to the
 * end of the first loop turn in which the connection has nothing in
 * flight or can take no work: run once, by fpg_conn_end_turn or
 * fpg_conn_run_deferred, whatever state the connection is in by then;
 * or, when what the connection runs meanwhile turns out slow, sent
 * elsewhere instead (leave, by fpg_conn_deferred_leave).
 */
struct fpg_conn_deferred {
	void (*run)(struct fpg_conn *c, struct fpg_conn_deferred *d);
	void (*leave)(struct fpg_conn *c, struct fpg_conn_deferred *d);
};

struct fpg_conn {
	struct fpg_evsrc ev;	/* the epoll callback finds us */
	const struct fpg_conn_env *env; /* NULL while parked */
	const struct fpg_conn_events *on; /* the owner's callbacks */
	struct fpg_pool *pool;	/* the owner (opaque here), NULL parked */
	PGconn *pg;		/* NULL when DOWN */
	int fd;			/* registered socket, -1 when none */
	uint32_t events;	/* current epoll interest */
	enum fpg_conn_state state;
	struct fpg_pgop *head, *tail; /* ops awaiting their Sync */
	unsigned inflight;	/* ops queued */
	unsigned groups;	/* of them coalesced groups (coalesce.c) */
	bool setup_failed;	/* the setup op got an error */
	char broken[256];	/* why it is BROKEN */
	bool corked;		/* TCP_CORK set for this loop turn */
	bool no_cork;		/* not TCP (unix socket): never cork */
	bool want_write;	/* libpq has output to flush: EPOLLOUT */
	bool held;		/* one request holds it alone (slow lane) */
	bool paused;		/* not reading: the holder's client is slow */
	bool cancel_pending;	/* a cancel is queued: no new work until sent */
	uint64_t id;		/* unique per connect: tells stale replies */
	bool guest;		/* left its pool (a transaction's): set by the
				   pool, see pool.h */
	struct fpg_list guest_link; /* in the running pool's guests */
	void (*on_idle)(struct fpg_conn *c, void *ctx); /* guests */
	void *idle_ctx;
	struct fpg_evsrc *raw;	/* out of pipeline mode: gets the events */
	uint64_t connect_started_ms;
	struct fpg_stmt_cache *stmts; /* prepared statements on this conn */
	void (*stmts_free)(struct fpg_stmt_cache *); /* (parked: no pool) */
	bool dirty;		/* ran client SQL outside an op (COPY) */
	bool tainted;		/* session no longer trusted: no new work,
				   replaced once its ops are over */
	bool superuser;		/* logged in as one (can change session
				   authorization) */
	struct fpg_msg home_msg; /* a guest going home (fpg_conn_send_home) */
	struct fpg_pool *home;	/* ... to this pool */
	unsigned barriers;	/* FPG_OP_BARRIER ops queued */
	uint64_t head_since_ms;	/* when the op at the head began to run */
	struct fpg_conn_deferred *deferred; /* see fpg_conn_defer */
};

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
	/* The next query after the one just put in single-row mode that
	 * wants it too, or -1 (NULL: none). */
	int (*next_single_row)(struct fpg_pgop *op);
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
	uint64_t ran_ms;	 /* set before on_done: how long it was at
				    the head of the queue (what PostgreSQL
				    took for it, roughly) */
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

/*
 * Stops (or restarts) reading a held connection's results, so that
 * PostgreSQL waits while the client is slow: memory stays bounded.
 */
void fpg_conn_pause(struct fpg_conn *conn, bool pause);

/* The libpq connection, for sending statements before fpg_conn_push_op. */
PGconn *fpg_conn_pg(struct fpg_conn *conn);

/*
 * Marks conn broken: no new work goes to it, and fpg_pool_reap() fails its
 * queued ops and closes it. Safe to call from inside op callbacks.
 */
void fpg_conn_fail(struct fpg_conn *conn, const char *why);

/* The statement cache attached to the connection (see query.c). */
struct fpg_stmt_cache *fpg_conn_stmts(struct fpg_conn *conn);

const char *fpg_conn_state_to_str(enum fpg_conn_state s);

/* A DOWN connection of owner, with env. Caller owns (fpg_conn_free). */
struct fpg_conn *fpg_conn_new(const struct fpg_conn_env *env,
			      const struct fpg_conn_events *on,
			      struct fpg_pool *owner);

/* Connects a DOWN connection (then sets it up; see on->ready). */
void fpg_conn_start(struct fpg_conn *conn);

/* Fails its ops with why and closes it (DOWN, ready to start again). */
void fpg_conn_close(struct fpg_conn *conn, const char *why);

/* fpg_conn_close, then frees it. NULL is a no-op. */
void fpg_conn_free(struct fpg_conn *conn);

/* Ends the loop turn (see fpg_conn_events.end_turn): runs the deferred
 * work if its time has come (struct fpg_conn_deferred), then lifts the turn's
 * TCP_CORK. */
void fpg_conn_end_turn(struct fpg_conn *conn);

/*
 * Puts d off (see struct fpg_conn_deferred; at most one at a time: see
 * fpg_conn_deferred_of). Borrowed until it runs.
 */
void fpg_conn_defer(struct fpg_conn *conn, struct fpg_conn_deferred *d);

/* The deferred work waiting on conn, or NULL. */
struct fpg_conn_deferred *fpg_conn_deferred_of(const struct fpg_conn *conn);

/* Runs conn's deferred work now, if any. */
void fpg_conn_run_deferred(struct fpg_conn *conn);

/* Sends conn's deferred work, if any, elsewhere: conn is stuck. */
void fpg_conn_deferred_leave(struct fpg_conn *conn);

/*
 * Sends what undoes one statement's settings before the next statement
 * of the same transaction (a coalesced group): RESET ALL, CLOSE ALL (a
 * function's open cursors), RESET ROLE and,
 * for a superuser login, RESET SESSION AUTHORIZATION, all prepared (needs
 * the statement cache). Returns how many were sent (no Sync), 0 when
 * sending failed. fpg_conn_settings_reset_ok tells whether a result is
 * one of theirs as sent.
 */
int fpg_conn_send_settings_reset(struct fpg_conn *conn);
bool fpg_conn_settings_reset_ok(PGresult *res);

/* READY: it may run statements. */
bool fpg_conn_alive(const struct fpg_conn *conn);

/*
 * Between loops: fpg_conn_park() takes it out of its loop (no thread
 * touches it then); fpg_conn_move() gives it to another owner and loop
 * and reads what libpq already holds.
 */
void fpg_conn_park(struct fpg_conn *conn);
void fpg_conn_move(struct fpg_conn *conn, const struct fpg_conn_env *env,
		   struct fpg_pool *owner);

/* The callback of a guest with no op left (see pool.h). */
void fpg_conn_set_idle(struct fpg_conn *conn,
		       void (*on_idle)(struct fpg_conn *c, void *ctx),
		       void *ctx);
