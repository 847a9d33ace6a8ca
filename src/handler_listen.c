/*
 * GET /listen?channel=a&channel=b: PostgreSQL notifications as
 * Server-Sent Events, through the worker's listener (listen.h).
 *
 *	retry: 3000
 *	: listening               (every channel is listened to from here)
 *
 *	event: notify
 *	id: 0-17
 *	data: {"channel":"a","payload":"...","pid":4242}
 *
 *	event: gap                (some may have been missed)
 *	data: {"reason":"..."}
 *
 *	: ping                    (every --listen-heartbeat-ms)
 *
 *	event: error              (PostgreSQL refused a channel; the end)
 *	data: {"reason":"..."}
 *
 * A subscriber that reads slowly holds at most --listen-queue-bytes of
 * events; what comes beyond is dropped and it gets a gap once it has room
 * again. The others never wait for it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <microhttpd.h>

#include "buf.h"
#include "error.h"
#include "handlers.h"
#include "listen.h"
#include "request.h"
#include "roles.h"
#include "services.h"
#include "stats.h"

struct listen_req {
	struct fpg_handler_state hs;
	struct fpg_request *req;
	struct fpg_sub sub;
	bool gap_pending; /* events were dropped: say so when there is room */
	const char *gap_why;
};

struct channels {
	const char *name[1000];
	unsigned n;
	const char *bad; /* why the query string is refused, or NULL */
	unsigned max;
};

static enum MHD_Result take_arg(void *cls, enum MHD_ValueKind kind,
				const char *key, const char *value)
{
	(void)kind;
	struct channels *c = cls;
	if (c->bad)
		return MHD_NO;
	if (strcmp(key, "access_token") == 0)
		return MHD_YES; /* the credential (auth.c) */
	if (strcmp(key, "channel") != 0) {
		c->bad = "the query string takes channel=NAME (and "
			 "access_token) only";
		return MHD_NO;
	}
	if (!value || !*value || strlen(value) > FPG_LISTEN_MAX_CHANNEL) {
		c->bad = "a channel name is 1 to 63 bytes";
		return MHD_NO;
	}
	/* jansson checks UTF-8 for us: PostgreSQL would refuse the rest. */
	json_t *utf8 = json_string(value);
	if (!utf8) {
		c->bad = "a channel name is UTF-8 text";
		return MHD_NO;
	}
	json_decref(utf8);
	for (unsigned i = 0; i < c->n; i++)
		if (strcmp(c->name[i], value) == 0)
			return MHD_YES; /* named twice: once */
	if (c->n == c->max) {
		c->bad = "too many channels (--listen-max-channels)";
		return MHD_NO;
	}
	c->name[c->n++] = value;
	return MHD_YES;
}

static struct listen_req *of(struct fpg_sub *s)
{
	return s->ctx;
}

static bool has_room(const struct listen_req *lr)
{
	return fpg_buf_pending(&lr->req->out) <
	       lr->req->svc->opts->listen_queue_bytes;
}

/* An event that says why (gap, close, error): data {"reason": why}. */
static void put_reason(struct fpg_buf *out, const char *event,
		       const char *why)
{
	fpg_buf_printf(out, "event: %s\ndata: {\"reason\":", event);
	fpg_buf_json_str(out, why, strlen(why));
	fpg_buf_puts(out, "}\n\n");
}

static void put_gap(struct listen_req *lr)
{
	FPG_STAT_ADD(lr->req->svc->stats->listen_gaps, 1);
	put_reason(&lr->req->out, "gap", lr->gap_why);
	lr->gap_pending = false;
}

static void push(struct listen_req *lr)
{
	fpg_request_stream_push(lr->req);
}

static void on_ready(struct fpg_sub *s)
{
	fpg_buf_puts(&of(s)->req->out, ": listening\n\n");
	push(of(s));
}

static void on_notify(struct fpg_sub *s, uint64_t id, const char *channel,
		      const char *payload, int pid)
{
	struct listen_req *lr = of(s);
	if (!has_room(lr)) {
		FPG_STAT_ADD(lr->req->svc->stats->listen_dropped, 1);
		if (!lr->gap_pending) {
			lr->gap_pending = true;
			lr->gap_why = "this client reads too slowly: "
				      "notifications were dropped";
		}
		return;
	}
	if (lr->gap_pending)
		put_gap(lr);
	struct fpg_buf *out = &lr->req->out;
	char ids[32];
	fpg_listener_format_id(lr->req->svc->listener, id, ids, sizeof(ids));
	fpg_buf_printf(out, "event: notify\nid: %s\ndata: {\"channel\":", ids);
	fpg_buf_json_str(out, channel, strlen(channel));
	fpg_buf_puts(out, ",\"payload\":");
	fpg_buf_json_str(out, payload, strlen(payload));
	fpg_buf_printf(out, ",\"pid\":%d}\n\n", pid);
	push(lr);
}

static void on_gap(struct fpg_sub *s, const char *why)
{
	struct listen_req *lr = of(s);
	lr->gap_why = why;
	if (has_room(lr)) {
		put_gap(lr);
		push(lr);
	} else {
		lr->gap_pending = true;
	}
}

static void on_ping(struct fpg_sub *s)
{
	if (has_room(of(s))) {
		fpg_buf_puts(&of(s)->req->out, ": ping\n\n");
		push(of(s));
	}
}

static void on_closing(struct fpg_sub *s)
{
	put_reason(&of(s)->req->out, "close", "the server is shutting down");
	fpg_request_stream_end(of(s)->req, false);
}

static void on_refused(struct fpg_sub *s, const char *why)
{
	put_reason(&of(s)->req->out, "error", why);
	fpg_request_stream_end(of(s)->req, false);
}

static const struct fpg_sub_ops sub_ops = {
	.ready = on_ready,
	.notify = on_notify,
	.gap = on_gap,
	.ping = on_ping,
	.closing = on_closing,
	.refused = on_refused,
};

static void on_drained(struct fpg_request *req)
{
	struct listen_req *lr =
		FPG_CONTAINER_OF(req->handler, struct listen_req, hs);
	if (lr->gap_pending && has_room(lr)) {
		put_gap(lr);
		push(lr);
	}
}

static void cleanup(struct fpg_request *req)
{
	struct listen_req *lr =
		FPG_CONTAINER_OF(req->handler, struct listen_req, hs);
	fpg_listener_unsubscribe(req->svc->listener, &lr->sub);
	free(lr);
}

int fpg_handle_listen(struct fpg_request *req)
{
	struct channels c = {.max = req->svc->opts->listen_max_channels};
	if (c.max > sizeof(c.name) / sizeof(*c.name))
		c.max = sizeof(c.name) / sizeof(*c.name);
	MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, take_arg,
				  &c);
	if (c.bad || !c.n)
		return fpg_request_fail(req, 400, "bad_request", "%s",
					c.bad ? c.bad
					      : "name a channel: "
						"/listen?channel=NAME");
	const struct fpg_role_policy *p =
		fpg_roles_for(req->svc->roles, req->login);
	for (unsigned i = 0; i < c.n; i++)
		if (!fpg_roles_may_listen(p, c.name[i]))
			return fpg_request_fail(
				req, 403, "channel_not_allowed",
				"this role may not listen to %s (--roles "
				"listen=)",
				c.name[i]);
	struct listen_req *lr = calloc(1, sizeof(*lr));
	if (!lr)
		return fpg_request_fail(req, 503, "out_of_memory",
					"out of memory");
	lr->req = req;
	lr->sub.ops = &sub_ops;
	lr->sub.ctx = lr;
	lr->hs.cleanup = cleanup;
	lr->hs.drained = on_drained;
	req->handler = &lr->hs;
	req->content_type = "text/event-stream";
	fpg_buf_puts(&req->out, "retry: 3000\n\n");
	/* What subscribing writes (a replay, ": listening") waits in out
	 * for the stream to begin. */
	struct fpg_error err;
	if (!fpg_listener_subscribe(req->svc->listener, &lr->sub, c.name, c.n,
				    fpg_request_header(req, "Last-Event-ID"),
				    &err)) {
		fpg_buf_reset(&req->out);
		req->content_type = "application/json";
		return fpg_request_error(req, &err, NULL);
	}
	fpg_request_stream_begin(req, 200);
	return 0;
}
