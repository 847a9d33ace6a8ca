/*
 * POST /query: one statement with bound parameters; rows are encoded
 * straight from libpq's results into the response (DESIGN §2).
 *
 * The first FIRST_CHUNK bytes are held back, so that an error found early
 * still gets its proper HTTP status; past that the response streams as a
 * chunked 200 and an error ends it in-band ("error" instead of "command").
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
#include "worker.h"

#define FIRST_CHUNK (64 * 1024)

struct query_req {
	struct fpg_handler_state hs; /* first: the request points here */
	struct fpg_request *req;
	struct fpg_statement st;
	struct fpg_query q;
	int ncols;
	uint32_t *types;	/* column type OIDs */
	struct fpg_buf keys;	/* "name": per column, for object rows */
	size_t *key_end;	/* end offset of each key in keys */
	uint64_t rows;
	unsigned enc_flags;
	bool streaming;
	bool overflow;		/* hit max-result-bytes: rows are dropped */
};

static void cleanup(struct fpg_request *req)
{
	struct query_req *qr = (struct query_req *)req->handler;
	fpg_query_abandon(&qr->q);
	fpg_statement_deinit(&qr->st);
	fpg_buf_deinit(&qr->keys);
	free(qr->types);
	free(qr->key_end);
	free(qr);
}

static void put_columns(struct query_req *qr, int n,
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
	fpg_buf_puts(out, "],\"rows\":[");
}

static void on_columns(struct fpg_query *q, int n,
		       const struct fpg_column *cols)
{
	struct query_req *qr = q->ctx;
	/* A second call (the statement was prepared anew) starts over. */
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
	switch (qr->st.expect) {
	case FPG_EXPECT_ALL:
		put_columns(qr, n, cols);
		break;
	case FPG_EXPECT_ONE:
	case FPG_EXPECT_FIRST:
		fpg_buf_puts(&qr->req->out, "{\"row\":");
		break;
	case FPG_EXPECT_SCALAR:
		fpg_buf_puts(&qr->req->out, "{\"value\":");
		break;
	}
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

static void put_row(struct query_req *qr, const PGresult *res, int row)
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

static void on_row(struct fpg_query *q, const PGresult *res, int row)
{
	struct query_req *qr = q->ctx;
	struct fpg_request *req = qr->req;
	uint64_t n = qr->rows++;
	if (qr->overflow || !qr->types)
		return;
	if (qr->st.expect != FPG_EXPECT_ALL) {
		/* Only the first row is sent; the rest are counted. */
		if (n > 0)
			return;
		if (qr->st.expect != FPG_EXPECT_SCALAR)
			put_row(qr, res, row);
		else if (qr->ncols > 0)
			put_value(qr, res, row, 0);
		else
			fpg_buf_puts(&req->out, "null");
		return;
	}
	if (n > 0)
		fpg_buf_putc(&req->out, ',');
	put_row(qr, res, row);
	size_t pending = fpg_buf_pending(&req->out);
	if (pending > req->w->opts->max_result_bytes) {
		/* The client reads slower than PostgreSQL sends, and this
		 * connection is shared: drop the rest of the rows. */
		qr->overflow = true;
		return;
	}
	if (!qr->streaming && pending > FIRST_CHUNK) {
		qr->streaming = true;
		fpg_request_stream_begin(req, 200);
	} else if (qr->streaming) {
		fpg_request_stream_push(req);
	}
}

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
		fpg_request_complete(req, fpg_request_error(req, err, res));
		return;
	}
	fpg_buf_puts(&req->out, "],\"error\":");
	fpg_error_json_object(&req->out, err, res);
	fpg_buf_puts(&req->out, "}\n");
	fpg_request_stream_end(req, false);
}

static void finish_expect(struct query_req *qr)
{
	struct fpg_request *req = qr->req;
	struct fpg_error err;
	if (qr->st.expect == FPG_EXPECT_ONE && qr->rows != 1) {
		fpg_error_set(&err, FPG_ERR_REQUEST, qr->rows ? 409 : 404,
			      "expected exactly one row, got %llu",
			      (unsigned long long)qr->rows);
		fpg_request_complete(req, fpg_request_fail(
			req, err.http_status,
			qr->rows ? "too_many_rows" : "no_rows", "%s",
			err.message));
		return;
	}
	if (qr->rows == 0)
		fpg_buf_puts(&req->out, "null");
	fpg_buf_puts(&req->out, "}\n");
	fpg_request_complete(req, 200);
}

static void on_finish(struct fpg_query *q, PGresult *res,
		      const struct fpg_error *err)
{
	struct query_req *qr = q->ctx;
	struct fpg_request *req = qr->req;
	FPG_STAT_ADD(req->w->stats.rows_sent, qr->rows);
	if (err) {
		end_with_error(qr, res, err);
		return;
	}
	if (qr->overflow) {
		struct fpg_error e;
		fpg_error_set(&e, FPG_ERR_LIMIT, 500,
			      "the result exceeded max-result-bytes (%zu) "
			      "before the client read it; %llu rows were "
			      "not sent",
			      req->w->opts->max_result_bytes,
			      (unsigned long long)qr->rows);
		end_with_error(qr, NULL, &e);
		return;
	}
	if (qr->st.expect != FPG_EXPECT_ALL) {
		finish_expect(qr);
		return;
	}
	fpg_buf_puts(&req->out, "],\"command\":");
	put_command(&req->out, PQcmdStatus(res));
	const char *count = PQcmdTuples(res);
	fpg_buf_printf(&req->out, ",\"row_count\":%s}\n",
		       *count ? count : "null");
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

static bool accepts_json(const char *accept)
{
	if (!accept || !*accept)
		return true;
	for (const char *p = accept; p; p = strchr(p, ',')) {
		if (*p == ',')
			p++;
		if (media_is(p, "application/json") ||
		    media_is(p, "application/*") || media_is(p, "*/*"))
			return true;
	}
	return false;
}

int fpg_handle_query(struct fpg_request *req)
{
	const char *ctype = fpg_request_header(req, "Content-Type");
	if (ctype && !media_is(ctype, "application/json"))
		return fpg_request_fail(req, 415, "unsupported_media_type",
					"send the body as application/json "
					"(got %.64s)",
					ctype);
	if (!accepts_json(fpg_request_header(req, "Accept")))
		return fpg_request_fail(req, 406, "not_acceptable",
					"this endpoint answers "
					"application/json");
	struct query_req *qr = calloc(1, sizeof(*qr));
	if (!qr)
		return fpg_request_fail(req, 503, "out_of_memory",
					"out of memory");
	qr->hs.cleanup = cleanup;
	qr->req = req;
	fpg_buf_init(&qr->keys);
	req->handler = &qr->hs;
	struct fpg_error err;
	if (!fpg_statement_parse(&qr->st, req->body.data ? req->body.data : "",
				 req->body.len, &err) ||
	    !fpg_statement_check_autocommit(qr->st.sql, &err))
		return fpg_request_error(req, &err, NULL);
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
	fpg_query_submit(req->w->pool, &qr->q);
	return 0;
}
