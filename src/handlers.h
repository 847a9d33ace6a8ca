/*
 * Route handlers (one file per resource group). Each returns an HTTP
 * status with the body in req->out, or 0 when it answers later.
 */
#pragma once

#include "params.h"
#include "request.h"
#include "tx.h"

int fpg_handle_query(struct fpg_request *req);	 /* handler_query.c */
int fpg_handle_query_cancel(struct fpg_request *req); /* handler_query.c */
int fpg_handle_named_query(struct fpg_request *req); /* handler_query.c */
int fpg_handle_named_query_get(struct fpg_request *req); /* handler_query.c */
int fpg_handle_tx_begin(struct fpg_request *req);    /* handler_tx.c */
int fpg_handle_tx_query(struct fpg_request *req);    /* handler_query.c */
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
int fpg_handle_sql(struct fpg_request *req);	 /* handler_sql.c */

/*
 * The two ways POST /sql runs what it was sent (handler_sql.c parses it
 * and names the login), each taking the statements it is given:
 * one statement as /query runs it (its lanes, holding back the first
 * 64 KiB, streaming), answered in Neon's shape; or a batch in one
 * transaction with options o, as POST /tx with "statements" runs it, the
 * first error rolling it back. Return as handlers do.
 */
int fpg_handle_sql_statement(struct fpg_request *req,
			     struct fpg_statement *st); /* handler_query.c */
int fpg_handle_sql_batch(struct fpg_request *req,
			 const struct fpg_tx_options *o,
			 struct fpg_statement *stmts,
			 unsigned n); /* handler_tx.c */
int fpg_handle_listen(struct fpg_request *req);	 /* handler_listen.c */
