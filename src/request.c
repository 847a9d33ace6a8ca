#include "request.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "error.h"
#include "log.h"
#include "router.h"
#include "server.h"
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

static uint64_t next_random(struct fpg_worker *w)
{
	uint64_t x = w->rng; /* xorshift64* */
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	w->rng = x;
	return x * 2685821657736338717ULL;
}

static void set_request_id(struct fpg_request *req)
{
	const char *given = MHD_lookup_connection_value(
		req->conn, MHD_HEADER_KIND, "X-Request-Id");
	if (given && valid_request_id(given)) {
		snprintf(req->id, sizeof(req->id), "%s", given);
		return;
	}
	snprintf(req->id, sizeof(req->id), "%016llx",
		 (unsigned long long)next_random(req->w));
}

static struct fpg_request *request_new(struct fpg_worker *w,
				       struct MHD_Connection *conn,
				       const char *url, const char *method)
{
	struct fpg_request *req = calloc(1, sizeof(*req));
	if (!req)
		return NULL;
	req->w = w;
	req->conn = conn;
	req->url = url;
	req->method = method;
	req->start_us = fpg_now_us();
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
		conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	if (ci && ci->socket_context) {
		req->client = ci->socket_context;
		req->client->req = req;
	}
	req->content_type = "application/json";
	fpg_buf_init(&req->body);
	fpg_buf_init(&req->out);
	set_request_id(req);
	req->route = fpg_router_match(method, url, &req->route_status,
				      req->allow_buf, sizeof(req->allow_buf),
				      &req->path_param);
	req->route_index = fpg_router_index(req->route);
	pthread_mutex_lock(&w->requests_lock);
	req->next = w->requests;
	if (w->requests)
		w->requests->prev = req;
	w->requests = req;
	pthread_mutex_unlock(&w->requests_lock);
	FPG_STAT_ADD(w->stats.in_flight, 1);
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
}

static void resume(struct fpg_request *req)
{
	if (!req->suspended)
		return;
	req->suspended = false;
	MHD_resume_connection(req->conn);
	req->w->resumed = true;
}

static void client_event(struct fpg_evsrc *src, uint32_t events)
{
	struct fpg_client *cl = (struct fpg_client *)src;
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
	struct fpg_worker *w = cls;
	struct fpg_client *cl = *socket_context;
	if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
		if (!cl)
			return;
		fpg_worker_unwatch(w, cl->fd);
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
	cl->w = w;
	cl->fd = ci->connect_fd;
	if (!fpg_worker_watch(w, cl->fd, EPOLLRDHUP | EPOLLET, &cl->ev)) {
		free(cl);
		return;
	}
	*socket_context = cl;
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
		req->flush_next = req->w->flush_list;
		req->w->flush_list = req;
	}
}

void fpg_request_flush_streams(struct fpg_worker *w)
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
	struct fpg_request **pp = &req->w->flush_list;
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

static void put_error_object(struct fpg_buf *out, const char *code,
			     const char *msg)
{
	fpg_buf_puts(out, "{\"error\":{\"code\":");
	fpg_buf_json_str(out, code, strlen(code));
	fpg_buf_puts(out, ",\"message\":");
	fpg_buf_json_str(out, msg, strlen(msg));
	fpg_buf_puts(out, ",\"detail\":null,\"hint\":null,\"position\":null}}");
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
		FPG_STAT_ADD(req->w->stats.bytes_sent, n);
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
		FPG_STAT_ADD(req->w->stats.bytes_sent, n);
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
	const char *cors = req->w->opts->cors_origin;
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
				"X-Request-Id");
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

static void route(struct fpg_request *req)
{
	int status = req->route_status;
	req->routed = true;
	if (req->body_too_large) {
		status = fpg_request_fail(
			req, 413, "body_too_large",
			"the request body exceeds %zu bytes (max-body-bytes)",
			req->w->opts->max_body_bytes);
	} else if (!req->route && status == 405 && req->w->opts->cors_origin &&
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
	} else if (req->w->draining) {
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

enum MHD_Result fpg_request_access(void *cls, struct MHD_Connection *conn,
				   const char *url, const char *method,
				   const char *version,
				   const char *upload_data,
				   size_t *upload_data_size, void **con_cls)
{
	struct fpg_worker *w = cls;
	struct fpg_request *req = *con_cls;
	if (!req) {
		req = request_new(w, conn, url, method);
		*con_cls = req;
		return req ? MHD_YES : MHD_NO;
	}
	if (req->client_gone)
		return MHD_NO;
	if (*upload_data_size && req->route && req->route->stream_body)
		return stream_upload(req, upload_data, upload_data_size);
	if (*upload_data_size) {
		size_t n = *upload_data_size;
		if (!req->body_too_large &&
		    req->body.len + n > w->opts->max_body_bytes) {
			req->body_too_large = true;
			fpg_buf_deinit(&req->body);
		}
		if (!req->body_too_large)
			fpg_buf_append(&req->body, upload_data, n);
		*upload_data_size = 0;
		return MHD_YES;
	}
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
	struct fpg_worker *w = req->w;
	stop_handler(req);
	unqueue_flush(req);
	if (req->client)
		req->client->req = NULL;
	pthread_mutex_lock(&w->requests_lock);
	if (req->prev)
		req->prev->next = req->next;
	else
		w->requests = req->next;
	if (req->next)
		req->next->prev = req->prev;
	pthread_mutex_unlock(&w->requests_lock);
	fpg_buf_deinit(&req->body);
	fpg_buf_deinit(&req->out);
	FPG_STAT_ADD(w->stats.in_flight, -1);
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
	fpg_stats_record(&req->w->stats, req->route_index, status, took);
	if (status >= 500 && status != 503)
		fpg_log_warn("request", req->id, "%s %s -> %d", req->method,
			     req->url, status);
	else
		fpg_log_debug("request", req->id, "%s %s -> %d in %llu us",
			      req->method, req->url, status,
			      (unsigned long long)took);
	request_free(req);
}

void fpg_request_cancel_by_id(struct fpg_worker *w, const char *id)
{
	/* Requests are freed only by MHD, never inside cancel(). */
	for (struct fpg_request *req = w->requests; req; req = req->next) {
		if (strcmp(req->id, id) == 0 && req->handler &&
		    req->handler->cancel)
			req->handler->cancel(req);
	}
}

unsigned fpg_request_cancel_everywhere(struct fpg_request *self,
				       const char *id)
{
	struct fpg_server *srv = self->w->srv;
	unsigned found = 0;
	for (unsigned i = 0; i < srv->nworkers; i++) {
		struct fpg_worker *w = &srv->workers[i];
		unsigned here = 0;
		/* Only ids are read here: the owner does the rest. */
		pthread_mutex_lock(&w->requests_lock);
		for (struct fpg_request *r = w->requests; r; r = r->next)
			if (r != self && strcmp(r->id, id) == 0)
				here++;
		pthread_mutex_unlock(&w->requests_lock);
		if (!here)
			continue;
		found += here;
		if (w == self->w) {
			fpg_request_cancel_by_id(w, id);
		} else {
			struct fpg_msg msg = {.type = FPG_MSG_CANCEL_REQUEST};
			snprintf(msg.id, sizeof(msg.id), "%s", id);
			fpg_worker_post(w, &msg);
		}
	}
	return found;
}

void fpg_request_kill_all(struct fpg_worker *w)
{
	for (struct fpg_request *req = w->requests; req; req = req->next) {
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
