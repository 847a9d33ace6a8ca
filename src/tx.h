/*
 * Transaction sessions: an open PostgreSQL transaction kept between HTTP
 * requests, named by an unguessable token.
 *
 * A session lives in the table of its home worker (the one that began
 * it); the token encodes worker, slot and generation, plus 128 random bits
 * compared in constant time. Its connection left the home pool (a pool
 * "guest", see pool.h). A request for the session may arrive on any
 * worker: that worker takes the idle session (fpg_tx_take), runs one
 * statement on the connection in its own event loop, and the session goes
 * back to idle when the connection has nothing left to do. Only the table
 * slot's fields marked "lock" are shared; the rest belongs to whoever holds
 * the session (its runner while busy, the home worker while ending).
 *
 * The home worker's tick ends sessions idle too long or open too long
 * (rollback); commit, rollback and a broken connection end them too. An
 * ended session's token answers 410 with the reason until its slot is
 * reused.
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "fasterpg.h"

struct fpg_loop;
struct fpg_pool;
struct fpg_stats;
struct fpg_tx_registry;
struct fpg_conn;
struct fpg_tx;
struct fpg_tx_table;

#define FPG_TX_TOKEN_LEN 46 /* hex of worker, slot, generation, secret */

enum fpg_tx_isolation {
	FPG_TX_READ_COMMITTED,
	FPG_TX_REPEATABLE_READ,
	FPG_TX_SERIALIZABLE,
};

struct fpg_tx_options {
	enum fpg_tx_isolation isolation;
	bool read_only;
	bool deferrable;
	unsigned idle_timeout_ms; /* already capped by the server maximum */
};

/* What ends a session; also the 410 answer's reason. */
enum fpg_tx_end {
	FPG_TX_OPEN = 0,
	FPG_TX_COMMITTED,
	FPG_TX_ROLLED_BACK,
	FPG_TX_COMMIT_FAILED,
	FPG_TX_IDLE_TIMEOUT,
	FPG_TX_LIFETIME,
	FPG_TX_CONN_LOST,
	FPG_TX_COMMIT_UNKNOWN,	/* lost before COMMIT came back */
	FPG_TX_BEGIN_FAILED,
	FPG_TX_SHUTDOWN,
	FPG_TX_ENDED_BY_STATEMENT,
};

const char *fpg_tx_end_to_str(enum fpg_tx_end end);

/* What a worker's table is given: borrowed, each outlives the table. */
struct fpg_tx_deps {
	unsigned index;			/* the worker's, < the registry's size */
	struct fpg_pool *pool;		/* the worker's */
	struct fpg_loop *loop;
	struct fpg_stats *stats;
	const struct fpg_options *opts;
};

/* A worker's table of slots sessions, registered in reg. Caller owns. */
struct fpg_tx_table *fpg_tx_table_new(struct fpg_tx_registry *reg,
				      const struct fpg_tx_deps *deps,
				      unsigned slots, struct fpg_error *err);

/* Frees the table; parked connections are closed (PostgreSQL rolls back). */
void fpg_tx_table_free(struct fpg_tx_table *t);

/* Called back when a session's step is over (began, statement done,
 * ended). err is NULL on success. */
typedef void (*fpg_tx_done_fn)(void *ctx, struct fpg_tx *tx,
			       const struct fpg_error *err);

/*
 * Begins a session on worker w (its home): a connection of its own,
 * BEGIN with the options, then done(ctx, tx, NULL) with the token ready
 * (fpg_tx_token), or done(ctx, NULL, err). Returns the session, or NULL
 * with err filled when it fails at once (too many sessions: 503).
 */
struct fpg_tx *fpg_tx_begin(struct fpg_tx_table *here, struct fpg_pool *pool,
			    const struct fpg_tx_options *opts,
			    fpg_tx_done_fn done, void *ctx,
			    struct fpg_error *err);

/*
 * The caller of fpg_tx_begin or fpg_tx_finish goes away (its client left):
 * done is not called any more; a session still beginning is rolled back
 * as soon as it has begun, since nobody will ever learn its token.
 */
void fpg_tx_abandon(struct fpg_tx *tx);

/* Writes the session's token (FPG_TX_TOKEN_LEN + 1 bytes). */
void fpg_tx_token(const struct fpg_tx *tx, char *out);

/* Deadlines to tell the client, in ms from now. */
unsigned fpg_tx_idle_timeout_ms(const struct fpg_tx *tx);
uint64_t fpg_tx_expires_in_ms(const struct fpg_tx *tx, uint64_t now_ms);

/*
 * Takes the session named by token for one step on worker w, for a
 * caller of the login of pool caller (a session of another login is
 * unknown to it: 404). Returns its
 * connection, ready to run in w's loop, or NULL with err: 404 unknown
 * token, 410 ended (with the reason), 409 busy. The session is released
 * when the connection has nothing left to do: a failed or finished
 * statement, a client gone, a broken connection.
 */
struct fpg_conn *fpg_tx_take(struct fpg_tx_table *here, struct fpg_pool *caller,
			     const char *token, struct fpg_tx **txp,
			     struct fpg_error *err);

/*
 * fpg_tx_take for the token that s starts with, up to the first '/' or
 * the end (a path's "{token}/query"); 404 when that cannot be a token.
 */
struct fpg_conn *fpg_tx_take_prefix(struct fpg_tx_table *here,
				    struct fpg_pool *caller, const char *s,
				    struct fpg_tx **txp,
				    struct fpg_error *err);

/*
 * Takes a session just begun by this worker (done's tx) for its first
 * step, as fpg_tx_take does for a token. NULL if it already ended.
 */
struct fpg_conn *fpg_tx_claim(struct fpg_tx_table *here, struct fpg_tx *tx);

/* The session's connection failed a statement before queueing anything:
 * release it now (no op will). */
void fpg_tx_release_if_idle(struct fpg_tx *tx);

/*
 * Ends a session taken with fpg_tx_take: COMMIT (commit) or ROLLBACK,
 * then done(ctx, tx, err) — a failed COMMIT (e.g. serialization failure)
 * still ends the session, rolled back.
 */
void fpg_tx_finish(struct fpg_tx *tx, bool commit, fpg_tx_done_fn done,
		   void *ctx);

/* Home worker tick: ends sessions past their idle or lifetime deadline. */
void fpg_tx_tick(struct fpg_tx_table *here);

/*
 * The registry of every worker's table, shared by all workers: made
 * before them, freed after them. At most max sessions are open at once.
 */
struct fpg_tx_registry *fpg_tx_registry_new(unsigned ntables, unsigned max,
					    struct fpg_error *err);
void fpg_tx_registry_free(struct fpg_tx_registry *reg);

/* Sessions open in the whole server. Any thread. */
unsigned fpg_tx_open_count(struct fpg_tx_registry *reg);
