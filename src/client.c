#include "client.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "buf.h"
#include "error.h"
#include "stats.h"
#include "tls.h"

void fpg_clients_init(struct fpg_clients *cs, struct fpg_services *svc,
		      void (*hung_up)(struct fpg_request *req),
		      void (*closed)(struct fpg_request *req))
{
	cs->svc = svc;
	cs->hung_up = hung_up;
	cs->closed = closed;
	cs->random.left = 0;
	fpg_fifo_init(&cs->pending);
	fpg_fifo_init(&cs->unsure);
}

/*
 * Ends a connection from outside libmicrohttpd's callbacks, which it has
 * no call for: shutdown() (not close(): the descriptor stays MHD's) makes
 * MHD's next read see the end, and MHD closes and reports it as usual.
 * The short answer before it is best effort; nothing else is being
 * written then (no response is queued while headers or a body come in).
 * id is the request's, or NULL while there is none yet: then the answer
 * gets an id of its own, as every answer has one (and a 503, Retry-After,
 * as every 503 has).
 */
void fpg_client_cut(struct fpg_client *cl, const char *id, int status,
		    const char *reason, const char *code, const char *msg)
{
	struct fpg_buf body;
	fpg_buf_init(&body);
	fpg_error_json_code(&body, code, msg);
	char own_id[17] = "";
	unsigned char r[8];
	if (!id && fpg_random_draw(&cl->set->random, r, sizeof(r))) {
		fpg_hex(own_id, r, sizeof(r));
		id = own_id;
	}
	char head[400];
	int n =
	    snprintf(head, sizeof(head),
		     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
		     "Content-Length: %zu\r\nCache-Control: no-store\r\n"
		     "Vary: Accept-Encoding\r\n%s%s%s%s"
		     "Connection: close\r\n\r\n",
		     status, reason, fpg_buf_pending(&body),
		     id ? "X-Request-Id: " : "", id ? id : "", id ? "\r\n" : "",
		     status == 503 ? "Retry-After: 1\r\n" : "");
	/* Under TLS only MHD may write to the socket: then just the end. */
	if (!cl->set->svc->opts->tls_cert && !body.failed && n > 0 &&
	    (size_t)n < sizeof(head)) {
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
	struct fpg_clients *w = cl->set;
	fpg_fifo_push(&w->pending, &cl->pending, w->svc->loop->now_ms);
	unsigned cap = w->svc->opts->max_connections / 2;
	if (w->pending.n <= (cap ? cap : 1))
		return;
	struct fpg_client *old = FPG_CONTAINER_OF(fpg_fifo_head(&w->pending),
						  struct fpg_client, pending);
	fpg_fifo_remove(&w->pending, &old->pending);
	FPG_STAT_ADD(w->svc->stats->http_evicted, 1);
	fpg_client_cut(old, NULL, 503, "Service Unavailable", "too_many_connections",
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
	struct fpg_clients *w = cl->set;
	if (fpg_fifo_linked(&cl->pending) || fpg_fifo_linked(&cl->unsure))
		return;
	if (cl->active_turn + 1 < w->svc->loop->turn)
		pending_start(cl);
	else
		fpg_fifo_push(&w->unsure, &cl->unsure, w->svc->loop->now_ms);
}

void fpg_clients_settle(struct fpg_clients *w)
{
	struct fpg_fifo_link *l;
	while ((l = fpg_fifo_head(&w->unsure))) {
		struct fpg_client *cl =
			FPG_CONTAINER_OF(l, struct fpg_client, unsure);
		fpg_fifo_remove(&w->unsure, l);
		if (!cl->req && cl->active_turn != w->svc->loop->turn &&
		    bytes_waiting(cl->fd))
			pending_start(cl);
	}
}

void fpg_clients_tick(struct fpg_clients *w)
{
	unsigned limit = w->svc->opts->header_timeout_ms;
	struct fpg_fifo_link *l;
	while (limit && (l = fpg_fifo_head(&w->pending)) &&
	       w->svc->loop->now_ms - l->since_ms >= limit) {
		struct fpg_client *cl =
			FPG_CONTAINER_OF(l, struct fpg_client, pending);
		fpg_fifo_remove(&w->pending, l);
		FPG_STAT_ADD(w->svc->stats->http_header_timeouts, 1);
		fpg_client_cut(cl, NULL, 408, "Request Timeout", "request_timeout",
		    "the request headers took longer than header-timeout-ms");
	}
}

static void client_event(struct fpg_evsrc *src, uint32_t events)
{
	struct fpg_client *cl = FPG_CONTAINER_OF(src, struct fpg_client, ev);
	if ((events & EPOLLIN) && !cl->req && !cl->hung_up)
		bytes_came(cl);
	if (!(events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
		return;
	cl->hung_up = true;
	if (cl->req)
		cl->set->hung_up(cl->req);
}

void fpg_clients_notify(void *cls, struct MHD_Connection *conn,
			void **socket_context,
			enum MHD_ConnectionNotificationCode toe)
{
	struct fpg_clients *w = cls;
	struct fpg_client *cl = *socket_context;
	if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
		if (!cl)
			return;
		fpg_loop_unwatch(w->svc->loop, cl->fd);
		fpg_fifo_remove(&w->pending, &cl->pending);
		fpg_fifo_remove(&w->unsure, &cl->unsure);
		if (cl->req)
			w->closed(cl->req);
		fpg_tls_unref(cl->tls);
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
	cl->set = w;
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

/*
 * GnuTLS gives the callback no context of ours, only the session; MHD
 * set the session's pointer to its connection (its own PSK callback
 * finds the connection that way), whose socket context is our client.
 * The pair is taken once per connection: GnuTLS points into it until
 * the session ends, so the client holds a reference until MHD reports
 * the connection closed (MHD has ended the session by then; GnuTLS
 * frees nothing of ours). No lock: svc->tls changes in this thread
 * only (a reload's mailbox message).
 */
int fpg_clients_pick_cert(gnutls_session_t session,
			  const gnutls_datum_t *req_ca_rdn, int nreqs,
			  const gnutls_pk_algorithm_t *pk_algos,
			  int pk_algos_length, gnutls_pcert_st **pcert,
			  unsigned int *pcert_length, gnutls_privkey_t *pkey)
{
	struct MHD_Connection *conn = gnutls_session_get_ptr(session);
	const union MHD_ConnectionInfo *ci =
		conn ? MHD_get_connection_info(
			       conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT)
		     : NULL;
	struct fpg_client *cl = ci ? ci->socket_context : NULL;
	/* Without its client (out of memory at accept) there is nobody to
	 * hold the pair: that handshake fails. */
	if (!cl || (!cl->tls && !cl->set->svc->tls))
		return -1;
	if (!cl->tls) {
		cl->tls = cl->set->svc->tls;
		fpg_tls_ref(cl->tls);
	}
	fpg_tls_credentials(cl->tls, pcert, pcert_length, pkey);
	return 0;
}

void fpg_client_serve(struct fpg_client *cl, struct fpg_request *req)
{
	cl->req = req;
	cl->active_turn = cl->set->svc->loop->turn;
	if (req)
		fpg_fifo_remove(&cl->set->pending, &cl->pending);
}
