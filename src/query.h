/*
 * Running one statement on a pipelined connection: a per-connection cache
 * of prepared statements (Parse + Describe once, so parameter counts are
 * checked and column types are known before anything runs), type lookups
 * for types that are not built in, the optional per-statement timeout, and
 * single-row mode so that no result is held whole in memory.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "coalesce.h"
#include "fasterpg.h"
#include "pool.h"
#include "loop.h"
#include "rowfmt.h"

struct fpg_claims;
struct fpg_query;
struct fpg_stmt;
struct fpg_stmt_cache;

struct fpg_query_ops {
	/*
	 * The result's columns, before any row; cols borrowed for the call.
	 * Called again (and everything before it is void) when the statement
	 * had to be prepared anew because its table changed.
	 */
	void (*columns)(struct fpg_query *q, int ncols,
			const struct fpg_column *cols);
	/* Row number row of res; res borrowed for the call. */
	void (*row)(struct fpg_query *q, const PGresult *res, int row);
	/*
	 * The end, called exactly once unless the query was abandoned. On
	 * success err is NULL and res the final result (command tag, row
	 * count); on failure err says why and res is PostgreSQL's error
	 * result or NULL. Both borrowed for the call. The connection is
	 * clean again (its Sync arrived) or was dropped. May be called from
	 * inside fpg_query_submit.
	 */
	void (*finish)(struct fpg_query *q, PGresult *res,
		       const struct fpg_error *err);
};

struct fpg_query {
	/* Set by the caller; borrowed until finish or abandon. */
	const char *sql;
	uint64_t sql_hash;	   /* fpg_stmt_hash(sql): the statement
				      cache's key and the lane memory's */
	int nparams;
	const char *const *params; /* text values, NULL = SQL NULL */
	unsigned timeout_ms;	   /* 0: the server's statement timeout */
	const struct fpg_claims *claims; /* a JWT's, for SQL to read as
					    request.jwt.claims, or NULL */
	const char *trace;	   /* application_name while the statement
				      runs (local to its transaction, so
				      PostgreSQL puts it back), or NULL */
	bool read_only;		   /* the statement's transaction is made
				      read-only first, in its own part
				      (PostgreSQL refuses writes: 25006);
				      not with conn_fixed */
	unsigned deadline_ms;	   /* the answer is due within this long,
				      else 504 (0: acquire timeout + the
				      statement's timeout + 1 s) */
	bool exclusive;		   /* run on a connection of its own (slow
				      lane): it can be paused and cancelled */
	struct fpg_conn *conn_fixed; /* run here (a transaction's), not on a
					pooled connection */
	const struct fpg_query_ops *ops;
	void *ctx;

	/* Private to query.c. */
	struct fpg_pool *pool;
	struct fpg_timer deadline;
	struct fpg_pool_waiter waiter;
	struct fpg_stmt *stmt;	       /* while waiting for its Describe */
	struct fpg_list wait_link;     /* in stmt's waiters */
	struct fpg_conn *conn;	       /* from acquisition on */
	bool holds;		       /* holds conn, no op will release it */
	struct fpg_pgop *op;	       /* while executing */
	int stmt_query;		       /* index of the statement in its op
					  (after a type check or settings) */
	int segment;		       /* index of the first query of the
					  statement's own part */
	int typecheck_query;	       /* index of the type lookup, or -1 */
	PGresult *final;	       /* kept until the Sync */
	PGresult *error;	       /* first error, kept until the Sync */
	bool empty;		       /* the SQL held no statement */
	bool garbled;		       /* a reply that fits no statement */
	bool delivered;		       /* a row went to ops->row */
	bool columns_pending;	       /* ops->columns waits for the run's
					  first result (unnamed statement) */
	bool done;
	bool retried;		       /* ran once more (stale plan, ...) */
	bool claims_alone;	       /* the claims get a part of their own
					  and the trace none (the statement
					  must run alone: 25001) */
	struct fpg_coalesce_member member; /* in a coalesced group */
	bool in_group;		       /* this run is a group's */
	bool alone;		       /* never in a group (any more): it ran
					  in one and must run again alone */
	bool ungrouped;		       /* set by the caller: never in a group
					  (fpg_lanes_ungrouped) */
	bool gathers;		       /* set by the caller: likely to join
					  one (fpg_lanes_gathers) */
	uint64_t ran_ms;	       /* before finish: how long its last
					  run took on PostgreSQL's side,
					  roughly (its group's, in one) */
	bool ran_grouped;	       /* ... and that run was a group's */
	bool outgrown;		       /* its answer outgrew its group's
					  run (fpg_query_outgrow_group) */
};

/* What every session of a pool prepares for query.c (fpg_conn_env). */
extern const struct fpg_conn_stmt fpg_query_session_stmts[];
extern const size_t fpg_query_nsession_stmts;

/* Starts q on a connection of pool (see fpg_query_ops for what follows). */
void fpg_query_submit(struct fpg_pool *pool, struct fpg_query *q);

/*
 * The owner of q is going away: no callback will be called any more, and
 * the statement's results, if it already runs, are read and dropped.
 */
void fpg_query_abandon(struct fpg_query *q);

/*
 * Stops reading the results of an exclusive query while its client is
 * slow, and starts again. Not for shared queries (a no-op there).
 */
void fpg_query_pause(struct fpg_query *q, bool pause);

/* Stops the statement of an exclusive query (PostgreSQL cancel). */
void fpg_query_cancel(struct fpg_query *q);

/*
 * Its rows so far may still be voided (ops->columns again): it runs in a
 * coalesced group whose outcome is not known yet. Until then nothing of
 * the answer may go out.
 */
static inline bool fpg_query_unsettled(const struct fpg_query *q)
{
	return fpg_coalesce_pending(&q->member);
}

/*
 * While q is unsettled: its answer is more than a member of a group may
 * hold back (where alone it would begin to stream, so that limits met
 * later are told in the answer, not by its status). What it gets until
 * the group ends is void; it then runs again alone.
 */
void fpg_query_outgrow_group(struct fpg_query *q);

#define FPG_LANE_SLOTS 256

/*
 * What earlier answers of a statement (by SQL hash) were like, to choose
 * its lane: small ones share a pipelined connection, large or unknown
 * ones get a connection of their own when one is free. Direct-mapped: a
 * statement sharing a slot with another only loses what was learnt.
 * Owned by whoever creates it; one thread only.
 */
struct fpg_lanes {
	uint64_t big[FPG_LANE_SLOTS];
	uint64_t small[FPG_LANE_SLOTS];
	uint64_t slow[FPG_LANE_SLOTS];
	uint64_t solo[FPG_LANE_SLOTS]; /* in a group that was slow, or
					  failed in one: alone next time */
	uint64_t reads[FPG_LANE_SLOTS]; /* ran in a group last time */
};

/*
 * A run alone that took longer than this marks its statement slow: it
 * runs on a connection of its own (waiting for one), and joins no
 * coalesced group, until a run takes less. The members of a group that
 * took longer run once alone (on the shared lane) to tell: a slow
 * neighbour cannot push them off it.
 */
#define FPG_LANE_SLOW_MS 5

/* A new lane memory that knows nothing yet. Caller owns; NULL on OOM. */
struct fpg_lanes *fpg_lanes_new(void);
void fpg_lanes_free(struct fpg_lanes *lanes);

/*
 * Whether a statement whose answer could be large (its hash h, of
 * fpg_stmt_hash) should run on a connection of its own (exclusive)
 * rather than a shared one of pool.
 */
bool fpg_lanes_choose_own(const struct fpg_lanes *lanes,
			  struct fpg_pool *pool, uint64_t h);

/* Remembers of q's finished run whether its answer was big, how long it
 * took (q->ran_ms) and whether it ran in a coalesced group. */
void fpg_lanes_learn(struct fpg_lanes *lanes, const struct fpg_query *q,
		     bool big);

/*
 * q's run ended with an error. One that was its own in a coalesced group
 * made every member ahead of it run again (a read's effects outside the
 * transaction twice): the statement runs alone next time, and joins
 * groups again once a run succeeds.
 */
void fpg_lanes_failed(struct fpg_lanes *lanes, const struct fpg_query *q);

/* The statement (its hash h) joins no group now: it was slow (see
 * FPG_LANE_SLOW_MS), failed in a group, or its answer was large. */
bool fpg_lanes_ungrouped(const struct fpg_lanes *lanes, uint64_t h);

/* The statement (its hash h) ran in a coalesced group last time: unless
 * it joins no group now, it looks for a connection where groups run
 * (fpg_query.gathers). */
bool fpg_lanes_gathers(const struct fpg_lanes *lanes, uint64_t h);
