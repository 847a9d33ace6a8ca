/*
 * POST /query, POST and GET /q/{name}, POST /tx/{token}/query and DELETE
 * /query/{request_id}: one statement with bound parameters; rows are
 * encoded straight from libpq's results into the response, as JSON, NDJSON
 * or CSV (docs/api.md, written by answer.c and rowfmt.c). This file is the
 * HTTP side: negotiation, the lane, when the status goes out and how the
 * answer streams.
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
 * A role's streams=N (--roles) caps those per worker (choose_lane).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "answer.h"
#include "error.h"
#include "handlers.h"
#include "params.h"
#include "query.h"
#include "rowfmt.h"
#include "tx.h"
#include "queries.h"
#include "services.h"
#include "stats.h"
#include "stmt.h"

#define FIRST_CHUNK (64 * 1024)
#define HIGH_MARK (256 * 1024)
#define LOW_MARK (64 * 1024)

struct query_req {
	struct fpg_handler_state hs; /* the request points here */
	struct fpg_request *req;
	struct fpg_statement st;
	struct fpg_answer a;	/* its statement is st */
	bool streaming;		/* the 200 went out: errors go in-band */
	bool paused;		/* PostgreSQL reads stopped (slow lane) */
};

static struct query_req *query_req_of(struct fpg_answer *a)
{
	return FPG_CONTAINER_OF(a, struct query_req, a);
}

static void cleanup(struct fpg_request *req)
{
	struct query_req *qr = FPG_CONTAINER_OF(req->handler, struct query_req, hs);
	fpg_answer_deinit(&qr->a);
	fpg_statement_deinit(&qr->st);
	free(qr);
}

/* ---- streaming and back-pressure ---- */

static void begin_stream(struct query_req *qr)
{
	qr->streaming = true;
	fpg_request_stream_begin(qr->req, 200);
}

static void on_row(struct fpg_answer *a)
{
	struct query_req *qr = query_req_of(a);
	struct fpg_request *req = qr->req;
	size_t pending = fpg_buf_pending(&req->out);
	if (!qr->streaming) {
		/* FIRST_CHUNK is held back, keeping early errors' statuses,
		 * except by streaming formats (rows as they come). While the
		 * rows may still be voided (a coalesced group) nothing goes
		 * out: past FIRST_CHUNK, where alone it would stream (and
		 * tell a limit met later in the answer), it runs again
		 * alone. */
		if (fpg_query_unsettled(&a->q)) {
			if (pending > FIRST_CHUNK)
				fpg_answer_outgrow_group(a);
			return;
		}
		if (fpg_rowfmt_streams(a->fmt.format) || pending > FIRST_CHUNK)
			begin_stream(qr);
		return;
	}
	fpg_request_stream_push(req);
	if (a->q.exclusive && !qr->paused && pending > HIGH_MARK) {
		qr->paused = true;
		fpg_query_pause(&a->q, true);
	}
}

static void on_drained(struct fpg_request *req)
{
	struct query_req *qr = FPG_CONTAINER_OF(req->handler, struct query_req, hs);
	fpg_answer_account(&qr->a);
	if (qr->paused && fpg_buf_pending(&req->out) < LOW_MARK) {
		qr->paused = false;
		fpg_query_pause(&qr->a.q, false);
	}
}

/* ---- the end ---- */

static void end_with_error(struct query_req *qr, const PGresult *res,
			   const struct fpg_error *err)
{
	struct fpg_request *req = qr->req;
	if (!qr->streaming) {
		req->content_type = "application/json";
		fpg_request_complete(req, fpg_request_error(req, err, res));
		return;
	}
	/* CSV has no place for it: cut the transfer short so that no client
	 * takes what it got for the whole result. */
	bool cut = !fpg_rowfmt_put_error(&qr->a.fmt, &req->out, err, res);
	fpg_request_stream_fail(req, err, res, cut);
}

static void finish_single(struct query_req *qr, PGresult *res)
{
	struct fpg_request *req = qr->req;
	uint64_t rows = qr->a.rows;
	if (qr->st.expect == FPG_EXPECT_ONE && rows != 1) {
		fpg_request_complete(
			req, fpg_request_fail(
				     req, rows ? 409 : 404,
				     rows ? "too_many_rows" : "no_rows",
				     "expected exactly one row, got %llu",
				     (unsigned long long)rows));
		return;
	}
	fpg_rowfmt_put_end(&qr->a.fmt, &req->out, res);
	fpg_request_complete(req, 200);
}

static void on_finish(struct fpg_answer *a, PGresult *res,
		      const struct fpg_error *err)
{
	struct query_req *qr = query_req_of(a);
	struct fpg_request *req = qr->req;
	req->rows = a->rows;
	if (err) {
		fpg_lanes_failed(req->svc->lanes, &a->q);
		end_with_error(qr, res, err);
		return;
	}
	fpg_lanes_learn(req->svc->lanes, &a->q, a->bytes > FIRST_CHUNK);
	if (fpg_rowfmt_single(&a->fmt)) {
		finish_single(qr, res);
		return;
	}
	fpg_rowfmt_put_end(&a->fmt, &req->out, res);
	if (qr->streaming)
		fpg_request_stream_end(req, false);
	else
		fpg_request_complete(req, 200);
}

static const struct fpg_answer_ops answer_ops = {
	.row = on_row,
	.finish = on_finish,
};

/* DELETE /query/{id} reached this request. */
static void on_cancel(struct fpg_request *req)
{
	struct query_req *qr = FPG_CONTAINER_OF(req->handler, struct query_req, hs);
	if (qr->a.q.done)
		return;
	if (qr->a.q.exclusive) {
		/* PostgreSQL answers 57014; it comes back as any error. */
		fpg_query_cancel(&qr->a.q);
		return;
	}
	/* A shared connection is never cancelled: leave the statement to
	 * finish there and drop its rows. */
	fpg_query_abandon(&qr->a.q);
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
		return FPG_ROWFMT_JSON;
	for (const char *p = accept; p; p = strchr(p, ',')) {
		if (*p == ',')
			p++;
		if (media_is(p, "application/json") ||
		    media_is(p, "application/*") || media_is(p, "*/*"))
			return FPG_ROWFMT_JSON;
		if (media_is(p, "application/x-ndjson"))
			return FPG_ROWFMT_NDJSON;
		if (media_is(p, "text/csv") || media_is(p, "text/*"))
			return FPG_ROWFMT_CSV;
	}
	return -1;
}

static bool stream_asked(struct fpg_request *req)
{
	const char *v = MHD_lookup_connection_value(
		req->conn, MHD_GET_ARGUMENT_KIND, "stream");
	return v && (strcmp(v, "true") == 0 || strcmp(v, "1") == 0);
}

/* ---- GET /q/{name}: the query string as the body ---- */

/* What GET /q/NAME takes, each once; all but stream are body fields. */
static const char *const url_fields[] = {
	"params", "expect", "rows", "big_numbers", "timeout_ms", "stream",
	NULL};

struct url_body {
	struct fpg_buf json; /* {"params":[...],"expect":"one",...} */
	unsigned seen;	     /* bit i: url_fields[i] was given */
	char why[200];	     /* set: the query string is refused */
};

/* A body field's value from the URL: params is JSON text (one array,
 * checked alone so that nothing can follow it into the object),
 * timeout_ms a number when it is digits, the others strings. */
static bool url_value(struct url_body *u, int i, const char *v, size_t n)
{
	if (i == 0) {
		json_error_t jerr;
		json_t *j = fpg_json_load(v, n, JSON_REJECT_DUPLICATES |
						       JSON_DECODE_INT_AS_REAL,
					  &jerr, NULL);
		bool array = json_is_array(j);
		json_decref(j);
		if (!array) {
			snprintf(u->why, sizeof(u->why),
				 "?params must be a JSON array, URL-encoded "
				 "(%.120s)",
				 j ? "not an array" : jerr.text);
			return false;
		}
		fpg_buf_append(&u->json, v, n);
	} else if (i == 4 && n && n <= 9 && strspn(v, "0123456789") == n) {
		fpg_buf_append(&u->json, v, n);
	} else {
		fpg_buf_json_str(&u->json, v, n);
	}
	return true;
}

static enum MHD_Result url_field(void *cls, enum MHD_ValueKind kind,
				 const char *key, size_t key_len,
				 const char *value, size_t value_len)
{
	struct url_body *u = cls;
	int i = 0;
	while (url_fields[i] && strcmp(url_fields[i], key) != 0)
		i++;
	if (!url_fields[i]) {
		snprintf(u->why, sizeof(u->why),
			 "unknown query parameter \"%.64s\" (known: params, "
			 "expect, rows, big_numbers, timeout_ms, stream)",
			 key);
		return MHD_NO;
	}
	if (u->seen & (1u << i) || !value || memchr(value, '\0', value_len)) {
		snprintf(u->why, sizeof(u->why), "?%s %s", key,
			 u->seen & (1u << i) ? "is given twice"
					     : "needs a value (no NUL byte)");
		return MHD_NO;
	}
	u->seen |= 1u << i;
	if (strcmp(key, "stream") == 0)
		return MHD_YES; /* read where POST reads it, stream_asked() */
	fpg_buf_puts(&u->json, u->json.len > 1 ? ",\"" : "\"");
	fpg_buf_puts(&u->json, key);
	fpg_buf_puts(&u->json, "\":");
	return url_value(u, i, value, value_len) ? MHD_YES : MHD_NO;
}

/* GET /q/NAME's query string as the body POST /q/NAME would have: u->json,
 * or false with u->why. */
static bool url_to_body(struct fpg_request *req, struct url_body *u)
{
	memset(u, 0, sizeof(*u));
	fpg_buf_init(&u->json);
	if (req->body.len) {
		snprintf(u->why, sizeof(u->why),
			 "GET /q/{name} takes no body: send its fields in the "
			 "query string (?params=...)");
		return false;
	}
	fpg_buf_putc(&u->json, '{');
	MHD_get_connection_values_n(req->conn, MHD_GET_ARGUMENT_KIND, url_field,
				    u);
	fpg_buf_putc(&u->json, '}');
	return !u->why[0];
}

/* ---- starting ---- */

/* Where a statement comes from, besides the request. */
struct query_source {
	const char *named;  /* the SQL of a named query, or NULL: the
			       body's "sql" */
	bool read_only;	    /* the named query is marked read-only */
	const char *body;   /* the fields as JSON: GET's query string;
			       NULL: the request's body */
	size_t len;
};

/* A request that brings a JSON body must say so. */
static int check_body_type(struct fpg_request *req)
{
	/* Required, not assumed: a body without a type is what a web
	 * page may send to any server without asking (CSRF). */
	const char *ctype = fpg_request_header(req, "Content-Type");
	if (!ctype || !media_is(ctype, "application/json"))
		return fpg_request_fail(req, 415, "unsupported_media_type",
					"send the body as application/json "
					"(got %.64s)",
					ctype ? ctype : "no Content-Type");
	return 0;
}

/*
 * The lane of a statement on a pooled connection. One that asked to
 * stream (a streaming format, ?stream=true) holds a connection of its
 * own or is refused (--roles streams=N); one the lane memory would put
 * there runs on a shared one instead when the role is at its limit:
 * the client did not ask for it. Returns a status when refused.
 */
static int choose_lane(struct query_req *qr, enum fpg_rowfmt_format fmt)
{
	struct fpg_request *req = qr->req;
	uint64_t h = qr->a.q.sql_hash;
	/* Known to be slow: it would hold up a coalesced group. */
	qr->a.q.ungrouped = fpg_lanes_ungrouped(req->svc->lanes, h);
	qr->a.q.gathers = !qr->a.q.ungrouped &&
			  fpg_lanes_gathers(req->svc->lanes, h);
	if (qr->st.expect != FPG_EXPECT_ALL)
		return 0;
	if (fpg_rowfmt_streams(fmt) || stream_asked(req)) {
		if (!fpg_request_hold_stream(req))
			return fpg_request_too_many_streams(req);
		qr->a.q.exclusive = true;
	} else if (fpg_lanes_choose_own(req->svc->lanes, req->pool, h)) {
		qr->a.q.exclusive = fpg_request_hold_stream(req);
	}
	return 0;
}

static int run_query(struct query_req *qr, enum fpg_rowfmt_format fmt,
		     struct fpg_conn *tx_conn, bool read_only);

/*
 * Parses the statement of req (its body, or src's) and starts it: on a
 * pooled connection, or on tx_conn (a transaction's) when given.
 */
static int start_query(struct fpg_request *req, struct fpg_conn *tx_conn,
		       const struct query_source *src)
{
	int status = src->body ? 0 : check_body_type(req);
	if (status)
		return status;
	int format = negotiate(fpg_request_header(req, "Accept"));
	if (format < 0)
		return fpg_request_fail(req, 406, "not_acceptable",
					"this endpoint answers "
					"application/json, "
					"application/x-ndjson or text/csv");
	enum fpg_rowfmt_format fmt = (enum fpg_rowfmt_format)format;
	struct fpg_error err;
	struct query_req *qr = calloc(1, sizeof(*qr));
	if (!qr)
		return fpg_request_fail(req, 503, "out_of_memory",
					"out of memory");
	qr->req = req;
	const char *body = src->body ? src->body
				     : req->body.data ? req->body.data : "";
	size_t len = src->body ? src->len : req->body.len;
	if (!(src->named ? fpg_statement_parse_named(&qr->st, src->named,
						     body, len, &err)
			 : fpg_statement_parse(&qr->st, body, len, &err))) {
		fpg_statement_deinit(&qr->st);
		free(qr);
		return fpg_request_error(req, &err, NULL);
	}
	return run_query(qr, fmt, tx_conn, src->read_only);
}

/*
 * Starts qr's statement (parsed, qr->st), answered as fmt: on a pooled
 * connection, or on tx_conn (a transaction's) when given. From here on
 * the request owns qr (cleanup()).
 */
static int run_query(struct query_req *qr, enum fpg_rowfmt_format fmt,
		     struct fpg_conn *tx_conn, bool read_only)
{
	struct fpg_request *req = qr->req;
	struct fpg_error err;
	int status;
	fpg_answer_init(&qr->a, req->svc, req->pool, &req->out, &qr->st, fmt,
			fmt == FPG_ROWFMT_JSON ? qr->st.expect : FPG_EXPECT_ALL,
			&answer_ops);
	qr->a.q.claims = req->claims;
	qr->a.q.trace = req->trace_app[0] ? req->trace_app : NULL;
	qr->a.q.read_only = read_only;
	qr->hs.cleanup = cleanup;
	qr->hs.cancel = on_cancel;
	qr->hs.drained = on_drained;
	req->handler = &qr->hs;
	if (!fpg_answer_precheck(req->svc, qr->st.sql, tx_conn != NULL, &err))
		return fpg_request_error(req, &err, NULL);
	if (qr->st.expect != FPG_EXPECT_ALL && fmt != FPG_ROWFMT_JSON)
		return fpg_request_fail(req, 400, "bad_request",
					"\"expect\" needs a JSON answer "
					"(Accept: application/json)");
	req->content_type = fpg_rowfmt_content_type(fmt);
	if (tx_conn) {
		/* The transaction's own connection: pausable, cancellable,
		 * and its session state is the client's business. */
		qr->a.q.conn_fixed = tx_conn;
		qr->a.q.exclusive = true;
	} else if ((status = choose_lane(qr, fmt))) {
		return status;
	}
	fpg_answer_submit(&qr->a);
	return 0;
}

int fpg_handle_sql_statement(struct fpg_request *req,
			     struct fpg_statement *st)
{
	struct query_req *qr = calloc(1, sizeof(*qr));
	if (!qr) {
		fpg_statement_deinit(st);
		return fpg_request_fail(req, 503, "out_of_memory",
					"out of memory");
	}
	qr->req = req;
	qr->st = *st;
	memset(st, 0, sizeof(*st));
	return run_query(qr, FPG_ROWFMT_NEON, NULL, false);
}

int fpg_handle_query(struct fpg_request *req)
{
	const struct query_source src = {0};
	return start_query(req, NULL, &src);
}

/*
 * The named query of req's path that its login may run: its name goes to
 * name, its SQL to *sql. Returns a status when there is none.
 */
static int find_named(struct fpg_request *req, char name[64], const char **sql)
{
	const struct fpg_queries *qs = req->svc->queries;
	size_t n = strcspn(req->path_param, "/");
	*sql = NULL;
	if (qs && n < 64) {
		memcpy(name, req->path_param, n);
		name[n] = '\0';
		*sql = fpg_queries_sql(qs, name);
	}
	if (!*sql)
		return fpg_request_fail(req, 404, "query_not_found",
					"no named query %.*s", (int)(n < 64 ? n : 64),
					req->path_param);
	if (!fpg_queries_allows(qs, name, req->login))
		return fpg_request_fail(req, 403, "query_not_allowed",
					"the query %s is not for this login",
					name);
	return 0;
}

int fpg_handle_named_query(struct fpg_request *req)
{
	char name[64];
	struct query_source src = {0};
	int status = find_named(req, name, &src.named);
	if (status)
		return status;
	src.read_only = fpg_queries_read_only(req->svc->queries, name);
	return start_query(req, NULL, &src);
}

/*
 * A GET runs read-only queries only: a link or an image on any page can
 * make a browser send one (with the user's cookies or Basic credentials),
 * and GET is what proxies and crawlers repeat. X-Requested-With is still
 * required (check_origin), as for GET /copy.
 */
int fpg_handle_named_query_get(struct fpg_request *req)
{
	char name[64];
	struct query_source src = {0};
	int status = find_named(req, name, &src.named);
	if (status)
		return status;
	if (!fpg_queries_read_only(req->svc->queries, name)) {
		req->allow = "POST";
		return fpg_request_fail(req, 405, "method_not_allowed",
					"the query %s is not read-only: call it "
					"with POST (GET runs queries marked "
					"\"-- read-only\" only)",
					name);
	}
	struct url_body u;
	if (!url_to_body(req, &u)) {
		fpg_buf_deinit(&u.json);
		return fpg_request_fail(req, 400, "bad_request", "%s", u.why);
	}
	if (u.json.failed) {
		fpg_buf_deinit(&u.json);
		return fpg_request_fail(req, 503, "out_of_memory",
					"out of memory");
	}
	src.read_only = true;
	src.body = u.json.data;
	src.len = u.json.len;
	status = start_query(req, NULL, &src);
	fpg_buf_deinit(&u.json); /* the statement keeps what it needs */
	return status;
}

int fpg_handle_tx_query(struct fpg_request *req)
{
	struct fpg_tx *tx;
	struct fpg_error err;
	struct fpg_conn *conn =
		fpg_tx_take_prefix(req->svc->tx, req->pool, req->path_param,
				   &tx, &err);
	if (!conn)
		return fpg_request_error(req, &err, NULL);
	const struct query_source src = {0};
	int status = start_query(req, conn, &src);
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
