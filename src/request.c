#include "request.h"

#include <stdarg.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netdb.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "error.h"
#include "auth.h"
#include "claims.h"
#include "compress.h"
#include "guard.h"
#include "log.h"
#include "pool.h"
#include "random.h"
#include "roles.h"
#include "stats.h"

/* Resume a suspended stream only once this much is buffered: every
 * resume costs a chunk of its own, and small chunks cost syscalls. */
#define STREAM_RESUME_BYTES (16 * 1024)

static void client_hung_up(struct fpg_request *req);
static void client_closed(struct fpg_request *req);

/* A line of the request's, with its trace id when it has one. */
static void req_log(enum fpg_log_level level, const struct fpg_request *req,
		    const char *fmt, ...) FPG_PRINTF(3, 4);
#define REQ_LOG(level, req, ...)                                           \
	do {                                                               \
		if (fpg_log_enabled(level))                                \
			req_log(level, req, __VA_ARGS__);                  \
	} while (0)

static void req_log(enum fpg_log_level level, const struct fpg_request *req,
		    const char *fmt, ...)
{
	struct fpg_log_field f[] = {FPG_LOG_F_STR(
		"trace_id", req->trace_id[0] ? req->trace_id : NULL)};
	va_list ap;
	va_start(ap, fmt);
	fpg_log_vfields(level, "request", req->id, f, 1, fmt, ap);
	va_end(ap);
}

void fpg_requests_init(struct fpg_requests *rs, struct fpg_services *svc)
{
	memset(rs, 0, sizeof(*rs));
	rs->svc = svc;
	fpg_list_init(&rs->list);
	fpg_list_init(&rs->flush_list);
	fpg_fifo_init(&rs->uploads);
	fpg_clients_init(&rs->clients, svc, client_hung_up, client_closed);
	pthread_mutex_init(&rs->lock, NULL);
	rs->lock_ready = true;
}

void fpg_requests_deinit(struct fpg_requests *rs)
{
	if (rs->lock_ready)
		pthread_mutex_destroy(&rs->lock);
	rs->lock_ready = false;
}

/*
 * A generated id names the request in logs and answers only; it is drawn
 * from the CSPRNG all the same, so that one client cannot learn from its
 * own ids which ids others get.
 */
static bool set_request_id(struct fpg_request *req)
{
	const char *given = MHD_lookup_connection_value(
		req->conn, MHD_HEADER_KIND, "X-Request-Id");
	if (given && fpg_guard_request_id(given)) {
		snprintf(req->id, sizeof(req->id), "%s", given);
		return true;
	}
	unsigned char r[8];
	if (!fpg_random_draw(&req->rs->random, r, sizeof(r)))
		return false;
	fpg_hex(req->id, r, sizeof(r));
	return true;
}

/*
 * W3C trace context: a valid traceparent makes the request a span of
 * that trace, with an id of our own; anything else is ignored (the
 * header is the client's tracer's, not a request error). A sampled trace
 * is passed on to PostgreSQL as the application_name of its statements
 * ("fasterpg TRACE-SPAN", 58 characters: a whole traceparent would not
 * fit in 63), so pg_stat_activity shows it while they run.
 */
static bool set_trace(struct fpg_request *req)
{
	const char *tp = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
						     "traceparent");
	char parent[17];
	if (!tp || !fpg_guard_traceparent(tp, req->trace_id, parent,
					  &req->trace_flags))
		return true;
	unsigned char r[8];
	if (!fpg_random_draw(&req->rs->random, r, sizeof(r)))
		return false;
	fpg_hex(req->span_id, r, sizeof(r));
	if (req->trace_flags & 1)
		snprintf(req->trace_app, sizeof(req->trace_app), "fasterpg %s-%s",
			 req->trace_id, req->span_id);
	return true;
}

/* Kept only when valid: route() refuses the request otherwise. */
static void set_cancel_key(struct fpg_request *req)
{
	const char *key = MHD_lookup_connection_value(
		req->conn, MHD_HEADER_KIND, "X-Cancel-Key");
	if (!key)
		return;
	if (fpg_guard_cancel_key(key))
		snprintf(req->cancel_key, sizeof(req->cancel_key), "%s", key);
	else
		req->cancel_key_bad = true;
}

/* ---- slow clients ---- */

/* A body must bring min-upload-rate bytes/s over each window this long. */
#define UPLOAD_WINDOW_MS 5000

static void upload_start(struct fpg_request *req)
{
	if (!req->svc->opts->min_upload_rate || req->body_done ||
	    req->client_gone || !req->client)
		return;
	req->upload_bytes = 0;
	fpg_fifo_push(&req->rs->uploads, &req->upload, req->svc->loop->now_ms);
}

static void upload_stop(struct fpg_request *req)
{
	fpg_fifo_remove(&req->rs->uploads, &req->upload);
}

/* A window ended: enough bytes start the next one, too few end it. */
static void check_uploads(struct fpg_requests *w)
{
	uint64_t min = (uint64_t)w->svc->opts->min_upload_rate * UPLOAD_WINDOW_MS /
		       1000;
	struct fpg_fifo_link *l;
	while ((l = fpg_fifo_head(&w->uploads)) &&
	       w->svc->loop->now_ms - l->since_ms >= UPLOAD_WINDOW_MS) {
		struct fpg_request *req =
			FPG_CONTAINER_OF(l, struct fpg_request, upload);
		fpg_fifo_remove(&w->uploads, l);
		if (!req->client)
			continue; /* closed already; MHD reports it soon */
		if (req->upload_bytes >= min) {
			upload_start(req);
			continue;
		}
		/* debug: a flood of these is an attack, not news */
		REQ_LOG(FPG_LOG_DEBUG, req,
			      "body too slow (%zu bytes in %u ms): closing",
			      req->upload_bytes, UPLOAD_WINDOW_MS);
		FPG_STAT_ADD(w->svc->stats->http_slow_bodies, 1);
		fpg_client_cut(req->client, req->id, 408, "Request Timeout", "request_timeout",
		    "the request body came more slowly than min-upload-rate");
	}
}

void fpg_request_tick(struct fpg_requests *rs)
{
	fpg_clients_tick(&rs->clients);
	check_uploads(rs);
}


static enum MHD_Result scan_header(void *cls, enum MHD_ValueKind kind,
				   const char *key, const char *value)
{
	fpg_guard_header(cls, key, value);
	return MHD_YES;
}

/* Why the request's headers are refused (see fpg_guard_headers_problem),
 * or NULL. */
static const char *header_problem(struct MHD_Connection *conn)
{
	struct fpg_header_scan f = {0};
	MHD_get_connection_values(conn, MHD_HEADER_KIND, scan_header, &f);
	return fpg_guard_headers_problem(&f);
}

static struct fpg_request *request_new(struct fpg_requests *w,
				       struct MHD_Connection *conn,
				       const char *url, const char *method)
{
	struct fpg_request *req = calloc(1, sizeof(*req));
	if (!req)
		return NULL;
	req->rs = w;
	req->svc = w->svc;
	req->pool = w->svc->pool;
	req->conn = conn;
	req->url = url;
	req->method = method;
	req->start_us = fpg_now_us();
	if (!set_request_id(req) || !set_trace(req)) {
		free(req);
		return NULL;
	}
	set_cancel_key(req);
	req->header_problem = header_problem(conn);
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
		conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	if (ci && ci->socket_context) {
		req->client = ci->socket_context;
		fpg_client_serve(req->client, req);
	}
	req->content_type = "application/json";
	fpg_buf_init(&req->body);
	fpg_buf_init(&req->out);
	req->route = w->svc->route_match(method, url, &req->route_status,
				      req->allow_buf, sizeof(req->allow_buf),
				      &req->path_param);
	req->route_index = w->svc->route_index(req->route);
	pthread_mutex_lock(&w->lock);
	fpg_list_push_back(&w->list, &req->link);
	pthread_mutex_unlock(&w->lock);
	FPG_STAT_ADD(w->svc->stats->in_flight, 1);
	upload_start(req); /* ends at once when there is no body */
	return req;
}

static void stop_handler(struct fpg_request *req)
{
	if (req->handler && req->handler->cleanup)
		req->handler->cleanup(req);
	req->handler = NULL;
}

/* ---- suspension ---- */

static void client_gone(struct fpg_request *req)
{
	REQ_LOG(FPG_LOG_DEBUG, req, "client went away while waiting");
	req->client_gone = true;
	stop_handler(req);
}

static void suspend(struct fpg_request *req)
{
	if (req->suspended)
		return;
	if (req->client && req->client->hung_up) {
		/* It left while MHD was busy with it: nothing to wait for. */
		client_gone(req);
		return;
	}
	MHD_suspend_connection(req->conn);
	req->suspended = true;
	upload_stop(req);
}

static void resume(struct fpg_request *req)
{
	if (!req->suspended)
		return;
	req->suspended = false;
	MHD_resume_connection(req->conn);
	req->rs->resumed = true;
	upload_start(req);
}

/*
 * The client hung up. When not suspended MHD sees the close itself,
 * except in the middle of a streamed upload (it would wait for body that
 * never comes).
 */
static void client_hung_up(struct fpg_request *req)
{
	if (req->suspended ||
	    (req->route && req->route->stream_body && !req->upload_ended)) {
		client_gone(req);
		resume(req);
	}
}

static void client_closed(struct fpg_request *req)
{
	req->client = NULL;
}

/* ---- responses ---- */

void fpg_request_complete(struct fpg_request *req, int status)
{
	req->status = status;
	req->complete = true;
	resume(req);
}

void fpg_request_stream_begin(struct fpg_request *req, int status)
{
	req->status = status;
	req->streaming = true;
	resume(req);
}

void fpg_request_stream_push(struct fpg_request *req)
{
	if (!req->suspended || !req->queued)
		return;
	if (fpg_buf_pending(&req->out) >= STREAM_RESUME_BYTES) {
		resume(req);
	} else if (!fpg_list_linked(&req->flush_link)) {
		fpg_list_push_back(&req->rs->flush_list, &req->flush_link);
	}
}

void fpg_request_flush_streams(struct fpg_requests *w)
{
	struct fpg_list *n;
	while ((n = fpg_list_first(&w->flush_list))) {
		fpg_list_remove(n);
		struct fpg_request *req =
			FPG_CONTAINER_OF(n, struct fpg_request, flush_link);
		if (fpg_buf_pending(&req->out))
			resume(req);
	}
}


void fpg_request_stream_end(struct fpg_request *req, bool failed)
{
	req->complete = true;
	req->stream_failed = failed;
	resume(req);
}

/* The SQLSTATE of the error req is answered with, for the statistics. */
static void note_sqlstate(struct fpg_request *req, const struct fpg_error *err,
			  const PGresult *res)
{
	const char *s = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	if (!s && err && err->sqlstate[0])
		s = err->sqlstate;
	if (s)
		snprintf(req->sqlstate, sizeof(req->sqlstate), "%s", s);
}

void fpg_request_stream_fail(struct fpg_request *req,
			     const struct fpg_error *err, const PGresult *res,
			     bool cut)
{
	note_sqlstate(req, err, res);
	req->late_status = err && err->http_status ? err->http_status : 500;
	FPG_STAT_ADD(req->svc->stats->stream_errors, 1);
	fpg_request_stream_end(req, cut);
}

/* The route speaks Neon's protocol (docs/neon.md). */
static bool speaks_neon(const struct fpg_request *req)
{
	return req->route && req->route->raw_sql == FPG_ROUTE_NEON_SQL;
}

int fpg_request_error(struct fpg_request *req, const struct fpg_error *err,
		      const PGresult *res)
{
	note_sqlstate(req, err, res);
	fpg_buf_reset(&req->out);
	int status;
	if (speaks_neon(req)) {
		fpg_error_neon_json(&req->out, err, res);
		fpg_buf_putc(&req->out, '\n');
		status = fpg_error_neon_status(err, res);
	} else {
		fpg_error_json(&req->out, err, res);
		status = err->http_status ? err->http_status : 500;
	}
	if (status == 503 || status == 429)
		req->retry_after = 1;
	req->content_type = "application/json";
	return status;
}

int fpg_request_fail(struct fpg_request *req, int status, const char *code,
		     const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (speaks_neon(req)) {
		struct fpg_error err;
		fpg_error_set(&err, FPG_ERR_REQUEST, status, "%s", msg);
		err.reason = code;
		return fpg_request_error(req, &err, NULL);
	}
	fpg_buf_reset(&req->out);
	fpg_error_json_code(&req->out, code, msg);
	if (status == 503 || status == 429)
		req->retry_after = 1;
	req->content_type = "application/json";
	return status;
}

const char *fpg_request_header(struct fpg_request *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

static unsigned streams_cap(const struct fpg_request *req)
{
	return fpg_roles_for(req->svc->roles, req->login)->streams;
}

bool fpg_request_hold_stream(struct fpg_request *req)
{
	if (!req->holds_stream)
		req->holds_stream =
			fpg_pool_stream_begin(req->pool, streams_cap(req));
	return req->holds_stream;
}

int fpg_request_too_many_streams(struct fpg_request *req)
{
	return fpg_request_fail(req, 429, "too_many_streams",
				"this role has %u streams here already, its "
				"limit (--roles streams=N)",
				streams_cap(req));
}

/*
 * A compressed stream: what out holds goes through z into zout, flushed
 * (the client can decode every row sent so far), and ended once out is
 * complete. Nothing more is compressed while zout still has bytes, so the
 * handler's back-pressure on out still holds.
 */
static void compress_pending(struct fpg_request *req)
{
	if (fpg_buf_pending(&req->zout) || req->z_ended || req->stream_failed)
		return;
	size_t n = fpg_buf_pending(&req->out);
	bool end = req->complete;
	if (!n && !end)
		return;
	if (!fpg_compressor_feed(req->z, req->out.data + req->out.off, n, true,
				 end, &req->zout))
		req->stream_failed = req->complete = true;
	req->z_ended = end;
	fpg_buf_consume(&req->out, n);
	if (n && req->handler && req->handler->drained)
		req->handler->drained(req);
}

static ssize_t read_stream(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct fpg_request *req = cls;
	if (req->client_gone)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	if (req->z)
		compress_pending(req);
	struct fpg_buf *src = req->z ? &req->zout : &req->out;
	size_t n = fpg_buf_pending(src);
	if (n) {
		if (n > max)
			n = max;
		memcpy(buf, src->data + src->off, n);
		fpg_buf_consume(src, n);
		FPG_STAT_ADD(req->svc->stats->bytes_sent, n);
		req->bytes_out += n;
		if (!req->z && req->handler && req->handler->drained)
			req->handler->drained(req);
		return (ssize_t)n;
	}
	if (req->complete && (!req->z || req->z_ended || req->stream_failed))
		return req->stream_failed ? MHD_CONTENT_READER_END_WITH_ERROR
					  : MHD_CONTENT_READER_END_OF_STREAM;
	/* Never return 0 without suspending: MHD would spin on us. */
	suspend(req);
	return 0;
}

/* Answers shorter than this go as they are: compressing them would save
 * less than its header costs. */
#define COMPRESS_MIN 512

/*
 * The encoding of req's answer: what the client accepts, for any answer
 * with a body that is streamed or long enough. A whole answer is
 * compressed here; a stream gets its compressor (see compress_pending).
 */
static enum fpg_encoding encode_answer(struct fpg_request *req)
{
	if (strcmp(req->method, "HEAD") == 0 ||
	    (!req->streaming && fpg_buf_pending(&req->out) < COMPRESS_MIN))
		return FPG_ENCODING_IDENTITY;
	enum fpg_encoding e = fpg_encoding_choose(
		fpg_request_header(req, "Accept-Encoding"));
	struct fpg_compressor *z = fpg_compressor_new(e);
	if (!z)
		return FPG_ENCODING_IDENTITY; /* out of memory: as it is */
	if (req->streaming) {
		req->z = z;
		return e;
	}
	struct fpg_buf packed;
	fpg_buf_init(&packed);
	bool ok = fpg_compressor_feed(z, req->out.data + req->out.off,
				      fpg_buf_pending(&req->out), false, true,
				      &packed);
	fpg_compressor_free(z);
	if (!ok) {
		fpg_buf_deinit(&packed);
		return FPG_ENCODING_IDENTITY;
	}
	fpg_buf_deinit(&req->out);
	req->out = packed;
	return e;
}

static enum MHD_Result queue_response(struct fpg_request *req)
{
	struct MHD_Response *resp;
	if (req->out.failed) {
		fpg_buf_reset(&req->out);
		req->status = fpg_request_fail(req, 503, "out_of_memory",
					       "out of memory");
		req->streaming = false;
	}
	enum fpg_encoding encoding = encode_answer(req);
	if (req->streaming) {
		resp = MHD_create_response_from_callback(
			MHD_SIZE_UNKNOWN, 64 * 1024, read_stream, req, NULL);
	} else {
		size_t n;
		char *data = fpg_buf_steal(&req->out, &n);
		FPG_STAT_ADD(req->svc->stats->bytes_sent, n);
		req->bytes_out += n;
		resp = data ? MHD_create_response_from_buffer(
				      n, data, MHD_RESPMEM_MUST_FREE)
			    : MHD_create_response_from_buffer(
				      0, NULL, MHD_RESPMEM_PERSISTENT);
		if (!resp)
			free(data);
	}
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				req->content_type);
	if (encoding != FPG_ENCODING_IDENTITY)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_ENCODING,
					fpg_encoding_name(encoding));
	/* Whether it is compressed depends on the request's header. */
	MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Accept-Encoding");
	MHD_add_response_header(resp, "X-Request-Id", req->id);
	if (req->trace_id[0]) {
		/* Trace Context Level 2: the trace and our span of it. */
		char tr[64];
		snprintf(tr, sizeof(tr), "00-%s-%s-%02x", req->trace_id,
			 req->span_id, req->trace_flags & 0xffu);
		MHD_add_response_header(resp, "traceresponse", tr);
	}
	if (speaks_neon(req))
		MHD_add_response_header(resp, "Neon-Request-Id", req->id);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
				"no-store");
	if (req->allow)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW,
					req->allow);
	if (req->header_problem)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION,
					"close");
	if (req->status == 401 && req->svc->auth_password)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
					"Basic realm=\"fasterpg\", "
					"charset=\"UTF-8\"");
	if (req->status == 401 &&
	    (req->svc->auth_api_key || req->svc->auth_jwt))
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
					"Bearer realm=\"fasterpg\"");
	const char *cors = req->svc->opts->cors_origin;
	if (cors) {
		MHD_add_response_header(resp, "Access-Control-Allow-Origin",
					cors);
		MHD_add_response_header(resp, "Access-Control-Expose-Headers",
					"X-Request-Id, Retry-After, "
					"Neon-Request-Id");
		if (strcmp(cors, "*") != 0)
			MHD_add_response_header(resp, "Vary", "Origin");
		if (req->preflight) {
			MHD_add_response_header(
				resp, "Access-Control-Allow-Methods",
				req->allow_buf);
			MHD_add_response_header(
				resp, "Access-Control-Allow-Headers",
				"Content-Type, Accept, Content-Encoding, "
				"Authorization, X-Request-Id, X-Cancel-Key, "
				"X-Requested-With, Neon-Connection-String, "
				"Neon-Raw-Text-Output, Neon-Array-Mode, "
				"Neon-Batch-Isolation-Level, "
				"Neon-Batch-Read-Only, Neon-Batch-Deferrable");
			MHD_add_response_header(resp, "Access-Control-Max-Age",
						"600");
		}
	}
	if (req->retry_after) {
		char ra[16];
		snprintf(ra, sizeof(ra), "%u", req->retry_after);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
	}
	enum MHD_Result ret = MHD_queue_response(req->conn,
						 (unsigned)req->status, resp);
	MHD_destroy_response(resp);
	req->queued = true;
	return ret;
}

/*
 * What a route needs before its handler runs, whatever the handler: a
 * Host this server answers to (else a page on a DNS-rebound name could
 * read the answers), and for routes that run SQL, a request that no web
 * page can send without a CORS preflight. Returns 0 when it may run.
 */
static int check_origin(struct fpg_request *req)
{
	const char *host = fpg_request_header(req, MHD_HTTP_HEADER_HOST);
	if (!fpg_hosts_allow(req->svc->hosts, host))
		return fpg_request_fail(req, 421, "misdirected_request",
					"this server does not answer to the "
					"host %.100s (see --allowed-hosts)",
					host);
	if (!req->route || req->route->cross_site_ok ||
	    req->route->event_source)
		return 0;
	/* Neon's drivers send no Content-Type of their own (fetch makes it
	 * text/plain), but always this header, which no web page can send
	 * to another site without a preflight. */
	if (speaks_neon(req) &&
	    fpg_request_header(req, "Neon-Connection-String"))
		return 0;
	if (fpg_guard_preflighted(req->method,
				  fpg_request_header(req, "Content-Type"),
				  fpg_request_header(req, "X-Requested-With")))
		return 0;
	if (speaks_neon(req))
		return fpg_request_fail(
			req, 400, "bad_request",
			"POST %s needs a Neon-Connection-String header "
			"(postgresql://user:password@host/dbname)",
			req->route->path);
	if (strcmp(req->method, "POST") == 0)
		return fpg_request_fail(
			req, 415, "unsupported_media_type",
			"POST %s needs a Content-Type such as %s (not a form's: "
			"none, text/plain, application/x-www-form-urlencoded, "
			"multipart/form-data) or an X-Requested-With header",
			req->route->path,
			req->route->stream_body ? "text/csv" : "application/json");
	return fpg_request_fail(req, 403, "cross_site_request",
				"%s %s runs SQL: send an X-Requested-With "
				"header (any value), which a web page cannot "
				"send without asking first",
				req->method, req->route->path);
}

/*
 * With --auth, a route that runs SQL runs it as the login the client
 * names, on that login's pool (see auth.h). Returns a status when the
 * request ends here.
 */
static int authenticate(struct fpg_request *req)
{
	if (speaks_neon(req))
		return 0; /* the handler reads the login (fpg_request_login) */
	return fpg_request_login(req, NULL, NULL);
}

int fpg_request_login(struct fpg_request *req, const char *user,
		      const char *password)
{
	const struct fpg_services *svc = req->svc;
	if ((!svc->auth_password && !svc->auth_api_key && !svc->auth_jwt) ||
	    req->route->cross_site_ok)
		return 0;
	struct fpg_auth who;
	struct fpg_error err;
	if (!fpg_auth_identify_as(svc, req->conn, req->route->raw_sql != 0,
				  req->route->event_source, user, password,
				  &who, &err)) {
		req->retry_after = who.retry_after;
		return fpg_request_error(req, &err, NULL);
	}
	req->pool = who.pool;
	req->claims = who.claims;
	/* Other workers read it to match cancels. */
	pthread_mutex_lock(&req->rs->lock);
	snprintf(req->login, sizeof(req->login), "%s", who.login);
	pthread_mutex_unlock(&req->rs->lock);
	return 0;
}

/* No Content-Encoding, or identity. */
static bool encoding_identity(struct fpg_request *req)
{
	const char *enc = fpg_request_header(req, "Content-Encoding");
	return !enc || strcasecmp(enc, "identity") == 0;
}

static void route(struct fpg_request *req)
{
	int status = req->route_status;
	req->routed = true;
	int refused = check_origin(req);
	if (req->header_problem) {
		status = fpg_request_fail(req, 400, "bad_request", "%s",
					  req->header_problem);
	} else if (refused) {
		status = refused;
	} else if (req->body_too_large) {
		status = fpg_request_fail(
			req, 413, "body_too_large",
			"the request body exceeds %zu bytes (max-body-bytes)",
			req->svc->opts->max_body_bytes);
	} else if (req->route && !req->route->stream_body &&
		   !encoding_identity(req)) {
		status = fpg_request_fail(
			req, 415, "unsupported_media_type",
			"this endpoint takes its body as it is (no "
			"Content-Encoding); COPY uploads take gzip or deflate");
	} else if (req->cancel_key_bad) {
		status = fpg_request_fail(req, 400, "bad_request",
					  "X-Cancel-Key must be 16 to 128 "
					  "characters of A-Z a-z 0-9 - _ . ~ "
					  "+ / =");
	} else if (!req->route && status == 405 && req->svc->opts->cors_origin &&
		   strcmp(req->method, "OPTIONS") == 0) {
		/* A browser's preflight: the answer is in the headers. */
		req->preflight = true;
		status = 204;
	} else if (!req->route && status == 405) {
		req->allow = req->allow_buf;
		status = fpg_request_fail(req, 405, "method_not_allowed",
					  "%s is not allowed on %s (allowed: %s)",
					  req->method, req->url, req->allow_buf);
	} else if (!req->route) {
		status = fpg_request_fail(req, 404, "not_found",
					  "no route for %s %s", req->method,
					  req->url);
	} else if (*req->svc->draining) {
		status = fpg_request_fail(req, 503, "shutting_down",
					  "the server is shutting down");
	} else if (!(status = authenticate(req))) {
		status = req->route->handler(req);
	}
	if (status > 0)
		fpg_request_complete(req, status);
}

/*
 * A piece of a body that the handler takes as it comes (COPY FROM): what
 * it does not take now waits, suspended, until it asks for more.
 */
static enum MHD_Result stream_upload(struct fpg_request *req,
				     const char *data, size_t *size)
{
	if (req->client && req->client->hung_up) {
		client_gone(req);
		return MHD_NO;
	}
	if (!req->routed)
		route(req);
	if (req->complete || req->queued || !req->handler ||
	    !req->handler->upload) {
		/* Answered already (an error): the rest is read and dropped,
		 * and the answer goes out once the body is in (libmicrohttpd
		 * takes no response in the middle of an upload). */
		*size = 0;
		return MHD_YES;
	}
	size_t used = req->handler->upload(req, data, *size);
	*size -= used;
	if (*size && !req->complete)
		suspend(req);
	else if (req->complete)
		*size = 0;
	return MHD_YES;
}

void fpg_request_resume_upload(struct fpg_request *req)
{
	resume(req);
}

/* A piece of a body that the handler gets whole, once it is in. */
static void collect_body(struct fpg_request *req, const char *data,
			 size_t *size)
{
	size_t n = *size;
	if (!req->body_too_large &&
	    req->body.len + n > req->svc->opts->max_body_bytes) {
		req->body_too_large = true;
		fpg_buf_deinit(&req->body);
	}
	if (!req->body_too_large)
		fpg_buf_append(&req->body, data, n);
	*size = 0;
}

enum MHD_Result fpg_request_access(void *cls, struct MHD_Connection *conn,
				   const char *url, const char *method,
				   const char *version,
				   const char *upload_data,
				   size_t *upload_data_size, void **con_cls)
{
	struct fpg_requests *w = cls;
	struct fpg_request *req = *con_cls;
	if (!req || *con_cls == &w->early) {
		req = request_new(w, conn, url, method);
		*con_cls = req;
		if (!req)
			return MHD_NO;
		if (!req->header_problem)
			return MHD_YES;
		/* Answered before the body is read: libmicrohttpd then
		 * closes the connection instead of reading it. */
		route(req);
		return queue_response(req);
	}
	if (req->client_gone)
		return MHD_NO;
	if (*upload_data_size) {
		size_t offered = *upload_data_size;
		enum MHD_Result ret = MHD_YES;
		if (req->route && req->route->stream_body)
			ret = stream_upload(req, upload_data, upload_data_size);
		else
			collect_body(req, upload_data, upload_data_size);
		req->upload_bytes += offered - *upload_data_size;
		FPG_STAT_ADD(w->svc->stats->bytes_received,
			     offered - *upload_data_size);
		req->bytes_in += offered - *upload_data_size;
		return ret;
	}
	req->body_done = true;
	upload_stop(req);
	if (req->queued)
		return MHD_YES;
	if (!req->routed)
		route(req);
	if (req->route && req->route->stream_body && !req->upload_ended &&
	    !req->complete) {
		req->upload_ended = true;
		if (req->handler && req->handler->upload_end)
			req->handler->upload_end(req);
	}
	if (req->complete || req->streaming)
		return queue_response(req);
	suspend(req);
	return MHD_YES;
}

static void request_free(struct fpg_request *req)
{
	struct fpg_requests *w = req->rs;
	stop_handler(req);
	/* The one end of its stream's count, however the request ended. */
	if (req->holds_stream)
		fpg_pool_stream_end(req->pool);
	fpg_list_remove(&req->flush_link);
	upload_stop(req);
	if (req->client) {
		fpg_client_serve(req->client, NULL);
	}
	pthread_mutex_lock(&w->lock);
	fpg_list_remove(&req->link);
	pthread_mutex_unlock(&w->lock);
	fpg_buf_deinit(&req->body);
	fpg_buf_deinit(&req->out);
	fpg_buf_deinit(&req->zout);
	fpg_compressor_free(req->z);
	fpg_claims_free(req->claims);
	FPG_STAT_ADD(w->svc->stats->in_flight, -1);
	free(req);
}

/* The client's address, numeric ("" when unknown). */
static void client_address(struct fpg_request *req, char *buf, size_t n)
{
	buf[0] = '\0';
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
		req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (!ci || !ci->client_addr)
		return;
	socklen_t len = ci->client_addr->sa_family == AF_INET6
				? sizeof(struct sockaddr_in6)
				: sizeof(struct sockaddr_in);
	if (getnameinfo(ci->client_addr, len, buf, (socklen_t)n, NULL, 0,
			NI_NUMERICHOST) != 0)
		buf[0] = '\0';
}

/*
 * The access log: one line per request at its end, info level (warn for
 * a 5xx other than 503, whatever --access-log says). The route is its
 * pattern ("/tx/{token}/query"), never the path: a path may hold a
 * session's token.
 */
static void access_log(struct fpg_request *req, int status, uint64_t took_us)
{
	enum fpg_log_level level = status >= 500 && status != 503
					   ? FPG_LOG_WARN
					   : FPG_LOG_INFO;
	if ((level == FPG_LOG_INFO && !req->svc->access_log) ||
	    !fpg_log_enabled(level))
		return;
	char client[64];
	client_address(req, client, sizeof(client));
	const char *name = req->svc->route_names[req->route_index];
	const char *sp = strchr(name, ' ');
	const char *route = sp ? sp + 1 : name;
	struct fpg_log_field f[] = {
		FPG_LOG_F_STR("client", client[0] ? client : NULL),
		FPG_LOG_F_STR("method", req->method),
		FPG_LOG_F_STR("route", route),
		FPG_LOG_F_INT("status", status),
		FPG_LOG_F_STR("sqlstate", req->sqlstate[0] ? req->sqlstate : NULL),
		FPG_LOG_F_INT("rows", req->rows),
		FPG_LOG_F_INT("bytes_in", req->bytes_in),
		FPG_LOG_F_INT("bytes_out", req->bytes_out),
		FPG_LOG_F_MS("duration_ms", (double)took_us / 1000.0),
		FPG_LOG_F_STR("trace_id", req->trace_id[0] ? req->trace_id : NULL),
		FPG_LOG_F_STR("span_id", req->span_id[0] ? req->span_id : NULL),
	};
	fpg_log_fields(level, "access", req->id, f, sizeof(f) / sizeof(f[0]),
		       "%s %s %d", req->method, route, status);
}

void *fpg_request_uri_log(void *cls, const char *uri,
			  struct MHD_Connection *conn)
{
	struct fpg_requests *w = cls;
	return &w->early;
}

void fpg_request_mhd_answered(struct fpg_requests *rs, int status)
{
	rs->mhd_status = status;
}

/*
 * A request that libmicrohttpd ended before passing it to us: it answered
 * it itself (an HTML body, no X-Request-Id: 0.9.75 has no hook to make
 * that answer ours), or the client left in the middle of its headers.
 */
static void mhd_ended(struct fpg_requests *w, struct MHD_Connection *conn,
		      enum MHD_RequestTerminationCode toe)
{
	int status = w->mhd_status ? w->mhd_status : 499;
	w->mhd_status = 0;
	unsigned route = w->svc->route_index(NULL);
	fpg_stats_record(w->svc->stats, route, status, 0, NULL);
	enum fpg_log_level level = status >= 500 && status != 503
					   ? FPG_LOG_WARN
					   : FPG_LOG_INFO;
	if ((level == FPG_LOG_INFO && !w->svc->access_log) ||
	    !fpg_log_enabled(level))
		return;
	struct fpg_request tmp = {.conn = conn};
	char client[64];
	client_address(&tmp, client, sizeof(client));
	struct fpg_log_field f[] = {
		FPG_LOG_F_STR("client", client[0] ? client : NULL),
		FPG_LOG_F_STR("route", "unrouted"),
		FPG_LOG_F_INT("status", status),
	};
	fpg_log_fields(level, "access", NULL, f, sizeof(f) / sizeof(f[0]),
		       "%s by libmicrohttpd",
		       status == 499 ? "left before its headers were complete"
				     : "answered");
}

void fpg_request_completed(void *cls, struct MHD_Connection *conn,
			   void **con_cls, enum MHD_RequestTerminationCode toe)
{
	struct fpg_requests *w = cls;
	struct fpg_request *req = *con_cls;
	if (!req)
		return;
	*con_cls = NULL;
	if ((void *)req == &w->early) {
		mhd_ended(w, conn, toe);
		return;
	}
	/* 499: the client left before the answer was complete. An error
	 * after the status went out counts as that error (the transfer may
	 * have been cut short on purpose). */
	int status = req->late_status ? req->late_status
		     : req->queued && toe == MHD_REQUEST_TERMINATED_COMPLETED_OK
			     ? req->status
		     : !req->queued && w->mhd_status ? w->mhd_status
						     : 499;
	w->mhd_status = 0;
	uint64_t took = fpg_now_us() - req->start_us;
	fpg_stats_record(req->svc->stats, req->route_index, status, took,
			 req->sqlstate);
	access_log(req, status, took);
	request_free(req);
}

/* r may be cancelled by whoever knows id and key (key non-empty). */
static bool cancel_matches(const struct fpg_request *r, const char *id,
			   const char *key, const char *login)
{
	return r->cancel_key[0] && strcmp(r->id, id) == 0 &&
	       strcmp(r->login, login) == 0 &&
	       fpg_guard_same_secret(r->cancel_key, strlen(r->cancel_key), key,
				     strlen(key));
}

/* Cancels w's requests that id and key name. w's thread. */
static void cancel_by_id(struct fpg_requests *w, const char *id,
			 const char *key, const char *login)
{
	/* Requests are freed only by MHD, never inside cancel(). */
	FPG_LIST_EACH(n, &w->list) {
		struct fpg_request *req =
			FPG_CONTAINER_OF(n, struct fpg_request, link);
		if (cancel_matches(req, id, key, login) && req->handler &&
		    req->handler->cancel)
			req->handler->cancel(req);
	}
}

/* A cancel for requests that another worker serves. */
struct cancel_msg {
	struct fpg_msg msg;
	struct fpg_requests *w;
	char id[sizeof(((struct fpg_request *)0)->id)];
	char key[sizeof(((struct fpg_request *)0)->cancel_key)];
	char login[sizeof(((struct fpg_request *)0)->login)];
};

static void cancel_msg_handle(struct fpg_msg *msg, bool live)
{
	struct cancel_msg *m = FPG_CONTAINER_OF(msg, struct cancel_msg, msg);
	if (live)
		cancel_by_id(m->w, m->id, m->key, m->login);
	free(m);
}

unsigned fpg_request_cancel_everywhere(struct fpg_request *self,
				       const char *id, const char *key)
{
	const struct fpg_services *svc = self->svc;
	unsigned found = 0;
	for (unsigned i = 0; i < svc->nworkers; i++) {
		struct fpg_requests *w = svc->all_requests[i];
		unsigned here = 0;
		/* Only ids, keys (set before a request is linked, never
		 * changed) and logins (set once under the lock) are read
		 * here: the owner does the rest. */
		pthread_mutex_lock(&w->lock);
		FPG_LIST_EACH(n, &w->list) {
			struct fpg_request *r =
				FPG_CONTAINER_OF(n, struct fpg_request, link);
			if (r != self && cancel_matches(r, id, key, self->login))
				here++;
		}
		pthread_mutex_unlock(&w->lock);
		if (!here)
			continue;
		found += here;
		if (w == self->rs) {
			cancel_by_id(w, id, key, self->login);
			continue;
		}
		struct cancel_msg *m = malloc(sizeof(*m));
		if (!m) {
			found -= here;
			continue;
		}
		m->msg.handle = cancel_msg_handle;
		m->w = w;
		snprintf(m->id, sizeof(m->id), "%s", id);
		snprintf(m->key, sizeof(m->key), "%s", key);
		snprintf(m->login, sizeof(m->login), "%s", self->login);
		fpg_loop_post(w->svc->loop, &m->msg);
	}
	return found;
}

void fpg_request_kill_all(struct fpg_requests *w)
{
	FPG_LIST_EACH(n, &w->list) {
		struct fpg_request *req =
			FPG_CONTAINER_OF(n, struct fpg_request, link);
		if (req->queued && !req->suspended) {
			/* MHD is writing it: its next read of a stream ends it
			 * rather than suspending it again, which would leave it
			 * suspended when MHD stops. */
			req->client_gone = true;
			continue;
		}
		stop_handler(req);
		if (req->queued) {
			/* A stream already under way: cut it short. */
			req->client_gone = true;
			resume(req);
			continue;
		}
		fpg_request_complete(req, fpg_request_fail(
						  req, 503, "shutting_down",
						  "the server is shutting down"));
	}
}
