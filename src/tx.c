#include "tx.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <libpq-fe.h>

#include "error.h"
#include "guard.h"
#include "log.h"
#include "loop.h"
#include "pool.h"
#include "stats.h"

enum tx_state {
	TX_FREE,     /* never used */
	TX_STARTING, /* BEGIN under way (home worker) */
	TX_IDLE,     /* parked between statements: anyone may take it */
	TX_BUSY,     /* a worker runs a statement on it */
	TX_ENDING,   /* COMMIT/ROLLBACK under way */
	TX_ENDED,    /* over; the token answers 410 until the slot is reused */
};

/* The states a session may come from into each state. */
static const unsigned state_from[] = {
	[TX_FREE] = 0,
	[TX_STARTING] = 1u << TX_FREE | 1u << TX_ENDED,
	[TX_IDLE] = 1u << TX_STARTING | 1u << TX_BUSY,
	[TX_BUSY] = 1u << TX_IDLE,
	[TX_ENDING] = 1u << TX_STARTING | 1u << TX_IDLE | 1u << TX_BUSY,
	[TX_ENDED] = 1u << TX_STARTING | 1u << TX_IDLE | 1u << TX_BUSY |
		     1u << TX_ENDING,
};

enum tx_step {
	STEP_BEGIN,
	STEP_STATEMENT,
	STEP_FINISH,
};

struct fpg_tx {
	/* Guarded by the table's lock. */
	enum tx_state state;
	uint32_t gen;
	unsigned char secret[16];
	char login[64];		       /* its login's user ("": --db's) */
	enum fpg_tx_end end;
	uint64_t idle_deadline_ms;
	uint64_t life_deadline_ms;
	uint64_t ended_ms;

	/* Fixed for the slot. */
	struct fpg_tx_table *table;
	unsigned slot;

	/* The holder's: the runner while busy, the home worker otherwise. */
	struct fpg_tx_table *home;
	struct fpg_tx_table *runner;
	struct fpg_pool *pool;	       /* the home pool it was lent by */
	struct fpg_conn *conn;
	unsigned idle_timeout_ms;
	struct fpg_tx_options opts;
	struct fpg_pool_waiter waiter; /* BEGIN's connection */
	enum tx_step step;
	bool commit;		       /* STEP_FINISH: COMMIT, not ROLLBACK */
	enum fpg_tx_end finish_end;    /* what the finish step ends with */
	bool step_failed;
	bool step_answered;	       /* STEP_FINISH: COMMIT or ROLLBACK
					  came back (the outcome is known) */
	bool orphan;		       /* BEGIN's caller left */
	struct fpg_error step_err;
	fpg_tx_done_fn done;
	void *done_ctx;
};

/*
 * Every worker's table, so that any worker finds a session by its token.
 * Filled before the workers start, read-only after.
 */
struct fpg_tx_registry {
	atomic_uint open; /* sessions open in the whole server */
	unsigned max;	  /* --max-transactions */
	unsigned ntables;
	struct fpg_tx_table *tables[];
};

/* One worker's sessions: the ones it began (their home). */
struct fpg_tx_table {
	pthread_mutex_t lock;
	struct fpg_tx_registry *reg;
	struct fpg_tx_deps d;
	unsigned nslots;
	struct fpg_tx slots[];
};


/* Under the table's lock. */
static void set_state(struct fpg_tx *tx, enum tx_state to)
{
	FPG_ASSERT(state_from[to] & (1u << tx->state));
	tx->state = to;
}

static const char *const end_names[] = {
	[FPG_TX_OPEN] = "open",
	[FPG_TX_COMMITTED] = "committed",
	[FPG_TX_ROLLED_BACK] = "rolled back",
	[FPG_TX_COMMIT_FAILED] = "commit failed (rolled back)",
	[FPG_TX_IDLE_TIMEOUT] = "idle timeout (rolled back)",
	[FPG_TX_LIFETIME] = "maximum lifetime reached (rolled back)",
	[FPG_TX_CONN_LOST] = "connection to PostgreSQL lost (rolled back)",
	[FPG_TX_COMMIT_UNKNOWN] =
		"connection lost before COMMIT came back (outcome unknown)",
	[FPG_TX_BEGIN_FAILED] = "BEGIN failed",
	[FPG_TX_SHUTDOWN] = "server shutdown (rolled back)",
	[FPG_TX_ENDED_BY_STATEMENT] = "a statement ended the transaction",
};

const char *fpg_tx_end_to_str(enum fpg_tx_end end)
{
	return (unsigned)end < sizeof(end_names) / sizeof(end_names[0])
		       ? end_names[end]
		       : "unknown";
}

struct fpg_tx_registry *fpg_tx_registry_new(unsigned ntables, unsigned max,
					    struct fpg_error *err)
{
	struct fpg_tx_registry *reg =
		calloc(1, sizeof(*reg) + sizeof(reg->tables[0]) * ntables);
	if (!reg) {
		fpg_error_set(err, FPG_ERR_NOMEM, 0, "out of memory");
		return NULL;
	}
	reg->ntables = ntables;
	reg->max = max;
	return reg;
}

void fpg_tx_registry_free(struct fpg_tx_registry *reg)
{
	free(reg);
}

unsigned fpg_tx_open_count(struct fpg_tx_registry *reg)
{
	return atomic_load(&reg->open);
}

struct fpg_tx_table *fpg_tx_table_new(struct fpg_tx_registry *reg,
				      const struct fpg_tx_deps *deps,
				      unsigned slots, struct fpg_error *err)
{
	if (deps->index >= reg->ntables || reg->tables[deps->index]) {
		fpg_error_set(err, FPG_ERR_SYSTEM, 0, "bad worker index");
		return NULL;
	}
	struct fpg_tx_table *t =
		calloc(1, sizeof(*t) + sizeof(struct fpg_tx) * slots);
	if (!t) {
		fpg_error_set(err, FPG_ERR_NOMEM, 0, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&t->lock, NULL);
	t->reg = reg;
	t->d = *deps;
	t->nslots = slots;
	for (unsigned i = 0; i < slots; i++) {
		t->slots[i].table = t;
		t->slots[i].slot = i;
	}
	reg->tables[deps->index] = t;
	return t;
}

void fpg_tx_table_free(struct fpg_tx_table *t)
{
	if (!t)
		return;
	/* Parked connections belong to no pool: closing them rolls back.
	 * The others are guests of a pool, which closes them. */
	for (unsigned i = 0; i < t->nslots; i++)
		if (t->slots[i].state == TX_IDLE)
			fpg_conn_free(t->slots[i].conn);
	t->reg->tables[t->d.index] = NULL;
	pthread_mutex_destroy(&t->lock);
	free(t);
}

/* ---- tokens ---- */

static const char hexdig[] = "0123456789abcdef";

static void put_hex(char *out, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hexdig[p[i] >> 4];
		out[2 * i + 1] = hexdig[p[i] & 15];
	}
}

void fpg_tx_token(const struct fpg_tx *tx, char *out)
{
	unsigned char raw[23];
	raw[0] = (unsigned char)tx->home->d.index;
	raw[1] = (unsigned char)(tx->slot >> 8);
	raw[2] = (unsigned char)tx->slot;
	for (int i = 0; i < 4; i++)
		raw[3 + i] = (unsigned char)(tx->gen >> (24 - 8 * i));
	memcpy(raw + 7, tx->secret, 16);
	put_hex(out, raw, sizeof(raw));
	out[FPG_TX_TOKEN_LEN] = '\0';
}

static bool parse_token(const char *s, unsigned char raw[23])
{
	if (strlen(s) != FPG_TX_TOKEN_LEN)
		return false;
	for (int i = 0; i < 23; i++) {
		const char *h = strchr(hexdig, s[2 * i]);
		const char *l = strchr(hexdig, s[2 * i + 1]);
		if (!h || !l || !*h || !*l)
			return false;
		raw[i] = (unsigned char)(((h - hexdig) << 4) | (l - hexdig));
	}
	return true;
}

/* Constant time: how much of a secret matched must not show. */
unsigned fpg_tx_idle_timeout_ms(const struct fpg_tx *tx)
{
	return tx->idle_timeout_ms;
}

uint64_t fpg_tx_expires_in_ms(const struct fpg_tx *tx, uint64_t now_ms)
{
	return tx->life_deadline_ms > now_ms ? tx->life_deadline_ms - now_ms
					     : 0;
}

/* ---- ending ---- */

static void count_end(struct fpg_tx_table *w, enum fpg_tx_end end)
{
	if (end == FPG_TX_COMMITTED)
		FPG_STAT_ADD(w->d.stats->tx_commits, 1);
	else if (end == FPG_TX_IDLE_TIMEOUT || end == FPG_TX_LIFETIME)
		FPG_STAT_ADD(w->d.stats->tx_expired, 1);
	else
		FPG_STAT_ADD(w->d.stats->tx_rollbacks, 1);
}

/*
 * The session is over: record why, and send the connection home (or
 * close it when it broke). Runs on the holder.
 */
static void end_session(struct fpg_tx *tx, struct fpg_tx_table *w,
			enum fpg_tx_end end)
{
	struct fpg_conn *c = tx->conn;
	tx->conn = NULL;
	pthread_mutex_lock(&tx->table->lock);
	set_state(tx, TX_ENDED);
	tx->end = end;
	tx->ended_ms = w->d.loop->now_ms;
	pthread_mutex_unlock(&tx->table->lock);
	atomic_fetch_sub(&w->reg->open, 1);
	count_end(w, end);
	if (!c)
		return;
	/* Home even when broken: the home pool counts what it lent. */
	fpg_conn_guest_leave(c);
	fpg_conn_send_home(c, tx->pool, w->d.loop);
}

/* ---- steps ---- */

static void step_result(struct fpg_pgop *op, PGresult *res)
{
	struct fpg_tx *tx = op->ctx;
	ExecStatusType st = PQresultStatus(res);
	if (tx->step_answered) {
		/* PostgreSQL commits before it says COMMIT: the session's
		 * end (57P01, say) right after changes nothing. */
	} else if (st == PGRES_FATAL_ERROR && !tx->step_failed) {
		tx->step_failed = true;
		fpg_error_from_pg(&tx->step_err, res);
	} else if (st == PGRES_COMMAND_OK && tx->step == STEP_FINISH) {
		tx->step_answered = true;
		if (tx->commit && !tx->step_failed &&
		    strcmp(PQcmdStatus(res), "ROLLBACK") == 0) {
			/* COMMIT of a transaction an error had aborted. */
			tx->step_failed = true;
			fpg_error_set(&tx->step_err, FPG_ERR_PG, 409,
				      "the transaction had failed and was "
				      "rolled back instead of committed");
			snprintf(tx->step_err.sqlstate,
				 sizeof(tx->step_err.sqlstate), "25P02");
		}
	}
	PQclear(res);
}

/* Starts a step: nothing of the one before carries over. */
static void step_start(struct fpg_tx *tx, enum tx_step step)
{
	tx->step = step;
	tx->step_failed = tx->step_answered = false;
}

/* The step failed with the connection, unless it failed before. */
static void step_lost(struct fpg_tx *tx)
{
	if (tx->step_failed)
		return;
	tx->step_failed = true;
	fpg_error_set(&tx->step_err, FPG_ERR_UNAVAILABLE, 503,
		      "connection to PostgreSQL lost");
}

static void step_done(struct fpg_pgop *op, const char *broken)
{
	struct fpg_tx *tx = op->ctx;
	if (broken && !tx->step_answered)
		step_lost(tx);
}

static void call_done(struct fpg_tx *tx, struct fpg_tx *arg,
		      const struct fpg_error *err)
{
	fpg_tx_done_fn done = tx->done;
	tx->done = NULL;
	if (done)
		done(tx->done_ctx, arg, err);
}

/* Puts the session back for anyone to take. */
static void park(struct fpg_tx *tx, struct fpg_tx_table *w)
{
	fpg_conn_guest_leave(tx->conn);
	pthread_mutex_lock(&tx->table->lock);
	set_state(tx, TX_IDLE);
	tx->runner = NULL;
	tx->idle_deadline_ms = w->d.loop->now_ms + tx->idle_timeout_ms;
	pthread_mutex_unlock(&tx->table->lock);
}

static void finish_as(struct fpg_tx *tx, bool commit, enum fpg_tx_end end,
		      fpg_tx_done_fn done, void *ctx);

/*
 * The session's connection has nothing left to do (or broke): the end of
 * a step. Runs on the worker running the connection.
 */
static void on_idle(struct fpg_conn *c, void *ctx)
{
	struct fpg_tx *tx = ctx;
	struct fpg_tx_table *w = tx->runner;
	bool alive = fpg_conn_alive(c);
	switch (tx->step) {
	case STEP_BEGIN:
		/* (It may have broken before the step was sent: no op.) */
		if (!alive)
			step_lost(tx);
		if (tx->step_failed) {
			struct fpg_error err = tx->step_err;
			end_session(tx, w, FPG_TX_BEGIN_FAILED);
			call_done(tx, NULL, &err);
			return;
		}
		if (tx->orphan) {
			fpg_tx_finish(tx, false, NULL, NULL);
			return;
		}
		park(tx, w);
		call_done(tx, tx, NULL);
		return;
	case STEP_STATEMENT:
		if (!alive) {
			end_session(tx, w, FPG_TX_CONN_LOST);
			return;
		}
		if (w->d.loop->now_ms >= tx->life_deadline_ms) {
			finish_as(tx, false, FPG_TX_LIFETIME, NULL, NULL);
			return;
		}
		/* Client SQL ended the transaction (COMMIT past the text
		 * check): what follows would not be inside it. */
		if (fpg_conn_out_of_tx(c)) {
			finish_as(tx, false, FPG_TX_ENDED_BY_STATEMENT, NULL,
				  NULL);
			return;
		}
		park(tx, w);
		return;
	case STEP_FINISH: {
		/* The connection may have broken before COMMIT was sent (no
		 * op), with PostgreSQL's error (57P01), or after COMMIT came
		 * back (in the DISCARD ALL behind it): then what it said
		 * stands. */
		bool broke = !tx->step_answered && (!alive || !tx->step_failed);
		if (broke)
			step_lost(tx);
		struct fpg_error err = tx->step_err;
		/* A ROLLBACK that lost its connection did roll back:
		 * PostgreSQL ends a transaction whose client is gone. */
		bool failed = tx->step_failed && (tx->commit || !broke);
		enum fpg_tx_end end = tx->finish_end;
		if (broke)
			end = tx->commit ? FPG_TX_COMMIT_UNKNOWN
					 : FPG_TX_CONN_LOST;
		else if (tx->commit && failed)
			end = FPG_TX_COMMIT_FAILED;
		end_session(tx, w, end);
		call_done(tx, tx, failed ? &err : NULL);
		return;
	}
	}
}

static const char *const isolation_sql[] = {
	[FPG_TX_READ_COMMITTED] = "READ COMMITTED",
	[FPG_TX_REPEATABLE_READ] = "REPEATABLE READ",
	[FPG_TX_SERIALIZABLE] = "SERIALIZABLE",
};

static void begin_on_conn(struct fpg_pool_waiter *wt, struct fpg_conn *held)
{
	struct fpg_tx *tx = FPG_CONTAINER_OF(wt, struct fpg_tx, waiter);
	struct fpg_error err;
	struct fpg_conn *c = fpg_conn_detach(held, &err);
	if (!c) {
		fpg_conn_release(held);
		end_session(tx, tx->home, FPG_TX_BEGIN_FAILED);
		call_done(tx, NULL, &err);
		return;
	}
	tx->conn = c;
	fpg_conn_set_idle(c, on_idle, tx);
	char sql[128], idle[16];
	snprintf(sql, sizeof(sql), "BEGIN ISOLATION LEVEL %s%s%s",
		 isolation_sql[tx->opts.isolation],
		 tx->opts.read_only || fpg_pool_env(tx->pool)->read_only
			 ? " READ ONLY"
			 : " READ WRITE",
		 tx->opts.deferrable ? " DEFERRABLE" : "");
	/* PostgreSQL's own backstop if we ever lose track of the session. */
	snprintf(idle, sizeof(idle), "%u", tx->idle_timeout_ms + 10000);
	const char *v[1] = {idle};
	PGconn *pg = fpg_conn_pg(c);
	if (!PQsendQueryParams(pg, sql, 0, NULL, NULL, NULL, NULL, 0) ||
	    !PQsendQueryParams(pg,
			       "SELECT pg_catalog.set_config("
			       "'idle_in_transaction_session_timeout', "
			       "$1::pg_catalog.text, true)",
			       1, NULL, v, NULL, NULL, 0)) {
		fpg_conn_fail(c, PQerrorMessage(pg));
		return; /* on_idle hears of it when the pool reaps it */
	}
	fpg_conn_push_op(c, step_result, step_done, tx, -1, 0);
}

static void begin_fail(struct fpg_pool_waiter *wt, const struct fpg_error *err)
{
	struct fpg_tx *tx = FPG_CONTAINER_OF(wt, struct fpg_tx, waiter);
	end_session(tx, tx->home, FPG_TX_BEGIN_FAILED);
	call_done(tx, NULL, err);
}

/* A slot never used, or the one that ended longest ago. */
static struct fpg_tx *claim_slot(struct fpg_tx_table *t)
{
	struct fpg_tx *best = NULL;
	for (unsigned i = 0; i < t->nslots; i++) {
		struct fpg_tx *tx = &t->slots[i];
		if (tx->state == TX_FREE)
			return tx;
		if (tx->state == TX_ENDED &&
		    (!best || tx->ended_ms < best->ended_ms))
			best = tx;
	}
	return best;
}

struct fpg_tx *fpg_tx_begin(struct fpg_tx_table *w, struct fpg_pool *pool,
			    const struct fpg_tx_options *opts,
			    fpg_tx_done_fn done, void *ctx,
			    struct fpg_error *err)
{
	atomic_uint *open = &w->reg->open;
	if (atomic_fetch_add(open, 1) >= w->reg->max) {
		atomic_fetch_sub(open, 1);
		fpg_error_set(err, FPG_ERR_LIMIT, 503,
			      "too many open transactions (max-transactions "
			      "is %u)",
			      w->reg->max);
		return NULL;
	}
	struct fpg_tx_table *t = w;
	unsigned char secret[16];
	if (getrandom(secret, sizeof(secret), 0) != sizeof(secret)) {
		atomic_fetch_sub(open, 1);
		fpg_error_set(err, FPG_ERR_SYSTEM, 503,
			      "no randomness for a token");
		return NULL;
	}
	pthread_mutex_lock(&t->lock);
	struct fpg_tx *tx = claim_slot(t);
	if (tx) {
		set_state(tx, TX_STARTING);
		tx->gen++;
		tx->end = FPG_TX_OPEN;
		memcpy(tx->secret, secret, sizeof(secret));
		snprintf(tx->login, sizeof(tx->login), "%s",
			 fpg_pool_login(pool));
		tx->life_deadline_ms = w->d.loop->now_ms + w->d.opts->tx_max_lifetime_ms;
	}
	pthread_mutex_unlock(&t->lock);
	if (!tx) {
		atomic_fetch_sub(open, 1);
		fpg_error_set(err, FPG_ERR_LIMIT, 503,
			      "this worker's transaction table is full");
		return NULL;
	}
	tx->home = tx->runner = w;
	tx->pool = pool;
	tx->conn = NULL;
	tx->opts = *opts;
	tx->idle_timeout_ms = opts->idle_timeout_ms;
	step_start(tx, STEP_BEGIN);
	tx->orphan = false;
	tx->done = done;
	tx->done_ctx = ctx;
	memset(&tx->waiter, 0, sizeof(tx->waiter));
	tx->waiter.exclusive = true;
	tx->waiter.lend = true;
	tx->waiter.ready = begin_on_conn;
	tx->waiter.fail = begin_fail;
	tx->waiter.deadline_ms = w->d.loop->now_ms + w->d.opts->acquire_timeout_ms;
	fpg_pool_acquire(pool, &tx->waiter);
	return tx;
}

void fpg_tx_abandon(struct fpg_tx *tx)
{
	tx->done = NULL;
	if (tx->step == STEP_BEGIN)
		tx->orphan = true;
}

struct fpg_conn *fpg_tx_take(struct fpg_tx_table *w, struct fpg_pool *caller,
			     const char *token, struct fpg_tx **txp,
			     struct fpg_error *err)
{
	unsigned char raw[23];
	unsigned home = 0, slot = 0;
	uint32_t gen = 0;
	if (parse_token(token, raw)) {
		home = raw[0];
		slot = (unsigned)raw[1] << 8 | raw[2];
		gen = (uint32_t)raw[3] << 24 | (uint32_t)raw[4] << 16 |
		      (uint32_t)raw[5] << 8 | raw[6];
	}
	struct fpg_tx_table *ht =
		home < w->reg->ntables ? w->reg->tables[home] : NULL;
	if (!ht || slot >= ht->nslots)
		goto unknown;
	struct fpg_tx *tx = &ht->slots[slot];
	pthread_mutex_lock(&tx->table->lock);
	/* Another login's session is as unknown as one that never was. */
	if (tx->gen != gen || tx->state == TX_FREE ||
	    !fpg_guard_same_secret(tx->secret, sizeof(tx->secret), raw + 7,
				   sizeof(tx->secret)) ||
	    strcmp(tx->login, fpg_pool_login(caller)) != 0) {
		pthread_mutex_unlock(&tx->table->lock);
		goto unknown;
	}
	enum tx_state st = tx->state;
	enum fpg_tx_end end = tx->end;
	pthread_mutex_unlock(&tx->table->lock);
	if (st == TX_ENDED || st == TX_ENDING) {
		fpg_error_set(err, FPG_ERR_REQUEST, 410,
			      st == TX_ENDED ? "the transaction has ended: %s"
					     : "the transaction is ending: %s",
			      fpg_tx_end_to_str(end));
		err->reason = "transaction_ended";
		return NULL;
	}
	struct fpg_conn *c = st == TX_IDLE ? fpg_tx_claim(w, tx) : NULL;
	if (!c) {
		fpg_error_set(err, FPG_ERR_REQUEST, 409,
			      "the transaction is busy with another request");
		err->reason = "transaction_busy";
		return NULL;
	}
	*txp = tx;
	return c;
unknown:
	fpg_error_set(err, FPG_ERR_REQUEST, 404, "unknown transaction token");
	err->reason = "transaction_not_found";
	return NULL;
}

struct fpg_conn *fpg_tx_claim(struct fpg_tx_table *w, struct fpg_tx *tx)
{
	pthread_mutex_lock(&tx->table->lock);
	bool idle = tx->state == TX_IDLE;
	if (idle) {
		set_state(tx, TX_BUSY);
		tx->runner = w;
	}
	pthread_mutex_unlock(&tx->table->lock);
	if (!idle)
		return NULL;
	step_start(tx, STEP_STATEMENT);
	fpg_conn_guest_enter(tx->conn, w->d.pool);
	return tx->conn;
}

void fpg_tx_release_if_idle(struct fpg_tx *tx)
{
	if (fpg_conn_idle(tx->conn))
		on_idle(tx->conn, tx);
}

/* Ends the session with COMMIT or ROLLBACK; end is the reason to give. */
static void finish_as(struct fpg_tx *tx, bool commit, enum fpg_tx_end end,
		      fpg_tx_done_fn done, void *ctx)
{
	pthread_mutex_lock(&tx->table->lock);
	set_state(tx, TX_ENDING);
	tx->end = end; /* what a request meanwhile is told */
	pthread_mutex_unlock(&tx->table->lock);
	step_start(tx, STEP_FINISH);
	tx->commit = commit;
	tx->finish_end = end;
	tx->done = done;
	tx->done_ctx = ctx;
	PGconn *pg = fpg_conn_pg(tx->conn);
	if (!PQsendQueryParams(pg, commit ? "COMMIT" : "ROLLBACK", 0, NULL,
			       NULL, NULL, NULL, 0)) {
		fpg_conn_fail(tx->conn, PQerrorMessage(pg));
		return;
	}
	if (fpg_conn_push_op(tx->conn, step_result, step_done, tx, -1, 0))
		/* Whatever the session left behind stays out of the pool. */
		fpg_conn_push_discard(tx->conn);
}

void fpg_tx_finish(struct fpg_tx *tx, bool commit, fpg_tx_done_fn done,
		   void *ctx)
{
	finish_as(tx, commit, commit ? FPG_TX_COMMITTED : FPG_TX_ROLLED_BACK,
		  done, ctx);
}

void fpg_tx_tick(struct fpg_tx_table *w)
{
	struct fpg_tx_table *t = w;
	/* The common case costs one load, not a lock per slot. */
	if (atomic_load_explicit(&w->reg->open, memory_order_relaxed) == 0)
		return;
	for (unsigned i = 0; i < t->nslots; i++) {
		struct fpg_tx *tx = &t->slots[i];
		enum fpg_tx_end why = FPG_TX_OPEN;
		pthread_mutex_lock(&t->lock);
		if (tx->state == TX_IDLE) {
			if (w->d.loop->now_ms >= tx->life_deadline_ms)
				why = FPG_TX_LIFETIME;
			else if (w->d.loop->now_ms >= tx->idle_deadline_ms)
				why = FPG_TX_IDLE_TIMEOUT;
			if (why != FPG_TX_OPEN) {
				set_state(tx, TX_BUSY);
				tx->runner = w;
			}
		}
		pthread_mutex_unlock(&t->lock);
		if (why == FPG_TX_OPEN)
			continue;
		fpg_conn_guest_enter(tx->conn, w->d.pool);
		finish_as(tx, false, why, NULL, NULL);
	}
}

struct fpg_conn *fpg_tx_take_prefix(struct fpg_tx_table *w,
				    struct fpg_pool *caller, const char *s,
				    struct fpg_tx **txp, struct fpg_error *err)
{
	char token[FPG_TX_TOKEN_LEN + 1];
	size_t n = strcspn(s, "/");
	if (n != FPG_TX_TOKEN_LEN) {
		fpg_error_set(err, FPG_ERR_REQUEST, 404,
			      "unknown transaction token");
		err->reason = "transaction_not_found";
		return NULL;
	}
	memcpy(token, s, n);
	token[n] = '\0';
	return fpg_tx_take(w, caller, token, txp, err);
}
