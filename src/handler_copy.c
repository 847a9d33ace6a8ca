/*
 * COPY over HTTP (DESIGN §2 "COPY"): POST /copy streams the request body
 * into COPY ... FROM STDIN as it arrives, GET /copy streams COPY ... TO
 * STDOUT to the client; /tx/{token}/copy does the same inside a session.
 *
 * COPY cannot run in a pipeline, so it takes a connection of its own
 * (or the session's) out of pipeline mode and drives libpq itself. Both
 * ways have back-pressure: the upload is taken only as fast as PostgreSQL
 * accepts it (libpq's buffer is flushed before more is taken), and the
 * download stops reading PostgreSQL while HIGH_MARK bytes wait for the
 * client. The PostgreSQL side (struct copy_pg) outlives a client that
 * leaves: it aborts the COPY (nothing is committed) and gives the
 * connection back once PostgreSQL has answered.
 */
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>

#include <libpq-fe.h>
#include <zlib.h>

#include "copy.h"
#include "error.h"
#include "handlers.h"
#include "pool.h"
#include "tx.h"
#include "worker.h"

#define HIGH_MARK (256 * 1024)
#define LOW_MARK (64 * 1024)

enum copy_state {
	CS_ACQUIRE,  /* waiting for a connection */
	CS_STARTING, /* COPY sent, waiting for COPY_IN / COPY_OUT */
	CS_IN,	     /* taking the upload */
	CS_RESULTS,  /* reading the results up to the end */
	CS_OUT,	     /* streaming the download */
};

struct copy_req;

/* The PostgreSQL side of one COPY. */
struct copy_pg {
	struct fpg_evsrc ev;	     /* first: socket events in raw mode */
	struct fpg_worker *w;
	struct fpg_conn *conn;
	struct fpg_tx *tx;	     /* the session's COPY, or NULL */
	struct copy_req *owner;	     /* NULL once the request went away */
	struct fpg_pool_waiter waiter;
	enum copy_state state;
	bool in;
	bool want_write;	     /* libpq holds output: EPOLLOUT */
	bool paused;		     /* download: not reading */
	bool input_ended;	     /* the whole body was put */
	bool aborting;		     /* the client left: abort the COPY */
	bool gz;		     /* the body is gzip/deflate: inflate */
	bool gz_pending;	     /* inflate may hold more output */
	bool gz_bad;		     /* the body did not inflate */
	z_stream z;
	PGresult *error;	     /* the first error */
	char rows[24];		     /* COPY's command tag count */
	char *sql;
};

/* The HTTP side. */
struct copy_req {
	struct fpg_handler_state hs; /* first: the request points here */
	struct fpg_request *req;
	struct copy_pg *pg;	     /* NULL once it finished */
	bool streaming;		     /* download: the 200 went out */
};

static void pg_event(struct fpg_evsrc *src, uint32_t events);

/* Frees the PostgreSQL side (its connection is back or was never had). */
static void pg_free(struct copy_pg *p)
{
	if (!p)
		return;
	if (p->gz)
		inflateEnd(&p->z);
	PQclear(p->error);
	free(p->sql);
	free(p);
}

/* ---- the end ---- */

static void report(struct copy_pg *p);

static void pg_finish(struct copy_pg *p)
{
	struct fpg_conn *c = p->conn;
	if (c) {
		fpg_conn_raw_end(c);
		if (p->tx)
			fpg_tx_release_if_idle(p->tx);
		else
			fpg_conn_release(c);
	}
	report(p);
	pg_free(p);
}

static void pg_fail(struct copy_pg *p, const char *why)
{
	if (p->conn)
		fpg_conn_fail(p->conn, why);
	if (!p->error) {
		p->error = PQmakeEmptyPGresult(NULL, PGRES_FATAL_ERROR);
	}
	pg_finish(p);
}

static void watch(struct copy_pg *p)
{
	uint32_t ev = p->paused ? 0 : EPOLLIN;
	if (p->want_write)
		ev |= EPOLLOUT;
	fpg_conn_raw_watch(p->conn, ev);
}

static bool end_input(struct copy_pg *p);
static bool inflate_some(struct copy_pg *p, const char *in, size_t n,
			 size_t *used);

/* Sends what libpq holds. False when that failed (p is gone). */
static bool flush(struct copy_pg *p)
{
	int f = PQflush(fpg_conn_pg(p->conn));
	if (f < 0) {
		pg_fail(p, PQerrorMessage(fpg_conn_pg(p->conn)));
		return false;
	}
	p->want_write = f == 1;
	watch(p);
	if (p->want_write || p->state != CS_IN)
		return true;
	if (p->gz_pending)
		return inflate_some(p, NULL, 0, NULL);
	if (p->input_ended)
		return end_input(p);
	if (p->owner)
		fpg_request_resume_upload(p->owner->req);
	return true;
}

/* ---- upload ---- */

/* Ends (or aborts) the upload. False when p is gone. */
static bool end_input(struct copy_pg *p)
{
	PGconn *pg = fpg_conn_pg(p->conn);
	if (PQputCopyEnd(pg, p->aborting ? "the client went away" : NULL) <
	    0) {
		pg_fail(p, PQerrorMessage(pg));
		return false;
	}
	p->state = CS_RESULTS;
	return flush(p);
}

/*
 * Inflates in[0..n) (or, with n = 0, what inflate still holds) into COPY
 * data until PostgreSQL pushes back; *used gets the input taken. A
 * compressed body keeps its back-pressure: output waits inside zlib, not
 * in our memory. False when p is gone.
 */
static bool inflate_some(struct copy_pg *p, const char *in, size_t n,
			 size_t *used)
{
	unsigned char out[64 * 1024];
	PGconn *pg = fpg_conn_pg(p->conn);
	p->z.next_in = (unsigned char *)(uintptr_t)in;
	p->z.avail_in = (uInt)n;
	p->gz_pending = true;
	while (p->gz_pending && !p->want_write) {
		p->z.next_out = out;
		p->z.avail_out = sizeof(out);
		int rc = inflate(&p->z, Z_NO_FLUSH);
		size_t got = sizeof(out) - p->z.avail_out;
		if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
			/* Not gzip: abort the COPY and say why. */
			p->gz_bad = true;
			p->gz_pending = false;
			p->aborting = true;
			if (used)
				*used = n;
			return end_input(p);
		}
		if (got && PQputCopyData(pg, (const char *)out, (int)got) < 0) {
			pg_fail(p, PQerrorMessage(pg));
			return false;
		}
		/* More may come only if the output filled up or input is left. */
		p->gz_pending = rc == Z_OK && (p->z.avail_out == 0 ||
					       p->z.avail_in > 0);
		int f = PQflush(pg);
		if (f < 0) {
			pg_fail(p, PQerrorMessage(pg));
			return false;
		}
		p->want_write = f == 1;
	}
	if (used)
		*used = n - p->z.avail_in;
	watch(p);
	if (!p->gz_pending && !p->want_write && p->input_ended)
		return end_input(p);
	if (!p->gz_pending && !p->want_write && p->owner && !used)
		fpg_request_resume_upload(p->owner->req);
	return true;
}

static size_t upload(struct fpg_request *req, const char *data, size_t n)
{
	struct copy_req *cr = (struct copy_req *)req->handler;
	struct copy_pg *p = cr->pg;
	if (!p || p->state != CS_IN || p->want_write || p->gz_pending)
		return 0; /* suspended until PostgreSQL takes more */
	if (p->gz) {
		size_t used = 0;
		inflate_some(p, data, n, &used);
		return used;
	}
	PGconn *pg = fpg_conn_pg(p->conn);
	int r = PQputCopyData(pg, data, (int)n);
	if (r < 0) {
		pg_fail(p, PQerrorMessage(pg));
		return n;
	}
	if (r == 0) {
		p->want_write = true;
		watch(p);
		return 0;
	}
	(void)flush(p);
	return n;
}

static void upload_end(struct fpg_request *req)
{
	struct copy_req *cr = (struct copy_req *)req->handler;
	struct copy_pg *p = cr->pg;
	if (!p)
		return;
	p->input_ended = true;
	if (p->state == CS_IN && !p->gz_pending && !p->want_write)
		(void)end_input(p);
}

/* ---- download ---- */

/* Reads COPY data while the client keeps up; false when p is gone. */
static bool read_out(struct copy_pg *p)
{
	PGconn *pg = fpg_conn_pg(p->conn);
	while (!p->paused) {
		char *buf = NULL;
		int n = PQgetCopyData(pg, &buf, 1);
		if (n > 0) {
			struct copy_req *cr = p->owner;
			if (cr) {
				struct fpg_request *req = cr->req;
				fpg_buf_append(&req->out, buf, (size_t)n);
				if (!cr->streaming) {
					cr->streaming = true;
					fpg_request_stream_begin(req, 200);
				} else {
					fpg_request_stream_push(req);
				}
				if (fpg_buf_pending(&req->out) > HIGH_MARK) {
					p->paused = true;
					watch(p);
				}
			}
			PQfreemem(buf);
			continue;
		}
		if (n == 0)
			return true; /* wait for the socket */
		if (n == -2) {
			pg_fail(p, PQerrorMessage(pg));
			return false;
		}
		p->state = CS_RESULTS; /* -1: COPY is done */
		return true;
	}
	return true;
}

static bool read_results(struct copy_pg *p);
static bool out_then_results(struct copy_pg *p);

static void on_drained(struct fpg_request *req)
{
	struct copy_req *cr = (struct copy_req *)req->handler;
	struct copy_pg *p = cr->pg;
	if (!p || !p->paused || fpg_buf_pending(&req->out) >= LOW_MARK)
		return;
	p->paused = false;
	watch(p);
	/* libpq may hold whole rows already: no socket event would come. */
	out_then_results(p);
}

/* ---- the PostgreSQL side's events ---- */

/* Reads results while libpq can; false when p is gone. */
static bool read_results(struct copy_pg *p)
{
	PGconn *pg = fpg_conn_pg(p->conn);
	while (!PQisBusy(pg)) {
		PGresult *res = PQgetResult(pg);
		if (!res) {
			pg_finish(p);
			return false;
		}
		switch (PQresultStatus(res)) {
		case PGRES_COPY_IN:
			PQclear(res);
			p->state = CS_IN;
			if (p->input_ended || p->aborting)
				return end_input(p);
			if (p->owner)
				fpg_request_resume_upload(p->owner->req);
			return true;
		case PGRES_COPY_OUT:
			PQclear(res);
			p->state = CS_OUT;
			return true;
		case PGRES_COMMAND_OK:
			snprintf(p->rows, sizeof(p->rows), "%s",
				 PQcmdTuples(res));
			PQclear(res);
			break;
		default:
			if (!p->error)
				p->error = res;
			else
				PQclear(res);
			break;
		}
	}
	return true;
}

/* Streams the download; false when p is gone. */
static bool out_then_results(struct copy_pg *p)
{
	if (p->state == CS_OUT && !read_out(p))
		return false;
	if (p->state == CS_RESULTS)
		return read_results(p);
	return true;
}

static void pg_event(struct fpg_evsrc *src, uint32_t events)
{
	struct copy_pg *p = (struct copy_pg *)src;
	PGconn *pg = fpg_conn_pg(p->conn);
	if ((events & EPOLLOUT) && !flush(p))
		return;
	if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) && !PQconsumeInput(pg)) {
		pg_fail(p, PQerrorMessage(pg));
		return;
	}
	if (p->state == CS_STARTING && !read_results(p))
		return;
	out_then_results(p);
}

static void pg_start(struct copy_pg *p, struct fpg_conn *conn)
{
	p->conn = conn;
	p->state = CS_STARTING;
	if (!fpg_conn_raw_begin(conn, &p->ev)) {
		p->conn = NULL;
		if (!p->tx)
			fpg_conn_release(conn);
		else
			fpg_tx_release_if_idle(p->tx);
		pg_fail(p, "the connection is not idle");
		return;
	}
	PGconn *pg = fpg_conn_pg(conn);
	if (!PQsendQueryParams(pg, p->sql, 0, NULL, NULL, NULL, NULL, 0)) {
		pg_fail(p, PQerrorMessage(pg));
		return;
	}
	(void)flush(p);
}

static void on_conn(struct fpg_pool_waiter *wt, struct fpg_conn *conn)
{
	struct copy_pg *p = FPG_CONTAINER_OF(wt, struct copy_pg, waiter);
	pg_start(p, conn);
}

static void on_acquire_fail(struct fpg_pool_waiter *wt,
			    const struct fpg_error *err)
{
	struct copy_pg *p = FPG_CONTAINER_OF(wt, struct copy_pg, waiter);
	struct copy_req *cr = p->owner;
	if (cr) {
		cr->pg = NULL;
		fpg_request_complete(cr->req,
				     fpg_request_error(cr->req, err, NULL));
	}
	pg_free(p);
}

/* ---- the HTTP side ---- */

/* The COPY ended: answer the request, if it is still there. */
static void report(struct copy_pg *p)
{
	struct copy_req *cr = p->owner;
	if (!cr)
		return;
	struct fpg_request *req = cr->req;
	cr->pg = NULL;
	if (p->gz_bad) {
		fpg_request_complete(
			req, fpg_request_fail(req, 400, "bad_request",
					      "the body is not valid %s data; "
					      "nothing was copied",
					      "gzip/deflate"));
		return;
	}
	if (p->error) {
		struct fpg_error err;
		fpg_error_from_pg(&err, p->error);
		if (!PQresultErrorField(p->error, PG_DIAG_SQLSTATE)) {
			fpg_error_set(&err, FPG_ERR_UNAVAILABLE, 503,
				      "connection to PostgreSQL lost");
		}
		if (cr->streaming) {
			fpg_request_stream_end(req, true); /* cut short */
			return;
		}
		req->content_type = "application/json";
		fpg_request_complete(req, fpg_request_error(req, &err,
							    p->error));
		return;
	}
	if (!p->in) {
		if (cr->streaming)
			fpg_request_stream_end(req, false);
		else
			fpg_request_complete(req, 200); /* nothing to send */
		return;
	}
	fpg_buf_printf(&req->out, "{\"command\":\"COPY\",\"row_count\":%s}\n",
		       p->rows[0] ? p->rows : "0");
	fpg_request_complete(req, 200);
}

static void cleanup(struct fpg_request *req)
{
	struct copy_req *cr = (struct copy_req *)req->handler;
	struct copy_pg *p = cr->pg;
	free(cr);
	if (!p)
		return;
	p->owner = NULL;
	if (p->state == CS_ACQUIRE) {
		fpg_pool_cancel_wait(p->w->pool, &p->waiter);
		pg_free(p);
		return;
	}
	/* Nobody will read the rest: stop it, then give the connection
	 * back once PostgreSQL has answered. */
	p->aborting = true;
	p->paused = false;
	if (p->state == CS_IN) {
		(void)end_input(p);
	} else if (p->state == CS_OUT || (p->state == CS_STARTING && !p->in)) {
		fpg_conn_cancel(p->conn);
		watch(p);
		out_then_results(p); /* what libpq holds already */
	}
}

static const char *query_arg(void *ctx, const char *name)
{
	struct fpg_request *req = ctx;
	return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND,
					   name);
}

static int start(struct fpg_request *req, bool in, struct fpg_conn *tx_conn,
		 struct fpg_tx *tx)
{
	struct fpg_error err;
	struct fpg_buf sql;
	const char *ctype = NULL;
	fpg_buf_init(&sql);
	struct copy_req *cr = calloc(1, sizeof(*cr));
	struct copy_pg *p = calloc(1, sizeof(*p));
	int status;
	if (!cr || !p) {
		status = fpg_request_fail(req, 503, "out_of_memory",
					  "out of memory");
		goto fail;
	}
	if (!fpg_copy_build(query_arg, req, in, &sql, &ctype, &err)) {
		status = fpg_request_error(req, &err, NULL);
		goto fail;
	}
	fpg_buf_putc(&sql, '\0');
	if (sql.failed) {
		status = fpg_request_fail(req, 503, "out_of_memory",
					  "out of memory");
		goto fail;
	}
	const char *enc = fpg_request_header(req, "Content-Encoding");
	if (in && enc && strcasecmp(enc, "identity") != 0) {
		bool gzip = strcasecmp(enc, "gzip") == 0 ||
			    strcasecmp(enc, "x-gzip") == 0;
		if (!gzip && strcasecmp(enc, "deflate") != 0) {
			status = fpg_request_fail(req, 415,
						  "unsupported_media_type",
						  "Content-Encoding %.32s is "
						  "not supported (gzip, "
						  "deflate)",
						  enc);
			goto fail;
		}
		/* 16 + window: gzip header; plain window: zlib's */
		if (inflateInit2(&p->z, gzip ? 16 + MAX_WBITS : MAX_WBITS) !=
		    Z_OK) {
			status = fpg_request_fail(req, 503, "out_of_memory",
						  "out of memory");
			goto fail;
		}
		p->gz = true;
	}
	cr->hs.cleanup = cleanup;
	cr->hs.drained = on_drained;
	if (in) {
		cr->hs.upload = upload;
		cr->hs.upload_end = upload_end;
	} else {
		req->content_type = ctype;
	}
	cr->req = req;
	cr->pg = p;
	req->handler = &cr->hs;
	p->ev.on_event = pg_event;
	p->w = req->w;
	p->owner = cr;
	p->in = in;
	p->tx = tx;
	p->sql = sql.data;
	p->state = CS_ACQUIRE;
	if (tx_conn) {
		pg_start(p, tx_conn);
	} else {
		p->waiter.exclusive = true;
		p->waiter.ready = on_conn;
		p->waiter.fail = on_acquire_fail;
		p->waiter.deadline_ms =
			req->w->now_ms + req->w->opts->acquire_timeout_ms;
		fpg_pool_acquire(req->w->pool, &p->waiter);
	}
	return 0;
fail:
	fpg_buf_deinit(&sql);
	free(cr);
	pg_free(p);
	if (tx)
		fpg_tx_release_if_idle(tx);
	return status;
}

int fpg_handle_copy_in(struct fpg_request *req)
{
	return start(req, true, NULL, NULL);
}

int fpg_handle_copy_out(struct fpg_request *req)
{
	return start(req, false, NULL, NULL);
}

int fpg_handle_tx_copy_in(struct fpg_request *req)
{
	struct fpg_tx *tx;
	int status = 0;
	struct fpg_conn *conn = fpg_tx_take_from_path(req, &tx, &status);
	return conn ? start(req, true, conn, tx) : status;
}

int fpg_handle_tx_copy_out(struct fpg_request *req)
{
	struct fpg_tx *tx;
	int status = 0;
	struct fpg_conn *conn = fpg_tx_take_from_path(req, &tx, &status);
	return conn ? start(req, false, conn, tx) : status;
}
