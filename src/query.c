#include "query.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "claims.h"
#include "coalesce.h"
#include "error.h"
#include "log.h"
#include "loop.h"
#include "pool.h"
#include "stats.h"
#include "stmt.h"
#include "typecache.h"

#define MAX_TYPE_LOOKUP FPG_STMT_MAX_TYPES

/* "{16385,16390}" for the lookup's $1. */
#define OID_LITERAL_SIZE (MAX_TYPE_LOOKUP * 11 + 3)
static void oid_literal(char *lit, const uint32_t *oids, size_t n)
{
	size_t len = 0;
	lit[len++] = '{';
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(lit + len, OID_LITERAL_SIZE - len,
					"%s%u", i ? "," : "", oids[i]);
	lit[len++] = '}';
	lit[len] = '\0';
}

/* ---- finishing ---- */

static void finish(struct fpg_query *q, PGresult *res,
		   const struct fpg_error *err)
{
	fpg_loop_timer_disarm(fpg_pool_env(q->pool)->loop, &q->deadline);
	if (q->holds)
		fpg_conn_release(q->conn);
	q->holds = false;
	q->done = true;
	q->op = NULL;
	q->stmt = NULL;
	q->ops->finish(q, res, err);
}

static void finish_err(struct fpg_query *q, enum fpg_errcode code,
		       int status, const char *msg)
{
	struct fpg_error err;
	fpg_error_set(&err, code, status, "%s", msg);
	finish(q, NULL, &err);
}

static void finish_empty(struct fpg_query *q)
{
	struct fpg_error err;
	fpg_error_set(&err, FPG_ERR_REQUEST, 400,
		      "the SQL holds no statement (only comments or "
		      "semicolons)");
	err.reason = "empty_query";
	finish(q, NULL, &err);
}

static void finish_tx_ended(struct fpg_query *q, const char *what)
{
	struct fpg_error err;
	fpg_error_set(&err, FPG_ERR_REQUEST, 409,
		      "the statement ended the session's transaction: the "
		      "statements before it were %s, and the session is over",
		      what);
	err.reason = "transaction_ended";
	finish(q, NULL, &err);
}

static void finish_pg_err(struct fpg_query *q, PGresult *res)
{
	struct fpg_error err;
	fpg_error_from_pg(&err, res);
	finish(q, res, &err);
}

static void finish_broken(struct fpg_query *q, const char *why)
{
	char tidy[200], msg[256];
	fpg_error_tidy(tidy, sizeof(tidy), why);
	snprintf(msg, sizeof(msg), "connection to PostgreSQL lost: %s", tidy);
	finish_err(q, FPG_ERR_UNAVAILABLE, 503, msg);
}

/* ---- executing ---- */

static const char opened_tx_msg[] =
	"the statement opens a transaction; statements of /query each "
	"commit on their own (use /tx for transactions)";

/* Column i of res as it describes it, but for the name. */
static void describe_column(struct fpg_column *col, const PGresult *res,
			    int i)
{
	col->type = PQftype(res, i);
	col->table = PQftable(res, i);
	col->table_col = PQftablecol(res, i);
	col->size = PQfsize(res, i);
	col->mod = PQfmod(res, i);
}

/*
 * Unnamed statements (--statement-cache=0) are parsed again with every
 * run, so a table changed since the statement was described shows in the
 * run's own columns: those are the ones the answer uses.
 */
static void columns_from(struct fpg_query *q, const PGresult *res)
{
	int n = PQnfields(res);
	struct fpg_column *cols = calloc((size_t)(n ? n : 1), sizeof(*cols));
	q->columns_pending = false;
	if (!cols) {
		q->garbled = true;
		return;
	}
	for (int i = 0; i < n; i++) {
		cols[i].name = PQfname(res, i);
		describe_column(&cols[i], res, i);
	}
	q->ops->columns(q, n, cols);
	free(cols);
}

/* Result idx of the queries q sent for its statement. */
static void query_result(struct fpg_query *q, PGresult *res, int idx)
{
	ExecStatusType status = PQresultStatus(res);
	if (idx == q->typecheck_query &&
	    status == PGRES_TUPLES_OK) {
		struct fpg_error err;
		if (!fpg_typecache_refresh(fpg_pool_env(q->pool)->types,
					   res, &err))
			fpg_log_warn("query", NULL, "type refresh failed: %s",
				     err.message);
		PQclear(res);
		return;
	}
	if (idx != q->stmt_query) {
		/* A set_config() before the statement (timeout, claims). In
		 * the statement's own part its failure is the statement's (the
		 * statement did not run); in a part of its own the statement
		 * ran without it (the server's timeout, no claims). */
		if (status == PGRES_FATAL_ERROR && !q->error &&
		    idx >= q->segment && idx < q->stmt_query) {
			q->error = res;
			return;
		}
		PQclear(res);
		return;
	}
	if (q->columns_pending &&
	    (status == PGRES_SINGLE_TUPLE || status == PGRES_TUPLES_OK ||
	     status == PGRES_COMMAND_OK))
		columns_from(q, res);
	switch (status) {
	case PGRES_SINGLE_TUPLE:
		q->delivered = true;
		q->ops->row(q, res, 0);
		break;
	case PGRES_TUPLES_OK:
		/* Rows only arrive here if single-row mode was refused. */
		for (int i = 0; i < PQntuples(res); i++) {
			q->delivered = true;
			q->ops->row(q, res, i);
		}
		/* fall through */
	case PGRES_COMMAND_OK:
		PQclear(q->final);
		q->final = res;
		return;
	case PGRES_FATAL_ERROR:
		if (!q->error) {
			q->error = res;
			return;
		}
		break;
	case PGRES_EMPTY_QUERY:
		/* Only comments or semicolons: nothing ran. */
		q->empty = true;
		break;
	case PGRES_COPY_IN:
	case PGRES_COPY_OUT:
	case PGRES_COPY_BOTH:
		/*
		 * COPY cannot work inside a pipeline and libpq would wait for
		 * copy data forever: give up the connection.
		 */
		PQclear(res);
		fpg_conn_fail(q->conn, "COPY is not supported by /query");
		return;
	case PGRES_PIPELINE_ABORTED:
		/* Skipped after an earlier error of the op: q->error says why. */
		break;
	case PGRES_BAD_RESPONSE:
	case PGRES_NONFATAL_ERROR:
	case PGRES_PIPELINE_SYNC:
	default:
		/* Not a reply we can trust for this statement. */
		q->garbled = true;
		break;
	}
	PQclear(res);
}

static void exec_result(struct fpg_pgop *op, PGresult *res)
{
	struct fpg_query *q = op->ctx;
	if (!q) {
		PQclear(res);
		return;
	}
	query_result(q, res, op->queries_done);
}

static void on_conn(struct fpg_pool_waiter *wt, struct fpg_conn *conn);

/*
 * A cached statement that no longer works on this connection is prepared
 * anew and the request runs once more: after DDL changed a table (0A000
 * "cached plan must not change result type", raised before it runs), or
 * when client SQL deallocated it (26000). Deallocation is not something
 * the pool did, so that connection is replaced afterwards. And a statement
 * that must be the first of its transaction (VACUUM, CREATE DATABASE, ...:
 * 25001, raised before it does anything) runs again with the claims in a
 * part of their own (and without the trace's application_name).
 */
static bool replan(struct fpg_query *q, const PGresult *error)
{
	const char *state = PQresultErrorField(error, PG_DIAG_SQLSTATE);
	const char *msg = PQresultErrorField(error, PG_DIAG_MESSAGE_PRIMARY);
	if (q->retried || !state || !msg || q->delivered)
		return false;
	if (strcmp(state, "25001") == 0 && (q->claims || q->trace) &&
	    !q->conn_fixed && !q->claims_alone) {
		q->claims_alone = true;
		q->retried = true;
		q->op = NULL;
		on_conn(&q->waiter, q->conn);
		return true;
	}
	bool stale = strcmp(state, "0A000") == 0 &&
		     strstr(msg, "cached plan must not change result type");
	bool gone = strcmp(state, "26000") == 0;
	if (!stale && !gone)
		return false;
	struct fpg_stmt_cache *c = fpg_conn_stmts(q->conn);
	if (!c)
		return false;
	struct fpg_stmt *st = fpg_stmt_find(c, q->sql, q->sql_hash);
	if (gone) {
		fpg_conn_taint(q->conn, "client SQL deallocated a prepared "
					"statement of the pool");
		if (st && st->state == FPG_STMT_READY) {
			fpg_stmt_remove(c, st);
			fpg_stmt_free(st);
		}
	} else if (st && st->state == FPG_STMT_READY) {
		fpg_stmt_drop(q->conn, c, st);
	}
	q->retried = true;
	q->op = NULL;
	on_conn(&q->waiter, q->conn);
	return true;
}

/* The statement q runs, if the connection's cache still has it ready. */
static struct fpg_stmt *stmt_of(struct fpg_query *q)
{
	struct fpg_stmt_cache *c = fpg_conn_stmts(q->conn);
	struct fpg_stmt *st = c ? fpg_stmt_find(c, q->sql, q->sql_hash) : NULL;
	return st && st->state == FPG_STMT_READY ? st : NULL;
}

static void learn_kind(struct fpg_query *q, bool opened_tx,
		       PGresult *final)
{
	struct fpg_stmt *st = stmt_of(q);
	if (!st)
		return;
	st->kind = opened_tx ? FPG_STMT_OPENS_TX : FPG_STMT_PLAIN;
	st->reads = !opened_tx && final &&
		    strncmp(PQcmdStatus(final), "SELECT ", 7) == 0;
}

/* Run again from the start on q->conn (or elsewhere, if it cannot take
 * it): what came of the run before is void. */
static void run_again(struct fpg_query *q)
{
	PQclear(q->final);
	PQclear(q->error);
	q->final = q->error = NULL;
	q->empty = q->garbled = q->delivered = false;
	q->op = NULL;
	on_conn(&q->waiter, q->conn);
}

/*
 * In a group a statement that writes fails with 25006, the transaction
 * being read-only, and one that would change the transaction itself
 * (set_config('transaction_read_only', 'off'), ...) with another error of
 * class 25 (invalid transaction state): either runs again alone, where it
 * may, and never joins a group again on this connection.
 */
static bool wrote_in_group(struct fpg_query *q, const PGresult *error)
{
	const char *state = PQresultErrorField(error, PG_DIAG_SQLSTATE);
	if (!q->in_group || q->alone || !state || strncmp(state, "25", 2) != 0)
		return false;
	struct fpg_stmt *st = stmt_of(q);
	if (st)
		st->alone = true;
	q->alone = true;
	FPG_STAT_ADD(fpg_pool_env(q->pool)->stats->coalesce_reruns, 1);
	return true;
}

/*
 * In a transaction session, what a statement that ended the session's
 * transaction did to the statements before it, or NULL. The tag alone
 * does not tell (ROLLBACK TO SAVEPOINT is "ROLLBACK" too): the session
 * must also be out of its transaction.
 */
static const char *ended_tx(struct fpg_query *q, PGresult *final)
{
	const char *tag = PQcmdStatus(final);
	if (!fpg_conn_out_of_tx(q->conn))
		return NULL;
	if (strcmp(tag, "COMMIT") == 0)
		return "committed";
	if (strcmp(tag, "ROLLBACK") == 0)
		return "rolled back";
	if (strcmp(tag, "PREPARE TRANSACTION") == 0)
		return "prepared for two-phase commit";
	return NULL;
}

/*
 * The run is over (its Sync and the reset after it arrived, or the
 * connection broke): the answer, or a run again. op is the statement's
 * own, NULL in a group.
 */
static void settle(struct fpg_query *q, struct fpg_pgop *op,
		   const char *broken)
{
	PGresult *final = q->final, *error = q->error;
	bool empty = q->empty, garbled = q->garbled;
	bool opened_tx = op && op->opened_tx;
	const char *ended;
	if (!broken && error && !opened_tx && wrote_in_group(q, error)) {
		q->in_group = false;
		run_again(q);
		return;
	}
	q->in_group = false;
	q->final = q->error = NULL;
	q->empty = q->garbled = false;
	if (!broken && (final || empty))
		learn_kind(q, opened_tx, final);
	if (!broken && error && !opened_tx) {
		/* A replanned run keeps the held connection. */
		bool release = op && op->release;
		if (op)
			op->release = false;
		q->holds = release;
		if (replan(q, error)) {
			PQclear(final);
			PQclear(error);
			return;
		}
		if (op)
			op->release = release;
		q->holds = false;
	}
	if (broken)
		finish_broken(q, broken);
	else if (opened_tx)
		finish_err(q, FPG_ERR_REQUEST, 400, opened_tx_msg);
	else if (error)
		finish_pg_err(q, error);
	else if (garbled || (!final && !empty))
		finish_err(q, FPG_ERR_SYSTEM, 500,
			   "PostgreSQL sent an unexpected reply");
	else if (empty)
		finish_empty(q);
	else if (q->conn_fixed && (ended = ended_tx(q, final)))
		finish_tx_ended(q, ended);
	else
		finish(q, final, NULL);
	PQclear(final);
	PQclear(error);
}

static void exec_done(struct fpg_pgop *op, const char *broken)
{
	struct fpg_query *q = op->ctx;
	if (!q)
		return;
	q->ran_ms = op->ran_ms;
	q->ran_grouped = false;
	settle(q, op, broken);
}

/*
 * The per-statement timeout. On a shared session it is set for the
 * session in a part of the op of its own, so that the statement is the
 * first of its transaction (VACUUM and the like refuse to run after
 * another statement of a pipeline), and the reset after it puts the
 * server's back. In a transaction session it is local to the
 * transaction and set back right after the statement.
 */
static const char timeout_sql[] =
	"SELECT pg_catalog.set_config('statement_timeout', $1, "
	"$2::pg_catalog.bool)";

/*
 * A JWT's claims for SQL: request.jwt.claims is the payload, and each
 * top-level claim whose name is an identifier is request.jwt.claim.NAME
 * too (as PostgREST had it). Qualified throughout: in a transaction
 * session the client's search_path is in force.
 */
static const char claims_sql[] =
	"SELECT pg_catalog.set_config('request.jwt.claims', "
	"$1::pg_catalog.text, $4::pg_catalog.bool), "
	"pg_catalog.set_config('fasterpg.claims_at', $2::pg_catalog.text, "
	"$4::pg_catalog.bool), "
	"pg_catalog.set_config('fasterpg.claims_mac', $3::pg_catalog.text, "
	"$4::pg_catalog.bool), "
	"pg_catalog.count(pg_catalog.set_config("
	"pg_catalog.concat('request.jwt.claim.', key), value, "
	"$4::pg_catalog.bool)) FROM pg_catalog.json_each_text("
	"$1::pg_catalog.text::pg_catalog.json) WHERE pg_catalog.textregexeq(key, "
	"'^[A-Za-z_][A-Za-z0-9_$]*$')";

/*
 * A traced request's application_name (fpg_query.trace), local to the
 * statement's transaction: PostgreSQL puts the session's back when it
 * ends, so neither the reset nor a Sync of its own is needed, and the
 * statement keeps its cached plan (a comment in its text would not).
 */
static const char trace_sql[] =
	"SELECT pg_catalog.set_config('application_name', $1, true)";

/* Parsing it with every request cost PostgreSQL about 45 us, prepared
 * 10 (bench/auth.sh). */
const struct fpg_conn_stmt fpg_query_session_stmts[] = {
	{"fpg_claims", claims_sql},
	{"fpg_trace", trace_sql},
	{FPG_READ_ONLY_STMT, fpg_read_only_sql}, /* coalesce.c's */
};
const size_t fpg_query_nsession_stmts =
	sizeof(fpg_query_session_stmts) / sizeof(*fpg_query_session_stmts);

/* The claims, and their signature (fasterpg.claims_at and _mac, empty
 * without --claims-key-file), for the transaction or the session. Unnamed
 * without a statement cache: DISCARD ALL drops the prepared one. */
static bool send_claims(PGconn *pg, const struct fpg_query *q, bool local)
{
	const struct fpg_claims *c = q->claims;
	const char *v[4] = {c->json, c->at, c->mac, local ? "true" : "false"};
	if (fpg_pool_env(q->pool)->opts->statement_cache)
		return PQsendQueryPrepared(pg, "fpg_claims", 4, v, NULL, NULL,
					   0);
	return PQsendQueryParams(pg, claims_sql, 4, NULL, v, NULL, NULL, 0);
}

/* The trace's application_name, for the statement's transaction. */
static bool send_trace(PGconn *pg, const struct fpg_query *q)
{
	const char *v[1] = {q->trace};
	if (fpg_pool_env(q->pool)->opts->statement_cache)
		return PQsendQueryPrepared(pg, "fpg_trace", 1, v, NULL, NULL, 0);
	return PQsendQueryParams(pg, trace_sql, 1, NULL, v, NULL, NULL, 0);
}

/* Sends the statement timeout ms, for the transaction (local) or the
 * session (which the reset after the statement puts back). */
static bool send_timeout(PGconn *pg, const char *ms, bool local)
{
	const char *v[2] = {ms, local ? "true" : "false"};
	return PQsendQueryParams(pg, timeout_sql, 2, NULL, v, NULL, NULL, 0);
}

/*
 * A statement that may share a read-only transaction with others
 * (coalesce.h): one known to only read, on a shared session, asking for
 * nothing of its own (a timeout, the claims apart, a held connection),
 * prepared (a group's reset needs the statement cache), whose rows need
 * no type lookup first.
 */
static bool may_group(const struct fpg_query *q)
{
	return fpg_pool_env(q->pool)->opts->coalesce > 1 && !q->conn_fixed &&
	       !q->exclusive && !q->holds && !q->timeout_ms &&
	       !q->claims_alone && !q->alone && !q->ungrouped;
}

static bool groupable(const struct fpg_query *q, const struct fpg_stmt *st)
{
	return may_group(q) && st->name[0] && st->kind == FPG_STMT_PLAIN &&
	       st->reads && !st->alone && !st->ncomposite;
}

static void execute(struct fpg_query *q, struct fpg_conn *conn,
		    struct fpg_stmt *st, bool may_group)
{
	FPG_ASSERT(st->state == FPG_STMT_READY);
	if (q->nparams != st->nparams) {
		char msg[160];
		snprintf(msg, sizeof(msg),
			 "the statement has %d parameter%s but params has "
			 "%d value%s",
			 st->nparams, st->nparams == 1 ? "" : "s", q->nparams,
			 q->nparams == 1 ? "" : "s");
		finish_err(q, FPG_ERR_REQUEST, 400, msg);
		return;
	}
	if (st->kind == FPG_STMT_OPENS_TX && !q->conn_fixed) {
		finish_err(q, FPG_ERR_REQUEST, 400, opened_tx_msg);
		return;
	}
	if (!q->conn_fixed && !q->holds && !fpg_conn_shareable(conn)) {
		/* The statement became ready behind another that may open a
		 * transaction (or on a session about to be replaced): what
		 * joins the queue now could run inside it. Go elsewhere. */
		q->conn = NULL;
		fpg_pool_acquire(q->pool, &q->waiter);
		return;
	}
	if (may_group && groupable(q, st)) {
		fpg_coalesce_add(conn, &q->member,
				 fpg_pool_env(q->pool)->opts->coalesce);
		return;
	}
	FPG_ASSERT(!(q->read_only && q->conn_fixed));
	PGconn *pg = fpg_conn_pg(conn);
	q->stmt_query = 0;
	unsigned flags = 0;
	if (!q->conn_fixed)
		flags = FPG_OP_RESET |
			(st->kind == FPG_STMT_UNTRIED ? FPG_OP_BARRIER : 0);
	char ms[16], dflt[16], lit[OID_LITERAL_SIZE];
	q->typecheck_query = -1;
	if (st->ncomposite) {
		/* Ahead of the rows, so they are encoded as the catalog
		 * says now. */
		oid_literal(lit, st->composite, st->ncomposite);
		const char *v[1] = {lit};
		if (!PQsendQueryParams(pg, fpg_typecache_lookup_sql, 1, NULL, v,
				       NULL, NULL, 0))
			goto fail;
		q->typecheck_query = q->stmt_query++;
	}
	/*
	 * Claims go in the statement's own part, local to its transaction:
	 * no extra transaction. So does the timeout in a transaction
	 * session. On a shared session the timeout gets a part of its own
	 * first, for the session, so that the statement is the first of its
	 * transaction (VACUUM and the like refuse to run after another
	 * statement of a pipeline), and so do claims for a statement that
	 * refused them (claims_alone, see replan); the reset after the
	 * statement puts them back. The timeout is unnamed: client SQL
	 * could replace a named one.
	 */
	bool claims_first = q->claims && q->claims_alone && !q->conn_fixed;
	bool own_part = !q->conn_fixed && (q->timeout_ms || claims_first);
	snprintf(ms, sizeof(ms), "%u", q->timeout_ms);
	if (q->timeout_ms) {
		if (!send_timeout(pg, ms, !own_part))
			goto fail;
		q->stmt_query++;
	}
	if (claims_first) {
		if (!send_claims(pg, q, false))
			goto fail;
		q->stmt_query++;
	}
	if (own_part) {
		if (!PQpipelineSync(pg))
			goto fail;
		flags |= FPG_OP_TWO_PARTS;
	}
	q->segment = own_part ? q->stmt_query : 0;
	if (q->claims && !claims_first) {
		if (!send_claims(pg, q, true))
			goto fail;
		q->stmt_query++;
	}
	if (q->read_only) {
		/* In the statement's implicit transaction, before it took a
		 * snapshot: nothing it runs can turn it back (25001 or "must
		 * be set before any query"), and a failure here is its own
		 * (q->segment). Unnamed: what makes a named query read-only
		 * must be what was sent, whatever client SQL prepared. */
		if (!PQsendQueryParams(pg, fpg_read_only_sql, 0, NULL, NULL,
				       NULL, NULL, 0))
			goto fail;
		q->stmt_query++;
	}
	/* Last before the statement, in its part: what pg_stat_activity
	 * shows while it runs. A statement that must run alone runs
	 * untraced (claims_alone, see replan). */
	if (q->trace && !q->claims_alone) {
		if (!send_trace(pg, q))
			goto fail;
		q->stmt_query++;
	}
	/* Without a statement cache (--statement-cache=0) the statement is
	 * not kept under a name: it is parsed again with each run, and
	 * DEALLOCATE ALL in the reset can meet none of ours. */
	if (!(st->name[0] ? PQsendQueryPrepared(pg, st->name, q->nparams,
						q->params, NULL, NULL, 0)
			  : PQsendQueryParams(pg, q->sql, q->nparams, NULL,
					      q->params, NULL, NULL, 0)))
		goto fail;
	if (q->timeout_ms && q->conn_fixed) {
		snprintf(dflt, sizeof(dflt), "%u",
			 fpg_pool_env(q->pool)->statement_timeout_ms);
		if (!send_timeout(pg, dflt, true))
			goto fail;
	}
	q->columns_pending = !st->name[0];
	if (st->name[0])
		q->ops->columns(q, st->ncols, st->cols);
	/* A transaction's session is the client's own; any other is reset
	 * after every statement. */
	q->op = fpg_conn_push_op(conn, exec_result, exec_done, q,
				 q->stmt_query, flags);
	if (q->op && q->holds) {
		/* The hold ends with the statement and its reset, even if q
		 * goes away. */
		q->op->release = true;
		q->holds = false;
	}
	return;
fail:;
	char why[256];
	snprintf(why, sizeof(why), "%s", PQerrorMessage(pg));
	fpg_conn_fail(conn, why);
	finish_broken(q, why);
}

/* ---- preparing ---- */

/*
 * 42P05: client SQL prepared a statement under the name the pool was
 * about to give this one (the names are visible in pg_prepared_statements).
 */
static bool name_taken(const PGresult *error)
{
	const char *state = PQresultErrorField(error, PG_DIAG_SQLSTATE);
	return state && strcmp(state, "42P05") == 0;
}

/* Once, on another connection: nothing of q ran yet. */
static bool retry_elsewhere(struct fpg_query *q)
{
	if (q->retried || q->conn_fixed)
		return false;
	q->retried = true;
	if (q->holds)
		fpg_conn_release(q->conn);
	q->holds = false;
	q->conn = NULL;
	fpg_pool_acquire(q->pool, &q->waiter);
	return true;
}

static void release_waiters(struct fpg_stmt *st, struct fpg_conn *conn,
			    const char *broken)
{
	/* Those that come while these are handled wait for the next call. */
	struct fpg_list now, *n;
	fpg_list_init(&now);
	while ((n = fpg_list_first(&st->waiters))) {
		fpg_list_remove(n);
		fpg_list_push_back(&now, n);
	}
	while ((n = fpg_list_first(&now))) {
		fpg_list_remove(n);
		struct fpg_query *q = FPG_CONTAINER_OF(n, struct fpg_query, wait_link);
		q->stmt = NULL;
		if (broken)
			finish_broken(q, broken);
		else if (st->error && !(name_taken(st->error) && retry_elsewhere(q)))
			finish_pg_err(q, st->error);
		else if (!st->error)
			execute(q, conn, st, true);
	}
}

static bool save_columns(struct fpg_stmt *st, const PGresult *res)
{
	int n = PQnfields(res);
	size_t names = 0;
	for (int i = 0; i < n; i++)
		names += strlen(PQfname(res, i)) + 1;
	st->cols = malloc(sizeof(*st->cols) * (size_t)n + names + 1);
	if (!st->cols)
		return false;
	char *p = (char *)(st->cols + n);
	for (int i = 0; i < n; i++) {
		size_t l = strlen(PQfname(res, i)) + 1;
		memcpy(p, PQfname(res, i), l);
		st->cols[i].name = p;
		describe_column(&st->cols[i], res, i);
		p += l;
	}
	st->ncols = n;
	st->nparams = PQnparams(res);
	return true;
}

/* Results of Parse (query 0 of the op) and Describe (query 1). */
static void prep_result(struct fpg_pgop *op, PGresult *res)
{
	struct fpg_stmt *st = op->ctx;
	ExecStatusType s = PQresultStatus(res);
	if (s == PGRES_FATAL_ERROR && !st->error) {
		st->error = res;
		return;
	}
	if (s == PGRES_COMMAND_OK && op->queries_done == 1 && !st->error &&
	    !save_columns(st, res)) {
		/* Treat as a failed Parse: the waiters get an error. */
		st->error = res;
		return;
	}
	PQclear(res);
}

static void types_result(struct fpg_pgop *op, PGresult *res)
{
	struct fpg_stmt *st = op->ctx;
	const struct fpg_conn_env *w = fpg_pool_env(st->cache->pool);
	struct fpg_error err;
	if (PQresultStatus(res) != PGRES_TUPLES_OK ||
	    !fpg_typecache_load(w->types, res, st->missing, st->nmissing,
				&err)) {
		/* Values of these types go out as strings meanwhile. */
		fpg_log_warn("query", NULL, "type lookup failed: %s",
			     PQresultStatus(res) == PGRES_TUPLES_OK
				     ? err.message
				     : PQresultErrorMessage(res));
	}
	PQclear(res);
}

/*
 * ALTER TYPE changes a composite type under the same OID, which the
 * worker's descriptions would not notice: statements returning one look
 * their types up again with every run (see execute).
 */
static void note_composites(struct fpg_stmt *st)
{
	const struct fpg_typecache *tc =
		fpg_pool_env(st->cache->pool)->types;
	st->ncomposite = 0;
	for (int i = 0; i < st->ncols && st->ncomposite < MAX_TYPE_LOOKUP; i++)
		if (fpg_typecache_has_composite(tc, st->cols[i].type))
			st->composite[st->ncomposite++] = st->cols[i].type;
}

static void stmt_ready(struct fpg_stmt *st, struct fpg_conn *conn)
{
	FPG_ASSERT(st->state == FPG_STMT_PREPARING ||
		   st->state == FPG_STMT_TYPING);
	note_composites(st);
	st->state = FPG_STMT_READY;
	release_waiters(st, conn, NULL);
}

static void types_done(struct fpg_pgop *op, const char *broken)
{
	struct fpg_stmt *st = op->ctx;
	if (broken) {
		release_waiters(st, NULL, broken);
		return;
	}
	stmt_ready(st, st->cache->conn);
}

/* Looks up column types the worker's cache does not know yet. */
static bool lookup_types(struct fpg_stmt *st, struct fpg_conn *conn)
{
	const struct fpg_conn_env *w = fpg_pool_env(st->cache->pool);
	uint32_t oids[MAX_TYPE_LOOKUP];
	size_t n = 0;
	for (int i = 0; i < st->ncols && n < MAX_TYPE_LOOKUP; i++)
		oids[n++] = st->cols[i].type;
	st->nmissing = fpg_typecache_missing(w->types, oids, n, st->missing,
					     MAX_TYPE_LOOKUP);
	if (st->nmissing == 0)
		return false;
	char lit[OID_LITERAL_SIZE];
	oid_literal(lit, st->missing, st->nmissing);
	const char *v[1] = {lit};
	PGconn *pg = fpg_conn_pg(conn);
	FPG_ASSERT(st->state == FPG_STMT_PREPARING);
	st->state = FPG_STMT_TYPING;
	if (!PQsendQueryParams(pg, fpg_typecache_lookup_sql, 1, NULL, v, NULL,
			       NULL, 0)) {
		char why[256];
		snprintf(why, sizeof(why), "%s", PQerrorMessage(pg));
		fpg_conn_fail(conn, why);
		return true;
	}
	fpg_conn_push_op(conn, types_result, types_done, st, -1, 0);
	return true;
}

static void prep_done(struct fpg_pgop *op, const char *broken)
{
	struct fpg_stmt *st = op->ctx;
	struct fpg_conn *conn = st->cache->conn;
	if (broken) {
		release_waiters(st, NULL, broken);
		return;
	}
	if (st->error) {
		/* Not prepared: forget it, so a later try parses again. */
		if (name_taken(st->error))
			fpg_conn_taint(conn, "client SQL prepared a statement "
					     "under the pool's next name");
		fpg_stmt_remove(st->cache, st);
		release_waiters(st, conn, NULL);
		fpg_stmt_free(st);
		return;
	}
	if (!lookup_types(st, conn))
		stmt_ready(st, conn);
}

static struct fpg_stmt *prepare(struct fpg_query *q, struct fpg_conn *conn,
				uint64_t h)
{
	struct fpg_stmt_cache *c = fpg_conn_stmts(conn);
	if (c->count >= FPG_STMT_MAX)
		fpg_stmt_evict(conn, c);
	struct fpg_stmt *st = calloc(1, sizeof(*st));
	if (st)
		fpg_list_init(&st->waiters);
	if (!st || !(st->sql = strdup(q->sql))) {
		free(st);
		finish_err(q, FPG_ERR_NOMEM, 503, "out of memory");
		return NULL;
	}
	st->hash = h;
	st->cache = c;
	st->state = FPG_STMT_PREPARING;
	/* Unnamed (described, never kept) without a statement cache. */
	if (fpg_pool_env(c->pool)->opts->statement_cache)
		snprintf(st->name, sizeof(st->name), "fpg_%u", c->next_id++);
	PGconn *pg = fpg_conn_pg(conn);
	if (!PQsendPrepare(pg, st->name, st->sql, 0, NULL) ||
	    !PQsendDescribePrepared(pg, st->name)) {
		char why[256];
		snprintf(why, sizeof(why), "%s", PQerrorMessage(pg));
		fpg_stmt_free(st);
		fpg_conn_fail(conn, why);
		finish_broken(q, why);
		return NULL;
	}
	fpg_stmt_insert(c, st);
	return st;
}

static void on_conn(struct fpg_pool_waiter *wt, struct fpg_conn *conn)
{
	struct fpg_query *q = FPG_CONTAINER_OF(wt, struct fpg_query, waiter);
	struct fpg_stmt_cache *c = fpg_conn_stmts(conn);
	uint64_t h = q->sql_hash;
	if (q->conn != conn)
		q->holds = q->exclusive;
	q->conn = conn;
	struct fpg_stmt *st = fpg_stmt_find(c, q->sql, h);
	if (st && st->state == FPG_STMT_READY) {
		fpg_stmt_touch(c, st);
		execute(q, conn, st, true);
		return;
	}
	bool fresh = !st;
	if (fresh && !(st = prepare(q, conn, h)))
		return;
	q->stmt = st;
	fpg_list_push_back(&st->waiters, &q->wait_link);
	if (fresh)
		fpg_conn_push_op(conn, prep_result, prep_done, st, -1, 0);
}

static void on_acquire_fail(struct fpg_pool_waiter *wt,
			    const struct fpg_error *err)
{
	struct fpg_query *q = FPG_CONTAINER_OF(wt, struct fpg_query, waiter);
	finish(q, NULL, err);
}

/*
 * PostgreSQL did not answer in time (frozen, or the statement queued
 * behind slow ones on a shared connection): the client hears so now.
 * On a connection of its own the statement is cancelled; on a shared one
 * it may still run, and its results are dropped.
 */
static void on_deadline(struct fpg_timer *t)
{
	struct fpg_query *q = FPG_CONTAINER_OF(t, struct fpg_query, deadline);
	if (q->done)
		return;
	struct fpg_error err;
	fpg_error_set(&err, FPG_ERR_UNAVAILABLE, 504,
		      "no answer from PostgreSQL within %u ms; the statement "
		      "was cancelled or may still complete",
		      q->deadline_ms);
	err.reason = "deadline_exceeded";
	fpg_query_abandon(q);
	q->ops->finish(q, NULL, &err);
}

static unsigned deadline_of(const struct fpg_query *q,
			    const struct fpg_conn_env *d)
{
	const struct fpg_options *o = d->opts;
	if (q->deadline_ms)
		return q->deadline_ms;
	unsigned stmt = q->timeout_ms ? q->timeout_ms : d->statement_timeout_ms;
	if (!stmt)
		return 0; /* no statement timeout: none here either */
	return o->acquire_timeout_ms + stmt + 1000;
}

/* ---- in a coalesced group ---- */

static struct fpg_query *query_of(struct fpg_coalesce_member *m)
{
	return FPG_CONTAINER_OF(m, struct fpg_query, member);
}

static bool member_can_join(struct fpg_coalesce_member *m)
{
	return stmt_of(query_of(m)) != NULL;
}

/* As execute() sends, less what a groupable statement never has. */
static bool member_send(struct fpg_coalesce_member *m, PGconn *pg, int *n,
			int *single_row)
{
	struct fpg_query *q = query_of(m);
	struct fpg_stmt *st = stmt_of(q);
	FPG_ASSERT(st); /* can_join said so, and nothing ran since */
	q->stmt_query = 0;
	q->segment = 0;
	q->typecheck_query = -1;
	if (q->claims) {
		if (!send_claims(pg, q, true))
			goto fail;
		q->stmt_query++;
	}
	if (q->trace) {
		if (!send_trace(pg, q))
			goto fail;
		q->stmt_query++;
	}
	if (!PQsendQueryPrepared(pg, st->name, q->nparams, q->params, NULL,
				 NULL, 0))
		goto fail;
	fpg_stmt_touch(st->cache, st);
	q->in_group = true;
	q->columns_pending = false;
	q->ops->columns(q, st->ncols, st->cols);
	*n = q->stmt_query + 1;
	*single_row = q->stmt_query;
	return true;
fail:;
	char why[256];
	snprintf(why, sizeof(why), "%s", PQerrorMessage(pg));
	fpg_conn_fail(q->conn, why);
	return false;
}

static void member_result(struct fpg_coalesce_member *m, PGresult *res,
			  int idx)
{
	query_result(query_of(m), res, idx);
}

static void member_done(struct fpg_coalesce_member *m, const char *broken,
			bool again, uint64_t ran_ms)
{
	struct fpg_query *q = query_of(m);
	if (q->outgrown && !broken && !again) {
		again = true;
		FPG_STAT_ADD(fpg_pool_env(q->pool)->stats->coalesce_reruns, 1);
	}
	q->outgrown = false;
	q->ran_ms = ran_ms;
	q->ran_grouped = !broken && !again;
	if (again && !broken) {
		q->in_group = false;
		q->alone = true;
		run_again(q);
		return;
	}
	settle(q, NULL, broken);
}

static void member_alone(struct fpg_coalesce_member *m, struct fpg_conn *conn)
{
	struct fpg_query *q = query_of(m);
	q->in_group = false; /* sent with a group that could not be */
	struct fpg_stmt *st = conn ? stmt_of(q) : NULL;
	if (st) {
		execute(q, conn, st, false);
	} else if (conn) {
		on_conn(&q->waiter, conn);
	} else {
		q->conn = NULL;
		fpg_pool_acquire(q->pool, &q->waiter);
	}
}

void fpg_query_outgrow_group(struct fpg_query *q)
{
	FPG_ASSERT(fpg_query_unsettled(q));
	q->outgrown = true;
}

static const struct fpg_coalesce_ops member_ops = {
	.can_join = member_can_join,
	.send = member_send,
	.result = member_result,
	.done = member_done,
	.alone = member_alone,
};

void fpg_query_submit(struct fpg_pool *pool, struct fpg_query *q)
{
	q->pool = pool;
	FPG_ASSERT(q->sql_hash == fpg_stmt_hash(q->sql));
	q->done = false;
	q->waiter.ready = on_conn;
	q->waiter.fail = on_acquire_fail;
	q->waiter.exclusive = q->exclusive;
	q->conn = NULL;
	q->holds = false;
	q->retried = q->delivered = q->empty = q->garbled = false;
	q->in_group = q->alone = q->outgrown = false;
	q->member.ops = &member_ops;
	q->waiter.reads = q->gathers && may_group(q);
	q->member.group = NULL;
	const struct fpg_conn_env *d = fpg_pool_env(pool);
	q->waiter.deadline_ms = d->loop->now_ms + d->opts->acquire_timeout_ms;
	q->deadline_ms = deadline_of(q, d);
	q->deadline.fire = on_deadline;
	if (q->deadline_ms)
		fpg_loop_timer_arm(d->loop, &q->deadline, q->deadline_ms);
	if (q->conn_fixed)
		on_conn(&q->waiter, q->conn_fixed);
	else
		fpg_pool_acquire(pool, &q->waiter);
}

void fpg_query_abandon(struct fpg_query *q)
{
	if (q->done || !q->pool)
		return;
	q->done = true;
	fpg_loop_timer_disarm(fpg_pool_env(q->pool)->loop, &q->deadline);
	fpg_pool_cancel_wait(q->pool, &q->waiter);
	fpg_coalesce_leave(&q->member);
	q->in_group = false;
	if (q->stmt) {
		fpg_list_remove(&q->wait_link);
		q->stmt = NULL;
	}
	if (q->op) {
		q->op->ctx = NULL;
		/* Nobody waits for the rest: stop it if it is ours alone. */
		if (q->exclusive)
			fpg_conn_cancel(q->conn);
	}
	q->op = NULL;
	if (q->holds)
		fpg_conn_release(q->conn);
	q->holds = false;
	PQclear(q->final);
	PQclear(q->error);
	q->final = q->error = NULL;
}

void fpg_query_pause(struct fpg_query *q, bool pause)
{
	if (q->exclusive && q->op && !q->done)
		fpg_conn_pause(q->conn, pause);
}

void fpg_query_cancel(struct fpg_query *q)
{
	if (q->exclusive && q->op && !q->done)
		fpg_conn_cancel(q->conn);
}

struct fpg_lanes *fpg_lanes_new(void)
{
	return calloc(1, sizeof(struct fpg_lanes));
}

void fpg_lanes_free(struct fpg_lanes *lanes)
{
	free(lanes);
}

/*
 * Large or slow before, or unknown while a connection is free: a large
 * answer on a connection of its own can wait for a slow client, and a
 * slow statement there holds up nobody (such statements wait for one of
 * the pool-max - 1 connections that may be held, not on the fast ones).
 * Known small, quick statements share a pipelined connection (the fast
 * lane).
 */
bool fpg_lanes_choose_own(const struct fpg_lanes *lanes,
			  struct fpg_pool *pool, uint64_t h)
{
	unsigned i = h % FPG_LANE_SLOTS;
	if (lanes->big[i] == h || lanes->slow[i] == h)
		return true;
	return lanes->small[i] != h && fpg_pool_can_hold(pool);
}

bool fpg_lanes_ungrouped(const struct fpg_lanes *lanes, uint64_t h)
{
	unsigned i = h % FPG_LANE_SLOTS;
	/* A large answer would outgrow what a member may hold back. */
	return lanes->slow[i] == h || lanes->solo[i] == h || lanes->big[i] == h;
}

void fpg_lanes_failed(struct fpg_lanes *lanes, const struct fpg_query *q)
{
	if (!q->ran_grouped)
		return;
	unsigned i = q->sql_hash % FPG_LANE_SLOTS;
	lanes->solo[i] = q->sql_hash;
	lanes->reads[i] = 0;
}

bool fpg_lanes_gathers(const struct fpg_lanes *lanes, uint64_t h)
{
	return lanes->reads[h % FPG_LANE_SLOTS] == h;
}

void fpg_lanes_learn(struct fpg_lanes *lanes, const struct fpg_query *q,
		     bool big)
{
	uint64_t sql_hash = q->sql_hash;
	unsigned i = sql_hash % FPG_LANE_SLOTS;
	bool slow = q->ran_ms > FPG_LANE_SLOW_MS, grouped = q->ran_grouped;
	/* A statement that wrote in a group (q->alone) is no reader. */
	if (grouped || q->alone)
		lanes->reads[i] = grouped ? sql_hash : 0;
	lanes->big[i] = big ? sql_hash : 0;
	lanes->small[i] = big ? 0 : sql_hash;
	/* A group's time is its slowest member's: each of them runs once
	 * alone to tell, and only a run alone marks one slow. */
	lanes->solo[i] = grouped && slow ? sql_hash : 0;
	if (!grouped || !slow)
		lanes->slow[i] = !grouped && slow ? sql_hash : 0;
}
