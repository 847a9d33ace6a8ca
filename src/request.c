#include "request.h"

#include <stdarg.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "error.h"
#include "guard.h"
#include "log.h"
#include "stats.h"

/* Resume a suspended stream only once this much is buffered: every
 * resume costs a chunk of its own, and small chunks cost syscalls. */
#define STREAM_RESUME_BYTES (16 * 1024)

static bool valid_request_id(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 64)
		return false;
	for (; *s; s++) {
		char c = *s;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		      c == '.' || c == ':'))
			return false;
	}
	return true;
}

/* X-Cancel-Key: a client's secret, 16-128 base64/base64url/hex chars. */
static bool valid_cancel_key(const char *s)
{
	size_t n = strlen(s);
	if (n < 16 || n > 128)
		return false;
	for (; *s; s++) {
		char c = *s;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		      c == '.' || c == '~' || c == '+' || c == '/' || c == '='))
			return false;
	}
	return true;
}

void fpg_requests_init(struct fpg_requests *rs, struct fpg_services *svc)
{
	memset(rs, 0, sizeof(*rs));
	rs->svc = svc;
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
 * Fills out with n (at most 256) bytes from the kernel's CSPRNG, drawn in
 * 256-byte batches. False when getrandom() fails (it does not on Linux
 * >= 3.17 once the pool is seeded).
 */
static bool draw_random(struct fpg_requests *rs, void *out, size_t n)
{
	if (n > sizeof(rs->random_pool))
		return false;
	if (rs->random_left < n) {
		/* Up to 256 bytes, getrandom() returns them all and is not
		 * interrupted by signals (getrandom(2)). */
		ssize_t got =
			getrandom(rs->random_pool, sizeof(rs->random_pool), 0);
		if (got != (ssize_t)sizeof(rs->random_pool)) {
			fpg_log_error("request", NULL, "getrandom: %s",
				      got < 0 ? strerror(errno) : "short read");
			return false;
		}
		rs->random_left = sizeof(rs->random_pool);
	}
	rs->random_left -= (unsigned)n;
	memcpy(out, rs->random_pool + rs->random_left, n);
	/* Handed out bytes must not stay behind for a later reader. */
	memset(rs->random_pool + rs->random_left, 0, n);
	return true;
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
	if (given && valid_request_id(given)) {
		snprintf(req->id, sizeof(req->id), "%s", given);
		return true;
	}
	unsigned char r[8];
	if (!draw_random(req->rs, r, sizeof(r)))
		return false;
	for (size_t i = 0; i < sizeof(r); i++)
		snprintf(req->id + 2 * i, 3, "%02x", r[i]);
	return true;
}

/* Kept only when valid: route() refuses the request otherwise. */
static void set_cancel_key(struct fpg_request *req)
{
	const char *key = MHD_lookup_connection_value(
		req->conn, MHD_HEADER_KIND, "X-Cancel-Key");
	if (!key)
		return;
	if (valid_cancel_key(key))
		snprintf(req->cancel_key, sizeof(req->cancel_key), "%s", key);
	else
		req->cancel_key_bad = true;
}

/* ---- slow clients ---- */

/* A body must bring min-upload-rate bytes/s over each window this long. */
#define UPLOAD_WINDOW_MS 5000

static void fifo_push(struct fpg_fifo *f, struct fpg_fifo_link *l,
		      uint64_t now_ms)
{
	l->since_ms = now_ms;
	l->next = NULL;
	l->prev = f->tail;
	if (f->tail)
		f->tail->next = l;
	else
		f->head = l;
	f->tail = l;
	l->linked = true;
	f->n++;
}

static void fifo_remove(struct fpg_fifo *f, struct fpg_fifo_link *l)
{
	if (!l->linked)
		return;
	if (l->prev)
		l->prev->next = l->next;
	else
		f->head = l->next;
	if (l->next)
		l->next->prev = l->prev;
	else
		f->tail = l->prev;
	l->prev = l->next = NULL;
	l->linked = false;
	f->n--;
}

static void put_error_object(struct fpg_buf *out, const char *code,
			     const char *msg)
{
	fpg_error_json_code(out, code, msg);
}

/*
 * Ends a connection from outside libmicrohttpd's callbacks, which it has
 * no call for: shutdown() (not close(): the descriptor stays MHD's) makes
 * MHD's next read see the end, and MHD closes and reports it as usual.
 * The short answer before it is best effort; nothing else is being
 * written then (no response is queued while headers or a body come in).
 * id is the request's, or NULL while there is none yet.
 */
static void cut(struct fpg_client *cl, const char *id, int status,
		const char *reason, const char *code, const char *msg)
{
	struct fpg_buf body;
	fpg_buf_init(&body);
	put_error_object(&body, code, msg);
	char head[300];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
			 "Content-Length: %zu\r\nCache-Control: no-store\r\n"
			 "%s%s%sConnection: close\r\n\r\n",
			 status, reason, fpg_buf_pending(&body),
			 id ? "X-Request-Id: " : "", id ? id : "",
			 id ? "\r\n" : "");
	if (!body.failed && n > 0 && (size_t)n < sizeof(head)) {
		struct iovec iov[2] = {
			{.iov_base = head, .iov_len = (size_t)n},
			{.iov_base = body.data + body.off,
			 .iov_len = fpg_buf_pending(&body)},
		};
		struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
		(void)sendmsg(cl->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	}
	fpg_buf_deinit(&body);
	(void)shutdown(cl->fd, SHUT_RDWR);
}

/*
 * A connection starts waiting for a request's headers. At most half of
 * the connection slots may be waiting: past that the one waiting longest
 * is closed. Honest clients send their headers in one packet, so the
 * oldest waiting connection is the likeliest to be trickling them, and
 * new connections (and those busy with a request) always find a slot.
 */
static void pending_start(struct fpg_client *cl)
{
	struct fpg_requests *w = cl->rs;
	fifo_push(&w->pending_clients, &cl->pending, w->svc->loop->now_ms);
	unsigned cap = w->svc->opts->max_connections / 2;
	if (w->pending_clients.n <= (cap ? cap : 1))
		return;
	struct fpg_client *old = FPG_CONTAINER_OF(w->pending_clients.head,
						  struct fpg_client, pending);
	fifo_remove(&w->pending_clients, &old->pending);
	FPG_STAT_ADD(w->svc->stats->http_evicted, 1);
	cut(old, NULL, 503, "Service Unavailable", "too_many_connections",
	    "too many connections are waiting to send their headers; this "
	    "one waited longest");
}

/* Unread bytes in the socket: a stale edge (the bytes of a request MHD
 * has read and finished since) is not the start of a new one. */
static bool bytes_waiting(int fd)
{
	char c;
	return recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

/*
 * Bytes came on a connection that has no request. Its header deadline
 * starts now, unless the edge may be stale: epoll reports bytes at the
 * next loop turn, and MHD_run() may have read them (and served their
 * request) in the turn before. That is only possible when a request of
 * this connection began or ended in the previous turn; then the end of
 * this turn tells: if MHD began no request in it, unread bytes in the
 * socket are a new request's. Deciding then, not with a recv() now,
 * spares a system call per keep-alive request: under load the next
 * request is read in the same turn.
 */
static void bytes_came(struct fpg_client *cl)
{
	struct fpg_requests *w = cl->rs;
	if (cl->pending.linked || cl->unsure.linked)
		return;
	if (cl->active_turn + 1 < w->svc->loop->turn)
		pending_start(cl);
	else
		fifo_push(&w->unsure_clients, &cl->unsure, w->svc->loop->now_ms);
}

void fpg_request_settle_clients(struct fpg_requests *w)
{
	struct fpg_fifo_link *l;
	while ((l = w->unsure_clients.head)) {
		struct fpg_client *cl =
			FPG_CONTAINER_OF(l, struct fpg_client, unsure);
		fifo_remove(&w->unsure_clients, l);
		if (!cl->req && cl->active_turn != w->svc->loop->turn &&
		    bytes_waiting(cl->fd))
			pending_start(cl);
	}
}

static void upload_start(struct fpg_request *req)
{
	if (!req->svc->opts->min_upload_rate || req->body_done ||
	    req->client_gone || !req->client)
		return;
	req->upload_bytes = 0;
	fifo_push(&req->rs->uploads, &req->upload, req->svc->loop->now_ms);
}

static void upload_stop(struct fpg_request *req)
{
	fifo_remove(&req->rs->uploads, &req->upload);
}

/* A window ended: enough bytes start the next one, too few end it. */
static void check_uploads(struct fpg_requests *w)
{
	uint64_t min = (uint64_t)w->svc->opts->min_upload_rate * UPLOAD_WINDOW_MS /
		       1000;
	struct fpg_fifo_link *l;
	while ((l = w->uploads.head) &&
	       w->svc->loop->now_ms - l->since_ms >= UPLOAD_WINDOW_MS) {
		struct fpg_request *req =
			FPG_CONTAINER_OF(l, struct fpg_request, upload);
		fifo_remove(&w->uploads, l);
		if (!req->client)
			continue; /* closed already; MHD reports it soon */
		if (req->upload_bytes >= min) {
			upload_start(req);
			continue;
		}
		/* debug: a flood of these is an attack, not news */
		fpg_log_debug("request", req->id,
			      "body too slow (%zu bytes in %u ms): closing",
			      req->upload_bytes, UPLOAD_WINDOW_MS);
		FPG_STAT_ADD(w->svc->stats->http_slow_bodies, 1);
		cut(req->client, req->id, 408, "Request Timeout", "request_timeout",
		    "the request body came more slowly than min-upload-rate");
	}
}

void fpg_request_tick(struct fpg_requests *w)
{
	unsigned limit = w->svc->opts->header_timeout_ms;
	struct fpg_fifo_link *l;
	while (limit && (l = w->pending_clients.head) &&
	       w->svc->loop->now_ms - l->since_ms >= limit) {
		struct fpg_client *cl =
			FPG_CONTAINER_OF(l, struct fpg_client, pending);
		fifo_remove(&w->pending_clients, l);
		FPG_STAT_ADD(w->svc->stats->http_header_timeouts, 1);
		cut(cl, NULL, 408, "Request Timeout", "request_timeout",
		    "the request headers took longer than header-timeout-ms");
	}
	check_uploads(w);
}

struct header_scan {
	unsigned content_length, transfer_encoding, host;
	bool control_bytes;
};

static bool has_control_bytes(const char *s)
{
	for (; *s; s++)
		if (((unsigned char)*s < 0x20 && *s != '\t') || *s == 0x7f)
			return true;
	return false;
}

static enum MHD_Result scan_header(void *cls, enum MHD_ValueKind kind,
				   const char *key, const char *value)
{
	struct header_scan *f = cls;
	if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0)
		f->content_length++;
	else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0)
		f->transfer_encoding++;
	else if (strcasecmp(key, MHD_HTTP_HEADER_HOST) == 0)
		f->host++;
	if (has_control_bytes(key) || (value && has_control_bytes(value)))
		f->control_bytes = true;
	return MHD_YES;
}

/*
 * What libmicrohttpd lets through but a proxy in front may read another
 * way: two Content-Length headers, or one with Transfer-Encoding (MHD
 * takes one of them; the bytes in between would be read as a request of
 * their own: request smuggling), two Host headers (which one did
 * --allowed-hosts check?), and control bytes in headers (RFC 9110 5.5).
 * Returns why the request is refused, or NULL.
 */
static const char *header_problem(struct MHD_Connection *conn)
{
	struct header_scan f = {0};
	MHD_get_connection_values(conn, MHD_HEADER_KIND, scan_header, &f);
	if (f.content_length > 1 || f.transfer_encoding > 1 ||
	    (f.content_length && f.transfer_encoding))
		return "the body's length is ambiguous (two Content-Length "
		       "headers, or one with Transfer-Encoding)";
	if (f.host > 1)
		return "two Host headers";
	if (f.control_bytes)
		return "a header holds control characters";
	return NULL;
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
	req->conn = conn;
	req->url = url;
	req->method = method;
	req->start_us = fpg_now_us();
	if (!set_request_id(req)) {
		free(req);
		return NULL;
	}
	set_cancel_key(req);
	req->header_problem = header_problem(conn);
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
		conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	if (ci && ci->socket_context) {
		req->client = ci->socket_context;
		req->client->req = req;
		req->client->active_turn = w->svc->loop->turn;
		fifo_remove(&w->pending_clients, &req->client->pending);
	}
	req->content_type = "application/json";
	fpg_buf_init(&req->body);
	fpg_buf_init(&req->out);
	req->route = w->svc->route_match(method, url, &req->route_status,
				      req->allow_buf, sizeof(req->allow_buf),
				      &req->path_param);
	req->route_index = w->svc->route_index(req->route);
	pthread_mutex_lock(&w->lock);
	req->next = w->list;
	if (w->list)
		w->list->prev = req;
	w->list = req;
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
	fpg_log_debug("request", req->id, "client went away while waiting");
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

static void client_event(struct fpg_evsrc *src, uint32_t events)
{
	struct fpg_client *cl = (struct fpg_client *)src;
	if ((events & EPOLLIN) && !cl->req && !cl->hung_up)
		bytes_came(cl);
	if (!(events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
		return;
	cl->hung_up = true;
	struct fpg_request *req = cl->req;
	/* When not suspended MHD sees the close itself, except in the middle
	 * of a streamed upload (it would wait for body that never comes). */
	if (req && (req->suspended || (req->route && req->route->stream_body &&
				       !req->upload_ended))) {
		client_gone(req);
		resume(req);
	}
}

void fpg_request_connection(void *cls, struct MHD_Connection *conn,
			    void **socket_context,
			    enum MHD_ConnectionNotificationCode toe)
{
	struct fpg_requests *w = cls;
	struct fpg_client *cl = *socket_context;
	if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
		if (!cl)
			return;
		fpg_loop_unwatch(w->svc->loop, cl->fd);
		fifo_remove(&w->pending_clients, &cl->pending);
		fifo_remove(&w->unsure_clients, &cl->unsure);
		if (cl->req)
			cl->req->client = NULL;
		free(cl);
		*socket_context = NULL;
		return;
	}
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
		conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	cl = calloc(1, sizeof(*cl));
	if (!cl || !ci) {
		free(cl);
		return; /* requests on it are just not watched */
	}
	cl->ev.on_event = client_event;
	cl->rs = w;
	cl->fd = ci->connect_fd;
	/* EPOLLIN too: the first byte of a keep-alive connection's next
	 * request starts its header deadline (one event per packet burst,
	 * in the epoll_wait that reports it to MHD as well). */
	if (!fpg_loop_watch(w->svc->loop, cl->fd, EPOLLIN | EPOLLRDHUP | EPOLLET,
			      &cl->ev)) {
		free(cl);
		return;
	}
	*socket_context = cl;
	pending_start(cl);
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
	} else if (!req->flush_queued) {
		req->flush_queued = true;
		req->flush_next = req->rs->flush_list;
		req->rs->flush_list = req;
	}
}

void fpg_request_flush_streams(struct fpg_requests *w)
{
	struct fpg_request *req = w->flush_list;
	w->flush_list = NULL;
	while (req) {
		struct fpg_request *next = req->flush_next;
		req->flush_queued = false;
		req->flush_next = NULL;
		if (fpg_buf_pending(&req->out))
			resume(req);
		req = next;
	}
}

static void unqueue_flush(struct fpg_request *req)
{
	if (!req->flush_queued)
		return;
	struct fpg_request **pp = &req->rs->flush_list;
	while (*pp != req)
		pp = &(*pp)->flush_next;
	*pp = req->flush_next;
	req->flush_queued = false;
}

void fpg_request_stream_end(struct fpg_request *req, bool failed)
{
	req->complete = true;
	req->stream_failed = failed;
	resume(req);
}

int fpg_request_error(struct fpg_request *req, const struct fpg_error *err,
		      const PGresult *res)
{
	fpg_buf_reset(&req->out);
	fpg_error_json(&req->out, err, res);
	int status = err->http_status ? err->http_status : 500;
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
	fpg_buf_reset(&req->out);
	put_error_object(&req->out, code, msg);
	if (status == 503 || status == 429)
		req->retry_after = 1;
	req->content_type = "application/json";
	return status;
}

const char *fpg_request_header(struct fpg_request *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

static ssize_t read_stream(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct fpg_request *req = cls;
	if (req->client_gone)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	size_t n = fpg_buf_pending(&req->out);
	if (n) {
		if (n > max)
			n = max;
		memcpy(buf, req->out.data + req->out.off, n);
		fpg_buf_consume(&req->out, n);
		FPG_STAT_ADD(req->svc->stats->bytes_sent, n);
		if (req->handler && req->handler->drained)
			req->handler->drained(req);
		return (ssize_t)n;
	}
	if (req->complete)
		return req->stream_failed ? MHD_CONTENT_READER_END_WITH_ERROR
					  : MHD_CONTENT_READER_END_OF_STREAM;
	/* Never return 0 without suspending: MHD would spin on us. */
	suspend(req);
	return 0;
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
	if (req->streaming) {
		resp = MHD_create_response_from_callback(
			MHD_SIZE_UNKNOWN, 64 * 1024, read_stream, req, NULL);
	} else {
		size_t n;
		char *data = fpg_buf_steal(&req->out, &n);
		FPG_STAT_ADD(req->svc->stats->bytes_sent, n);
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
	MHD_add_response_header(resp, "X-Request-Id", req->id);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
				"no-store");
	if (req->allow)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW,
					req->allow);
	if (req->header_problem)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION,
					"close");
	const char *cors = req->svc->opts->cors_origin;
	if (cors) {
		MHD_add_response_header(resp, "Access-Control-Allow-Origin",
					cors);
		MHD_add_response_header(resp, "Access-Control-Expose-Headers",
					"X-Request-Id, Retry-After");
		if (strcmp(cors, "*") != 0)
			MHD_add_response_header(resp, "Vary", "Origin");
		if (req->preflight) {
			MHD_add_response_header(
				resp, "Access-Control-Allow-Methods",
				req->allow_buf);
			MHD_add_response_header(
				resp, "Access-Control-Allow-Headers",
				"Content-Type, Accept, Content-Encoding, "
				"X-Request-Id, X-Cancel-Key, "
				"X-Requested-With");
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
	if (!req->route || req->route->cross_site_ok)
		return 0;
	if (fpg_guard_preflighted(req->method,
				  fpg_request_header(req, "Content-Type"),
				  fpg_request_header(req, "X-Requested-With")))
		return 0;
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
	} else {
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
	if (!req) {
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
	unqueue_flush(req);
	upload_stop(req);
	if (req->client) {
		req->client->req = NULL;
		req->client->active_turn = w->svc->loop->turn;
	}
	pthread_mutex_lock(&w->lock);
	if (req->prev)
		req->prev->next = req->next;
	else
		w->list = req->next;
	if (req->next)
		req->next->prev = req->prev;
	pthread_mutex_unlock(&w->lock);
	fpg_buf_deinit(&req->body);
	fpg_buf_deinit(&req->out);
	FPG_STAT_ADD(w->svc->stats->in_flight, -1);
	free(req);
}

void fpg_request_completed(void *cls, struct MHD_Connection *conn,
			   void **con_cls, enum MHD_RequestTerminationCode toe)
{
	struct fpg_request *req = *con_cls;
	if (!req)
		return;
	*con_cls = NULL;
	/* 499: the client left before the answer was complete. */
	int status = req->queued && toe == MHD_REQUEST_TERMINATED_COMPLETED_OK
			     ? req->status
			     : 499;
	uint64_t took = fpg_now_us() - req->start_us;
	fpg_stats_record(req->svc->stats, req->route_index, status, took);
	if (status >= 500 && status != 503)
		fpg_log_warn("request", req->id, "%s %s -> %d", req->method,
			     req->url, status);
	else
		fpg_log_debug("request", req->id, "%s %s -> %d in %llu us",
			      req->method, req->url, status,
			      (unsigned long long)took);
	request_free(req);
}

/* Compares without an early exit: the time taken tells nothing of key. */
static bool same_key(const char *a, const char *key)
{
	size_t n = strlen(key);
	if (strlen(a) != n)
		return false;
	unsigned char diff = 0;
	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char)(a[i] ^ key[i]);
	return diff == 0;
}

/* r may be cancelled by whoever knows id and key (key non-empty). */
static bool cancel_matches(const struct fpg_request *r, const char *id,
			   const char *key)
{
	return r->cancel_key[0] && strcmp(r->id, id) == 0 &&
	       same_key(r->cancel_key, key);
}

/* Cancels w's requests that id and key name. w's thread. */
static void cancel_by_id(struct fpg_requests *w, const char *id,
			 const char *key)
{
	/* Requests are freed only by MHD, never inside cancel(). */
	for (struct fpg_request *req = w->list; req; req = req->next) {
		if (cancel_matches(req, id, key) && req->handler &&
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
};

static void cancel_msg_handle(struct fpg_msg *msg, bool live)
{
	struct cancel_msg *m = FPG_CONTAINER_OF(msg, struct cancel_msg, msg);
	if (live)
		cancel_by_id(m->w, m->id, m->key);
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
		/* Only ids and keys are read here (set before a request is
		 * linked, never changed): the owner does the rest. */
		pthread_mutex_lock(&w->lock);
		for (struct fpg_request *r = w->list; r; r = r->next)
			if (r != self && cancel_matches(r, id, key))
				here++;
		pthread_mutex_unlock(&w->lock);
		if (!here)
			continue;
		found += here;
		if (w == self->rs) {
			cancel_by_id(w, id, key);
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
		fpg_loop_post(w->svc->loop, &m->msg);
	}
	return found;
}

void fpg_request_kill_all(struct fpg_requests *w)
{
	for (struct fpg_request *req = w->list; req; req = req->next) {
		if (req->queued && !req->suspended)
			continue;
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
