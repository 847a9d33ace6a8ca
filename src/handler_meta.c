/*
 * Operations endpoints: GET /healthz (the process answers), GET /readyz
 * (PostgreSQL answers a query through this worker's pool), GET /stats
 * (JSON) and GET /metrics (Prometheus text).
 */
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "query.h"
#include "services.h"
#include "stats.h"
#include "stmt.h"
#include "tx.h"

int fpg_handle_healthz(struct fpg_request *req)
{
	fpg_buf_puts(&req->out, "{\"status\":\"ok\"}\n");
	return 200;
}

struct ready_req {
	struct fpg_handler_state hs; /* the request points here */
	struct fpg_request *req;
	struct fpg_query q;
};

static void ready_cleanup(struct fpg_request *req)
{
	struct ready_req *rr = FPG_CONTAINER_OF(req->handler, struct ready_req, hs);
	fpg_query_abandon(&rr->q);
	free(rr);
}

static void ready_columns(struct fpg_query *q, int n,
			  const struct fpg_column *cols)
{
}

static void ready_row(struct fpg_query *q, const PGresult *res, int row)
{
}

static void ready_finish(struct fpg_query *q, PGresult *res,
			 const struct fpg_error *err)
{
	struct ready_req *rr = q->ctx;
	struct fpg_request *req = rr->req;
	if (err) {
		struct fpg_error e = *err;
		/* Whatever went wrong, the service is not ready. */
		e.http_status = 503;
		fpg_request_complete(req, fpg_request_error(req, &e, res));
		return;
	}
	fpg_buf_puts(&req->out, "{\"status\":\"ready\"}\n");
	fpg_request_complete(req, 200);
}

static const struct fpg_query_ops ready_ops = {
	.columns = ready_columns,
	.row = ready_row,
	.finish = ready_finish,
};

int fpg_handle_readyz(struct fpg_request *req)
{
	struct ready_req *rr = calloc(1, sizeof(*rr));
	if (!rr)
		return fpg_request_fail(req, 503, "out_of_memory",
					"out of memory");
	rr->hs.cleanup = ready_cleanup;
	rr->req = req;
	req->handler = &rr->hs;
	rr->q.sql = "SELECT 1";
	rr->q.sql_hash = fpg_stmt_hash(rr->q.sql);
	rr->q.ops = &ready_ops;
	rr->q.ctx = rr;
	rr->q.timeout_ms = 5000;
	/* Readiness is a quick answer, even while PostgreSQL is frozen. */
	rr->q.deadline_ms = 2000;
	fpg_query_submit(req->pool, &rr->q);
	return 0;
}

int fpg_handle_metrics(struct fpg_request *req)
{
	const struct fpg_services *svc = req->svc;
	fpg_stats_prometheus(&req->out, svc->all_stats, svc->nworkers,
			     svc->route_names, svc->nroutes,
			     fpg_tx_open_count(svc->tx_reg));
	fpg_stats_process(&req->out);
	req->content_type = "text/plain; version=0.0.4; charset=utf-8";
	return 200;
}

int fpg_handle_stats(struct fpg_request *req)
{
	const struct fpg_services *svc = req->svc;
	char extra[128];
	snprintf(extra, sizeof(extra),
		 "\"workers_count\":%u,\"transactions_open\":%u",
		 svc->nworkers, fpg_tx_open_count(svc->tx_reg));
	fpg_stats_json(&req->out, svc->all_stats, svc->nworkers,
		       svc->route_names, svc->nroutes, extra);
	return 200;
}
