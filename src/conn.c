#include "conn.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "error.h"
#include "log.h"
#include "loop.h"
#include "random.h"
#include "startup.h"
#include "stats.h"

/* The states a connection may come from into each state. */
static const unsigned state_from[] = {
	[FPG_CONN_DOWN] = ~0u,
	[FPG_CONN_CONNECTING] = 1u << FPG_CONN_DOWN,
	[FPG_CONN_SETUP] = 1u << FPG_CONN_CONNECTING,
	[FPG_CONN_READY] = 1u << FPG_CONN_SETUP,
	[FPG_CONN_BROKEN] = 1u << FPG_CONN_READY,
};

static void set_state(struct fpg_conn *c, enum fpg_conn_state to)
{
	FPG_ASSERT(state_from[to] & (1u << c->state));
	c->state = to;
	/* Deferred work waiting for its ops learns of it this turn. */
	if (c->deferred)
		c->on->end_turn(c);
}

const char *fpg_conn_state_to_str(enum fpg_conn_state s)
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

static void set_events(struct fpg_conn *c, uint32_t events)
{
	if (c->events == events || c->fd < 0)
		return;
	if (fpg_loop_rewatch(c->env->loop, c->fd, events, &c->ev))
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
	if (fd >= 0 && fpg_loop_rewatch(c->env->loop, fd, events, &c->ev))
		c->events = events;
}

/* Usable for new work at all: open, and not reserved by one request. */
bool fpg_conn_shareable(const struct fpg_conn *c)
{
	return c->state == FPG_CONN_READY && !c->held && !c->cancel_pending &&
	       !c->tainted && !c->barriers;
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
	if (c->fd >= 0 && c->env)
		fpg_loop_unwatch(c->env->loop, c->fd);
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
	set_state(c, FPG_CONN_DOWN);
}

void fpg_conn_close(struct fpg_conn *c, const char *why)
{
	fail_ops(c, why);
	FPG_ASSERT(!c->head && !c->tail && c->inflight == 0 &&
		   c->barriers == 0);
	conn_close(c);
}


/* A connect or setup attempt failed: the owner decides what next. */
static void connect_failed(struct fpg_conn *c, const char *why)
{
	char reason[256];
	fpg_error_tidy(reason, sizeof(reason), why);
	bool refused = c->state == FPG_CONN_CONNECTING && fpg_startup_refused(why);
	fpg_conn_close(c, why);
	c->on->connect_failed(c, reason, refused);
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
	set_state(c, FPG_CONN_BROKEN);
	c->on->broken(c);
	c->paused = true;
	c->want_write = false;
	update_events(c);
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
	c->on->end_turn(c);
}

void fpg_conn_defer(struct fpg_conn *c, struct fpg_conn_deferred *d)
{
	FPG_ASSERT(!c->deferred);
	c->deferred = d;
	c->on->end_turn(c);
}

struct fpg_conn_deferred *fpg_conn_deferred_of(const struct fpg_conn *c)
{
	return c->deferred;
}

void fpg_conn_run_deferred(struct fpg_conn *c)
{
	struct fpg_conn_deferred *d = c->deferred;
	c->deferred = NULL;
	if (d)
		d->run(c, d);
}

void fpg_conn_deferred_leave(struct fpg_conn *c)
{
	struct fpg_conn_deferred *d = c->deferred;
	c->deferred = NULL;
	if (d)
		d->leave(c, d);
}

void fpg_conn_end_turn(struct fpg_conn *c)
{
	int zero = 0;
	if (c->inflight == 0 || !fpg_conn_shareable(c))
		fpg_conn_run_deferred(c);
	if (!c->corked)
		return;
	c->corked = false;
	if (c->fd >= 0)
		(void)setsockopt(c->fd, IPPROTO_TCP, TCP_CORK, &zero,
				 sizeof(zero));
}

/* ---- resetting the session ---- */

/*
 * The reset segment (see fpg_conn_push_op), prepared once per connection
 * (parsing them with every statement cost PostgreSQL about twice as
 * much). Client SQL can deallocate a prepared statement and prepare
 * another under its name, but only a plannable one (SELECT, INSERT, ...),
 * whose command tag differs from every tag below: each result's tag is
 * checked, and a session whose reset did not run as sent is replaced.
 * The last one releases session advisory locks, reports LISTEN
 * registrations (harmless to the next op, which never reads
 * notifications, but they would pile up in libpq: such a session is
 * replaced) and seeds random() anew from our CSPRNG: no reset undoes a
 * setseed(), which would make the next request's random() values known
 * to whoever chose the seed. RESET ALL goes back to the startup options,
 * which carry the pool's settings.
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
	 " EXISTS (SELECT FROM pg_catalog.pg_listening_channels()),"
	 " pg_catalog.setseed($1::pg_catalog.float8)",
	 "SELECT 1"},
	/* only a superuser login can change it: last, sent for those only */
	{"fpg_reset_auth", "RESET SESSION AUTHORIZATION", "RESET"},
};
#define RESET_LOCKS 5 /* the index of fpg_reset_locks */
/* Those of them that undo what one statement leaves to the next inside
 * one transaction (fpg_conn_send_settings_reset): settings, cursors a
 * function opened, the role. */
static const size_t settings_reset[] = {0, 3, 4, 6};

/*
 * Without a statement cache (--statement-cache=0) no prepared statement
 * outlives its request: the pool's statements are all unnamed (parsed
 * with every run), and the reset is this one statement, which also drops
 * whatever client SQL prepared, even inside a function. It does all the
 * above (and UNLISTEN *) for about what one of them costs, but it would
 * drop a statement cache too. It leaves random()'s seed, which is set
 * in a part of its own first (DISCARD ALL shares its Sync with nothing).
 */
static const char discard_sql[] = "DISCARD ALL";
static const char seed_sql[] = "SELECT pg_catalog.setseed($1::pg_catalog.float8)";

static bool cached(const struct fpg_conn *c)
{
	return c->env->opts->statement_cache != 0;
}

/* The statements of the reset after an op (fpg_conn_push_op). */
static size_t reset_count(const struct fpg_conn *c)
{
	size_t n = sizeof(reset_stmts) / sizeof(*reset_stmts);
	if (!cached(c))
		return 2; /* the seed, DISCARD ALL */
	return c->superuser ? n : n - 1;
}

/* A seed for setseed() in [-1, 1], as text, from our CSPRNG. */
static bool draw_seed(struct fpg_conn *c, char *out, size_t n)
{
	int64_t v;
	if (!fpg_random_draw(c->env->random, &v, sizeof(v)))
		return false;
	snprintf(out, n, "%.17g", (double)v / (double)INT64_MAX);
	return true;
}

/* Sends seed_sql (no Sync): where no prepared reset carries the seed. */
static bool send_seed(struct fpg_conn *c)
{
	char seed[32];
	const char *v[1] = {seed};
	return draw_seed(c, seed, sizeof(seed)) &&
	       PQsendQueryParams(c->pg, seed_sql, 1, NULL, v, NULL, NULL, 0);
}

/*
 * Sends the reset statements (no Sync): after an op (after; without the
 * statement cache the seed is then a part of its own, with its Sync), or
 * when the session is set up.
 */
static bool send_reset(struct fpg_conn *c, bool after)
{
	if (!cached(c))
		return (!after || (send_seed(c) && PQpipelineSync(c->pg))) &&
		       PQsendQueryParams(c->pg, discard_sql, 0, NULL, NULL,
					 NULL, NULL, 0);
	char seed[32];
	const char *v[1] = {seed};
	if (!draw_seed(c, seed, sizeof(seed)))
		return false;
	for (size_t i = 0; i < reset_count(c); i++) {
		bool locks = i == RESET_LOCKS;
		if (!PQsendQueryPrepared(c->pg, reset_stmts[i].name,
					 locks ? 1 : 0, locks ? v : NULL, NULL,
					 NULL, 0))
			return false;
	}
	return true;
}

int fpg_conn_send_settings_reset(struct fpg_conn *c)
{
	FPG_ASSERT(cached(c));
	int n = c->superuser ? 4 : 3;
	for (int i = 0; i < n; i++)
		if (!PQsendQueryPrepared(c->pg, reset_stmts[settings_reset[i]].name,
					 0, NULL, NULL, NULL, 0))
			return 0;
	return n;
}

bool fpg_conn_settings_reset_ok(PGresult *res)
{
	const char *tag = PQcmdStatus(res);
	return PQresultStatus(res) == PGRES_COMMAND_OK &&
	       (strcmp(tag, "RESET") == 0 ||
		strcmp(tag, "CLOSE CURSOR ALL") == 0);
}

/* Prepares the reset and the pool's session statements (after
 * connecting, or DISCARD ALL). */
static bool send_reset_prepare(struct fpg_conn *c)
{
	for (size_t i = 0; cached(c) && i < reset_count(c); i++)
		if (!PQsendPrepare(c->pg, reset_stmts[i].name,
				   reset_stmts[i].sql, 0, NULL))
			return false;
	for (size_t i = 0; cached(c) && i < c->env->nsession_stmts; i++)
		if (!PQsendPrepare(c->pg, c->env->session_stmts[i].name,
				   c->env->session_stmts[i].sql, 0, NULL))
			return false;
	return true;
}

/* The tag result i of the reset must have. */
static const char *reset_tag(const struct fpg_conn *c, size_t i)
{
	if (!cached(c))
		return i == 0 ? "SELECT 1" : discard_sql;
	return reset_stmts[i].tag;
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
	fpg_log_warn("conn", NULL, "worker %u: connection to be replaced: %s",
		     c->env->worker_id, why);
	FPG_STAT_ADD(c->env->stats->pool_sessions_replaced, 1);
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
		    PQnfields(res) == 3 && strcmp(PQgetvalue(res, 0, 1), "t") == 0)
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
		c->head_since_ms = c->env->loop->now_ms;
	}
	c->tail = op;
	if (c->inflight++ == 0)
		c->on->busy(c);
	cork(c);
	/* libpq 15's PQpipelineSync also flushes (one send per Sync). */
	bool sent = PQpipelineSync(c->pg) &&
		    (!op->resets || (send_reset(c, true) && PQpipelineSync(c->pg)));
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
	c->stmts = c->env->stmts_new(c->pool, c);
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
			op->single_row_query =
				op->next_single_row ? op->next_single_row(op) : -1;
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
		/* Without the statement cache the seed has a part of its
		 * own before DISCARD ALL. */
		if (op->in_reset && !cached(c) && op->reset_query == 1)
			continue;
		if (op->resets && !op->reset_failed &&
		    op->reset_query != (int)reset_count(c)) {
			op->reset_failed = true;
			fpg_conn_taint(c, "the session reset was cut short");
		}
		c->head = op->next;
		if (!c->head)
			c->tail = NULL;
		FPG_ASSERT(c->inflight > 0 && c->barriers >= (unsigned)op->barrier);
		c->inflight--;
		c->barriers -= op->barrier;
		FPG_ASSERT((c->head == NULL) == (c->inflight == 0));
		op->ran_ms = c->env->loop->now_ms - c->head_since_ms;
		c->head_since_ms = c->env->loop->now_ms;
		op->on_done(op, NULL);
		if (op->release)
			c->held = false;
		free(op);
		if (c->inflight == 0) {
			c->on->busy(c);
			if (c->deferred)
				c->on->end_turn(c);
		}
		if (!c->on->op_ended(c))
			return; /* failed, or gone to another loop */
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
		fpg_error_tidy(c->broken, sizeof(c->broken),
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
		connect_failed(c, c->broken);
		return;
	}
	set_state(c, FPG_CONN_READY);
	fpg_log_debug("conn", NULL, "worker %u: connection ready",
		      c->env->worker_id);
	c->on->ready(c);
	/* op_ended follows in drain() right after this returns */
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
	/* It dropped every prepared statement: forget ours. It left the
	 * seed of random() that the session chose. */
	forget_statements(c);
	if (!c->stmts)
		return;
	if (!send_reset_prepare(c) || !send_seed(c)) {
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
	c->dirty = true;
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
	c->stmts = c->env->stmts_new(c->pool, c);
	const char *su = PQparameterStatus(pg, "is_superuser");
	c->superuser = su && strcmp(su, "on") == 0;
	if (!c->stmts || PQsetnonblocking(pg, 1) || !PQenterPipelineMode(pg) ||
	    !send_reset_prepare(c) || !send_reset(c, false)) {
		connect_failed(c, c->stmts ? PQerrorMessage(pg)
					   : "out of memory");
		return;
	}
	set_state(c, FPG_CONN_SETUP);
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
	struct fpg_conn *c = FPG_CONTAINER_OF(src, struct fpg_conn, ev);
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


void fpg_conn_start(struct fpg_conn *c)
{
	const struct fpg_options *opts = c->env->opts;
	char options[1024];
	fpg_startup_options(opts, c->env->read_only,
			    c->env->statement_timeout_ms, options,
			    sizeof(options));
	/* A login's user and password come after dbname: they win over
	 * what the conninfo in it says. */
	const char *keys[] = {"dbname", "client_encoding",
			      "fallback_application_name", "options",
			      c->env->user ? "user" : NULL, "password", NULL};
	const char *vals[] = {opts->db ? opts->db : "",
			      "UTF8", "fasterpg", options, c->env->user,
			      c->env->password, NULL};
	static _Atomic uint64_t next_id = 1;
	c->id = atomic_fetch_add(&next_id, 1);
	c->pg = PQconnectStartParams(keys, vals, 1);
	c->connect_started_ms = c->env->loop->now_ms;
	set_state(c, FPG_CONN_CONNECTING);
	c->fd = -1;
	if (!c->pg || PQstatus(c->pg) == CONNECTION_BAD) {
		connect_failed(c, c->pg ? PQerrorMessage(c->pg)
					: "out of memory");
		return;
	}
	/* As if PQconnectPoll had asked to wait for writability. */
	track_socket(c, EPOLLOUT);
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

/* ---- guests ---- */

struct fpg_conn *fpg_conn_new(const struct fpg_conn_env *env,
			      const struct fpg_conn_events *on,
			      struct fpg_pool *owner)
{
	struct fpg_conn *c = calloc(1, sizeof(*c));
	if (c) {
		c->ev.on_event = conn_event;
		c->env = env;
		c->on = on;
		c->pool = owner;
		c->stmts_free = env->stmts_free;
		c->fd = -1;
	}
	return c;
}

void fpg_conn_set_idle(struct fpg_conn *c,
		       void (*on_idle)(struct fpg_conn *c, void *ctx),
		       void *ctx)
{
	c->on_idle = on_idle;
	c->idle_ctx = ctx;
}

bool fpg_conn_alive(const struct fpg_conn *c)
{
	return c->state == FPG_CONN_READY;
}

void fpg_conn_free(struct fpg_conn *c)
{
	if (!c)
		return;
	fpg_conn_close(c, "closed");
	/* Deferred work sees the connection closed and goes elsewhere. */
	fpg_conn_run_deferred(c);
	free(c);
}

void fpg_conn_park(struct fpg_conn *c)
{
	fpg_conn_run_deferred(c);
	fpg_conn_end_turn(c);
	if (c->fd >= 0)
		fpg_loop_unwatch(c->env->loop, c->fd);
	c->events = 0;
	c->env = NULL;
	c->pool = NULL;
}

void fpg_conn_move(struct fpg_conn *c, const struct fpg_conn_env *env,
		   struct fpg_pool *owner)
{
	c->env = env;
	c->pool = owner;
	c->events = 0;
	c->paused = false;
	if (c->fd >= 0)
		update_events(c);
	/* It may have come with results libpq already read. */
	drain(c);
}
