#include "pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cancel.h"
#include "error.h"
#include "log.h"
#include "loop.h"
#include "stats.h"
struct fpg_pool {
	struct fpg_conn_env d;
	int64_t shown[4];	/* what it added to the worker's gauges */
	struct fpg_pool_owner owner;
	const struct fpg_options *opts;
	struct fpg_conn **conns; /* pool_max slots, each allocated */
	unsigned nconns;
	struct fpg_list guests; /* of fpg_conn.guest_link: the guests this
				   worker runs right now */
	struct fpg_list waiters; /* of fpg_pool_waiter.link, oldest first */
	unsigned nwaiting;
	/* A connect attempt failed and nothing is open: fail fast (503)
	 * instead of making every request wait for its deadline. */
	bool db_down;
	bool has_broken;	  /* some connection waits for fpg_pool_reap */
	bool turn_pending;	  /* some connection waits for fpg_pool_end_turn */
	unsigned lent;		  /* connections out as transaction sessions */
	unsigned streams;	  /* requests counted by fpg_pool_stream_begin
				     and not ended: the pool is not quiet */
	char last_error[256];
	uint64_t next_connect_ms; /* back-off: no connect before this */
	unsigned backoff_ms;
};

#define CONNECT_TIMEOUT_MS 10000
#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 1000

/* The worker's gauge g moves by what this pool's count did: a worker
 * has a pool per login, and the gauges are their sums. */
static void move_gauge(_Atomic int64_t *g, int64_t *shown, int64_t now)
{
	atomic_fetch_add_explicit(g, now - *shown, memory_order_relaxed);
	*shown = now;
}

static void update_gauges(struct fpg_pool *pool)
{
	int64_t open = 0, connecting = 0, busy = 0;
	for (unsigned i = 0; pool->conns && i < pool->nconns; i++) {
		struct fpg_conn *c = pool->conns[i];
		if (!c)
			continue; /* fpg_pool_new ran out of memory */
		if (c->state == FPG_CONN_READY) {
			open++;
			if (c->inflight)
				busy++;
		} else if (c->state != FPG_CONN_DOWN) {
			connecting++;
		}
	}
	struct fpg_stats *st = pool->d.stats;
	move_gauge(&st->pool_open, &pool->shown[0], open);
	move_gauge(&st->pool_connecting, &pool->shown[1], connecting);
	move_gauge(&st->pool_busy, &pool->shown[2], busy);
	move_gauge(&st->pool_waiting, &pool->shown[3], (int64_t)pool->nwaiting);
}

/* ---- waiters ---- */

static void waiter_unlink(struct fpg_pool *pool, struct fpg_pool_waiter *wt)
{
	fpg_list_remove(&wt->link);
	wt->queued = false;
	FPG_ASSERT(pool->nwaiting > 0);
	pool->nwaiting--;
}

void fpg_pool_cancel_wait(struct fpg_pool *pool, struct fpg_pool_waiter *wt)
{
	if (!wt->queued)
		return;
	waiter_unlink(pool, wt);
	update_gauges(pool);
}

static void fail_waiters(struct fpg_pool *pool, const struct fpg_error *err,
			 bool expired_only)
{
	struct fpg_list *l = fpg_list_first(&pool->waiters);
	while (l) {
		struct fpg_list *next = fpg_list_next(&pool->waiters, l);
		struct fpg_pool_waiter *wt =
			FPG_CONTAINER_OF(l, struct fpg_pool_waiter, link);
		if (!expired_only || wt->deadline_ms <= pool->d.loop->now_ms) {
			waiter_unlink(pool, wt);
			if (expired_only)
				FPG_STAT_ADD(pool->d.stats->acquire_timeouts, 1);
			wt->fail(wt, err);
		}
		l = next;
	}
	update_gauges(pool);
}

/*
 * A connection whose op at the head has run this long is stuck on a slow
 * statement: whatever joins its queue would wait for it, past its
 * acquire deadline. New work goes elsewhere, or waits for a connection.
 */
#define STALL_MS 50

static bool stalled(const struct fpg_conn *c, uint64_t now_ms)
{
	return c->inflight && now_ms - c->head_since_ms > STALL_MS;
}

/*
 * A group gathers on its connection until the connection has nothing in
 * flight (fpg_conn_end_turn), so under load it grows while PostgreSQL
 * works on the one before, and reads keep to as few sessions as keep up
 * with them. Reads go where a group runs or gathers only while the
 * connection's current op began at most this long ago: behind a longer
 * one, another connection answers sooner.
 */
#define GATHER_MS 1

static bool moving(const struct fpg_conn *c, uint64_t now_ms)
{
	return c->inflight == 0 || now_ms - c->head_since_ms <= GATHER_MS;
}

/*
 * The shared connection to send to, if one has room. A read likely to
 * join a group (wt->reads) goes where one gathers, else where one runs
 * (its own gathers behind it); the rest, and reads where no group
 * moves, to the connection with the fewest ops queued.
 */
static struct fpg_conn *pick_shared(struct fpg_pool *pool,
				    const struct fpg_pool_waiter *wt)
{
	uint64_t now = pool->d.loop->now_ms;
	struct fpg_conn *best = NULL, *behind = NULL;
	for (unsigned i = 0; i < pool->nconns; i++) {
		struct fpg_conn *c = pool->conns[i];
		if (!fpg_conn_shareable(c) || stalled(c, now) ||
		    c->inflight >= pool->opts->pipeline_depth)
			continue;
		if (wt->reads && moving(c, now)) {
			if (fpg_conn_deferred_of(c))
				return c;
			if (c->groups && !behind)
				behind = c;
		}
		if (!best || c->inflight < best->inflight)
			best = c;
	}
	return behind ? behind : best;
}

/*
 * Connections that may leave for transaction sessions at once: all but
 * one (so that /query always keeps one), and so a client opening
 * sessions takes at most the pool's connections from PostgreSQL, never
 * more: a lent connection's slot stays empty until it comes back.
 */
static unsigned lendable(const struct fpg_pool *pool)
{
	return pool->nconns > 1 ? pool->nconns - 1 : 1;
}

/*
 * An idle connection for one request alone. At most pool_max - 1 are
 * held or lent, so that short statements always keep a connection.
 */
static struct fpg_conn *pick_held(struct fpg_pool *pool)
{
	unsigned held = pool->lent;
	struct fpg_conn *idle = NULL;
	for (unsigned i = 0; i < pool->nconns; i++) {
		struct fpg_conn *c = pool->conns[i];
		if (c->held)
			held++;
		else if (!idle && fpg_conn_shareable(c) && c->inflight == 0 &&
			 !fpg_conn_deferred_of(c))
			/* (A group gathering there would have to go
			 * elsewhere, or be sent into a transaction
			 * session's BEGIN.) */
			idle = c;
	}
	unsigned max = pool->nconns > 1 ? pool->nconns - 1 : 1;
	return held < max ? idle : NULL;
}

bool fpg_pool_can_hold(struct fpg_pool *pool)
{
	return pick_held(pool) != NULL;
}

static struct fpg_conn *pick(struct fpg_pool *pool,
			     const struct fpg_pool_waiter *wt)
{
	if (wt->lend && pool->lent >= lendable(pool))
		return NULL;
	struct fpg_conn *c =
		wt->exclusive ? pick_held(pool) : pick_shared(pool, wt);
	if (c && wt->exclusive)
		c->held = true;
	return c;
}

/* Hands free connections to waiters, oldest first within each kind. */
static void serve_waiters(struct fpg_pool *pool)
{
	struct fpg_list *l = fpg_list_first(&pool->waiters);
	bool shared_done = false, held_done = false, lend_done = false;
	while (l && !(shared_done && held_done)) {
		struct fpg_list *next = fpg_list_next(&pool->waiters, l);
		struct fpg_pool_waiter *wt =
			FPG_CONTAINER_OF(l, struct fpg_pool_waiter, link);
		bool *done = wt->lend ? &lend_done
			   : wt->exclusive ? &held_done : &shared_done;
		struct fpg_conn *c = *done ? NULL : pick(pool, wt);
		if (c) {
			waiter_unlink(pool, wt);
			fpg_stats_acquired(pool->d.stats,
					   fpg_now_us() - wt->queued_us);
			wt->ready(wt, c);
			/* ready() may change the list */
			next = fpg_list_first(&pool->waiters);
		} else {
			*done = true;
		}
		l = next;
	}
	update_gauges(pool);
}

static bool any_ready(const struct fpg_pool *pool)
{
	for (unsigned i = 0; i < pool->nconns; i++)
		if (pool->conns[i]->state == FPG_CONN_READY)
			return true;
	return false;
}

/*
 * A connect or setup attempt failed: back off, and fail fast meanwhile.
 * A login PostgreSQL refused fails its waiters with 401 (it is the
 * client's credential) and tells the owner; no connect follows until a
 * request asks again.
 */
static void on_connect_failed(struct fpg_conn *c, const char *why,
			      bool refused)
{
	struct fpg_pool *pool = c->pool;
	if (refused) {
		fpg_log_info("pool", NULL, "worker %u: login refused: %s",
			     pool->d.worker_id, why);
		struct fpg_error err;
		fpg_error_set(&err, FPG_ERR_REQUEST, 401,
			      "PostgreSQL refused these credentials");
		err.reason = "unauthorized";
		fail_waiters(pool, &err, false);
		update_gauges(pool);
		if (pool->owner.refused)
			pool->owner.refused(pool, pool->owner.ctx);
		return;
	}
	snprintf(pool->last_error, sizeof(pool->last_error), "%s", why);
	fpg_log_warn("pool", NULL, "worker %u: connect failed: %s",
		     pool->d.worker_id, pool->last_error);
	FPG_STAT_ADD(pool->d.stats->pool_connect_failures, 1);
	fpg_stats_pg_seen(pool->d.stats, false, pool->d.loop->now_ms);
	pool->backoff_ms = pool->backoff_ms ? pool->backoff_ms * 2
					    : BACKOFF_MIN_MS;
	if (pool->backoff_ms > BACKOFF_MAX_MS)
		pool->backoff_ms = BACKOFF_MAX_MS;
	pool->next_connect_ms = pool->d.loop->now_ms + pool->backoff_ms;
	if (!any_ready(pool)) {
		pool->db_down = true;
		struct fpg_error err;
		/* The reason is logged (connect_failed), not told. */
		fpg_error_set(&err, FPG_ERR_UNAVAILABLE, 503,
			      "PostgreSQL is unavailable");
		fail_waiters(pool, &err, false);
	}
	update_gauges(pool);
}

static void reap_one(struct fpg_conn *c)
{
	/* Down until a connect works again (a new connection's ready). */
	fpg_stats_pg_seen(c->pool->d.stats, false, c->pool->d.loop->now_ms);
	fpg_log_warn("pool", NULL, "worker %u: connection lost: %s",
		     c->pool->d.worker_id, c->broken);
	fpg_conn_close(c, c->broken);
}

void fpg_pool_reap(struct fpg_pool *pool)
{
	if (!pool->has_broken)
		return;
	pool->has_broken = false;
	for (unsigned i = 0; i < pool->nconns; i++)
		if (pool->conns[i]->state == FPG_CONN_BROKEN)
			reap_one(pool->conns[i]);
	/* A guest's owner hears of it through on_idle (state DOWN). */
	struct fpg_list *l = fpg_list_first(&pool->guests), *next;
	for (; l; l = next) {
		next = fpg_list_next(&pool->guests, l);
		struct fpg_conn *g = FPG_CONTAINER_OF(l, struct fpg_conn, guest_link);
		if (g->state == FPG_CONN_BROKEN) {
			reap_one(g);
			g->on_idle(g, g->idle_ctx);
		}
	}
	update_gauges(pool);
	serve_waiters(pool);
}

/* ---- what the connections tell the pool ---- */

static void on_busy(struct fpg_conn *c)
{
	update_gauges(c->pool);
}

/*
 * One of the pool's connections serves the next waiters; one that client
 * SQL left inside a transaction or otherwise tainted is replaced once
 * idle.
 */
static bool on_op_ended(struct fpg_conn *c)
{
	if (c->state == FPG_CONN_READY)
		fpg_stats_pg_seen(c->pool->d.stats, true,
				  c->pool->d.loop->now_ms);
	if (c->inflight == 0 && c->state == FPG_CONN_READY &&
	    !fpg_conn_out_of_tx(c))
		fpg_conn_taint(c, "the session is inside a transaction");
	if (c->tainted && c->inflight == 0 && !c->held) {
		fpg_conn_fail(c, "session replaced");
		return false;
	}
	serve_waiters(c->pool);
	return true;
}

/* A guest (a session's) with nothing left goes back to its session. */
static bool on_guest_op_ended(struct fpg_conn *c)
{
	if (c->inflight == 0 && !c->cancel_pending) {
		c->on_idle(c, c->idle_ctx);
		return false; /* it may have left this worker */
	}
	return true;
}

static void on_ready(struct fpg_conn *c)
{
	struct fpg_pool *pool = c->pool;
	pool->db_down = false;
	pool->backoff_ms = 0;
	fpg_stats_pg_seen(pool->d.stats, true, pool->d.loop->now_ms);
	update_gauges(pool);
	if (pool->owner.logged_in)
		pool->owner.logged_in(pool, pool->owner.ctx);
}

static void on_broken(struct fpg_conn *c)
{
	c->pool->has_broken = true;
}

static void on_end_turn(struct fpg_conn *c)
{
	c->pool->turn_pending = true;
}

static const struct fpg_conn_events pool_events = {
	.busy = on_busy,
	.op_ended = on_op_ended,
	.ready = on_ready,
	.connect_failed = on_connect_failed,
	.broken = on_broken,
	.end_turn = on_end_turn,
};

/* A guest is READY from its detach on: it never connects again. */
static const struct fpg_conn_events guest_events = {
	.busy = on_busy,
	.op_ended = on_guest_op_ended,
	.broken = on_broken,
	.end_turn = on_end_turn,
};

void fpg_pool_end_turn(struct fpg_pool *pool)
{
	/* Deferred work may defer more (a coalesced group whose connection
	 * can no longer take it sends its members elsewhere). */
	while (pool->turn_pending) {
		pool->turn_pending = false;
		for (unsigned i = 0; i < pool->nconns; i++)
			fpg_conn_end_turn(pool->conns[i]);
		for (struct fpg_list *l = fpg_list_first(&pool->guests); l;
		     l = fpg_list_next(&pool->guests, l))
			fpg_conn_end_turn(FPG_CONTAINER_OF(l, struct fpg_conn,
							   guest_link));
	}
}

/*
 * Connections not DOWN; *fresh_connect is set when a connect started less
 * than a second ago is still under way.
 */
static unsigned count_alive(const struct fpg_pool *pool, bool *fresh_connect)
{
	unsigned n = 0;
	*fresh_connect = false;
	for (unsigned i = 0; i < pool->nconns; i++) {
		const struct fpg_conn *c = pool->conns[i];
		if (c->state != FPG_CONN_DOWN)
			n++;
		if ((c->state == FPG_CONN_CONNECTING ||
		     c->state == FPG_CONN_SETUP) &&
		    pool->d.loop->now_ms - c->connect_started_ms < 1000)
			*fresh_connect = true;
	}
	return n;
}

/*
 * Opens one more connection if the size and the back-off allow it. One
 * connect at a time, unless one hangs (a PostgreSQL that is starting up
 * under load): then another may try beside it every second.
 */
static void maybe_grow(struct fpg_pool *pool, unsigned want)
{
	bool fresh_connect;
	unsigned alive = count_alive(pool, &fresh_connect);
	if (alive >= want || alive + pool->lent >= pool->nconns ||
	    fresh_connect ||
	    pool->d.loop->now_ms < pool->next_connect_ms || *pool->d.draining)
		return;
	for (unsigned i = 0; i < pool->nconns; i++) {
		if (pool->conns[i]->state == FPG_CONN_DOWN) {
			fpg_conn_start(pool->conns[i]);
			update_gauges(pool);
			return;
		}
	}
}

void fpg_pool_acquire(struct fpg_pool *pool, struct fpg_pool_waiter *wt)
{
	struct fpg_conn *c = pick(pool, wt);
	/* Busy connections are a sign of load: add one (up to pool-max). */
	if (!c || c->inflight > 0 || wt->exclusive)
		maybe_grow(pool, pool->nconns);
	if (c) {
		fpg_stats_acquired(pool->d.stats, 0);
		wt->ready(wt, c);
		return;
	}
	if (pool->db_down && !any_ready(pool)) {
		struct fpg_error err;
		/* The reason is logged (connect_failed), not told. */
		fpg_error_set(&err, FPG_ERR_UNAVAILABLE, 503,
			      "PostgreSQL is unavailable");
		wt->fail(wt, &err);
		return;
	}
	fpg_list_push_back(&pool->waiters, &wt->link);
	wt->queued = true;
	wt->queued_us = fpg_now_us();
	pool->nwaiting++;
	update_gauges(pool);
}

void fpg_conn_release(struct fpg_conn *c)
{
	if (!c->held)
		return;
	if (c->dirty && c->state == FPG_CONN_READY) {
		/* COPY ran client SQL: the hold ends with the reset after it. */
		c->dirty = false;
		struct fpg_pgop *op = fpg_conn_push_op(
			c, fpg_pgop_ignore_result, fpg_pgop_ignore_done, NULL,
			-1, FPG_OP_RESET);
		if (op)
			op->release = true;
		return;
	}
	c->held = false;
	if (c->tainted && c->inflight == 0) {
		fpg_conn_fail(c, "session replaced");
		return;
	}
	serve_waiters(c->pool);
}

/*
 * The canceller's word that a cancel was sent: by id, since the
 * connection may have been replaced meanwhile.
 */
struct cancel_done {
	struct fpg_msg msg;
	struct fpg_pool *pool;
	uint64_t conn_id;
};

static void cancel_sent(struct fpg_pool *pool, uint64_t conn_id);

static void cancel_done(struct fpg_msg *msg, bool live)
{
	struct cancel_done *done = FPG_CONTAINER_OF(msg, struct cancel_done, msg);
	if (live)
		cancel_sent(done->pool, done->conn_id);
	free(done);
}

void fpg_conn_cancel(struct fpg_conn *c)
{
	if (!(c->held || c->guest) || c->cancel_pending ||
	    c->state != FPG_CONN_READY)
		return;
	PGcancel *pc = PQgetCancel(c->pg);
	if (!pc)
		return;
	struct cancel_done *done = malloc(sizeof(*done));
	if (!done) {
		/* Without the cancel the statement runs to its timeout. */
		PQfreeCancel(pc);
		return;
	}
	done->msg.handle = cancel_done;
	done->pool = c->pool;
	done->conn_id = c->id;
	c->cancel_pending = true;
	fpg_canceller_submit(c->pool->d.canceller, pc, c->pool->d.loop,
			     &done->msg);
	/* What the statement still sends must be read to end it. */
	fpg_conn_pause(c, false);
}

static void cancel_sent(struct fpg_pool *pool, uint64_t conn_id)
{
	struct fpg_conn *c = NULL;
	for (unsigned i = 0; i < pool->nconns && !c; i++)
		if (pool->conns[i]->id == conn_id)
			c = pool->conns[i];
	for (struct fpg_list *l = fpg_list_first(&pool->guests); l && !c;
	     l = fpg_list_next(&pool->guests, l)) {
		struct fpg_conn *g = FPG_CONTAINER_OF(l, struct fpg_conn, guest_link);
		if (g->id == conn_id)
			c = g;
	}
	if (!c || !c->cancel_pending)
		return;
	c->cancel_pending = false;
	c->on->op_ended(c);
}

struct fpg_conn *fpg_conn_detach(struct fpg_conn *c, struct fpg_error *err)
{
	FPG_ASSERT(c->held && !c->guest);
	struct fpg_pool *pool = c->pool;
	struct fpg_conn *fresh = fpg_conn_new(&pool->d, &pool_events, pool);
	if (!fresh) {
		fpg_error_set(err, FPG_ERR_NOMEM, 503, "out of memory");
		return NULL;
	}
	for (unsigned i = 0; i < pool->nconns; i++)
		if (pool->conns[i] == c)
			pool->conns[i] = fresh;
	pool->lent++;
	c->held = false;
	c->guest = true;
	c->on = &guest_events;
	fpg_list_push_back(&pool->guests, &c->guest_link);
	update_gauges(pool);
	return c;
}

void fpg_conn_guest_leave(struct fpg_conn *c)
{
	fpg_list_remove(&c->guest_link);
	fpg_conn_park(c);
}

void fpg_conn_guest_enter(struct fpg_conn *c, struct fpg_pool *pool)
{
	fpg_list_push_back(&pool->guests, &c->guest_link);
	fpg_conn_move(c, &pool->d, pool);
}

void fpg_pool_adopt(struct fpg_pool *pool, struct fpg_conn *c)
{
	FPG_ASSERT(c->guest && pool->lent > 0);
	pool->lent--;
	c->guest = false;
	c->on = &pool_events;
	c->dirty = false;
	c->on_idle = NULL;
	c->held = false;
	/* One back with nothing queued inside a transaction (a session
	 * whose BEGIN went through and its next statement did not) would
	 * hand that transaction to the next request. */
	bool usable = c->state == FPG_CONN_READY &&
		      (!fpg_conn_idle(c) || fpg_conn_out_of_tx(c));
	for (unsigned i = 0; usable && i < pool->nconns; i++) {
		struct fpg_conn *slot = pool->conns[i];
		if (slot->state != FPG_CONN_DOWN)
			continue;
		/* Deferred work is run before the turn ends, and a guest
		 * comes home from the mailbox or a drain, never between a
		 * reap and the end of a turn. */
		FPG_ASSERT(!fpg_conn_deferred_of(slot));
		free(slot);
		pool->conns[i] = c;
		fpg_conn_move(c, &pool->d, pool);
		update_gauges(pool);
		serve_waiters(pool);
		return;
	}
	/* Broken, in a transaction, or the pool has filled its slots
	 * meanwhile. */
	fpg_conn_free(c);
}

static void arrive_home(struct fpg_msg *msg, bool live)
{
	struct fpg_conn *c = FPG_CONTAINER_OF(msg, struct fpg_conn, home_msg);
	if (live)
		fpg_pool_adopt(c->home, c);
	else
		fpg_conn_free(c);
}

void fpg_conn_send_home(struct fpg_conn *c, struct fpg_pool *home,
			struct fpg_loop *here)
{
	if (home->d.loop == here) {
		fpg_pool_adopt(home, c);
		return;
	}
	c->home = home;
	c->home_msg.handle = arrive_home;
	fpg_loop_post(home->d.loop, &c->home_msg);
}

void fpg_pool_tick(struct fpg_pool *pool)
{
	uint64_t now = pool->d.loop->now_ms;
	for (unsigned i = 0; i < pool->nconns; i++) {
		struct fpg_conn *c = pool->conns[i];
		if ((c->state == FPG_CONN_CONNECTING ||
		     c->state == FPG_CONN_SETUP) &&
		    now - c->connect_started_ms > CONNECT_TIMEOUT_MS)
			fpg_conn_fail(c, "timed out connecting");
		/* A group gathering behind a stuck op would wait for it. */
		if (stalled(c, now))
			fpg_conn_deferred_leave(c);
	}
	unsigned want = pool->owner.min;
	if (pool->nwaiting && want < pool->nconns)
		want = pool->nconns;
	maybe_grow(pool, want);
	if (!fpg_list_empty(&pool->waiters)) {
		struct fpg_error err;
		fpg_error_set(&err, FPG_ERR_UNAVAILABLE, 503,
			      "timed out waiting for a PostgreSQL connection");
		fail_waiters(pool, &err, true);
	}
}

bool fpg_pool_quiet(const struct fpg_pool *pool)
{
	if (!fpg_list_empty(&pool->waiters) || !fpg_list_empty(&pool->guests) ||
	    pool->lent || pool->streams)
		return false;
	for (unsigned i = 0; i < pool->nconns; i++)
		if (pool->conns[i]->inflight || pool->conns[i]->held ||
		    fpg_conn_deferred_of(pool->conns[i]))
			return false;
	return true;
}

void *fpg_pool_owner_ctx(const struct fpg_pool *pool)
{
	return pool->owner.ctx;
}

unsigned fpg_pool_lent(const struct fpg_pool *pool)
{
	return pool->lent;
}

bool fpg_pool_stream_begin(struct fpg_pool *pool, unsigned cap)
{
	if (cap && pool->streams >= cap)
		return false;
	pool->streams++;
	return true;
}

void fpg_pool_stream_end(struct fpg_pool *pool)
{
	FPG_ASSERT(pool->streams > 0);
	pool->streams--;
}

const char *fpg_pool_login(const struct fpg_pool *pool)
{
	return pool->d.user ? pool->d.user : "";
}

const struct fpg_conn_env *fpg_pool_env(const struct fpg_pool *pool)
{
	return &pool->d;
}

struct fpg_pool *fpg_pool_new(const struct fpg_conn_env *env,
			      const struct fpg_pool_owner *owner,
			      struct fpg_error *err)
{
	struct fpg_pool *pool = calloc(1, sizeof(*pool));
	if (!pool)
		goto nomem;
	pool->d = *env;
	if (owner)
		pool->owner = *owner;
	else
		pool->owner.min = env->opts->pool_min;
	fpg_list_init(&pool->guests);
	fpg_list_init(&pool->waiters);
	pool->opts = env->opts;
	pool->nconns = env->opts->pool_max;
	FPG_STAT_ADD(env->stats->pool_max, (int64_t)pool->nconns);
	pool->conns = calloc(pool->nconns, sizeof(*pool->conns));
	if (!pool->conns)
		goto nomem;
	for (unsigned i = 0; i < pool->nconns; i++)
		if (!(pool->conns[i] = fpg_conn_new(&pool->d, &pool_events,
						      pool)))
			goto nomem;
	return pool;
nomem:
	fpg_pool_free(pool);
	fpg_error_set(err, FPG_ERR_NOMEM, 503, "out of memory");
	return NULL;
}

void fpg_pool_free(struct fpg_pool *pool)
{
	if (!pool)
		return;
	struct fpg_error err;
	fpg_error_set(&err, FPG_ERR_UNAVAILABLE, 503, "server shutting down");
	fail_waiters(pool, &err, false);
	FPG_STAT_ADD(pool->d.stats->pool_max, -(int64_t)pool->nconns);
	for (unsigned i = 0; pool->conns && i < pool->nconns; i++) {
		struct fpg_conn *c = pool->conns[i];
		if (!c)
			continue;
		fpg_log_debug("pool", NULL, "closing connection (%s)",
			      fpg_conn_state_to_str(c->state));
		/* Closing the socket does not stop a running statement (one
		 * that sends nothing never notices): cancel it. Blocking is
		 * fine here, the worker no longer serves. */
		if (c->pg && c->inflight && c->state == FPG_CONN_READY) {
			PGcancel *pc = PQgetCancel(c->pg);
			char errbuf[256];
			if (pc && !PQcancel(pc, errbuf, sizeof(errbuf)))
				fpg_log_warn("pool", NULL, "cancel at shutdown: %s",
					     errbuf);
			PQfreeCancel(pc);
		}
		fpg_conn_close(c, "server shutting down");
		free(c);
		pool->conns[i] = NULL;
	}
	/* Guests running here when the server stopped: closing them rolls
	 * their transactions back. */
	struct fpg_list *l;
	while ((l = fpg_list_first(&pool->guests))) {
		struct fpg_conn *g = FPG_CONTAINER_OF(l, struct fpg_conn, guest_link);
		fpg_list_remove(l);
		fpg_conn_close(g, "server shutting down");
		free(g);
	}
	/* Its share of the worker's gauges goes with it. */
	free(pool->conns);
	pool->conns = NULL;
	pool->nwaiting = 0;
	update_gauges(pool);
	free(pool);
}
