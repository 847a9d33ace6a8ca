/*
 * Transaction sessions over HTTP (docs/api.md "Transactions"; keyed by
 * token"): POST /tx begins one, POST /tx/{token}/query runs a statement in
 * it (the /query contract), /commit and /rollback (or DELETE /tx/{token})
 * end it. The sessions themselves live in tx.c.
 */
#include <jansson.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "answer.h"
#include "error.h"
#include "handlers.h"
#include "params.h"
#include "tx.h"
#include "pool.h"
#include "roles.h"
#include "services.h"
#include "stats.h"

#define MAX_RETRIES 20
#define MAX_BATCH 1000

struct tx_req {
	struct fpg_handler_state hs; /* the request points here */
	struct fpg_request *req;
	struct fpg_tx *waiting;	     /* a tx step will call us back */
	bool commit;
};

static void tx_cleanup(struct fpg_request *req)
{
	struct tx_req *tr = FPG_CONTAINER_OF(req->handler, struct tx_req, hs);
	if (tr->waiting)
		fpg_tx_abandon(tr->waiting);
	free(tr);
}

static struct tx_req *tx_req_new(struct fpg_request *req)
{
	struct tx_req *tr = calloc(1, sizeof(*tr));
	if (!tr)
		return NULL;
	tr->hs.cleanup = tx_cleanup;
	tr->req = req;
	req->handler = &tr->hs;
	return tr;
}

/* A role's session limit (--roles transactions=N), per worker: the
 * sessions its pool here has lent. */
static int over_session_limit(struct fpg_request *req)
{
	unsigned cap =
		fpg_roles_for(req->svc->roles, req->login)->transactions;
	if (!cap || fpg_pool_lent(req->pool) < cap)
		return 0;
	req->retry_after = 1;
	return fpg_request_fail(req, 429, "too_many_sessions",
				"this role has %u open transactions here, its "
				"limit (--roles)",
				cap);
}

/* ---- POST /tx ---- */

static int start_batch(struct fpg_request *req,
		       const struct fpg_tx_options *o, unsigned retries);

static const char *const isolation_names[] = {
	[FPG_TX_READ_COMMITTED] = "read committed",
	[FPG_TX_REPEATABLE_READ] = "repeatable read",
	[FPG_TX_SERIALIZABLE] = "serializable",
};

static bool parse_options(struct fpg_request *req, struct fpg_tx_options *o,
			  bool *batch, unsigned *retries, struct fpg_error *err)
{
	const struct fpg_options *so = req->svc->opts;
	memset(o, 0, sizeof(*o));
	*batch = false;
	*retries = 0;
	o->idle_timeout_ms = so->tx_idle_timeout_ms;
	if (req->body.len == 0)
		return true;
	json_error_t jerr;
	json_t *root = fpg_json_load(req->body.data, req->body.len,
				     JSON_REJECT_DUPLICATES |
					     JSON_DECODE_INT_AS_REAL,
				     &jerr, NULL);
	bool ok = false;
	if (!root || !json_is_object(root)) {
		fpg_error_set(err, FPG_ERR_REQUEST, 400,
			      root ? "the body must be a JSON object"
				   : "invalid JSON: %s",
			      jerr.text);
		goto out;
	}
	const char *key;
	json_t *v;
	json_object_foreach(root, key, v) {
		if (strcmp(key, "isolation") == 0) {
			int found = -1;
			for (int i = 0; json_is_string(v) && i < 3; i++)
				if (strcasecmp(json_string_value(v),
					       isolation_names[i]) == 0)
					found = i;
			if (found < 0) {
				fpg_error_set(err, FPG_ERR_REQUEST, 400,
					      "\"isolation\" must be \"read "
					      "committed\", \"repeatable "
					      "read\" or \"serializable\"");
				goto out;
			}
			o->isolation = (enum fpg_tx_isolation)found;
		} else if (strcmp(key, "read_only") == 0 ||
			   strcmp(key, "deferrable") == 0) {
			if (!json_is_boolean(v)) {
				fpg_error_set(err, FPG_ERR_REQUEST, 400,
					      "\"%s\" must be true or false",
					      key);
				goto out;
			}
			*(key[0] == 'r' ? &o->read_only : &o->deferrable) =
				json_is_true(v);
		} else if (strcmp(key, "idle_timeout_ms") == 0) {
			double ms = json_number_value(v);
			if (!json_is_number(v) || ms < 100 ||
			    ms > so->tx_max_idle_timeout_ms ||
			    ms != (double)(unsigned)ms) {
				fpg_error_set(err, FPG_ERR_REQUEST, 400,
					      "\"idle_timeout_ms\" must be an "
					      "integer from 100 to %u",
					      so->tx_max_idle_timeout_ms);
				goto out;
			}
			o->idle_timeout_ms = (unsigned)ms;
		} else if (strcmp(key, "retries") == 0) {
			double n = json_number_value(v);
			if (!json_is_number(v) || n < 0 || n > MAX_RETRIES ||
			    n != (double)(unsigned)n) {
				fpg_error_set(err, FPG_ERR_REQUEST, 400,
					      "\"retries\" must be an integer "
					      "from 0 to %d",
					      MAX_RETRIES);
				goto out;
			}
			*retries = (unsigned)n;
		} else if (strcmp(key, "statements") == 0) {
			*batch = true; /* parsed from the raw text */
		} else {
			fpg_error_set(err, FPG_ERR_REQUEST, 400,
				      "unknown field \"%.64s\" (known: "
				      "isolation, read_only, deferrable, "
				      "idle_timeout_ms, statements, retries)",
				      key);
			goto out;
		}
	}
	ok = true;
out:
	json_decref(root);
	return ok;
}

static void began(void *ctx, struct fpg_tx *tx, const struct fpg_error *err)
{
	struct tx_req *tr = ctx;
	struct fpg_request *req = tr->req;
	tr->waiting = NULL;
	if (err) {
		fpg_request_complete(req, fpg_request_error(req, err, NULL));
		return;
	}
	char token[FPG_TX_TOKEN_LEN + 1];
	fpg_tx_token(tx, token);
	fpg_buf_printf(&req->out,
		       "{\"tx\":\"%s\",\"idle_timeout_ms\":%u,"
		       "\"expires_in_ms\":%llu}\n",
		       token, fpg_tx_idle_timeout_ms(tx),
		       (unsigned long long)fpg_tx_expires_in_ms(
			       tx, req->svc->loop->now_ms));
	fpg_request_complete(req, 201);
}

int fpg_handle_tx_begin(struct fpg_request *req)
{
	struct fpg_tx_options o;
	struct fpg_error err;
	bool batch;
	unsigned retries;
	if (!parse_options(req, &o, &batch, &retries, &err))
		return fpg_request_error(req, &err, NULL);
	int limited = over_session_limit(req);
	if (limited)
		return limited;
	if (batch)
		return start_batch(req, &o, retries);
	struct tx_req *tr = tx_req_new(req);
	if (!tr)
		return fpg_request_fail(req, 503, "out_of_memory",
					"out of memory");
	struct fpg_tx *tx = fpg_tx_begin(req->svc->tx, req->pool, &o, began, tr, &err);
	if (!tx)
		return fpg_request_error(req, &err, NULL);
	/* began() may already have run (no connection to be had). */
	if (!req->complete)
		tr->waiting = tx;
	return 0;
}

/* ---- atomic batches ---- */

/*
 * POST /tx with "statements": BEGIN, each statement, COMMIT, all within
 * this request; on a serialization failure or deadlock (at any statement
 * or at COMMIT) the whole batch runs again, up to "retries" times, after
 * a jittered, doubling pause.
 */
struct batch {
	struct fpg_handler_state hs; /* the request points here */
	struct fpg_request *req;
	struct fpg_tx_options opts;
	struct fpg_statement *stmts;
	unsigned n;
	unsigned retries;	     /* allowed */
	unsigned attempt;	     /* retries done */
	unsigned current;	     /* statement running */
	struct fpg_tx *tx;	     /* this attempt's session */
	struct fpg_conn *conn;
	bool tx_waiting;	     /* a tx callback will come */
	bool holding;		     /* between claim and finish */
	struct fpg_answer *item;     /* statement running */
	struct fpg_timer retry_timer;
	int failed;		     /* statement that failed, -1 = COMMIT */
	struct fpg_error err;	     /* why it failed */
	struct fpg_buf err_json;     /* its {"code",...} object */
	bool neon;		     /* Neon's /sql: its answer and error
					shapes, no retries */
	int neon_status;	     /* the status of err there */
};

static void batch_cleanup(struct fpg_request *req)
{
	struct batch *b = FPG_CONTAINER_OF(req->handler, struct batch, hs);
	if (b->item) {
		fpg_answer_deinit(b->item);
		free(b->item);
	}
	fpg_loop_timer_disarm(req->svc->loop, &b->retry_timer);
	if (b->holding)
		fpg_tx_finish(b->tx, false, NULL, NULL); /* nobody waits */
	else if (b->tx_waiting)
		fpg_tx_abandon(b->tx);
	fpg_statement_list_free(b->stmts, b->n);
	fpg_buf_deinit(&b->err_json);
	free(b);
}

/*
 * What the failed attempt answers unless it is retried: the error, its
 * JSON (made now, while PostgreSQL's result res still exists) and which
 * statement failed (-1: the COMMIT).
 */
static void record_error(struct batch *b, int failed,
			 const struct fpg_error *err, const PGresult *res)
{
	b->failed = failed;
	b->err = *err;
	fpg_buf_reset(&b->err_json);
	if (b->neon) {
		fpg_error_neon_json(&b->err_json, err, res);
		b->neon_status = fpg_error_neon_status(err, res);
	} else {
		fpg_error_json_object(&b->err_json, err, res);
	}
}

static bool retryable(const struct fpg_error *err)
{
	return strcmp(err->sqlstate, "40001") == 0 ||
	       strcmp(err->sqlstate, "40P01") == 0;
}

static void batch_attempt(struct batch *b);

static void retry_fire(struct fpg_timer *t)
{
	struct batch *b = FPG_CONTAINER_OF(t, struct batch, retry_timer);
	batch_attempt(b);
}

static void batch_fail(struct batch *b)
{
	struct fpg_request *req = b->req;
	if (retryable(&b->err) && b->attempt < b->retries) {
		b->attempt++;
		FPG_STAT_ADD(req->svc->stats->tx_retries, 1);
		/* 10 ms doubling, capped at 1 s, times 0.5 to 1.5 */
		unsigned base = 10u << (b->attempt < 7 ? b->attempt : 7);
		if (base > 1000)
			base = 1000;
		unsigned jitter = (unsigned)(random() % (base + 1));
		fpg_loop_timer_arm(req->svc->loop, &b->retry_timer,
				     base / 2 + jitter);
		return;
	}
	fpg_buf_reset(&req->out);
	if (b->neon) {
		fpg_buf_append(&req->out, b->err_json.data, b->err_json.len);
		fpg_buf_putc(&req->out, '\n');
		req->content_type = "application/json";
		fpg_request_complete(req, b->neon_status);
		return;
	}
	fpg_buf_puts(&req->out, "{\"error\":");
	fpg_buf_append(&req->out, b->err_json.data, b->err_json.len);
	fpg_buf_printf(&req->out, ",\"statement\":%d,\"retries\":%u}\n",
		       b->failed, b->attempt);
	int status = b->err.http_status ? b->err.http_status : 500;
	fpg_request_complete(req, status);
}

static void batch_ended(void *ctx, struct fpg_tx *tx,
			const struct fpg_error *err)
{
	struct batch *b = ctx;
	struct fpg_request *req = b->req;
	b->tx_waiting = false;
	if (b->failed != -2) {
		/* Rolled back after a failed statement. */
		batch_fail(b);
		return;
	}
	if (err) {
		/* COMMIT failed (e.g. serialization failure). */
		record_error(b, -1, err, NULL);
		batch_fail(b);
		return;
	}
	if (b->neon)
		fpg_buf_puts(&req->out, "]}\n");
	else
		fpg_buf_printf(&req->out, "],\"retries\":%u}\n", b->attempt);
	fpg_request_complete(req, 200);
}

static void batch_finish(struct batch *b, bool commit)
{
	b->holding = false;
	b->tx_waiting = true;
	fpg_tx_finish(b->tx, commit, batch_ended, b);
}

static void batch_next(struct batch *b);

static void item_done(void *ctx, PGresult *res, const struct fpg_error *err)
{
	struct batch *b = ctx;
	if (err) {
		record_error(b, (int)b->current, err, res);
		batch_finish(b, false);
		return;
	}
	b->current++;
	batch_next(b);
}

/* An item's answer stays in out, or is taken back on error. */
static void item_finish(struct fpg_answer *a, PGresult *res,
			const struct fpg_error *err)
{
	struct batch *b = a->ctx;
	struct fpg_buf *out = a->out;
	if (err) {
		out->len = out->off + a->out_start;
	} else {
		fpg_rowfmt_put_end(&a->fmt, out, res);
		out->len--; /* its newline: items are separated by commas */
	}
	b->item = NULL;
	item_done(b, res, err);
	fpg_answer_deinit(a);
	free(a);
}

static const struct fpg_answer_ops item_ops = {
	.finish = item_finish,
};

/* Runs statement b->current on the batch's connection. */
static void run_item(struct batch *b)
{
	struct fpg_request *req = b->req;
	const struct fpg_statement *st = &b->stmts[b->current];
	struct fpg_error err;
	if (!fpg_answer_precheck(req->svc, st->sql, true, &err)) {
		item_done(b, NULL, &err);
		return;
	}
	struct fpg_answer *a = malloc(sizeof(*a));
	if (!a) {
		fpg_error_set(&err, FPG_ERR_NOMEM, 503, "out of memory");
		item_done(b, NULL, &err);
		return;
	}
	fpg_answer_init(a, req->svc, req->pool, &req->out, st,
			b->neon ? FPG_ROWFMT_NEON : FPG_ROWFMT_JSON,
			FPG_EXPECT_ALL, &item_ops);
	a->whole = true; /* a batch answers once it is whole */
	a->ctx = b;
	a->q.conn_fixed = b->conn;
	a->q.exclusive = true;
	a->q.claims = req->claims;
	a->q.trace = req->trace_app[0] ? req->trace_app : NULL;
	b->item = a;
	fpg_answer_submit(a);
}

static void batch_next(struct batch *b)
{
	if (b->current == b->n) {
		batch_finish(b, true);
		return;
	}
	if (b->current > 0)
		fpg_buf_putc(&b->req->out, ',');
	run_item(b);
}

static void batch_began(void *ctx, struct fpg_tx *tx,
			const struct fpg_error *err)
{
	struct batch *b = ctx;
	b->tx_waiting = false;
	if (err) {
		record_error(b, 0, err, NULL);
		batch_fail(b);
		return;
	}
	b->conn = fpg_tx_claim(b->req->svc->tx, tx);
	if (!b->conn) {
		struct fpg_error e;
		fpg_error_set(&e, FPG_ERR_UNAVAILABLE, 503,
			      "the transaction ended before it ran");
		record_error(b, 0, &e, NULL);
		batch_fail(b);
		return;
	}
	b->holding = true;
	fpg_buf_reset(&b->req->out);
	fpg_buf_puts(&b->req->out, "{\"results\":[");
	batch_next(b);
}

static void batch_attempt(struct batch *b)
{
	struct fpg_error err;
	b->current = 0;
	b->failed = -2; /* none */
	b->tx_waiting = true;
	b->tx = fpg_tx_begin(b->req->svc->tx, b->req->pool, &b->opts,
			     batch_began, b, &err);
	if (!b->tx) {
		b->tx_waiting = false;
		record_error(b, 0, &err, NULL);
		batch_fail(b);
	}
}

static struct batch *batch_new(struct fpg_request *req,
			       const struct fpg_tx_options *o,
			       unsigned retries)
{
	struct batch *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->hs.cleanup = batch_cleanup;
	b->req = req;
	b->opts = *o;
	b->retries = retries;
	b->retry_timer.fire = retry_fire;
	fpg_buf_init(&b->err_json);
	req->handler = &b->hs;
	return b;
}

static int start_batch(struct fpg_request *req,
		       const struct fpg_tx_options *o, unsigned retries)
{
	struct fpg_error err;
	struct batch *b = batch_new(req, o, retries);
	if (!b)
		return fpg_request_fail(req, 503, "out_of_memory",
					"out of memory");
	if (!fpg_statement_list_parse(req->body.data, req->body.len,
				      "statements", MAX_BATCH, &b->stmts,
				      &b->n, &err))
		return fpg_request_error(req, &err, NULL);
	batch_attempt(b);
	return 0;
}

int fpg_handle_sql_batch(struct fpg_request *req,
			 const struct fpg_tx_options *o,
			 struct fpg_statement *stmts, unsigned n)
{
	int limited = over_session_limit(req);
	struct batch *b = limited ? NULL : batch_new(req, o, 0);
	if (!b) {
		fpg_statement_list_free(stmts, n);
		return limited ? limited
			       : fpg_request_fail(req, 503, "out_of_memory",
						  "out of memory");
	}
	b->neon = true;
	b->stmts = stmts;
	b->n = n;
	batch_attempt(b);
	return 0;
}

/* ---- commit and rollback ---- */

static void finished(void *ctx, struct fpg_tx *tx, const struct fpg_error *err)
{
	struct tx_req *tr = ctx;
	struct fpg_request *req = tr->req;
	tr->waiting = NULL;
	if (err) {
		fpg_request_complete(req, fpg_request_error(req, err, NULL));
		return;
	}
	fpg_buf_puts(&req->out, tr->commit ? "{\"status\":\"committed\"}\n"
					   : "{\"status\":\"rolled back\"}\n");
	fpg_request_complete(req, 200);
}

static int end_tx(struct fpg_request *req, bool commit)
{
	struct fpg_tx *tx;
	struct fpg_error err;
	struct fpg_conn *conn =
		fpg_tx_take_prefix(req->svc->tx, req->pool, req->path_param,
				   &tx, &err);
	if (!conn)
		return fpg_request_error(req, &err, NULL);
	struct tx_req *tr = tx_req_new(req);
	if (!tr) {
		/* Still ends it: a client asking to end must not leak it. */
		fpg_tx_finish(tx, false, NULL, NULL);
		return fpg_request_fail(req, 503, "out_of_memory",
					"out of memory");
	}
	tr->commit = commit;
	tr->waiting = tx;
	fpg_tx_finish(tx, commit, finished, tr);
	return 0;
}

int fpg_handle_tx_commit(struct fpg_request *req)
{
	return end_tx(req, true);
}

int fpg_handle_tx_rollback(struct fpg_request *req)
{
	return end_tx(req, false);
}
