#include "worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "log.h"
#include "pool.h"
#include "query.h"
#include "request.h"
#include "tx.h"
#include "typecache.h"

#define TICK_MS 20

uint64_t fpg_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t fpg_now_ms(void)
{
	return fpg_now_us() / 1000u;
}

bool fpg_worker_watch(struct fpg_worker *w, int fd, uint32_t events,
		      struct fpg_evsrc *src)
{
	struct epoll_event ev = {.events = events, .data.ptr = src};
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) == 0)
		return true;
	fpg_log_error("worker", NULL, "epoll add fd %d: %s", fd,
		      strerror(errno));
	return false;
}

bool fpg_worker_rewatch(struct fpg_worker *w, int fd, uint32_t events,
			struct fpg_evsrc *src)
{
	struct epoll_event ev = {.events = events, .data.ptr = src};
	if (epoll_ctl(w->epfd, EPOLL_CTL_MOD, fd, &ev) == 0)
		return true;
	/* A closed and reused descriptor left the set on close(). */
	if (errno == ENOENT &&
	    epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) == 0)
		return true;
	fpg_log_error("worker", NULL, "epoll mod fd %d: %s", fd,
		      strerror(errno));
	return false;
}

void fpg_worker_unwatch(struct fpg_worker *w, int fd)
{
	/* Failing is fine: a closed descriptor has already left the set. */
	(void)epoll_ctl(w->epfd, EPOLL_CTL_DEL, fd, NULL);
}

bool fpg_worker_random(struct fpg_worker *w, void *out, size_t n)
{
	if (n > sizeof(w->random_pool))
		return false;
	if (w->random_left < n) {
		/* Up to 256 bytes, getrandom() returns them all and is not
		 * interrupted by signals (getrandom(2)). */
		ssize_t got = getrandom(w->random_pool, sizeof(w->random_pool), 0);
		if (got != (ssize_t)sizeof(w->random_pool)) {
			fpg_log_error("worker", NULL, "getrandom: %s",
				      got < 0 ? strerror(errno) : "short read");
			return false;
		}
		w->random_left = sizeof(w->random_pool);
	}
	w->random_left -= (unsigned)n;
	memcpy(out, w->random_pool + w->random_left, n);
	/* Handed out bytes must not stay behind for a later reader. */
	memset(w->random_pool + w->random_left, 0, n);
	return true;
}

struct fpg_mailbox_item {
	struct fpg_mailbox_item *next;
	struct fpg_msg msg;
};

static void wake(struct fpg_worker *w)
{
	uint64_t one = 1;
	if (write(w->wakefd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		fpg_log_error("worker", NULL, "eventfd write: %s",
			      strerror(errno));
}

void fpg_worker_post(struct fpg_worker *w, const struct fpg_msg *msg)
{
	struct fpg_mailbox_item *it = malloc(sizeof(*it));
	if (!it) {
		fpg_log_error("worker", NULL, "out of memory: message lost");
		return;
	}
	it->msg = *msg;
	pthread_mutex_lock(&w->mailbox_lock);
	it->next = w->mailbox;
	w->mailbox = it;
	pthread_mutex_unlock(&w->mailbox_lock);
	wake(w);
}

static void handle_msg(struct fpg_worker *w, const struct fpg_msg *msg)
{
	switch (msg->type) {
	case FPG_MSG_CANCEL_DONE:
		fpg_pool_cancel_done(w->pool, msg->conn_id);
		break;
	case FPG_MSG_CANCEL_REQUEST:
		fpg_request_cancel_by_id(w, msg->id, msg->cancel_key);
		break;
	case FPG_MSG_CONN_RETURN:
		fpg_tx_conn_returned(w, msg->conn);
		break;
	}
}

/* Takes the posted messages and handles them in the order sent. */
static void read_mailbox(struct fpg_worker *w)
{
	pthread_mutex_lock(&w->mailbox_lock);
	struct fpg_mailbox_item *it = w->mailbox, *rev = NULL;
	w->mailbox = NULL;
	pthread_mutex_unlock(&w->mailbox_lock);
	while (it) {
		struct fpg_mailbox_item *next = it->next;
		it->next = rev;
		rev = it;
		it = next;
	}
	while (rev) {
		struct fpg_mailbox_item *next = rev->next;
		handle_msg(w, &rev->msg);
		free(rev);
		rev = next;
	}
}

static void on_wake(struct fpg_evsrc *src, uint32_t events)
{
	struct fpg_worker *w = FPG_CONTAINER_OF(src, struct fpg_worker, wake_ev);
	uint64_t v;
	if (read(w->wakefd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		fpg_log_error("worker", NULL, "eventfd read: %s",
			      strerror(errno));
	read_mailbox(w);
}

static void timer_push(struct fpg_timer **head, struct fpg_timer *t)
{
	t->next = *head;
	t->pprev = head;
	if (*head)
		(*head)->pprev = &t->next;
	*head = t;
}

void fpg_worker_timer_arm(struct fpg_worker *w, struct fpg_timer *t,
			  unsigned delay_ms)
{
	fpg_worker_timer_disarm(w, t);
	t->due_ms = w->now_ms + delay_ms;
	t->armed = true;
	timer_push(&w->timers, t);
}

static void timer_unlink(struct fpg_timer *t)
{
	*t->pprev = t->next;
	if (t->next)
		t->next->pprev = t->pprev;
	t->next = NULL;
	t->pprev = NULL;
}

void fpg_worker_timer_disarm(struct fpg_worker *w, struct fpg_timer *t)
{
	if (!t->armed && !t->firing)
		return;
	timer_unlink(t);
	t->armed = t->firing = false;
}

/*
 * One pass moves the due timers to a list of their own, then they fire
 * one by one: a fire() that disarms (or frees) a timer still waiting its
 * turn takes it off that list.
 */
static void fire_timers(struct fpg_worker *w)
{
	struct fpg_timer *t = w->timers, *next;
	for (; t; t = next) {
		next = t->next;
		if (t->due_ms > w->now_ms)
			continue;
		timer_unlink(t);
		t->armed = false;
		t->firing = true;
		timer_push(&w->firing, t);
	}
	while ((t = w->firing)) {
		timer_unlink(t);
		t->firing = false;
		t->fire(t);
	}
}

static void on_timer(struct fpg_evsrc *src, uint32_t events)
{
	struct fpg_worker *w = FPG_CONTAINER_OF(src, struct fpg_worker, timer_ev);
	uint64_t ticks;
	if (read(w->timerfd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
		return;
	fpg_pool_tick(w->pool);
	fpg_tx_tick(w);
	fpg_request_tick(w);
	fire_timers(w);
}

/* MHD's own epoll set became readable: MHD_run() below handles it. */
static void on_mhd(struct fpg_evsrc *src, uint32_t events)
{
}

/* MHD's own messages; the ones that matter (bind) we report ourselves. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	if (!fpg_log_enabled(FPG_LOG_DEBUG))
		return;
	char msg[512];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	size_t n = strlen(msg);
	while (n && msg[n - 1] == '\n')
		msg[--n] = '\0';
	fpg_log_debug("mhd", NULL, "%s", msg);
}

bool fpg_listen_address(const char *host, unsigned port,
			struct sockaddr_storage *addr, socklen_t *len,
			struct fpg_error *err)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE};
	struct addrinfo *res = NULL;
	char portstr[12];
	snprintf(portstr, sizeof(portstr), "%u", port);
	int rc = getaddrinfo(host, portstr, &hints, &res);
	if (rc != 0) {
		fpg_error_set(err, FPG_ERR_CONFIG, 0, "listen address %s: %s",
			      host, gai_strerror(rc));
		return false;
	}
	memcpy(addr, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return true;
}

static bool start_mhd(struct fpg_worker *w, unsigned *port,
		      struct fpg_error *err)
{
	struct sockaddr_storage addr;
	socklen_t len;
	if (!fpg_listen_address(w->opts->listen_host, *port, &addr, &len, err))
		return false;
	unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
			 MHD_USE_TURBO | MHD_USE_ERROR_LOG;
	if (addr.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	w->mhd = MHD_start_daemon(
		flags, (uint16_t)*port, NULL, NULL, fpg_request_access, w,
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
		MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
		MHD_OPTION_CONNECTION_LIMIT, w->opts->max_connections,
		MHD_OPTION_CONNECTION_TIMEOUT, w->opts->http_idle_timeout_s,
		/* Refuse ambiguous framing (e.g. whitespace before a header's
		 * colon, HTTP/1.1 without Host) instead of guessing, so that
		 * a proxy in front and we cannot read one request two ways. */
		MHD_OPTION_STRICT_FOR_CLIENT, (int)1,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT,
		w->opts->http_connection_memory,
		MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)4096,
		MHD_OPTION_NOTIFY_COMPLETED, fpg_request_completed, w,
		MHD_OPTION_NOTIFY_CONNECTION, fpg_request_connection, w,
		MHD_OPTION_EXTERNAL_LOGGER, mhd_log, w,
		MHD_OPTION_END);
	if (!w->mhd) {
		fpg_error_set(err, FPG_ERR_SYSTEM, 0,
			      "cannot listen on %s:%u (in use, or not "
			      "allowed?)",
			      w->opts->listen_host, *port);
		return false;
	}
	const union MHD_DaemonInfo *di =
		MHD_get_daemon_info(w->mhd, MHD_DAEMON_INFO_BIND_PORT);
	if (di)
		*port = di->port;
	di = MHD_get_daemon_info(w->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	if (!di || !fpg_worker_watch(w, di->epoll_fd, EPOLLIN, &w->mhd_ev)) {
		fpg_error_set(err, FPG_ERR_SYSTEM, 0, "cannot watch MHD epoll");
		return false;
	}
	return true;
}

bool fpg_worker_init(struct fpg_worker *w, struct fpg_server *srv,
		     unsigned id, unsigned *port, struct fpg_error *err)
{
	w->id = id;
	w->srv = srv;
	w->wake_ev.on_event = on_wake;
	w->timer_ev.on_event = on_timer;
	w->mhd_ev.on_event = on_mhd;
	w->now_ms = fpg_now_ms();
	pthread_mutex_init(&w->mailbox_lock, NULL);
	pthread_mutex_init(&w->requests_lock, NULL);
	w->mailbox_ready = true;
	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	w->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	w->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (w->epfd < 0 || w->wakefd < 0 || w->timerfd < 0) {
		fpg_error_set(err, FPG_ERR_SYSTEM, 0, "worker setup: %s",
			      strerror(errno));
		return false;
	}
	struct itimerspec its = {
		.it_interval = {0, TICK_MS * 1000000L},
		.it_value = {0, TICK_MS * 1000000L},
	};
	if (timerfd_settime(w->timerfd, 0, &its, NULL) != 0 ||
	    !fpg_worker_watch(w, w->wakefd, EPOLLIN, &w->wake_ev) ||
	    !fpg_worker_watch(w, w->timerfd, EPOLLIN, &w->timer_ev)) {
		fpg_error_set(err, FPG_ERR_SYSTEM, 0, "worker setup: %s",
			      strerror(errno));
		return false;
	}
	w->types = fpg_typecache_new();
	w->lanes = fpg_lanes_new();
	if (!w->types || !w->lanes) {
		fpg_error_set(err, FPG_ERR_NOMEM, 0, "out of memory");
		return false;
	}
	w->tx_table = fpg_tx_table_new(w->opts->max_transactions, err);
	if (!w->tx_table)
		return false;
	if (!start_mhd(w, port, err))
		return false;
	w->pool = fpg_pool_new(w, err);
	return w->pool != NULL;
}

static int loop_timeout(struct fpg_worker *w)
{
	if (w->resumed)
		return 0;
	MHD_UNSIGNED_LONG_LONG to;
	/* The timerfd ticks anyway; this only shortens the wait. */
	if (MHD_get_timeout(w->mhd, &to) == MHD_YES)
		return to > INT_MAX ? INT_MAX : (int)to;
	return -1;
}

static void begin_drain(struct fpg_worker *w)
{
	w->draining = true;
	MHD_socket ls = MHD_quiesce_daemon(w->mhd);
	if (ls != MHD_INVALID_SOCKET)
		close(ls);
}

static void run_once(struct fpg_worker *w, int timeout)
{
	struct epoll_event evs[64];
	w->turn++;
	int n = epoll_wait(w->epfd, evs, 64, timeout);
	w->now_ms = fpg_now_ms();
	for (int i = 0; i < n; i++) {
		struct fpg_evsrc *src = evs[i].data.ptr;
		src->on_event(src, evs[i].events);
	}
	fpg_pool_reap(w->pool);
	fpg_request_flush_streams(w);
	w->resumed = false;
	MHD_run(w->mhd);
	fpg_request_settle_clients(w);
	fpg_pool_reap(w->pool);
	fpg_pool_uncork(w->pool);
}

static void *worker_main(void *arg)
{
	struct fpg_worker *w = arg;
	for (;;) {
		run_once(w, loop_timeout(w));
		if (!w->draining && atomic_load(&w->stop_requested))
			begin_drain(w);
		if (w->draining && (!w->requests ||
				    w->now_ms >= w->drain_deadline_ms))
			break;
	}
	/* Whatever is left is closed; every connection must be resumed
	 * before MHD_stop_daemon. */
	fpg_request_kill_all(w);
	for (int i = 0; i < 4 && w->requests; i++)
		run_once(w, 0);
	return NULL;
}

bool fpg_worker_start(struct fpg_worker *w, struct fpg_error *err)
{
	int rc = pthread_create(&w->thread, NULL, worker_main, w);
	if (rc != 0) {
		fpg_error_set(err, FPG_ERR_SYSTEM, 0, "pthread_create: %s",
			      strerror(rc));
		return false;
	}
	w->thread_started = true;
	return true;
}

void fpg_worker_request_stop(struct fpg_worker *w, unsigned grace_ms)
{
	w->drain_deadline_ms = fpg_now_ms() + grace_ms;
	atomic_store(&w->stop_requested, true);
	wake(w);
}

void fpg_worker_join(struct fpg_worker *w)
{
	if (w->thread_started)
		pthread_join(w->thread, NULL);
	w->thread_started = false;
}

void fpg_worker_deinit(struct fpg_worker *w)
{
	if (w->mhd)
		MHD_stop_daemon(w->mhd);
	w->mhd = NULL;
	fpg_pool_free(w->pool);
	w->pool = NULL;
	fpg_tx_table_free(w->tx_table);
	w->tx_table = NULL;
	fpg_typecache_free(w->types);
	w->types = NULL;
	fpg_lanes_free(w->lanes);
	w->lanes = NULL;
	if (w->timerfd >= 0)
		close(w->timerfd);
	if (w->wakefd >= 0)
		close(w->wakefd);
	if (w->epfd >= 0)
		close(w->epfd);
	w->timerfd = w->wakefd = w->epfd = -1;
	if (w->mailbox_ready) {
		struct fpg_mailbox_item *it = w->mailbox;
		while (it) {
			struct fpg_mailbox_item *next = it->next;
			if (it->msg.type == FPG_MSG_CONN_RETURN)
				fpg_conn_free(it->msg.conn);
			free(it);
			it = next;
		}
		w->mailbox = NULL;
		pthread_mutex_destroy(&w->mailbox_lock);
		pthread_mutex_destroy(&w->requests_lock);
		w->mailbox_ready = false;
	}
}
