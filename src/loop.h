/*
 * An event loop: an epoll set, a periodic tick with one-shot timers, a
 * mailbox other threads post to, and the clock. The bottom room: it knows
 * no other module. Whatever has a descriptor in the set, a timer or a
 * message brings its own callback.
 *
 * Owned by one thread, which alone calls everything here, except
 * fpg_loop_post() and fpg_loop_wake() (any thread).
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fasterpg.h"
#include "list.h"

/* Something with a file descriptor in the loop's epoll set. */
struct fpg_evsrc {
	void (*on_event)(struct fpg_evsrc *src, uint32_t events);
};

/*
 * A one-shot timer of the loop's tick. Arming and disarming cost O(1):
 * every request in flight has one armed.
 */
struct fpg_timer {
	struct fpg_list link;	/* in the loop's armed or firing timers */
	uint64_t due_ms;
	void (*fire)(struct fpg_timer *t);
	bool armed;
	bool firing; /* due, in the tick's list to fire */
};

/*
 * A message from another thread, embedded in the sender's own struct.
 * handle() runs on the loop's thread and owns the message from then on;
 * live is false when the loop ends with the message unread (release what
 * it carries, nothing else).
 */
struct fpg_msg {
	struct fpg_msg *next;
	void (*handle)(struct fpg_msg *msg, bool live);
};

struct fpg_loop {
	int epfd;
	int wakefd;  /* eventfd: other threads write to wake the loop */
	int timerfd; /* the periodic tick */
	struct fpg_evsrc wake_ev, timer_ev;
	unsigned tick_ms;
	void (*tick)(void *ctx); /* every tick, before the due timers */
	void *tick_ctx;
	uint64_t now_ms;	    /* monotonic, refreshed per wait */
	uint64_t turn;		    /* waits so far */
	struct fpg_list timers;	    /* armed, unordered */
	struct fpg_list firing;	    /* due this tick, not fired yet */
	pthread_mutex_t mailbox_lock; /* guards mailbox */
	struct fpg_msg *mailbox;    /* posted, newest first */
	bool ready;		    /* init got as far as the lock */
};

/*
 * Sets up l with a tick every tick_ms that calls tick(ctx) (NULL: none)
 * and then fires the due timers.
 */
bool fpg_loop_init(struct fpg_loop *l, unsigned tick_ms, void (*tick)(void *),
		   void *ctx, struct fpg_error *err) FPG_MUST_CHECK;

/* Closes what init opened (if it ran); unread messages get
 * handle(msg, false). */
void fpg_loop_deinit(struct fpg_loop *l);

/*
 * Waits up to timeout_ms (-1: until something happens) and runs the
 * callbacks of what happened; refreshes now_ms.
 */
void fpg_loop_wait(struct fpg_loop *l, int timeout_ms);

/* epoll registration of fd for src (events as for epoll_ctl). */
bool fpg_loop_watch(struct fpg_loop *l, int fd, uint32_t events,
		    struct fpg_evsrc *src);
bool fpg_loop_rewatch(struct fpg_loop *l, int fd, uint32_t events,
		      struct fpg_evsrc *src);
void fpg_loop_unwatch(struct fpg_loop *l, int fd);

/* Calls t->fire on the loop's thread in delay_ms (+ up to one tick). */
void fpg_loop_timer_arm(struct fpg_loop *l, struct fpg_timer *t,
			unsigned delay_ms);
void fpg_loop_timer_disarm(struct fpg_loop *l, struct fpg_timer *t);

/* Queues msg (takes ownership) and wakes the loop. Any thread. */
void fpg_loop_post(struct fpg_loop *l, struct fpg_msg *msg);

/* Ends the loop's current or next wait at once. Any thread. */
void fpg_loop_wake(struct fpg_loop *l);

/* Monotonic clock in milliseconds / microseconds. */
uint64_t fpg_now_ms(void);
uint64_t fpg_now_us(void);
