/*
 * COPY over HTTP (docs/api.md, "COPY"): POST /copy streams the request body
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
 *
 * GET /copy?query= is a GET, so any web page can make a browser send it:
 * PostgreSQL itself checks that the text is one statement returning rows
 * (CS_CHECK) before it goes inside COPY ( ... ), and outside a session
 * the COPY runs in a read-only transaction.
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
#include "services.h"
#include "stats.h"

#define HIGH_MARK (256 * 1024)
#define LOW_MARK (64 * 1024)
/* Compressed uploads: the ratio is judged only past this many bytes. */
#define RATIO_AFTER (1024 * 1024)

enum copy_state {
	CS_ACQUIRE,  /* waiting for a connection */
	CS_CHECK,    /* query=: Parse + Describe sent, waiting for the Sync */
	CS_STARTING, /* COPY sent, waiting for COPY_IN / COPY_OUT */
	CS_IN,	     /* taking the upload */
	CS_RESULTS,  /* reading the results up to the end */
	CS_OUT,	     /* streaming the download */
};

/* Why the server ended a COPY itself (the answer it gives). */
enum copy_refusal {
	CR_NONE,
	CR_NOT_GZIP,	   /* 400: the body did not inflate */
	CR_INFLATED_SIZE,  /* 413: past max_inflated_bytes */
	CR_INFLATE_RATIO,  /* 413: past max_inflate_ratio */
	CR_NO_ROWS,	   /* 400: query= returns no rows */
};

struct copy_req;

/* The PostgreSQL side of one COPY. */
struct copy_pg {
	struct fpg_evsrc ev;	     /* socket events in raw mode */
	struct fpg_services *w;
	struct fpg_pool *pool; /* the caller's login's */
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
	bool returns_rows;	     /* query=: Describe gave fields */
	bool two_statements;	     /* sql is SET LOCAL ...; COPY ...: a
					simple Query, one implicit
					transaction */
	enum copy_refusal refusal;
	z_stream z;
	PGresult *error;	     /* the first error */
	char rows[24];		     /* COPY's command tag count */
	char *sql;
	char *query;		     /* query= to check first, or NULL */
};

/* The HTTP side. */
struct copy_req {
	struct fpg_handler_state hs; /* the request points here */
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
	free(p->query);
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
			fpg_conn_release(c); /* after a reset of the session */
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
	const char *why = p->refusal != CR_NONE ? "refused by fasterpg"
			  : p->aborting		 ? "the client went away"
						 : NULL;
	if (PQputCopyEnd(pg, why) < 0) {
		pg_fail(p, PQerrorMessage(pg));
		return false;
	}
	p->state = CS_RESULTS;
	return flush(p);
}

/*
 * A small compressed body can inflate to any size (a "bomb" of zeros
 * inflates about 1000:1), and PostgreSQL holds a line it is given in
 * memory: the inflated total and, once it is past RATIO_AFTER, its ratio
 * to the compressed bytes taken are capped.
 */
static enum copy_refusal inflate_limit(const struct copy_pg *p)
{
	const struct fpg_options *o = p->w->opts;
	uint64_t out = p->z.total_out, in = p->z.total_in;
	if (o->max_inflated_bytes && out > o->max_inflated_bytes)
		return CR_INFLATED_SIZE;
	if (o->max_inflate_ratio && out > RATIO_AFTER &&
	    out / o->max_inflate_ratio > in)
		return CR_INFLATE_RATIO;
	return CR_NONE;
}

/*
 * Inflates in[0..n) (or, with n = 0, what inflate still holds) into COPY
 * data until PostgreSQL pushes back; *used gets the input taken. A
 * compressed body keeps its back-pressure: output waits inside zlib, not
 * in our memory. A body that does not inflate or passes the limits
 * aborts the COPY (nothing is committed). False when p is gone.
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
		if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR)
			p->refusal = CR_NOT_GZIP;
		else
			p->refusal = inflate_limit(p);
		if (p->refusal != CR_NONE) {
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
	struct copy_req *cr = FPG_CONTAINER_OF(req->handler, struct copy_req, hs);
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
	struct copy_req *cr = FPG_CONTAINER_OF(req->handler, struct copy_req, hs);
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
	struct copy_req *cr = FPG_CONTAINER_OF(req->handler, struct copy_req, hs);
	struct copy_pg *p = cr->pg;
	if (!p || !p->paused || fpg_buf_pending(&req->out) >= LOW_MARK)
		return;
	p->paused = false;
	watch(p);
	/* libpq may hold whole rows already: no socket event would come. */
	out_then_results(p);
}

/* ---- the PostgreSQL side's events ---- */

/* Keeps the first error of the COPY (takes ownership of res). */
static void keep_error(struct copy_pg *p, PGresult *res)
{
	if (!p->error)
		p->error = res;
	else
		PQclear(res);
}

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
			keep_error(p, res);
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

/* Sends the COPY itself; false when p is gone. */
static bool send_copy(struct copy_pg *p)
{
	PGconn *pg = fpg_conn_pg(p->conn);
	int sent = p->two_statements
			   ? PQsendQuery(pg, p->sql)
			   : PQsendQueryParams(pg, p->sql, 0, NULL, NULL, NULL,
					       NULL, 0);
	if (!sent) {
		pg_fail(p, PQerrorMessage(pg));
		return false;
	}
	p->state = CS_STARTING;
	return flush(p);
}

/*
 * query= goes inside COPY ( ... ) only once PostgreSQL has parsed it
 * alone: an unnamed Parse refuses several statements (and any text that
 * leaves a quote, a comment or a parenthesis open, so the wrapped text
 * closes exactly where ours does), and its Describe tells whether it
 * returns rows. The three go as a pipeline of their own (one round trip,
 * no waiting on the worker); the COPY follows out of pipeline mode.
 */
static bool send_check(struct copy_pg *p)
{
	PGconn *pg = fpg_conn_pg(p->conn);
	if (PQenterPipelineMode(pg) != 1 ||
	    !PQsendPrepare(pg, "", p->query, 0, NULL) ||
	    !PQsendDescribePrepared(pg, "") || !PQpipelineSync(pg)) {
		pg_fail(p, PQerrorMessage(pg));
		return false;
	}
	p->state = CS_CHECK;
	return flush(p);
}

/* Reads the check's results up to its Sync; false when p is gone. */
static bool read_check(struct copy_pg *p)
{
	PGconn *pg = fpg_conn_pg(p->conn);
	while (!PQisBusy(pg)) {
		PGresult *res = PQgetResult(pg);
		if (!res)
			continue; /* the end of Parse's or Describe's results */
		switch (PQresultStatus(res)) {
		case PGRES_COMMAND_OK: /* Parse's, then Describe's */
			p->returns_rows = PQnfields(res) > 0;
			PQclear(res);
			break;
		case PGRES_PIPELINE_ABORTED: /* Describe after a failed Parse */
			PQclear(res);
			break;
		case PGRES_PIPELINE_SYNC:
			PQclear(res);
			if (PQexitPipelineMode(pg) != 1) {
				pg_fail(p, PQerrorMessage(pg));
				return false;
			}
			if (!p->error && !p->returns_rows)
				p->refusal = CR_NO_ROWS;
			if (p->error || p->refusal != CR_NONE || p->aborting) {
				pg_finish(p);
				return false;
			}
			return send_copy(p);
		default:
			keep_error(p, res);
			break;
		}
	}
	return true;
}

static void pg_event(struct fpg_evsrc *src, uint32_t events)
{
	struct copy_pg *p = FPG_CONTAINER_OF(src, struct copy_pg, ev);
	PGconn *pg = fpg_conn_pg(p->conn);
	if ((events & EPOLLOUT) && !flush(p))
		return;
	if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) && !PQconsumeInput(pg)) {
		pg_fail(p, PQerrorMessage(pg));
		return;
	}
	if (p->state == CS_CHECK && !read_check(p))
		return;
	if (p->state == CS_STARTING && !read_results(p))
		return;
	out_then_results(p);
}

static void pg_start(struct copy_pg *p, struct fpg_conn *conn)
{
	p->conn = conn;
	if (!fpg_conn_raw_begin(conn, &p->ev)) {
		p->conn = NULL;
		if (!p->tx)
			fpg_conn_release(conn);
		else
			fpg_tx_release_if_idle(p->tx);
		pg_fail(p, "the connection is not idle");
		return;
	}
	/* Literals are quoted for UTF-8, where no byte of a multi-byte
	 * character is a quote; the pool sets it, a statement could not. */
	PGconn *pg = fpg_conn_pg(conn);
	if (strcmp(pg_encoding_to_char(PQclientEncoding(pg)), "UTF8") != 0) {
		pg_fail(p, "client_encoding is not UTF8");
		return;
	}
	if (p->query)
		(void)send_check(p);
	else
		(void)send_copy(p);
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

static int refuse(struct fpg_request *req, enum copy_refusal why)
{
	const struct fpg_options *o = req->svc->opts;
	switch (why) {
	case CR_INFLATED_SIZE:
		return fpg_request_fail(req, 413, "inflated_too_large",
					"the body inflates past %zu bytes "
					"(max-inflated-bytes); nothing was "
					"copied",
					o->max_inflated_bytes);
	case CR_INFLATE_RATIO:
		return fpg_request_fail(req, 413, "inflated_too_large",
					"the body inflates more than %u:1 "
					"(max-inflate-ratio); nothing was "
					"copied",
					o->max_inflate_ratio);
	case CR_NO_ROWS:
		return fpg_request_fail(req, 400, "bad_request",
					"\"query\" must be one statement "
					"that returns rows");
	case CR_NOT_GZIP:
	case CR_NONE:
	default:
		return fpg_request_fail(req, 400, "bad_request",
					"the body is not valid gzip/deflate "
					"data; nothing was copied");
	}
}

/* The COPY ended: answer the request, if it is still there. */
static void report(struct copy_pg *p)
{
	struct copy_req *cr = p->owner;
	if (!cr)
		return;
	struct fpg_request *req = cr->req;
	cr->pg = NULL;
	req->rows = strtoull(p->rows, NULL, 10);
	if (p->refusal != CR_NONE) {
		fpg_request_complete(req, refuse(req, p->refusal));
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
			/* cut short */
			fpg_request_stream_fail(req, &err, p->error, true);
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
	struct copy_req *cr = FPG_CONTAINER_OF(req->handler, struct copy_req, hs);
	struct copy_pg *p = cr->pg;
	free(cr);
	FPG_STAT_ADD(req->svc->stats->copies, -1);
	if (!p)
		return;
	p->owner = NULL;
	if (p->state == CS_ACQUIRE) {
		fpg_pool_cancel_wait(p->pool, &p->waiter);
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
	const char *query = in ? NULL : query_arg(req, "query");
	/* Outside a session what query= runs cannot write (data-modifying
	 * CTEs, functions): SET LOCAL holds for the implicit transaction of
	 * the one simple Query that carries both statements. */
	p->two_statements = query && !tx;
	if (p->two_statements)
		fpg_buf_puts(&sql, "SET LOCAL transaction_read_only = on;\n");
	if (!fpg_copy_build(query_arg, req, in, &sql, &ctype, &err)) {
		status = fpg_request_error(req, &err, NULL);
		goto fail;
	}
	fpg_buf_putc(&sql, '\0');
	if (query && !(p->query = strdup(query)))
		sql.failed = true;
	if (sql.failed) {
		status = fpg_request_fail(req, 503, "out_of_memory",
					  "out of memory");
		goto fail;
	}
	/* A connection of its own for the whole COPY (a session's COPY
	 * runs on the session's: transactions=N counts those). */
	if (!tx_conn && !fpg_request_hold_stream(req)) {
		status = fpg_request_too_many_streams(req);
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
	FPG_STAT_ADD(req->svc->stats->copies, 1); /* until cleanup */
	p->ev.on_event = pg_event;
	p->w = req->svc;
	p->pool = req->pool;
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
			req->svc->loop->now_ms + req->svc->opts->acquire_timeout_ms;
		fpg_pool_acquire(p->pool, &p->waiter);
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
	struct fpg_error err;
	struct fpg_conn *conn =
		fpg_tx_take_prefix(req->svc->tx, req->pool, req->path_param,
				   &tx, &err);
	return conn ? start(req, true, conn, tx)
		    : fpg_request_error(req, &err, NULL);
}

int fpg_handle_tx_copy_out(struct fpg_request *req)
{
	struct fpg_tx *tx;
	struct fpg_error err;
	struct fpg_conn *conn =
		fpg_tx_take_prefix(req->svc->tx, req->pool, req->path_param,
				   &tx, &err);
	return conn ? start(req, false, conn, tx)
		    : fpg_request_error(req, &err, NULL);
}
