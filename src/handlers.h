/*
 * Route handlers (one file per resource group). Each returns an HTTP
 * status with the body in req->out, or 0 when it answers later.
 */
#pragma once

#include "request.h"

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
