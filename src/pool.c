#include "pool.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "error.h"
#include "log.h"
#include "cancel.h"
#include "loop.h"
#include "stats.h"

enum fpg_conn_state {
	FPG_CONN_DOWN,	     /* no PGconn; may be (re)opened */
	FPG_CONN_CONNECTING, /* PQconnectPoll in progress */
	FPG_CONN_SETUP,	     /* session settings being applied */
	FPG_CONN_READY,	     /* usable */
	FPG_CONN_BROKEN,     /* failed; closed by fpg_pool_reap() */
};

struct fpg_conn {
	struct fpg_evsrc ev;	/* first: the epoll callback finds us */
	struct fpg_pool *pool;
	PGconn *pg;		/* NULL when DOWN */
	int fd;			/* registered socket, -1 when none */
	uint32_t events;	/* current epoll interest */
	enum fpg_conn_state state;
	struct fpg_pgop *head, *tail; /* ops awaiting their Sync */
	unsigned inflight;	/* ops queued */
	bool setup_failed;	/* the setup op got an error */
	char broken[256];	/* why it is BROKEN */
	bool corked;		/* TCP_CORK set for this loop turn */
	bool no_cork;		/* not TCP (unix socket): never cork */
	bool want_write;	/* libpq has output to flush: EPOLLOUT */
	bool held;		/* one request holds it alone (slow lane) */
	bool paused;		/* not reading: the holder's client is slow */
	bool cancel_pending;	/* a cancel is queued: no new work until sent */
	uint64_t id;		/* unique per connect: tells stale replies */
	bool guest;		/* left its pool (a transaction's); see pool.h */
	struct fpg_conn *guest_next; /* in the running pool's guest list */
	void (*on_idle)(struct fpg_conn *c, void *ctx); /* guests */
	void *idle_ctx;
	struct fpg_evsrc *raw;	/* out of pipeline mode: gets the events */
	uint64_t connect_started_ms;
	struct fpg_stmt_cache *stmts; /* prepared statements on this conn */
	void (*stmts_free)(struct fpg_stmt_cache *); /* (parked: no pool) */
	bool dirty;		/* ran client SQL outside an op (COPY) */
	bool tainted;		/* session no longer trusted: no new work,
				   replaced once its ops are over */
	bool superuser;		/* logged in as one (can change session
				   authorization) */
	struct fpg_msg home_msg; /* a guest going home (fpg_conn_send_home) */
	struct fpg_pool *home;	/* ... to this pool */
	unsigned barriers;	/* FPG_OP_BARRIER ops queued */
	uint64_t head_since_ms;	/* when the op at the head began to run */
};

struct fpg_pool {
	struct fpg_pool_deps d;
	const struct fpg_options *opts;
	struct fpg_conn **conns; /* pool_max slots, each allocated */
	unsigned nconns;
	struct fpg_conn *guests; /* guests this worker runs right now */
	struct fpg_pool_waiter *wait_head, *wait_tail;
	unsigned nwaiting;
	/* A connect attempt failed and nothing is open: fail fast (503)
	 * instead of making every request wait for its deadline. */
	bool db_down;
	bool has_broken;	  /* some connection waits for fpg_pool_reap */
	bool has_corked;	  /* some connection waits for fpg_pool_uncork */
	unsigned lent;		  /* connections out as transaction sessions */
	char last_error[256];
	uint64_t next_connect_ms; /* back-off: no connect before this */
	unsigned backoff_ms;
};

#define CONNECT_TIMEOUT_MS 10000
#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 1000

static const char *conn_state_to_str(enum fpg_conn_state s)
{
	switch (s) {
	case FPG_CONN_DOWN:
		return "down";
	case FPG_CONN_CONNECTING:
		return "connecting";
	case FPG_CONN_SETUP:
		return "setup";
	case FPG_CONN_READY:
		return "ready";
	case FPG_CONN_BROKEN:
		return "broken";
	}
	return "?";
}

static void update_gauges(struct fpg_pool *pool)
{
	int64_t open = 0, connecting = 0, busy = 0;
	for (unsigned i = 0; i < pool->nconns; i++) {
		struct fpg_conn *c = pool->conns[i];
		if (c->state == FPG_CONN_READY) {
			open++;
			if (c->inflight)
				busy++;
		} else if (c->state != FPG_CONN_DOWN) {
			connecting++;
		}
	}
	struct fpg_stats *st = pool->d.stats;
	atomic_store_explicit(&st->pool_open, open, memory_order_relaxed);
	atomic_store_explicit(&st->pool_connecting, connecting,
			      memory_order_relaxed);
	atomic_store_explicit(&st->pool_busy, busy, memory_order_relaxed);
	atomic_store_explicit(&st->pool_waiting, (int64_t)pool->nwaiting,
			      memory_order_relaxed);
}

static void set_events(struct fpg_conn *c, uint32_t events)
{
	if (c->events == events || c->fd < 0)
		return;
	if (fpg_loop_rewatch(c->pool->d.loop, c->fd, events, &c->ev))
		c->events = events;
}

/* The interest a ready connection needs now. */
static void update_events(struct fpg_conn *c)
{
	uint32_t ev = c->paused ? 0 : EPOLLIN;
	if (c->want_write)
		ev |= EPOLLOUT;
	set_events(c, ev);
}

/*
 * While connecting, libpq may close its socket and open another (the next
 * address, or SSL refused), possibly with the same number: a closed
 * socket has left the epoll set by itself, so register the current one
 * afresh after every step instead of trusting what we registered before.
 */
static void track_socket(struct fpg_conn *c, uint32_t events)
{
	int fd = PQsocket(c->pg);
	c->fd = fd;
	c->events = 0;
	if (fd >= 0 && fpg_loop_rewatch(c->pool->d.loop, fd, events, &c->ev))
		c->events = events;
}

/* ---- waiters ---- */

static void waiter_unlink(struct fpg_pool *pool, struct fpg_pool_waiter *wt)
{
	if (wt->prev)
		wt->prev->next = wt->next;
	else
		pool->wait_head = wt->next;
	if (wt->next)
		wt->next->prev = wt->prev;
	else
		pool->wait_tail = wt->prev;
	wt->prev = wt->next = NULL;
	wt->queued = false;
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
	struct fpg_pool_waiter *wt = pool->wait_head;
	while (wt) {
		struct fpg_pool_waiter *next = wt->next;
		if (!expired_only || wt->deadline_ms <= pool->d.loop->now_ms) {
			waiter_unlink(pool, wt);
			wt->fail(wt, err);
		}
		wt = next;
	}
	update_gauges(pool);
}

/* Usable for new work at all: open, and not reserved by one request. */
static bool shareable(const struct fpg_conn *c)
{
	return c->state == FPG_CONN_READY && !c->held && !c->cancel_pending &&
	       !c->tainted && !c->barriers;
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

/* The shared connection with the fewest ops queued, if it has room. */
static struct fpg_conn *pick_shared(struct fpg_pool *pool)
{
	struct fpg_conn *best = NULL;
	for (unsigned i = 0; i < pool->nconns; i++) {
		struct fpg_conn *c = pool->conns[i];
		if (!shareable(c) || stalled(c, pool->d.loop->now_ms))
			continue;
		if (!best || c->inflight < best->inflight)
			best = c;
		if (c->inflight == 0)
			break;
	}
	if (best && best->inflight >= pool->opts->pipeline_depth)
		return NULL;
	return best;
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
		else if (!idle && shareable(c) && c->inflight == 0)
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
		wt->exclusive ? pick_held(pool) : pick_shared(pool);
	if (c && wt->exclusive)
		c->held = true;
	return c;
}

/* Hands free connections to waiters, oldest first within each kind. */
static void serve_waiters(struct fpg_pool *pool)
{
	struct fpg_pool_waiter *wt = pool->wait_head;
	bool shared_done = false, held_done = false, lend_done = false;
	while (wt && !(shared_done && held_done)) {
		struct fpg_pool_waiter *next = wt->next;
		bool *done = wt->lend ? &lend_done
			   : wt->exclusive ? &held_done : &shared_done;
		struct fpg_conn *c = *done ? NULL : pick(pool, wt);
		if (c) {
			waiter_unlink(pool, wt);
			wt->ready(wt, c);
			next = pool->wait_head; /* ready() may change the list */
		} else {
			*done = true;
		}
		wt = next;
	}
	update_gauges(pool);
}

/* ---- ops ---- */

static void fail_ops(struct fpg_conn *c, const char *why)
{
	struct fpg_pgop *op;
	while ((op = c->head)) {
		c->head = op->next;
		if (!c->head)
			c->tail = NULL;
		c->inflight--;
		c->barriers -= op->barrier;
		op->on_done(op, why);
		free(op);
	}
}

/*
 * libpq closes its socket itself when it sees the connection die; the
 * number may then already belong to a newer socket in our epoll set (a
 * reconnect in the same loop turn), which must not be touched.
 */
static void forget_closed_socket(struct fpg_conn *c)
{
	if (c->fd >= 0 && (!c->pg || PQsocket(c->pg) != c->fd)) {
		c->fd = -1;
		c->events = 0;
	}
}

static void conn_close(struct fpg_conn *c)
{
	forget_closed_socket(c);
	if (c->fd >= 0 && c->pool)
		fpg_loop_unwatch(c->pool->d.loop, c->fd);
	c->fd = -1;
	c->events = 0;
	c->corked = c->no_cork = c->want_write = false;
	c->held = c->paused = c->cancel_pending = false;
	c->dirty = c->tainted = false;
	c->barriers = 0;
	c->raw = NULL;
	if (c->pg)
		PQfinish(c->pg);
	c->pg = NULL;
	if (c->stmts)
		c->stmts_free(c->stmts);
	c->stmts = NULL;
	c->state = FPG_CONN_DOWN;
}

static bool any_ready(const struct fpg_pool *pool)
{
	for (unsigned i = 0; i < pool->nconns; i++)
		if (pool->conns[i]->state == FPG_CONN_READY)
			return true;
	return false;
}

/* A connect or setup attempt failed: back off, and fail fast meanwhile. */
static void connect_failed(struct fpg_conn *c, const char *why)
{
	struct fpg_pool *pool = c->pool;
	fpg_error_tidy(pool->last_error, sizeof(pool->last_error), why);
	fpg_log_warn("pool", NULL, "worker %u: connect failed: %s",
		     pool->d.worker_id, pool->last_error);
	FPG_STAT_ADD(pool->d.stats->pool_connect_failures, 1);
	fail_ops(c, why);
	conn_close(c);
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

/*
 * A ready connection that breaks is only marked here: callers are often
 * deep inside its own result loop or iterating its statements, so closing
 * it (and failing its ops) waits for fpg_pool_reap() at the end of the
 * worker's loop turn.
 */
void fpg_conn_fail(struct fpg_conn *c, const char *why)
{
	if (c->state == FPG_CONN_BROKEN)
		return;
	if (c->state != FPG_CONN_READY) {
		connect_failed(c, why);
		return;
	}
	fpg_error_tidy(c->broken, sizeof(c->broken), why);
	forget_closed_socket(c);
	c->state = FPG_CONN_BROKEN;
	c->pool->has_broken = true;
	c->paused = true;
	c->want_write = false;
	update_events(c);
}

static void reap_one(struct fpg_conn *c)
{
	fpg_log_warn("pool", NULL, "worker %u: connection lost: %s",
		     c->pool->d.worker_id, c->broken);
	fail_ops(c, c->broken);
	conn_close(c);
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
	struct fpg_conn *g = pool->guests, *next;
	for (; g; g = next) {
		next = g->guest_next;
		if (g->state == FPG_CONN_BROKEN) {
			reap_one(g);
			g->on_idle(g, g->idle_ctx);
		}
	}
	update_gauges(pool);
	serve_waiters(pool);
}

/*
 * libpq 15 sends every Sync at once (one send() per op). Corking the
 * socket for the rest of the loop turn lets the ops of one turn leave in
 * as few packets as possible, so PostgreSQL wakes once for all of them.
 */
static void cork(struct fpg_conn *c)
{
	if (c->corked || c->no_cork)
		return;
	int one = 1;
	if (setsockopt(c->fd, IPPROTO_TCP, TCP_CORK, &one, sizeof(one)) != 0) {
		c->no_cork = true;
		return;
	}
	c->corked = true;
	c->pool->has_corked = true;
}

static void uncork(struct fpg_conn *c)
{
	int zero = 0;
	if (!c->corked)
		return;
	c->corked = false;
	if (c->fd >= 0)
		(void)setsockopt(c->fd, IPPROTO_TCP, TCP_CORK, &zero,
				 sizeof(zero));
}

void fpg_pool_uncork(struct fpg_pool *pool)
{
	if (!pool->has_corked)
		return;
	pool->has_corked = false;
	for (unsigned i = 0; i < pool->nconns; i++)
		uncork(pool->conns[i]);
	for (struct fpg_conn *g = pool->guests; g; g = g->guest_next)
		uncork(g);
}

/* ---- resetting the session ---- */

/*
 * The reset segment (see fpg_conn_push_op), prepared once per connection
 * (parsing them with every statement cost PostgreSQL about twice as
 * much). Client SQL can deallocate a prepared statement and prepare
 * another under its name, but only a plannable one (SELECT, INSERT, ...),
 * whose command tag differs from every tag below: each result's tag is
 * checked, and a session whose reset did not run as sent is replaced.
 * The last one releases session advisory locks and reports LISTEN
 * registrations (harmless to the next op, which never reads
 * notifications, but they would pile up in libpq: such a session is
 * replaced). RESET ALL goes back to the startup options, which carry the
 * pool's settings.
 */
static const struct {
	const char *name, *sql, *tag;
} reset_stmts[] = {
	{"fpg_reset_all", "RESET ALL", "RESET"},
	{"fpg_reset_seq", "DISCARD SEQUENCES", "DISCARD SEQUENCES"},
	{"fpg_reset_temp", "DISCARD TEMP", "DISCARD TEMP"},
	{"fpg_reset_cursors", "CLOSE ALL", "CLOSE CURSOR ALL"},
	{"fpg_reset_role", "RESET ROLE", "RESET"},
	{"fpg_reset_locks",
	 "SELECT pg_catalog.pg_advisory_unlock_all(),"
	 " EXISTS (SELECT FROM pg_catalog.pg_listening_channels())",
	 "SELECT 1"},
	/* only a superuser login can change it: last, sent for those only */
	{"fpg_reset_auth", "RESET SESSION AUTHORIZATION", "RESET"},
};
#define RESET_LOCKS 5 /* the index of fpg_reset_locks */

/*
 * Without a statement cache (--statement-cache=0) no prepared statement
 * outlives its request: the pool's statements are all unnamed (parsed
 * with every run), and the reset is this one statement, which also drops
 * whatever client SQL prepared, even inside a function. It does all the
 * above (and UNLISTEN *) for about what one of them costs, but it would
 * drop a statement cache too.
 */
static const char discard_sql[] = "DISCARD ALL";

static bool cached(const struct fpg_conn *c)
{
	return c->pool->opts->statement_cache != 0;
}

static size_t reset_count(const struct fpg_conn *c)
{
	size_t n = sizeof(reset_stmts) / sizeof(*reset_stmts);
	if (!cached(c))
		return 1;
	return c->superuser ? n : n - 1;
}

/* Sends the reset statements (no Sync). */
static bool send_reset(struct fpg_conn *c)
{
	if (!cached(c))
		return PQsendQueryParams(c->pg, discard_sql, 0, NULL, NULL,
					 NULL, NULL, 0);
	for (size_t i = 0; i < reset_count(c); i++)
		if (!PQsendQueryPrepared(c->pg, reset_stmts[i].name, 0, NULL,
					 NULL, NULL, 0))
			return false;
	return true;
}

/* Prepares the reset (after connecting, or DISCARD ALL). */
static bool send_reset_prepare(struct fpg_conn *c)
{
	for (size_t i = 0; cached(c) && i < reset_count(c); i++)
		if (!PQsendPrepare(c->pg, reset_stmts[i].name,
				   reset_stmts[i].sql, 0, NULL))
			return false;
	return true;
}

/* The tag result i of the reset must have. */
static const char *reset_tag(const struct fpg_conn *c, size_t i)
{
	return cached(c) ? reset_stmts[i].tag : discard_sql;
}

/*
 * The session can no longer be trusted to be the pool's: it takes no new
 * work, and is replaced once its ops are over (closing it with ops in
 * flight would leave their outcome unknown: PostgreSQL still runs what
 * it has read).
 */
void fpg_conn_taint(struct fpg_conn *c, const char *why)
{
	if (c->tainted)
		return;
	c->tainted = true;
	fpg_log_warn("pool", NULL, "worker %u: connection to be replaced: %s",
		     c->pool->d.worker_id, why);
	FPG_STAT_ADD(c->pool->d.stats->pool_sessions_replaced, 1);
}

static void reset_result(struct fpg_conn *c, struct fpg_pgop *op,
			 PGresult *res)
{
	size_t i = (size_t)op->reset_query;
	ExecStatusType st = PQresultStatus(res);
	if ((st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) &&
	    (i >= reset_count(c) ||
	     strcmp(PQcmdStatus(res), reset_tag(c, i)) != 0)) {
		/* Not what was sent: client SQL replaced it. */
		if (!op->reset_failed) {
			op->reset_failed = true;
			fpg_conn_taint(c, "a statement of the reset was replaced");
		}
		st = PGRES_COMMAND_OK;
	}
	switch (st) {
	case PGRES_TUPLES_OK:
		if (cached(c) && i == RESET_LOCKS && PQntuples(res) == 1 &&
		    PQnfields(res) == 2 && strcmp(PQgetvalue(res, 0, 1), "t") == 0)
			fpg_conn_taint(c, "the session listens for notifications");
		/* fall through */
	case PGRES_COMMAND_OK:
		break;
	default:
		if (!op->reset_failed) {
			char why[200];
			fpg_error_tidy(why, sizeof(why),
				       PQresultErrorMessage(res));
			op->reset_failed = true;
			fpg_conn_taint(c, why);
		}
		break;
	}
	PQclear(res);
}

/* "BEGIN" and "START TRANSACTION" are the tags of what opens one. */
static bool opens_tx(const char *tag)
{
	return strcmp(tag, "BEGIN") == 0 || strcmp(tag, "START TRANSACTION") == 0;
}

/*
 * Prepared statements made or dropped from SQL survive any reset short
 * of DISCARD ALL, which would drop the pool's own: such a session is
 * replaced. (Inside a function or DO block this is out of sight: see
 * docs/guarantees.md.)
 */
static bool changes_statements(const char *tag)
{
	return strcmp(tag, "PREPARE") == 0 ||
	       strncmp(tag, "DEALLOCATE", 10) == 0;
}

struct fpg_pgop *fpg_conn_push_op(struct fpg_conn *c,
				  fpg_pgop_result_fn on_result,
				  fpg_pgop_done_fn on_done, void *ctx,
				  int single_row_query, unsigned flags)
{
	struct fpg_pgop *op = calloc(1, sizeof(*op));
	if (!op) {
		on_done(&(struct fpg_pgop){.ctx = ctx}, "out of memory");
		fpg_conn_fail(c, "out of memory");
		return NULL;
	}
	op->on_result = on_result;
	op->on_done = on_done;
	op->ctx = ctx;
	op->single_row_query = single_row_query;
	op->resets = (flags & FPG_OP_RESET) != 0;
	op->barrier = (flags & FPG_OP_BARRIER) != 0;
	op->first_part = (flags & FPG_OP_TWO_PARTS) != 0;
	c->barriers += op->barrier;
	if (c->tail) {
		c->tail->next = op;
	} else {
		c->head = op;
		c->head_since_ms = c->pool->d.loop->now_ms;
	}
	c->tail = op;
	if (c->inflight++ == 0)
		update_gauges(c->pool);
	cork(c);
	/* libpq 15's PQpipelineSync also flushes (one send per Sync). */
	bool sent = PQpipelineSync(c->pg) &&
		    (!op->resets || (send_reset(c) && PQpipelineSync(c->pg)));
	int f = sent ? PQflush(c->pg) : -1;
	if (f < 0) {
		/* The op is queued: reaping reports it through on_done. */
		fpg_conn_fail(c, PQerrorMessage(c->pg));
		return op;
	}
	c->want_write = f != 0;
	update_events(c);
	return op;
}

PGconn *fpg_conn_pg(struct fpg_conn *c)
{
	return c->pg;
}

struct fpg_stmt_cache *fpg_conn_stmts(struct fpg_conn *c)
{
	return c->stmts;
}

/* The connection's prepared statements are gone: a new, empty cache. */
static void forget_statements(struct fpg_conn *c)
{
	c->stmts_free(c->stmts);
	c->stmts = c->pool->d.stmts_new(c->pool, c);
	if (!c->stmts)
		fpg_conn_fail(c, "out of memory");
}

/* Hands results to the op at the head until libpq needs more input. */
static void drain(struct fpg_conn *c)
{
	while (c->head && !c->paused &&
	       (c->state == FPG_CONN_READY || c->state == FPG_CONN_SETUP)) {
		struct fpg_pgop *op = c->head;
		/* Before PQisBusy(): it parses input, and single-row mode
		 * must be chosen before the query's first row is parsed. */
		if (op->single_row_query == op->queries_done) {
			PQsetSingleRowMode(c->pg);
			op->single_row_query = -1;
		}
		if (PQisBusy(c->pg))
			break;
		PGresult *res = PQgetResult(c->pg);
		if (!res) {
			if (op->in_reset)
				op->reset_query++;
			else
				op->queries_done++;
			continue;
		}
		if (PQresultStatus(res) != PGRES_PIPELINE_SYNC) {
			if (op->in_reset) {
				reset_result(c, op, res);
				continue;
			}
			if (op->resets && PQresultStatus(res) == PGRES_COMMAND_OK) {
				const char *tag = PQcmdStatus(res);
				if (opens_tx(tag)) {
					op->opened_tx = true;
					fpg_conn_taint(c, "client SQL opened a "
							  "transaction");
				} else if (changes_statements(tag)) {
					fpg_conn_taint(c, "client SQL changed "
							  "prepared statements");
				}
			}
			op->on_result(op, res);
			continue;
		}
		PQclear(res);
		if (op->first_part) {
			op->first_part = false;
			continue;
		}
		if (op->resets && !op->in_reset) {
			op->in_reset = true;
			continue;
		}
		if (op->resets && !op->reset_failed &&
		    op->reset_query != (int)reset_count(c)) {
			op->reset_failed = true;
			fpg_conn_taint(c, "the session reset was cut short");
		}
		c->head = op->next;
		if (!c->head)
			c->tail = NULL;
		c->inflight--;
		c->barriers -= op->barrier;
		c->head_since_ms = c->pool->d.loop->now_ms;
		op->on_done(op, NULL);
		if (op->release)
			c->held = false;
		free(op);
		if (c->inflight == 0)
			update_gauges(c->pool);
		if (!c->guest && c->inflight == 0 && c->state == FPG_CONN_READY &&
		    PQtransactionStatus(c->pg) != PQTRANS_IDLE)
			fpg_conn_taint(c, "the session is inside a transaction");
		if (c->tainted && c->inflight == 0 && !c->held && !c->guest) {
			fpg_conn_fail(c, "session replaced");
			return;
		}
		if (c->guest) {
			if (c->inflight == 0 && !c->cancel_pending) {
				c->on_idle(c, c->idle_ctx);
				return; /* it may have left this worker */
			}
			continue;
		}
		serve_waiters(c->pool);
	}
}

static void conn_read(struct fpg_conn *c)
{
	if (!PQconsumeInput(c->pg) || PQstatus(c->pg) == CONNECTION_BAD) {
		fpg_conn_fail(c, PQerrorMessage(c->pg));
		return;
	}
	drain(c);
}

/* ---- connecting ---- */

static void setup_result(struct fpg_pgop *op, PGresult *res)
{
	struct fpg_conn *c = op->ctx;
	ExecStatusType st = PQresultStatus(res);
	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
		c->setup_failed = true;
		fpg_error_tidy(c->pool->last_error,
			       sizeof(c->pool->last_error),
			       PQresultErrorMessage(res));
	}
	PQclear(res);
}

static void setup_done(struct fpg_pgop *op, const char *broken)
{
	struct fpg_conn *c = op->ctx;
	if (broken)
		return; /* the connection is already being failed */
	if (c->setup_failed) {
		connect_failed(c, c->pool->last_error);
		return;
	}
	c->state = FPG_CONN_READY;
	c->pool->db_down = false;
	c->pool->backoff_ms = 0;
	fpg_log_debug("pool", NULL, "worker %u: connection ready",
		      c->pool->d.worker_id);
	update_gauges(c->pool);
	/* serve_waiters runs in drain() right after this returns */
}

void fpg_pgop_ignore_result(struct fpg_pgop *op, PGresult *res)
{
	PQclear(res);
}

void fpg_pgop_ignore_done(struct fpg_pgop *op, const char *broken)
{
}

static void discard_result(struct fpg_pgop *op, PGresult *res)
{
	struct fpg_conn *c = op->ctx;
	ExecStatusType st = PQresultStatus(res);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		fpg_conn_fail(c, PQresultErrorMessage(res));
	PQclear(res);
}

void fpg_conn_push_discard(struct fpg_conn *c)
{
	/* DISCARD ALL refuses to share its Sync with other statements. */
	if (!PQsendQueryParams(c->pg, "DISCARD ALL", 0, NULL, NULL, NULL,
			       NULL, 0)) {
		fpg_conn_fail(c, PQerrorMessage(c->pg));
		return;
	}
	if (!fpg_conn_push_op(c, discard_result, fpg_pgop_ignore_done, c, -1,
			      0))
		return;
	/* It dropped every prepared statement: forget ours. */
	forget_statements(c);
	if (!c->stmts)
		return;
	if (!send_reset_prepare(c)) {
		fpg_conn_fail(c, PQerrorMessage(c->pg));
		return;
	}
	fpg_conn_push_op(c, discard_result, fpg_pgop_ignore_done, c, -1, 0);
}

bool fpg_conn_raw_begin(struct fpg_conn *c, struct fpg_evsrc *ev)
{
	if (c->state != FPG_CONN_READY || c->inflight || c->raw ||
	    PQexitPipelineMode(c->pg) != 1)
		return false;
	c->raw = ev;
	c->dirty = !c->guest;
	fpg_conn_raw_watch(c, EPOLLIN);
	return true;
}

void fpg_conn_raw_watch(struct fpg_conn *c, uint32_t events)
{
	set_events(c, events);
}

void fpg_conn_raw_end(struct fpg_conn *c)
{
	c->raw = NULL;
	if (c->state != FPG_CONN_READY)
		return;
	if (PQenterPipelineMode(c->pg) != 1) {
		fpg_conn_fail(c, "cannot enter pipeline mode after COPY");
		return;
	}
	c->want_write = false;
	update_events(c);
}

bool fpg_conn_shareable(const struct fpg_conn *c)
{
	return shareable(c);
}

bool fpg_conn_out_of_tx(const struct fpg_conn *c)
{
	return PQtransactionStatus(c->pg) == PQTRANS_IDLE;
}

bool fpg_conn_idle(const struct fpg_conn *c)
{
	return c->inflight == 0 && !c->cancel_pending;
}

/*
 * The settings are startup options (see conn_start); the setup runs the
 * reset once, so that a session that cannot be reset never serves.
 */
static void start_setup(struct fpg_conn *c)
{
	PGconn *pg = c->pg;
	c->stmts = c->pool->d.stmts_new(c->pool, c);
	const char *su = PQparameterStatus(pg, "is_superuser");
	c->superuser = su && strcmp(su, "on") == 0;
	if (!c->stmts || PQsetnonblocking(pg, 1) || !PQenterPipelineMode(pg) ||
	    !send_reset_prepare(c) || !send_reset(c)) {
		connect_failed(c, c->stmts ? PQerrorMessage(pg)
					   : "out of memory");
		return;
	}
	c->state = FPG_CONN_SETUP;
	c->setup_failed = false;
	fpg_conn_push_op(c, setup_result, setup_done, c, -1, 0);
}

static void connect_poll(struct fpg_conn *c)
{
	switch (PQconnectPoll(c->pg)) {
	case PGRES_POLLING_READING:
		track_socket(c, EPOLLIN);
		break;
	case PGRES_POLLING_WRITING:
		track_socket(c, EPOLLOUT);
		break;
	case PGRES_POLLING_OK:
		track_socket(c, EPOLLIN);
		start_setup(c);
		break;
	case PGRES_POLLING_FAILED:
	case PGRES_POLLING_ACTIVE:
	default:
		connect_failed(c, PQerrorMessage(c->pg));
		break;
	}
}

static void conn_event(struct fpg_evsrc *src, uint32_t events)
{
	struct fpg_conn *c = (struct fpg_conn *)src;
	if (c->state == FPG_CONN_CONNECTING) {
		connect_poll(c);
		return;
	}
	if (c->state != FPG_CONN_READY && c->state != FPG_CONN_SETUP)
		return;
	if (c->raw) {
		c->raw->on_event(c->raw, events);
		return;
	}
	if (events & EPOLLOUT) {
		int f = PQflush(c->pg);
		if (f < 0) {
			fpg_conn_fail(c, PQerrorMessage(c->pg));
			return;
		}
		if (f == 0) {
			c->want_write = false;
			update_events(c);
		}
	}
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		conn_read(c);
}

/*
 * The session settings the encoder relies on, as startup options: RESET
 * ALL (see send_reset) goes back to them. Options of the conninfo come
 * first, so that ours win.
 */
static void startup_options(const struct fpg_pool *pool, char *out,
			    size_t size)
{
	const char *user = NULL;
	PQconninfoOption *info =
		PQconninfoParse(pool->opts->db ? pool->opts->db : "", NULL);
	for (PQconninfoOption *o = info; o && o->keyword; o++)
		if (strcmp(o->keyword, "options") == 0 && o->val)
			user = o->val;
	snprintf(out, size,
		 "%s%s-c DateStyle=ISO,MDY -c IntervalStyle=postgres"
		 " -c bytea_output=hex -c statement_timeout=%u",
		 user ? user : "", user ? " " : "",
		 pool->opts->statement_timeout_ms);
	PQconninfoFree(info);
}

static void conn_start(struct fpg_conn *c)
{
	struct fpg_pool *pool = c->pool;
	char options[1024];
	startup_options(pool, options, sizeof(options));
	const char *keys[] = {"dbname", "client_encoding",
			      "fallback_application_name", "options", NULL};
	const char *vals[] = {pool->opts->db ? pool->opts->db : "",
			      "UTF8", "fasterpg", options, NULL};
	static _Atomic uint64_t next_id = 1;
	c->id = atomic_fetch_add(&next_id, 1);
	c->pg = PQconnectStartParams(keys, vals, 1);
	c->connect_started_ms = pool->d.loop->now_ms;
	c->state = FPG_CONN_CONNECTING;
	c->fd = -1;
	if (!c->pg || PQstatus(c->pg) == CONNECTION_BAD) {
		connect_failed(c, c->pg ? PQerrorMessage(c->pg)
					: "out of memory");
		return;
	}
	/* As if PQconnectPoll had asked to wait for writability. */
	track_socket(c, EPOLLOUT);
	update_gauges(pool);
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
			conn_start(pool->conns[i]);
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
	wt->prev = pool->wait_tail;
	wt->next = NULL;
	if (pool->wait_tail)
		pool->wait_tail->next = wt;
	else
		pool->wait_head = wt;
	pool->wait_tail = wt;
	wt->queued = true;
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

void fpg_conn_pause(struct fpg_conn *c, bool pause)
{
	if (c->paused == pause || c->state != FPG_CONN_READY)
		return;
	c->paused = pause;
	update_events(c);
	/* libpq may already hold whole results: no socket event would come. */
	if (!pause)
		drain(c);
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
	for (struct fpg_conn *g = pool->guests; g && !c; g = g->guest_next)
		if (g->id == conn_id)
			c = g;
	if (!c || !c->cancel_pending)
		return;
	c->cancel_pending = false;
	if (c->guest && c->inflight == 0)
		c->on_idle(c, c->idle_ctx);
	else if (!c->guest)
		serve_waiters(pool);
}

/* ---- guests ---- */

static struct fpg_conn *conn_new(struct fpg_pool *pool)
{
	struct fpg_conn *c = calloc(1, sizeof(*c));
	if (c) {
		c->ev.on_event = conn_event;
		c->pool = pool;
		c->stmts_free = pool->d.stmts_free;
		c->fd = -1;
	}
	return c;
}

struct fpg_conn *fpg_conn_detach(struct fpg_conn *c, struct fpg_error *err)
{
	struct fpg_pool *pool = c->pool;
	struct fpg_conn *fresh = conn_new(pool);
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
	c->guest_next = pool->guests;
	pool->guests = c;
	update_gauges(pool);
	return c;
}

void fpg_conn_set_idle(struct fpg_conn *c,
		       void (*on_idle)(struct fpg_conn *c, void *ctx),
		       void *ctx)
{
	c->on_idle = on_idle;
	c->idle_ctx = ctx;
}

void fpg_conn_guest_leave(struct fpg_conn *c)
{
	struct fpg_pool *pool = c->pool;
	struct fpg_conn **pp = &pool->guests;
	while (*pp && *pp != c)
		pp = &(*pp)->guest_next;
	if (*pp)
		*pp = c->guest_next;
	c->guest_next = NULL;
	uncork(c);
	if (c->fd >= 0)
		fpg_loop_unwatch(pool->d.loop, c->fd);
	c->events = 0;
	c->pool = NULL;
}

void fpg_conn_guest_enter(struct fpg_conn *c, struct fpg_pool *pool)
{
	c->pool = pool;
	c->guest_next = pool->guests;
	pool->guests = c;
	c->events = 0;
	c->paused = false;
	if (c->fd >= 0)
		update_events(c);
	/* It may have come with results libpq already read. */
	drain(c);
}

bool fpg_conn_alive(const struct fpg_conn *c)
{
	return c->state == FPG_CONN_READY;
}

void fpg_pool_adopt(struct fpg_pool *pool, struct fpg_conn *c)
{
	pool->lent--;
	c->guest = false;
	c->dirty = false;
	c->on_idle = NULL;
	c->pool = pool;
	c->paused = c->held = false;
	for (unsigned i = 0; c->state == FPG_CONN_READY && i < pool->nconns;
	     i++) {
		struct fpg_conn *slot = pool->conns[i];
		if (slot->state != FPG_CONN_DOWN)
			continue;
		free(slot);
		pool->conns[i] = c;
		if (c->fd >= 0) {
			c->events = 0;
			update_events(c);
		}
		update_gauges(pool);
		serve_waiters(pool);
		return;
	}
	/* Broken, or the pool has filled its slots meanwhile. */
	conn_close(c);
	free(c);
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
			struct fpg_pool *here)
{
	if (home == here) {
		fpg_pool_adopt(home, c);
		return;
	}
	c->home = home;
	c->home_msg.handle = arrive_home;
	fpg_loop_post(home->d.loop, &c->home_msg);
}

void fpg_conn_free(struct fpg_conn *c)
{
	if (!c)
		return;
	fail_ops(c, "closed");
	conn_close(c);
	free(c);
}

void fpg_pool_tick(struct fpg_pool *pool)
{
	uint64_t now = pool->d.loop->now_ms;
	for (unsigned i = 0; i < pool->nconns; i++) {
		struct fpg_conn *c = pool->conns[i];
		if ((c->state == FPG_CONN_CONNECTING ||
		     c->state == FPG_CONN_SETUP) &&
		    now - c->connect_started_ms > CONNECT_TIMEOUT_MS)
			connect_failed(c, "timed out connecting");
	}
	unsigned want = pool->opts->pool_min;
	if (pool->nwaiting && want < pool->nconns)
		want = pool->nconns;
	maybe_grow(pool, want);
	if (pool->wait_head) {
		struct fpg_error err;
		fpg_error_set(&err, FPG_ERR_UNAVAILABLE, 503,
			      "timed out waiting for a PostgreSQL connection");
		fail_waiters(pool, &err, true);
	}
}

const struct fpg_pool_deps *fpg_pool_deps(const struct fpg_pool *pool)
{
	return &pool->d;
}

struct fpg_pool *fpg_pool_new(const struct fpg_pool_deps *deps,
			      struct fpg_error *err)
{
	struct fpg_pool *pool = calloc(1, sizeof(*pool));
	if (!pool)
		goto nomem;
	pool->d = *deps;
	pool->opts = deps->opts;
	pool->nconns = deps->opts->pool_max;
	pool->conns = calloc(pool->nconns, sizeof(*pool->conns));
	if (!pool->conns)
		goto nomem;
	for (unsigned i = 0; i < pool->nconns; i++)
		if (!(pool->conns[i] = conn_new(pool)))
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
	for (unsigned i = 0; pool->conns && i < pool->nconns; i++) {
		struct fpg_conn *c = pool->conns[i];
		if (!c)
			continue;
		fpg_log_debug("pool", NULL, "closing connection (%s)",
			      conn_state_to_str(c->state));
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
		fail_ops(c, "server shutting down");
		conn_close(c);
		free(c);
		pool->conns[i] = NULL;
	}
	/* Guests running here when the server stopped: closing them rolls
	 * their transactions back. */
	while (pool->guests) {
		struct fpg_conn *g = pool->guests;
		pool->guests = g->guest_next;
		fail_ops(g, "server shutting down");
		conn_close(g);
		free(g);
	}
	free(pool->conns);
	free(pool);
}
