/*
 * Route handlers (one file per resource group). Each returns an HTTP
 * status with the body in req->out, or 0 when it answers later.
 */
#pragma once

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

int fpg_handle_query(struct fpg_request *req);	 /* handler_query.c */
int fpg_handle_query_cancel(struct fpg_request *req); /* handler_query.c */
int fpg_handle_tx_begin(struct fpg_request *req);    /* handler_tx.c */
int fpg_handle_tx_query(struct fpg_request *req);    /* handler_tx.c */
int fpg_handle_tx_commit(struct fpg_request *req);   /* handler_tx.c */
int fpg_handle_tx_rollback(struct fpg_request *req); /* handler_tx.c */
int fpg_handle_healthz(struct fpg_request *req); /* handler_meta.c */
int fpg_handle_readyz(struct fpg_request *req);	 /* handler_meta.c */
int fpg_handle_stats(struct fpg_request *req);	 /* handler_meta.c */
