/*
 * One statement's answer, written into a buffer (a request's output) as
 * its rows come: query.c runs the statement, rowfmt.c writes the rows,
 * and this module holds them to the result limits -- max-result-rows,
 * max-result-bytes and, where the answer cannot wait for its client (a
 * shared connection, or an answer sent only once whole),
 * max-buffered-bytes and the worker's share of max-buffered-total. Rows
 * past a limit are counted, not written, and the answer ends with the
 * limit's error. The worker's count of buffered answer bytes
 * (fpg_services.buffered) includes this answer's pending bytes.
 *
 * Knows nothing of HTTP: its owner (a handler) decides when bytes go out.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "buf.h"
#include "error.h"
#include "params.h"
#include "query.h"
#include "rowfmt.h"

struct fpg_services;
struct fpg_answer;

struct fpg_answer_ops {
	/* A row was written to out (not for single-value answers, nor for
	 * dropped rows). May be NULL. */
	void (*row)(struct fpg_answer *a);
	/*
	 * The end, called once unless the answer was deinitialised first:
	 * as fpg_query_ops.finish, except that when rows were dropped err is
	 * the limit's and res NULL. May deinitialise and free a.
	 */
	void (*finish)(struct fpg_answer *a, PGresult *res,
		       const struct fpg_error *err);
};

struct fpg_answer {
	/* Set by fpg_answer_init. The owner sets q.exclusive and
	 * q.conn_fixed before fpg_answer_submit, and may set whole and ctx. */
	struct fpg_query q;
	struct fpg_rowfmt fmt;
	struct fpg_services *w;
	struct fpg_pool *pool;	/* the caller's login's */
	struct fpg_buf *out;	/* borrowed, outlives the answer */
	size_t out_start;	/* out's pending bytes before this answer */
	bool whole;		/* sent only once whole (a batch item): the
				   buffered limits apply on any connection */
	const struct fpg_answer_ops *ops;
	void *ctx;		/* the owner's */

	/* Read-only for the owner. */
	uint64_t rows;		/* rows PostgreSQL sent, written or not */
	size_t bytes;		/* row bytes written */
	bool have_columns;	/* the header was written */
	bool dropping;		/* rows past a limit: counted, not written */
	bool outgrown;		/* rows of a group's run past what it may
				   hold: dropped, it runs again alone */
	struct fpg_error limit;	/* why rows are dropped */
	size_t accounted;	/* of w->buffered, ours */
};

/*
 * The owner's verdict while fpg_query_unsettled(&a->q): what the answer
 * holds back is more than a member of a coalesced group may hold. The
 * rows so far are dropped, and those that follow, until the statement
 * runs again alone (ops see columns again).
 */
void fpg_answer_outgrow_group(struct fpg_answer *a);

/*
 * Prepares a to run st (borrowed until the end) into out, as format;
 * expect applies to JSON only. The statement timeout is st's, capped by
 * the server's.
 */
void fpg_answer_init(struct fpg_answer *a, struct fpg_services *w,
		     struct fpg_pool *pool,
		     struct fpg_buf *out, const struct fpg_statement *st,
		     enum fpg_rowfmt_format format, enum fpg_expect expect,
		     const struct fpg_answer_ops *ops);

/*
 * --sql-precheck: the friendly textual check of sql, for an early, clear
 * error (in_tx: inside a transaction session). True when the check is
 * off. Correctness does not depend on it: the pool and the transaction
 * sessions check what PostgreSQL says it did.
 */
bool fpg_answer_precheck(const struct fpg_services *w, const char *sql,
			 bool in_tx, struct fpg_error *err) FPG_MUST_CHECK;

/* Starts the statement on the worker's pool (or q.conn_fixed). */
void fpg_answer_submit(struct fpg_answer *a);

/* The client read some of out: brings w->buffered up to date. */
void fpg_answer_account(struct fpg_answer *a);

/*
 * Stops the statement if it still runs (no callback any more), gives
 * back its share of w->buffered and frees what a holds (not a itself).
 */
void fpg_answer_deinit(struct fpg_answer *a);
