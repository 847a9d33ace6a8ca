#include "loop.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "log.h"

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

bool fpg_loop_watch(struct fpg_loop *l, int fd, uint32_t events,
		    struct fpg_evsrc *src)
{
	struct epoll_event ev = {.events = events, .data.ptr = src};
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) == 0)
		return true;
	fpg_log_error("loop", NULL, "epoll add fd %d: %s", fd,
		      strerror(errno));
	return false;
}

bool fpg_loop_rewatch(struct fpg_loop *l, int fd, uint32_t events,
		      struct fpg_evsrc *src)
{
	struct epoll_event ev = {.events = events, .data.ptr = src};
	if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) == 0)
		return true;
	/* A closed and reused descriptor left the set on close(). */
	if (errno == ENOENT && epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) == 0)
		return true;
	fpg_log_error("loop", NULL, "epoll mod fd %d: %s", fd,
		      strerror(errno));
	return false;
}

void fpg_loop_unwatch(struct fpg_loop *l, int fd)
{
	/* Failing is fine: a closed descriptor has already left the set. */
	(void)epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
}

/* ---- the mailbox ---- */

void fpg_loop_wake(struct fpg_loop *l)
{
	uint64_t one = 1;
	if (write(l->wakefd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		fpg_log_error("loop", NULL, "eventfd write: %s",
			      strerror(errno));
}

void fpg_loop_post(struct fpg_loop *l, struct fpg_msg *msg)
{
	pthread_mutex_lock(&l->mailbox_lock);
	msg->next = l->mailbox;
	l->mailbox = msg;
	pthread_mutex_unlock(&l->mailbox_lock);
	fpg_loop_wake(l);
}

/* The posted messages, oldest first; the mailbox is left empty. */
static struct fpg_msg *take_mailbox(struct fpg_loop *l)
{
	pthread_mutex_lock(&l->mailbox_lock);
	struct fpg_msg *m = l->mailbox, *rev = NULL;
	l->mailbox = NULL;
	pthread_mutex_unlock(&l->mailbox_lock);
	while (m) {
		struct fpg_msg *next = m->next;
		m->next = rev;
		rev = m;
		m = next;
	}
	return rev;
}

static void handle_all(struct fpg_msg *m, bool live)
{
	while (m) {
		struct fpg_msg *next = m->next;
		m->handle(m, live);
		m = next;
	}
}

static void on_wake(struct fpg_evsrc *src, uint32_t events)
{
	struct fpg_loop *l = FPG_CONTAINER_OF(src, struct fpg_loop, wake_ev);
	uint64_t v;
	if (read(l->wakefd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		fpg_log_error("loop", NULL, "eventfd read: %s",
			      strerror(errno));
	handle_all(take_mailbox(l), true);
}

/* ---- timers ---- */

void fpg_loop_timer_arm(struct fpg_loop *l, struct fpg_timer *t,
			unsigned delay_ms)
{
	fpg_loop_timer_disarm(l, t);
	t->due_ms = l->now_ms + delay_ms;
	t->armed = true;
	fpg_list_push_back(&l->timers, &t->link);
}

void fpg_loop_timer_disarm(struct fpg_loop *l, struct fpg_timer *t)
{
	if (!t->armed && !t->firing)
		return;
	fpg_list_remove(&t->link);
	t->armed = t->firing = false;
}

/*
 * One pass moves the due timers to a list of their own, then they fire
 * one by one: a fire() that disarms (or frees) a timer still waiting its
 * turn takes it off that list.
 */
static void fire_timers(struct fpg_loop *l)
{
	struct fpg_list *n = fpg_list_first(&l->timers), *next;
	for (; n; n = next) {
		next = fpg_list_next(&l->timers, n);
		struct fpg_timer *t = FPG_CONTAINER_OF(n, struct fpg_timer, link);
		if (t->due_ms > l->now_ms)
			continue;
		fpg_list_remove(n);
		t->armed = false;
		t->firing = true;
		fpg_list_push_back(&l->firing, n);
	}
	while ((n = fpg_list_first(&l->firing))) {
		struct fpg_timer *t = FPG_CONTAINER_OF(n, struct fpg_timer, link);
		fpg_list_remove(n);
		t->firing = false;
		t->fire(t);
	}
}

static void on_tick(struct fpg_evsrc *src, uint32_t events)
{
	struct fpg_loop *l = FPG_CONTAINER_OF(src, struct fpg_loop, timer_ev);
	uint64_t ticks;
	if (read(l->timerfd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
		return;
	if (l->tick)
		l->tick(l->tick_ctx);
	fire_timers(l);
}

/* ---- the loop ---- */

bool fpg_loop_init(struct fpg_loop *l, unsigned tick_ms, void (*tick)(void *),
		   void *ctx, struct fpg_error *err)
{
	memset(l, 0, sizeof(*l));
	l->epfd = l->wakefd = l->timerfd = -1;
	l->wake_ev.on_event = on_wake;
	l->timer_ev.on_event = on_tick;
	l->tick_ms = tick_ms;
	l->tick = tick;
	l->tick_ctx = ctx;
	l->now_ms = fpg_now_ms();
	fpg_list_init(&l->timers);
	fpg_list_init(&l->firing);
	pthread_mutex_init(&l->mailbox_lock, NULL);
	l->ready = true;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	l->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	l->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	struct itimerspec its = {
		.it_interval = {tick_ms / 1000, (long)(tick_ms % 1000) * 1000000L},
		.it_value = {tick_ms / 1000, (long)(tick_ms % 1000) * 1000000L},
	};
	if (l->epfd < 0 || l->wakefd < 0 || l->timerfd < 0 ||
	    timerfd_settime(l->timerfd, 0, &its, NULL) != 0 ||
	    !fpg_loop_watch(l, l->wakefd, EPOLLIN, &l->wake_ev) ||
	    !fpg_loop_watch(l, l->timerfd, EPOLLIN, &l->timer_ev)) {
		fpg_error_set(err, FPG_ERR_SYSTEM, 0, "event loop setup: %s",
			      strerror(errno));
		return false;
	}
	return true;
}

void fpg_loop_deinit(struct fpg_loop *l)
{
	if (!l->ready)
		return;
	if (l->timerfd >= 0)
		close(l->timerfd);
	if (l->wakefd >= 0)
		close(l->wakefd);
	if (l->epfd >= 0)
		close(l->epfd);
	l->timerfd = l->wakefd = l->epfd = -1;
	handle_all(take_mailbox(l), false);
	pthread_mutex_destroy(&l->mailbox_lock);
	l->ready = false;
}

void fpg_loop_wait(struct fpg_loop *l, int timeout_ms)
{
	struct epoll_event evs[64];
	l->turn++;
	int n = epoll_wait(l->epfd, evs, 64, timeout_ms);
	l->now_ms = fpg_now_ms();
	for (int i = 0; i < n; i++) {
		struct fpg_evsrc *src = evs[i].data.ptr;
		src->on_event(src, evs[i].events);
	}
}
