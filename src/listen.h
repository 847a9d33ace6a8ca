/*
 * LISTEN/NOTIFY for a worker's subscribers (GET /listen). One PostgreSQL
 * connection of the worker's, logged in as the --db login, listens to the
 * channels its subscribers want: LISTEN when the first subscriber of a
 * channel arrives, UNLISTEN a while (LINGER) after the last one left, so
 * that a client reconnecting at once finds its channel and the ring.
 * Each notification goes to every subscriber of its channel, in the order
 * PostgreSQL sent them, numbered by the worker's own sequence.
 *
 * A channel keeps its last notifications in a bounded ring: a subscriber
 * coming back with the id of the last one it saw gets what it missed, or
 * a gap when those are gone. When the connection breaks, every subscriber
 * gets a gap, and the listener reconnects and listens again.
 *
 * One thread: the worker's. Subscribers are the caller's memory. The
 * callbacks must not subscribe or unsubscribe anyone.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fasterpg.h"
#include "list.h"
#include "loop.h"

#define FPG_LISTEN_MAX_CHANNEL 63 /* bytes: PostgreSQL's identifier length */

struct fpg_listener;
struct fpg_sub;

struct fpg_sub_ops {
	/* Every channel is listened to now: a notification committed from
	 * now on reaches the subscriber. */
	void (*ready)(struct fpg_sub *s);
	/* A notification of one of its channels; all borrowed for the call. */
	void (*notify)(struct fpg_sub *s, uint64_t id, const char *channel,
		       const char *payload, int pid);
	/* Notifications may have been missed; why is static. */
	void (*gap)(struct fpg_sub *s, const char *why);
	/* Time for a heartbeat (every heartbeat_ms). */
	void (*ping)(struct fpg_sub *s);
	/* The server is shutting down: end the stream. */
	void (*closing)(struct fpg_sub *s);
	/* PostgreSQL refused to listen to one of its channels (why): end
	 * the stream. */
	void (*refused)(struct fpg_sub *s, const char *why);
};

struct fpg_sub_member {
	struct fpg_list link; /* in its channel's members */
	struct fpg_sub *sub;
	struct fpg_channel *ch;
};

struct fpg_sub {
	const struct fpg_sub_ops *ops;
	void *ctx;
	/* Private to listen.c. */
	struct fpg_list link; /* in the listener's subscribers */
	struct fpg_sub_member *members;
	unsigned nmembers;
	unsigned waiting; /* channels not yet listened to */
	bool closing;	  /* was told to close */
};

struct fpg_listener_env {
	struct fpg_loop *loop;
	const struct fpg_options *opts; /* db, heartbeat, limits */
	unsigned worker_id;
	const bool *draining; /* set: subscribers are told to close */
	struct fpg_stats *stats; /* the worker's counters */
};

/* NULL when out of memory. Connects when the first subscriber comes. */
struct fpg_listener *fpg_listener_new(const struct fpg_listener_env *env);

/* Ends every subscription (no callback) and closes the connection. */
void fpg_listener_free(struct fpg_listener *l);

/*
 * Subscribes s to the n channels (borrowed for the call; each 1 to
 * FPG_LISTEN_MAX_CHANNEL bytes, no duplicates). last_id (NULL: none) is
 * the id of the last notification the client saw (Last-Event-ID): what
 * came after it is replayed from the rings, or s gets a gap first.
 * Callbacks may come from inside the call. False with err (503 when out
 * of memory or the worker has its most subscribers).
 */
bool fpg_listener_subscribe(struct fpg_listener *l, struct fpg_sub *s,
			    const char *const *channels, unsigned n,
			    const char *last_id,
			    struct fpg_error *err) FPG_MUST_CHECK;

/* Ends s's subscription; no callback after it. */
void fpg_listener_unsubscribe(struct fpg_listener *l, struct fpg_sub *s);

/* The id of notification number id of this worker, as events carry it:
 * "W-N". out needs 32 bytes. */
void fpg_listener_format_id(const struct fpg_listener *l, uint64_t id,
			    char *out, size_t size);
