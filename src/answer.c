#include "answer.h"

#include <stdio.h>
#include <string.h>

#include "encode.h"
#include "services.h"
#include "stats.h"
#include "stmt.h"

static const struct fpg_query_ops query_ops;

void fpg_answer_init(struct fpg_answer *a, struct fpg_services *w,
		     struct fpg_pool *pool, struct fpg_buf *out, const struct fpg_statement *st,
		     enum fpg_rowfmt_format format, enum fpg_expect expect,
		     const struct fpg_answer_ops *ops)
{
	memset(a, 0, sizeof(*a));
	fpg_rowfmt_init(&a->fmt, format, st->rows, expect,
			(st->big_numbers_string ? FPG_ENC_BIG_STRING : 0) |
				(st->text_values ? FPG_ENC_TEXT : 0),
			w->types);
	a->w = w;
	a->pool = pool;
	a->out = out;
	a->out_start = fpg_buf_pending(out);
	a->ops = ops;
	unsigned max = fpg_pool_env(pool)->statement_timeout_ms;
	a->q.timeout_ms = st->timeout_ms;
	if (max && a->q.timeout_ms > max)
		a->q.timeout_ms = max;
	a->q.sql = st->sql;
	a->q.sql_hash = fpg_stmt_hash(st->sql);
	a->q.nparams = st->nparams;
	a->q.params = (const char *const *)st->params;
	a->q.ops = &query_ops;
	a->q.ctx = a;
}

bool fpg_answer_precheck(const struct fpg_services *w, const char *sql,
			 bool in_tx, struct fpg_error *err)
{
	if (!w->opts->sql_precheck)
		return true;
	return in_tx ? fpg_statement_check_in_tx(sql, err)
		     : fpg_statement_check_autocommit(sql, err);
}

void fpg_answer_submit(struct fpg_answer *a)
{
	fpg_query_submit(a->pool, &a->q);
}

/*
 * Keeps the worker's count of answer bytes waiting for clients up to
 * date with ours: max-buffered-total caps them all together.
 */
void fpg_answer_account(struct fpg_answer *a)
{
	struct fpg_services *w = a->w;
	size_t now = fpg_buf_pending(a->out);
	w->buffered = w->buffered - a->accounted + now;
	a->accounted = now;
}

void fpg_answer_deinit(struct fpg_answer *a)
{
	fpg_query_abandon(&a->q);
	a->w->buffered -= a->accounted;
	a->accounted = 0;
	fpg_rowfmt_deinit(&a->fmt);
}

/* ---- limits ---- */

/* Rows from now on are dropped; the answer will end with the limit. */
static void start_dropping(struct fpg_answer *a, int status, const char *code,
			   const char *msg)
{
	a->dropping = true;
	fpg_error_set(&a->limit, FPG_ERR_LIMIT, status, "%s", msg);
	a->limit.reason = code;
	/* On a connection of our own, stop the statement too. */
	fpg_query_cancel(&a->q);
}

/* Before a row is written: would it be one too many? */
static bool row_allowed(struct fpg_answer *a)
{
	uint64_t max = a->w->opts->max_result_rows;
	if (!max || a->rows <= max)
		return true;
	char msg[200];
	snprintf(msg, sizeof(msg),
		 "the result has more than %llu rows (max-result-rows)",
		 (unsigned long long)max);
	start_dropping(a, 413, "result_too_large", msg);
	return false;
}

/* This worker's share of max-buffered-total is used up (the server
 * resolved threads = 0 to the worker count). */
static bool worker_full(const struct fpg_services *w)
{
	return w->buffered > w->opts->max_buffered_total / w->opts->threads;
}

/*
 * After a row was written (pending_before bytes were pending): a row
 * that crosses max-result-bytes is taken back; an answer that cannot
 * wait may not pile up past max-buffered-bytes.
 */
static void check_size(struct fpg_answer *a, size_t pending_before)
{
	const struct fpg_options *o = a->w->opts;
	struct fpg_buf *out = a->out;
	char msg[200];
	if (o->max_result_bytes && a->bytes > o->max_result_bytes) {
		out->len = out->off + pending_before;
		snprintf(msg, sizeof(msg),
			 "the result is larger than %zu bytes "
			 "(max-result-bytes)",
			 o->max_result_bytes);
		start_dropping(a, 413, "result_too_large", msg);
	} else if ((!a->q.exclusive || a->whole) &&
		   (fpg_buf_pending(out) > o->max_buffered_bytes ||
		    worker_full(a->w))) {
		snprintf(msg, sizeof(msg),
			 "the client read more slowly than the result came "
			 "and %zu bytes piled up (max-buffered-%s); ask with "
			 "?stream=true or Accept: application/x-ndjson to "
			 "stream it",
			 fpg_buf_pending(out),
			 fpg_buf_pending(out) > o->max_buffered_bytes
				 ? "bytes" : "total, all clients together");
		start_dropping(a, 507, "result_not_read", msg);
	}
}

void fpg_answer_outgrow_group(struct fpg_answer *a)
{
	a->outgrown = true;
	a->out->len = a->out->off + a->out_start;
	fpg_answer_account(a);
	fpg_query_outgrow_group(&a->q);
}

/* ---- the query's callbacks ---- */

static void on_columns(struct fpg_query *q, int n,
		       const struct fpg_column *cols)
{
	struct fpg_answer *a = q->ctx;
	/* A second call (the statement was prepared anew, or runs again
	 * after its coalesced group failed) starts over. */
	a->rows = 0;
	a->bytes = 0;
	a->dropping = a->outgrown = false;
	if (a->whole)
		a->out->len = a->out->off + a->out_start;
	else
		fpg_buf_reset(a->out);
	a->have_columns = fpg_rowfmt_put_header(&a->fmt, a->out, n, cols);
}

static void on_row(struct fpg_query *q, const PGresult *res, int row)
{
	struct fpg_answer *a = q->ctx;
	a->rows++;
	if (a->dropping || a->outgrown || !a->have_columns)
		return;
	if (fpg_rowfmt_single(&a->fmt)) {
		fpg_rowfmt_put_row(&a->fmt, a->out, res, row);
		return;
	}
	if (!row_allowed(a))
		return;
	size_t before = fpg_buf_pending(a->out);
	fpg_rowfmt_put_row(&a->fmt, a->out, res, row);
	a->bytes += fpg_buf_pending(a->out) - before;
	check_size(a, before);
	fpg_answer_account(a);
	if (a->ops->row)
		a->ops->row(a);
}

static void on_finish(struct fpg_query *q, PGresult *res,
		      const struct fpg_error *err)
{
	struct fpg_answer *a = q->ctx;
	FPG_STAT_ADD(a->w->stats->rows_sent, a->rows);
	if (a->dropping) {
		/* The cancel we sent may be the error here: ours is the news. */
		res = NULL;
		err = &a->limit;
	}
	a->ops->finish(a, res, err);
}

static const struct fpg_query_ops query_ops = {
	.columns = on_columns,
	.row = on_row,
	.finish = on_finish,
};
