/*
 * POST /query and DELETE /query/{request_id}: one statement with bound
 * parameters; rows are encoded straight from libpq's results into the
 * response, as JSON, NDJSON or CSV (docs/api.md).
 *
 * Lanes. By default a statement shares a pipelined connection (the fast
 * lane); the first FIRST_CHUNK bytes of its answer are held back so that
 * an early error still gets its own HTTP status, then the answer streams
 * as a chunked 200. A shared connection cannot stop reading for one slow
 * client, so at most max_buffered_bytes wait for the client; past that the
 * rest is dropped and the answer ends with an error. Streaming formats,
 * ?stream=true and statements whose earlier answers streamed run on a
 * connection of their own (the slow lane): there the worker stops reading
 * PostgreSQL's results above HIGH_MARK bytes waiting for the client and
 * starts again below LOW_MARK, so memory stays bounded whatever the size.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "encode.h"
#include "error.h"
#include "handlers.h"
#include "params.h"
#include "query.h"
#include "tx.h"
#include "worker.h"

#define FIRST_CHUNK (64 * 1024)
#define HIGH_MARK (256 * 1024)
#define LOW_MARK (64 * 1024)

enum format {
	FMT_JSON,
	FMT_NDJSON,
	FMT_CSV,
};

static const char *const format_types[] = {
	[FMT_JSON] = "application/json",
	[FMT_NDJSON] = "application/x-ndjson",
	[FMT_CSV] = "text/csv; charset=utf-8",
};

struct query_req {
	struct fpg_handler_state hs; /* first: the request points here */
	struct fpg_request *req;
	struct fpg_statement st;
	struct fpg_query q;
	enum format format;
	int ncols;
	uint32_t *types;	/* column type OIDs */
	struct fpg_buf keys;	/* "name": per column, for object rows */
	size_t *key_end;	/* end offset of each key in keys */
	uint64_t rows;
	size_t bytes;		/* encoded row bytes so far */
	unsigned enc_flags;
	bool streaming;		/* the 200 went out: errors go in-band */
	bool paused;		/* PostgreSQL reads stopped (slow lane) */
	bool dropping;		/* rows past a limit: counted, not sent */
	struct fpg_error limit;	/* why rows are dropped */
	/* batch items (see fpg_query_run_batch_item) */
	fpg_batch_done_fn batch_done;
	void *batch_ctx;
	size_t out_start;	/* where this item's answer starts in out */
	size_t accounted;	/* of w->buffered, ours */
	struct fpg_batch_item **running; /* cleared when the item ends */
};

/* ---- lifecycle ---- */

static void free_query_req(struct query_req *qr);

static void cleanup(struct fpg_request *req)
{
	struct query_req *qr = (struct query_req *)req->handler;
	fpg_query_abandon(&qr->q);
	free_query_req(qr);
}

/* ---- encoding ---- */

static void put_columns_json(struct query_req *qr, int n,
			     const struct fpg_column *cols)
{
	struct fpg_buf *out = &qr->req->out;
	const struct fpg_typecache *tc = qr->req->w->types;
	fpg_buf_puts(out, "{\"columns\":[");
	for (int i = 0; i < n; i++) {
		fpg_buf_puts(out, i ? ",{\"name\":" : "{\"name\":");
		fpg_buf_json_str(out, cols[i].name, strlen(cols[i].name));
		fpg_buf_puts(out, ",\"type\":");
		fpg_encode_type_name(out, tc, cols[i].type);
		fpg_buf_putc(out, '}');
	}
	fpg_buf_putc(out, ']');
}

static bool csv_needs_quotes(const char *s, size_t n)
{
	static const bool special[256] = {[','] = true, ['"'] = true,
					  ['\r'] = true, ['\n'] = true};
	if (n == 0)
		return true;
	for (size_t i = 0; i < n; i++)
		if (special[(unsigned char)s[i]])
			return true;
	return false;
}

/* RFC 4180: quote when needed; "" stays quoted to differ from NULL. */
static void put_csv_field(struct fpg_buf *out, const char *s, size_t n)
{
	bool quote = csv_needs_quotes(s, n);
	if (!quote) {
		fpg_buf_append(out, s, n);
		return;
	}
	fpg_buf_putc(out, '"');
	for (const char *q; (q = memchr(s, '"', n)); n -= (size_t)(q + 1 - s),
						     s = q + 1) {
		fpg_buf_append(out, s, (size_t)(q + 1 - s));
		fpg_buf_putc(out, '"');
	}
	fpg_buf_append(out, s, n);
	fpg_buf_putc(out, '"');
}

static void put_header(struct query_req *qr, int n,
		       const struct fpg_column *cols)
{
	struct fpg_buf *out = &qr->req->out;
	switch (qr->format) {
	case FMT_JSON:
		if (qr->st.expect == FPG_EXPECT_SCALAR) {
			fpg_buf_puts(out, "{\"value\":");
		} else if (qr->st.expect != FPG_EXPECT_ALL) {
			fpg_buf_puts(out, "{\"row\":");
		} else {
			put_columns_json(qr, n, cols);
			fpg_buf_puts(out, ",\"rows\":[");
		}
		break;
	case FMT_NDJSON:
		put_columns_json(qr, n, cols);
		fpg_buf_puts(out, "}\n");
		break;
	case FMT_CSV:
		for (int i = 0; i < n; i++) {
			if (i)
				fpg_buf_putc(out, ',');
			put_csv_field(out, cols[i].name, strlen(cols[i].name));
		}
		fpg_buf_puts(out, "\r\n");
		break;
	}
}

static void on_columns(struct fpg_query *q, int n,
		       const struct fpg_column *cols)
{
	struct query_req *qr = q->ctx;
	/* A second call (the statement was prepared anew) starts over. */
	if (qr->batch_done)
		qr->req->out.len = qr->req->out.off + qr->out_start;
	else
		fpg_buf_reset(&qr->req->out);
	fpg_buf_reset(&qr->keys);
	free(qr->types);
	free(qr->key_end);
	qr->ncols = n;
	qr->types = malloc(sizeof(uint32_t) * (size_t)(n ? n : 1));
	qr->key_end = malloc(sizeof(size_t) * (size_t)(n ? n : 1));
	if (!qr->types || !qr->key_end) {
		qr->req->out.failed = true;
		return;
	}
	for (int i = 0; i < n; i++) {
		qr->types[i] = cols[i].type;
		fpg_buf_json_str(&qr->keys, cols[i].name, strlen(cols[i].name));
		fpg_buf_putc(&qr->keys, ':');
		qr->key_end[i] = qr->keys.len;
	}
	put_header(qr, n, cols);
}

static void put_value(struct query_req *qr, const PGresult *res, int row,
		      int col)
{
	struct fpg_buf *out = &qr->req->out;
	if (PQgetisnull(res, row, col)) {
		fpg_buf_puts(out, "null");
		return;
	}
	fpg_encode_value(out, qr->req->w->types, qr->types[col],
			 PQgetvalue(res, row, col),
			 (size_t)PQgetlength(res, row, col), qr->enc_flags);
}

static void put_row_json(struct query_req *qr, const PGresult *res, int row)
{
	struct fpg_buf *out = &qr->req->out;
	if (qr->st.rows == FPG_ROWS_ARRAY) {
		fpg_buf_putc(out, '[');
		for (int i = 0; i < qr->ncols; i++) {
			if (i)
				fpg_buf_putc(out, ',');
			put_value(qr, res, row, i);
		}
		fpg_buf_putc(out, ']');
		return;
	}
	fpg_buf_putc(out, '{');
	size_t start = 0;
	for (int i = 0; i < qr->ncols; i++) {
		if (i)
			fpg_buf_putc(out, ',');
		fpg_buf_append(out, qr->keys.data + start,
			       qr->key_end[i] - start);
		start = qr->key_end[i];
		put_value(qr, res, row, i);
	}
	fpg_buf_putc(out, '}');
}

static void put_row(struct query_req *qr, const PGresult *res, int row)
{
	struct fpg_buf *out = &qr->req->out;
	switch (qr->format) {
	case FMT_JSON:
		if (qr->rows > 1)
			fpg_buf_putc(out, ',');
		put_row_json(qr, res, row);
		break;
	case FMT_NDJSON:
		put_row_json(qr, res, row);
		fpg_buf_putc(out, '\n');
		break;
	case FMT_CSV:
		for (int i = 0; i < qr->ncols; i++) {
			if (i)
				fpg_buf_putc(out, ',');
			if (!PQgetisnull(res, row, i))
				put_csv_field(out, PQgetvalue(res, row, i),
					      (size_t)PQgetlength(res, row, i));
		}
		fpg_buf_puts(out, "\r\n");
		break;
	}
}

/* Only the first row is sent; the rest are counted. */
static void put_expected_row(struct query_req *qr, const PGresult *res,
			     int row)
{
	if (qr->rows > 1)
		return;
	if (qr->st.expect != FPG_EXPECT_SCALAR)
		put_row_json(qr, res, row);
	else if (qr->ncols > 0)
		put_value(qr, res, row, 0);
	else
		fpg_buf_puts(&qr->req->out, "null");
}

/* ---- limits and back-pressure ---- */

/* Rows from now on are dropped; the answer will end with err. */
static void start_dropping(struct query_req *qr, int status, const char *code,
			   const char *msg)
{
	qr->dropping = true;
	fpg_error_set(&qr->limit, FPG_ERR_LIMIT, status, "%s", msg);
	qr->limit.reason = code;
	/* On a connection of our own, stop the statement too. */
	fpg_query_cancel(&qr->q);
}

/* Before a row is written: would it be one too many? */
static bool row_allowed(struct query_req *qr)
{
	uint64_t max = qr->req->w->opts->max_result_rows;
	if (!max || qr->rows <= max)
		return true;
	char msg[200];
	snprintf(msg, sizeof(msg),
		 "the result has more than %llu rows (max-result-rows)",
		 (unsigned long long)max);
	start_dropping(qr, 413, "result_too_large", msg);
	return false;
}

/*
 * Keeps the worker's count of answer bytes waiting for clients up to
 * date with ours: max-buffered-total caps them all together.
 */
static void account(struct query_req *qr)
{
	struct fpg_worker *w = qr->req->w;
	size_t now = fpg_buf_pending(&qr->req->out);
	w->buffered = w->buffered - qr->accounted + now;
	qr->accounted = now;
}

/* This worker's share of max-buffered-total is used up (the server
 * resolved threads = 0 to the worker count). */
static bool worker_full(const struct fpg_worker *w)
{
	return w->buffered > w->opts->max_buffered_total / w->opts->threads;
}

/*
 * After a row was written (pending_before bytes were pending): a row
 * that crosses max-result-bytes is taken back; a shared connection's
 * answer may not pile up past max-buffered-bytes.
 */
static void check_size(struct query_req *qr, size_t pending_before)
{
	const struct fpg_options *o = qr->req->w->opts;
	struct fpg_buf *out = &qr->req->out;
	char msg[200];
	if (o->max_result_bytes && qr->bytes > o->max_result_bytes) {
		out->len = out->off + pending_before;
		snprintf(msg, sizeof(msg),
			 "the result is larger than %zu bytes "
			 "(max-result-bytes)",
			 o->max_result_bytes);
		start_dropping(qr, 413, "result_too_large", msg);
	} else if ((!qr->q.exclusive || qr->batch_done) &&
		   (fpg_buf_pending(out) > o->max_buffered_bytes ||
		    worker_full(qr->req->w))) {
		snprintf(msg, sizeof(msg),
			 "the client read more slowly than the result came "
			 "and %zu bytes piled up (max-buffered-%s); ask with "
			 "?stream=true or Accept: application/x-ndjson to "
			 "stream it",
			 fpg_buf_pending(out),
			 fpg_buf_pending(out) > o->max_buffered_bytes
				 ? "bytes" : "total, all clients together");
		start_dropping(qr, 507, "result_not_read", msg);
	}
}

/* Remembers how large this statement's answer was (see worker.h). */
static void remember_size(struct query_req *qr, bool big)
{
	struct fpg_worker *w = qr->req->w;
	uint64_t h = qr->q.sql_hash;
	unsigned i = h % FPG_BIG_SLOTS;
	w->big_statements[i] = big ? h : 0;
	w->small_statements[i] = big ? 0 : h;
}

/*
 * A plain JSON statement runs on a connection of its own when its answer
 * was large before, or when nothing is known of it and one is free: a
 * large answer there can wait for a slow client. Known small answers
 * share a pipelined connection (the fast lane).
 */
static bool wants_own_connection(struct fpg_request *req, const char *sql)
{
	struct fpg_worker *w = req->w;
	uint64_t h = fpg_query_hash(sql);
	unsigned i = h % FPG_BIG_SLOTS;
	if (w->big_statements[i] == h)
		return true;
	return w->small_statements[i] != h && fpg_pool_can_hold(w->pool);
}

static void begin_stream(struct query_req *qr)
{
	qr->streaming = true;
	fpg_request_stream_begin(qr->req, 200);
}

static void on_row(struct fpg_query *q, const PGresult *res, int row)
{
	struct query_req *qr = q->ctx;
	struct fpg_request *req = qr->req;
	qr->rows++;
	if (qr->dropping || !qr->types)
		return;
	if (qr->format == FMT_JSON && qr->st.expect != FPG_EXPECT_ALL) {
		put_expected_row(qr, res, row);
		return;
	}
	if (!row_allowed(qr))
		return;
	size_t before = fpg_buf_pending(&req->out);
	put_row(qr, res, row);
	qr->bytes += fpg_buf_pending(&req->out) - before;
	check_size(qr, before);
	account(qr);
	size_t pending = fpg_buf_pending(&req->out);
	if (qr->batch_done)
		return; /* a batch answers once it is whole */
	if (!qr->streaming) {
		/* FIRST_CHUNK is held back, keeping early errors' statuses,
		 * except by streaming formats (rows as they come). */
		if (qr->format != FMT_JSON || pending > FIRST_CHUNK)
			begin_stream(qr);
		return;
	}
	fpg_request_stream_push(req);
	if (qr->q.exclusive && !qr->paused && pending > HIGH_MARK) {
		qr->paused = true;
		fpg_query_pause(&qr->q, true);
	}
}

static void on_drained(struct fpg_request *req)
{
	struct query_req *qr = (struct query_req *)req->handler;
	account(qr);
	if (qr->paused && fpg_buf_pending(&req->out) < LOW_MARK) {
		qr->paused = false;
		fpg_query_pause(&qr->q, false);
	}
}

/* ---- the end ---- */

/* "INSERT 0 3" -> "INSERT"; "CREATE TABLE" stays. */
static void put_command(struct fpg_buf *out, const char *tag)
{
	size_t n = strlen(tag);
	for (;;) {
		size_t k = n;
		while (k > 0 && tag[k - 1] >= '0' && tag[k - 1] <= '9')
			k--;
		if (k == n || k == 0 || tag[k - 1] != ' ')
			break;
		n = k - 1;
	}
	fpg_buf_json_str(out, tag, n);
}

static void end_with_error(struct query_req *qr, const PGresult *res,
			   const struct fpg_error *err)
{
	struct fpg_request *req = qr->req;
	if (!qr->streaming) {
		req->content_type = "application/json";
		fpg_request_complete(req, fpg_request_error(req, err, res));
		return;
	}
	switch (qr->format) {
	case FMT_JSON:
		fpg_buf_puts(&req->out, "],\"error\":");
		fpg_error_json_object(&req->out, err, res);
		fpg_buf_puts(&req->out, "}\n");
		break;
	case FMT_NDJSON:
		fpg_error_json(&req->out, err, res);
		fpg_buf_putc(&req->out, '\n');
		break;
	case FMT_CSV:
		/* CSV has no place for it: cut the transfer short so that
		 * no client takes what it got for the whole result. */
		fpg_request_stream_end(req, true);
		return;
	}
	fpg_request_stream_end(req, false);
}

static void finish_expect(struct query_req *qr)
{
	struct fpg_request *req = qr->req;
	if (qr->st.expect == FPG_EXPECT_ONE && qr->rows != 1) {
		fpg_request_complete(
			req, fpg_request_fail(
				     req, qr->rows ? 409 : 404,
				     qr->rows ? "too_many_rows" : "no_rows",
				     "expected exactly one row, got %llu",
				     (unsigned long long)qr->rows));
		return;
	}
	if (qr->rows == 0)
		fpg_buf_puts(&req->out, "null");
	fpg_buf_puts(&req->out, "}\n");
	fpg_request_complete(req, 200);
}

static void put_trailer(struct query_req *qr, PGresult *res)
{
	struct fpg_buf *out = &qr->req->out;
	if (qr->format == FMT_CSV)
		return;
	fpg_buf_puts(out, qr->format == FMT_JSON ? "],\"command\":"
						 : "{\"command\":");
	put_command(out, PQcmdStatus(res));
	const char *count = PQcmdTuples(res);
	fpg_buf_printf(out, ",\"row_count\":%s}\n", *count ? count : "null");
}

static void free_query_req(struct query_req *qr)
{
	qr->req->w->buffered -= qr->accounted;
	fpg_statement_deinit(&qr->st);
	fpg_buf_deinit(&qr->keys);
	free(qr->types);
	free(qr->key_end);
	free(qr);
}

/* A batch item's end: its answer stays in out (or is taken back). */
static void finish_item(struct query_req *qr, PGresult *res,
			const struct fpg_error *err)
{
	struct fpg_buf *out = &qr->req->out;
	if (qr->dropping) {
		err = &qr->limit;
		res = NULL;
	}
	if (err) {
		out->len = out->off + qr->out_start;
	} else {
		put_trailer(qr, res);
		out->len--; /* its newline: items are separated by commas */
	}
	*qr->running = NULL;
	qr->batch_done(qr->batch_ctx, res, err);
	free_query_req(qr);
}

static void on_finish(struct fpg_query *q, PGresult *res,
		      const struct fpg_error *err)
{
	struct query_req *qr = q->ctx;
	struct fpg_request *req = qr->req;
	FPG_STAT_ADD(req->w->stats.rows_sent, qr->rows);
	if (qr->batch_done) {
		finish_item(qr, res, err);
		return;
	}
	if (qr->dropping) {
		/* The cancel we sent may be the error here: ours is the news. */
		end_with_error(qr, NULL, &qr->limit);
		return;
	}
	if (err) {
		end_with_error(qr, res, err);
		return;
	}
	if (qr->format == FMT_JSON && qr->st.expect != FPG_EXPECT_ALL) {
		finish_expect(qr);
		return;
	}
	put_trailer(qr, res);
	remember_size(qr, qr->bytes > FIRST_CHUNK);
	if (qr->streaming)
		fpg_request_stream_end(req, false);
	else
		fpg_request_complete(req, 200);
}

static const struct fpg_query_ops query_ops = {
	.columns = on_columns,
	.row = on_row,
	.finish = on_finish,
};

/* DELETE /query/{id} reached this request. */
static void on_cancel(struct fpg_request *req)
{
	struct query_req *qr = (struct query_req *)req->handler;
	if (qr->q.done)
		return;
	if (qr->q.exclusive) {
		/* PostgreSQL answers 57014; it comes back as any error. */
		fpg_query_cancel(&qr->q);
		return;
	}
	/* A shared connection is never cancelled: leave the statement to
	 * finish there and drop its rows. */
	fpg_query_abandon(&qr->q);
	struct fpg_error err;
	fpg_error_set(&err, FPG_ERR_PG, 504,
		      "canceling statement due to user request (the "
		      "statement ran on a shared connection and may "
		      "complete there)");
	snprintf(err.sqlstate, sizeof(err.sqlstate), "57014");
	end_with_error(qr, NULL, &err);
}

/* ---- negotiation ---- */

/* Compares the media type of a header value, ignoring parameters. */
static bool media_is(const char *value, const char *type)
{
	size_t n = strlen(type);
	while (*value == ' ')
		value++;
	return strncasecmp(value, type, n) == 0 &&
	       (value[n] == '\0' || value[n] == ';' || value[n] == ' ' ||
		value[n] == ',');
}

/* The first format of the Accept list we can produce, or -1. */
static int negotiate(const char *accept)
{
	if (!accept || !*accept)
		return FMT_JSON;
	for (const char *p = accept; p; p = strchr(p, ',')) {
		if (*p == ',')
			p++;
		if (media_is(p, "application/json") ||
		    media_is(p, "application/*") || media_is(p, "*/*"))
			return FMT_JSON;
		if (media_is(p, "application/x-ndjson"))
			return FMT_NDJSON;
		if (media_is(p, "text/csv") || media_is(p, "text/*"))
			return FMT_CSV;
	}
	return -1;
}

static bool stream_asked(struct fpg_request *req)
{
	const char *v = MHD_lookup_connection_value(
		req->conn, MHD_GET_ARGUMENT_KIND, "stream");
	return v && (strcmp(v, "true") == 0 || strcmp(v, "1") == 0);
}

/*
 * The friendly textual check (--sql-precheck): an early, clear error for
 * what /query does not run. Correctness does not depend on it: the pool
 * and the transaction sessions check what PostgreSQL says it did.
 */
static bool precheck(struct fpg_request *req, const char *sql, bool in_tx,
		     struct fpg_error *err)
{
	if (!req->w->opts->sql_precheck)
		return true;
	return in_tx ? fpg_statement_check_in_tx(sql, err)
		     : fpg_statement_check_autocommit(sql, err);
}

/*
 * Parses req's body and starts its statement: on a pooled connection, or
 * on tx_conn (a transaction's) when given.
 */
static int start_query(struct fpg_request *req, struct fpg_conn *tx_conn)
{
	/* Required, not assumed: a body without a type is what a web
	 * page may send to any server without asking (CSRF). */
	const char *ctype = fpg_request_header(req, "Content-Type");
	if (!ctype || !media_is(ctype, "application/json"))
		return fpg_request_fail(req, 415, "unsupported_media_type",
					"send the body as application/json "
					"(got %.64s)",
					ctype ? ctype : "no Content-Type");
	int format = negotiate(fpg_request_header(req, "Accept"));
	if (format < 0)
		return fpg_request_fail(req, 406, "not_acceptable",
					"this endpoint answers "
					"application/json, "
					"application/x-ndjson or text/csv");
	struct query_req *qr = calloc(1, sizeof(*qr));
	if (!qr)
		return fpg_request_fail(req, 503, "out_of_memory",
					"out of memory");
	qr->hs.cleanup = cleanup;
	qr->hs.cancel = on_cancel;
	qr->hs.drained = on_drained;
	qr->req = req;
	qr->format = (enum format)format;
	fpg_buf_init(&qr->keys);
	req->handler = &qr->hs;
	struct fpg_error err;
	if (!fpg_statement_parse(&qr->st, req->body.data ? req->body.data : "",
				 req->body.len, &err) ||
	    !precheck(req, qr->st.sql, tx_conn != NULL, &err))
		return fpg_request_error(req, &err, NULL);
	if (qr->st.expect != FPG_EXPECT_ALL && qr->format != FMT_JSON)
		return fpg_request_fail(req, 400, "bad_request",
					"\"expect\" needs a JSON answer "
					"(Accept: application/json)");
	req->content_type = format_types[qr->format];
	unsigned max = req->w->opts->statement_timeout_ms;
	qr->q.timeout_ms = qr->st.timeout_ms;
	if (max && qr->q.timeout_ms > max)
		qr->q.timeout_ms = max;
	qr->enc_flags = qr->st.big_numbers_string ? FPG_ENC_BIG_STRING : 0;
	qr->q.sql = qr->st.sql;
	qr->q.nparams = qr->st.nparams;
	qr->q.params = (const char *const *)qr->st.params;
	qr->q.ops = &query_ops;
	qr->q.ctx = qr;
	if (tx_conn) {
		/* The transaction's own connection: pausable, cancellable,
		 * and its session state is the client's business. */
		qr->q.conn_fixed = tx_conn;
		qr->q.exclusive = true;
	} else {
		qr->q.exclusive =
			qr->st.expect == FPG_EXPECT_ALL &&
			(qr->format != FMT_JSON || stream_asked(req) ||
			 wants_own_connection(req, qr->st.sql));
	}
	fpg_query_submit(req->w->pool, &qr->q);
	return 0;
}

int fpg_handle_query(struct fpg_request *req)
{
	return start_query(req, NULL);
}

int fpg_query_run_in_tx(struct fpg_request *req, struct fpg_conn *conn,
			struct fpg_tx *tx)
{
	int status = start_query(req, conn);
	/* Nothing was queued (a bad request, a wrong parameter count): the
	 * session is free again at once. Else the connection frees it. */
	fpg_tx_release_if_idle(tx);
	return status;
}

/*
 * The id alone is no proof: ids are logged, sent back, and chosen by
 * clients (two may pick the same). Only the client that sent the request
 * knows its X-Cancel-Key; an unknown id and a wrong key answer alike.
 */
int fpg_handle_query_cancel(struct fpg_request *req)
{
	const char *id = req->path_param;
	if (!req->cancel_key[0])
		return fpg_request_fail(req, 400, "bad_request",
					"send the X-Cancel-Key header that "
					"the request to cancel was sent with");
	if (fpg_request_cancel_everywhere(req, id, req->cancel_key) == 0)
		return fpg_request_fail(req, 404, "not_found",
					"no running request has id %.64s and "
					"this X-Cancel-Key",
					id);
	fpg_buf_puts(&req->out, "{\"status\":\"cancelling\",\"request_id\":");
	fpg_buf_json_str(&req->out, id, strlen(id));
	fpg_buf_puts(&req->out, "}\n");
	return 202;
}

void fpg_query_run_batch_item(struct fpg_request *req, struct fpg_conn *conn,
			      const struct fpg_statement *st,
			      fpg_batch_done_fn done, void *ctx,
			      struct fpg_batch_item **running)
{
	struct fpg_error err;
	struct query_req *qr = calloc(1, sizeof(*qr));
	if (!qr) {
		fpg_error_set(&err, FPG_ERR_NOMEM, 503, "out of memory");
		*running = NULL;
		done(ctx, NULL, &err);
		return;
	}
	qr->req = req;
	qr->format = FMT_JSON;
	fpg_buf_init(&qr->keys);
	/* The statement is the batch's: borrow what the item reads. */
	qr->st.sql = st->sql;
	qr->st.rows = st->rows;
	qr->st.expect = FPG_EXPECT_ALL;
	qr->batch_done = done;
	qr->batch_ctx = ctx;
	qr->out_start = fpg_buf_pending(&req->out);
	qr->running = running;
	*running = (struct fpg_batch_item *)qr;
	qr->enc_flags = st->big_numbers_string ? FPG_ENC_BIG_STRING : 0;
	qr->q.sql = st->sql;
	qr->q.nparams = st->nparams;
	qr->q.params = (const char *const *)st->params;
	qr->q.timeout_ms = st->timeout_ms;
	unsigned max = req->w->opts->statement_timeout_ms;
	if (max && qr->q.timeout_ms > max)
		qr->q.timeout_ms = max;
	qr->q.ops = &query_ops;
	qr->q.ctx = qr;
	qr->q.conn_fixed = conn;
	qr->q.exclusive = true;
	if (!precheck(req, st->sql, true, &err)) {
		finish_item(qr, NULL, &err);
		return;
	}
	fpg_query_submit(req->w->pool, &qr->q);
}

void fpg_batch_item_abandon(struct fpg_batch_item *item)
{
	struct query_req *qr = (struct query_req *)item;
	if (!qr)
		return;
	*qr->running = NULL;
	fpg_query_abandon(&qr->q);
	free_query_req(qr);
}
