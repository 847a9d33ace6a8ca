/*
 * Transaction sessions over HTTP (DESIGN §2 "Transactions keyed by
 * token"): POST /tx begins one, POST /tx/{token}/query runs a statement in
 * it (the /query contract), /commit and /rollback (or DELETE /tx/{token})
 * end it. The sessions themselves live in tx.c.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "error.h"
#include "handlers.h"
#include "tx.h"
#include "worker.h"

struct tx_req {
	struct fpg_handler_state hs; /* first: the request points here */
	struct fpg_request *req;
	struct fpg_tx *waiting;	     /* a tx step will call us back */
	bool commit;
};

static void tx_cleanup(struct fpg_request *req)
{
	struct tx_req *tr = (struct tx_req *)req->handler;
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

/* The {token} segment of the path, or NULL when it cannot be one. */
static const char *path_token(struct fpg_request *req, char *buf)
{
	const char *p = req->path_param;
	size_t n = strcspn(p, "/");
	if (n != FPG_TX_TOKEN_LEN)
		return NULL;
	memcpy(buf, p, n);
	buf[n] = '\0';
	return buf;
}

static struct fpg_conn *take(struct fpg_request *req, struct fpg_tx **tx,
			     int *status)
{
	char buf[FPG_TX_TOKEN_LEN + 1];
	const char *token = path_token(req, buf);
	struct fpg_error err;
	struct fpg_conn *conn = NULL;
	if (!token) {
		fpg_error_set(&err, FPG_ERR_REQUEST, 404,
			      "unknown transaction token");
		err.reason = "transaction_not_found";
	} else {
		conn = fpg_tx_take(req->w, token, tx, &err);
	}
	if (!conn)
		*status = fpg_request_error(req, &err, NULL);
	return conn;
}

/* ---- POST /tx ---- */

static const char *const isolation_names[] = {
	[FPG_TX_READ_COMMITTED] = "read committed",
	[FPG_TX_REPEATABLE_READ] = "repeatable read",
	[FPG_TX_SERIALIZABLE] = "serializable",
};

static bool parse_options(struct fpg_request *req, struct fpg_tx_options *o,
			  struct fpg_error *err)
{
	const struct fpg_options *so = req->w->opts;
	memset(o, 0, sizeof(*o));
	o->idle_timeout_ms = so->tx_idle_timeout_ms;
	if (req->body.len == 0)
		return true;
	json_error_t jerr;
	json_t *root = json_loadb(req->body.data, req->body.len,
				  JSON_REJECT_DUPLICATES, &jerr);
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
			json_int_t ms = json_integer_value(v);
			if (!json_is_integer(v) || ms < 100 ||
			    ms > (json_int_t)so->tx_max_idle_timeout_ms) {
				fpg_error_set(err, FPG_ERR_REQUEST, 400,
					      "\"idle_timeout_ms\" must be an "
					      "integer from 100 to %u",
					      so->tx_max_idle_timeout_ms);
				goto out;
			}
			o->idle_timeout_ms = (unsigned)ms;
		} else {
			fpg_error_set(err, FPG_ERR_REQUEST, 400,
				      "unknown field \"%.64s\" (known: "
				      "isolation, read_only, deferrable, "
				      "idle_timeout_ms)",
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
			       tx, req->w->now_ms));
	fpg_request_complete(req, 201);
}

int fpg_handle_tx_begin(struct fpg_request *req)
{
	struct fpg_tx_options o;
	struct fpg_error err;
	if (!parse_options(req, &o, &err))
		return fpg_request_error(req, &err, NULL);
	struct tx_req *tr = tx_req_new(req);
	if (!tr)
		return fpg_request_fail(req, 503, "out_of_memory",
					"out of memory");
	struct fpg_tx *tx = fpg_tx_begin(req->w, &o, began, tr, &err);
	if (!tx)
		return fpg_request_error(req, &err, NULL);
	/* began() may already have run (no connection to be had). */
	if (!req->complete)
		tr->waiting = tx;
	return 0;
}

/* ---- POST /tx/{token}/query ---- */

int fpg_handle_tx_query(struct fpg_request *req)
{
	struct fpg_tx *tx;
	int status = 0;
	struct fpg_conn *conn = take(req, &tx, &status);
	if (!conn)
		return status;
	return fpg_query_run_in_tx(req, conn, tx);
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
	int status = 0;
	struct fpg_conn *conn = take(req, &tx, &status);
	if (!conn)
		return status;
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
