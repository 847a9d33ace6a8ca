/*
 * Route handlers (one file per resource group). Each returns an HTTP
 * status with the body in req->out, or 0 when it answers later.
 */
#pragma once

#include <libpq-fe.h>

#include "request.h"

struct fpg_conn;
struct fpg_tx;

/*
 * Runs the statement in req's body (the /query contract) on conn, a
 * transaction's connection, instead of a pooled one. Same return as a
 * handler. tx is released when the connection has nothing left to do.
 */
int fpg_query_run_in_tx(struct fpg_request *req, struct fpg_conn *conn,
			struct fpg_tx *tx);

struct fpg_statement;
struct fpg_batch_item;

/*
 * Takes the session named by the {token} of req's path (handler_tx.c).
 * NULL with the error answer in req->out and its status in *status.
 */
struct fpg_conn *fpg_tx_take_from_path(struct fpg_request *req,
				       struct fpg_tx **tx, int *status);

/* A batch item ended: err NULL on success (res borrowed, may be NULL). */
typedef void (*fpg_batch_done_fn)(void *ctx, PGresult *res,
				  const struct fpg_error *err);

/*
 * Runs one statement of a batch on conn (a transaction's) and appends its
 * answer ({"columns","rows","command","row_count"}) to req->out; on error
 * nothing is appended. st is borrowed until done. *running names the
 * item until it ends (set to NULL then), for fpg_batch_item_abandon. done
 * may be called before this returns.
 */
void fpg_query_run_batch_item(struct fpg_request *req, struct fpg_conn *conn,
			      const struct fpg_statement *st,
			      fpg_batch_done_fn done, void *ctx,
			      struct fpg_batch_item **running);

/* The batch's request went away: stop the item, no callback. */
void fpg_batch_item_abandon(struct fpg_batch_item *item);

int fpg_handle_query(struct fpg_request *req);	 /* handler_query.c */
int fpg_handle_query_cancel(struct fpg_request *req); /* handler_query.c */
int fpg_handle_tx_begin(struct fpg_request *req);    /* handler_tx.c */
int fpg_handle_tx_query(struct fpg_request *req);    /* handler_tx.c */
int fpg_handle_tx_commit(struct fpg_request *req);   /* handler_tx.c */
int fpg_handle_tx_rollback(struct fpg_request *req); /* handler_tx.c */
int fpg_handle_copy_in(struct fpg_request *req);     /* handler_copy.c */
int fpg_handle_copy_out(struct fpg_request *req);    /* handler_copy.c */
int fpg_handle_tx_copy_in(struct fpg_request *req);  /* handler_copy.c */
int fpg_handle_tx_copy_out(struct fpg_request *req); /* handler_copy.c */
int fpg_handle_healthz(struct fpg_request *req); /* handler_meta.c */
int fpg_handle_readyz(struct fpg_request *req);	 /* handler_meta.c */
int fpg_handle_stats(struct fpg_request *req);	 /* handler_meta.c */
int fpg_handle_metrics(struct fpg_request *req); /* handler_meta.c */
