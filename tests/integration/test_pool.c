/*
 * pool and conn (src/pool.h, src/conn.h) against the harness's
 * PostgreSQL, without an HTTP server: the case's own thread runs a real
 * fpg_loop the way src/worker.c's run_once does (wait, reap, end the turn),
 * with the pool's tick, and waits for callbacks with a deadline. Ops are
 * sent with PQsendQueryParams and queued with fpg_conn_push_op.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "cancel.h"
#include "conn.h"
#include "it.h"
#include "loop.h"
#include "pg_harness.h"
#include "pool.h"
#include "query.h"
#include "random.h"
#include "stmt.h"
#include "stats.h"
#include "typecache.h"

#define TICK_MS 10
#define DEADLINE_MS 10000

struct fixture {
	struct fpg_loop loop;
	struct fpg_options opts;
	struct fpg_stats *stats;
	struct fpg_canceller *canceller;
	struct fpg_typecache *types;
	bool draining;
	struct fpg_random random;
	struct fpg_pool *pool;
};

static struct fixture fx;

static void on_tick(void *ctx)
{
	struct fixture *f = ctx;
	if (f->pool)
		fpg_pool_tick(f->pool);
}

static void pool_up(unsigned pool_max)
{
	struct fpg_error err = {0};
	memset(&fx, 0, sizeof(fx));
	fpg_options_init(&fx.opts);
	fx.opts.db = it_db();
	fx.opts.pool_min = 0;
	fx.opts.pool_max = pool_max;
	ck_assert_msg(fpg_loop_init(&fx.loop, TICK_MS, on_tick, &fx, &err),
		      "%s", err.message);
	fx.stats = calloc(1, sizeof(*fx.stats));
	fx.canceller = fpg_canceller_new(&err);
	fx.types = fpg_typecache_new();
	ck_assert(fx.stats && fx.canceller && fx.types);
	struct fpg_conn_env env = {
	    .loop = &fx.loop,
	    .opts = &fx.opts,
	    .stats = fx.stats,
	    .canceller = fx.canceller,
	    .types = fx.types,
	    .draining = &fx.draining,
	    .random = &fx.random,
	    .stmts_new = fpg_stmt_cache_new,
	    .stmts_free = fpg_stmt_cache_free,
	};
	fx.pool = fpg_pool_new(&env, NULL, &err);
	ck_assert_msg(fx.pool, "%s", err.message);
}

static void pool_down(void)
{
	fpg_pool_free(fx.pool);
	fx.pool = NULL;
	fpg_canceller_free(fx.canceller);
	fpg_typecache_free(fx.types);
	free(fx.stats);
	fpg_loop_deinit(&fx.loop);
}

/* One turn of the worker's loop (src/worker.c run_once, without MHD). */
static void turn(void)
{
	fpg_loop_wait(&fx.loop, TICK_MS);
	fpg_pool_reap(fx.pool);
	fpg_pool_end_turn(fx.pool);
}

/* Turns until *flag is set or ms have passed; returns *flag. */
static bool run_until(const bool *flag, unsigned ms)
{
	uint64_t end = fpg_now_ms() + ms;
	while (!*flag && fpg_now_ms() < end)
		turn();
	return *flag;
}

/* ---- waiters ---- */

struct wait {
	struct fpg_pool_waiter wt;
	struct fpg_conn *conn;
	bool got, failed;
	struct fpg_error err;
};

static void wait_ready(struct fpg_pool_waiter *wt, struct fpg_conn *conn)
{
	struct wait *w = FPG_CONTAINER_OF(wt, struct wait, wt);
	ck_assert(!w->got && !w->failed);
	w->conn = conn;
	w->got = true;
}

static void wait_fail(struct fpg_pool_waiter *wt, const struct fpg_error *err)
{
	struct wait *w = FPG_CONTAINER_OF(wt, struct wait, wt);
	ck_assert(!w->got && !w->failed);
	w->err = *err;
	w->failed = true;
}

static void acquire(struct wait *w, bool exclusive, unsigned timeout_ms)
{
	memset(w, 0, sizeof(*w));
	w->wt.exclusive = exclusive;
	w->wt.deadline_ms = fpg_now_ms() + timeout_ms;
	w->wt.ready = wait_ready;
	w->wt.fail = wait_fail;
	fpg_pool_acquire(fx.pool, &w->wt);
}

/* A connection from the pool, connecting it if need be. */
static struct fpg_conn *acquire_ok(struct wait *w, bool exclusive)
{
	acquire(w, exclusive, DEADLINE_MS);
	uint64_t end = fpg_now_ms() + DEADLINE_MS;
	while (!w->got && !w->failed && fpg_now_ms() < end)
		turn();
	ck_assert_msg(!w->failed, "acquire failed: %s", w->err.message);
	ck_assert_msg(w->got, "no connection within %d ms", DEADLINE_MS);
	ck_assert(fpg_conn_alive(w->conn));
	ck_assert(w->conn->held == exclusive);
	return w->conn;
}

/* ---- ops ---- */

#define MAX_RESULTS 4

struct rec {
	PGresult *res[MAX_RESULTS];
	int nres;
	bool done;
	bool broken; /* on_done got a reason */
	char why[256];
	bool opened_tx, reset_failed;
	int seq; /* the order on_done ran in */
};

static int done_seq;

static void rec_result(struct fpg_pgop *op, PGresult *res)
{
	struct rec *r = op->ctx;
	if (r->nres == MAX_RESULTS) {
		PQclear(res);
		return;
	}
	r->res[r->nres++] = res;
}

static void rec_done(struct fpg_pgop *op, const char *broken)
{
	struct rec *r = op->ctx;
	ck_assert_msg(!r->done, "on_done ran twice");
	r->done = true;
	r->broken = broken != NULL;
	snprintf(r->why, sizeof(r->why), "%s", broken ? broken : "");
	r->opened_tx = op->opened_tx;
	r->reset_failed = op->reset_failed;
	r->seq = ++done_seq;
}

static void rec_clear(struct rec *r)
{
	for (int i = 0; i < r->nres; i++)
		PQclear(r->res[i]);
	memset(r, 0, sizeof(*r));
}

/* Sends sql (params as text) on conn as one op. */
static void push(struct fpg_conn *conn, struct rec *r, const char *sql,
		 int nparams, const char *const *params, unsigned flags)
{
	memset(r, 0, sizeof(*r));
	ck_assert_msg(PQsendQueryParams(fpg_conn_pg(conn), sql, nparams, NULL,
					params, NULL, NULL, 0),
		      "%s", PQerrorMessage(fpg_conn_pg(conn)));
	ck_assert_ptr_nonnull(fpg_conn_push_op(conn, rec_result, rec_done, r,
					       -1, flags));
}

/* The op's one value (it ended well and returned one row). */
static const char *value_of(struct rec *r)
{
	ck_assert_msg(r->done && !r->broken, "op not done (%s)", r->why);
	ck_assert_int_eq(r->nres, 1);
	ck_assert_msg(PQresultStatus(r->res[0]) == PGRES_TUPLES_OK, "%s",
		      PQresultErrorMessage(r->res[0]));
	ck_assert_int_eq(PQntuples(r->res[0]), 1);
	return PQgetvalue(r->res[0], 0, 0);
}

/* Runs sql on conn and returns its one value (caller frees). */
static char *scalar(struct fpg_conn *conn, const char *sql, unsigned flags)
{
	struct rec r;
	push(conn, &r, sql, 0, NULL, flags);
	ck_assert_msg(run_until(&r.done, DEADLINE_MS), "%s: no answer", sql);
	char *v = strdup(value_of(&r));
	rec_clear(&r);
	return v;
}

/* Whether a backend with pid is still there (from a separate session). */
static bool backend_exists(const char *pid)
{
	char *sql = it_fmt("SELECT count(*) FROM pg_stat_activity WHERE pid = %s",
			   pid);
	char *n = pgh_scalar(sql);
	bool there = strcmp(n, "1") == 0;
	free(n);
	free(sql);
	return there;
}

/* ---- cases ---- */

START_TEST(shared_op_gets_result_and_done)
{
	pool_up(2);
	struct wait w;
	struct fpg_conn *conn = acquire_ok(&w, false);
	ck_assert_int_eq(conn->state, FPG_CONN_READY);
	ck_assert(fpg_conn_shareable(conn));
	ck_assert(fpg_conn_idle(conn));
	char a[16], b[16];
	int x = rand() % 100000, y = rand() % 100000;
	snprintf(a, sizeof(a), "%d", x);
	snprintf(b, sizeof(b), "%d", y);
	const char *params[] = {a, b};
	struct rec r;
	push(conn, &r, "SELECT $1::int + $2::int", 2, params, 0);
	ck_assert(!fpg_conn_idle(conn));
	ck_assert_uint_eq(conn->inflight, 1);
	ck_assert(run_until(&r.done, DEADLINE_MS));
	ck_assert_int_eq(atoi(value_of(&r)), x + y);
	ck_assert(!r.opened_tx && !r.reset_failed);
	ck_assert(fpg_conn_idle(conn));
	rec_clear(&r);
	/* A failing statement is a result, not a broken connection. */
	push(conn, &r, "SELECT 1 / 0", 0, NULL, 0);
	ck_assert(run_until(&r.done, DEADLINE_MS));
	ck_assert(!r.broken);
	ck_assert_int_eq(r.nres, 1);
	ck_assert_str_eq(PQresultErrorField(r.res[0], PG_DIAG_SQLSTATE),
			 "22012");
	ck_assert(fpg_conn_alive(conn));
	rec_clear(&r);
	pool_down();
}
END_TEST

START_TEST(pipelined_ops_come_back_in_order)
{
	pool_up(1);
	struct wait w;
	struct fpg_conn *conn = acquire_ok(&w, false);
	enum { MAXN = 40 };
	struct rec r[MAXN];
	char vals[MAXN][16];
	const char *params[MAXN][1];
	int n = 5 + rand() % (MAXN - 5);
	done_seq = 0;
	for (int i = 0; i < n; i++) {
		snprintf(vals[i], sizeof(vals[i]), "%d", rand());
		params[i][0] = vals[i];
		/* Some take a little while: order must hold regardless. */
		push(conn, &r[i],
		     rand() % 4 ? "SELECT $1::int"
				: "SELECT $1::int FROM pg_sleep(0.01)",
		     1, params[i], 0);
	}
	ck_assert_uint_eq(conn->inflight, (unsigned)n);
	ck_assert(run_until(&r[n - 1].done, DEADLINE_MS));
	for (int i = 0; i < n; i++) {
		ck_assert_int_eq(r[i].seq, i + 1);
		ck_assert_str_eq(value_of(&r[i]), vals[i]);
		rec_clear(&r[i]);
	}
	ck_assert(fpg_conn_idle(conn));
	pool_down();
}
END_TEST

START_TEST(reset_restores_settings_and_drops_temp_tables)
{
	pool_up(1);
	struct wait w;
	struct fpg_conn *conn = acquire_ok(&w, false);
	char *pid = scalar(conn, "SELECT pg_backend_pid()", 0);
	char *dflt = scalar(conn, "SHOW search_path", 0);
	char *path = it_fmt("x_%x", (unsigned)rand());
	char *set = it_fmt("SELECT set_config('search_path', '%s', false)",
			   path);
	/* Without a reset the setting stays: what the check below sees. */
	free(scalar(conn, set, 0));
	char *v = scalar(conn, "SHOW search_path", 0);
	ck_assert_str_eq(v, path);
	free(v);
	free(scalar(conn, set, FPG_OP_RESET));
	v = scalar(conn, "SHOW search_path", 0);
	ck_assert_str_eq(v, dflt);
	free(v);

	char *tt = it_fmt("tt_%x", (unsigned)rand());
	char *create = it_fmt("CREATE TEMP TABLE %s AS SELECT 1 AS a", tt);
	struct rec r;
	push(conn, &r, create, 0, NULL, FPG_OP_RESET);
	ck_assert(run_until(&r.done, DEADLINE_MS));
	ck_assert(!r.broken && !r.reset_failed && !r.opened_tx);
	ck_assert_int_eq(PQresultStatus(r.res[0]), PGRES_COMMAND_OK);
	rec_clear(&r);
	char *count = it_fmt("SELECT count(*) FROM pg_class WHERE relname = "
			     "'%s' AND relpersistence = 't'",
			     tt);
	v = scalar(conn, count, 0);
	ck_assert_str_eq(v, "0");
	free(v);
	/* Same session: it was reset, not replaced. */
	v = scalar(conn, "SELECT pg_backend_pid()", 0);
	ck_assert_str_eq(v, pid);
	free(v);
	free(count);
	free(create);
	free(tt);
	free(set);
	free(path);
	free(dflt);
	free(pid);
	pool_down();
}
END_TEST

START_TEST(begin_replaces_the_connection)
{
	pool_up(1);
	struct wait w;
	struct fpg_conn *conn = acquire_ok(&w, false);
	char *pid = scalar(conn, "SELECT pg_backend_pid()", 0);
	struct rec r;
	push(conn, &r, "BEGIN", 0, NULL, FPG_OP_RESET);
	ck_assert(run_until(&r.done, DEADLINE_MS));
	ck_assert(!r.broken);
	ck_assert(r.opened_tx);
	rec_clear(&r);
	/* The session inside a transaction takes no new work. */
	ck_assert(!fpg_conn_shareable(conn) || !fpg_conn_alive(conn));
	struct wait w2;
	struct fpg_conn *fresh = acquire_ok(&w2, false);
	char *pid2 = scalar(fresh, "SELECT pg_backend_pid()", 0);
	ck_assert_str_ne(pid2, pid);
	/* The old backend went away with its open transaction. */
	uint64_t end = fpg_now_ms() + DEADLINE_MS;
	while (backend_exists(pid) && fpg_now_ms() < end)
		turn();
	ck_assert_msg(!backend_exists(pid), "backend %s still there", pid);
	free(pid2);
	free(pid);
	pool_down();
}
END_TEST

START_TEST(exclusive_holder_is_alone_until_release)
{
	pool_up(1);
	struct wait held;
	struct fpg_conn *conn = acquire_ok(&held, true);
	ck_assert(!fpg_conn_shareable(conn));
	ck_assert(!fpg_pool_can_hold(fx.pool));
	struct wait shared;
	acquire(&shared, false, DEADLINE_MS);
	bool never = false;
	run_until(&never, 200);
	ck_assert(!shared.got && !shared.failed);
	ck_assert(shared.wt.queued);
	/* The holder runs statements meanwhile. */
	char *v = scalar(conn, "SELECT 'mine'", 0);
	ck_assert_str_eq(v, "mine");
	free(v);
	ck_assert(!shared.got);
	fpg_conn_release(conn);
	ck_assert(run_until(&shared.got, DEADLINE_MS));
	ck_assert_ptr_eq(shared.conn, conn);
	ck_assert(!conn->held);
	ck_assert(fpg_pool_can_hold(fx.pool));
	pool_down();
}
END_TEST

START_TEST(waiter_deadline_fails_with_503)
{
	pool_up(1);
	struct wait held;
	acquire_ok(&held, true);
	for (int exclusive = 0; exclusive < 2; exclusive++) {
		unsigned ms = 100 + (unsigned)rand() % 200;
		uint64_t t0 = fpg_now_ms();
		struct wait w;
		acquire(&w, exclusive, ms);
		ck_assert(run_until(&w.failed, DEADLINE_MS));
		uint64_t took = fpg_now_ms() - t0;
		ck_assert(!w.got);
		ck_assert_int_eq(w.err.http_status, 503);
		ck_assert_int_eq(w.err.code, FPG_ERR_UNAVAILABLE);
		ck_assert_msg(took >= ms && took < ms + 1000,
			      "failed after %llu ms, deadline %u",
			      (unsigned long long)took, ms);
		ck_assert(!w.wt.queued);
	}
	pool_down();
}
END_TEST

START_TEST(killed_backend_breaks_op_and_pool_reconnects)
{
	pool_up(1);
	struct wait w;
	struct fpg_conn *conn = acquire_ok(&w, false);
	char *pid = scalar(conn, "SELECT pg_backend_pid()", 0);
	struct rec r;
	push(conn, &r, "SELECT pg_sleep(30)", 0, NULL, 0);
	bool never = false;
	run_until(&never, 100);
	ck_assert(!r.done);
	char *kill = it_fmt("SELECT pg_terminate_backend(%s)", pid);
	free(pgh_scalar(kill));
	ck_assert(run_until(&r.done, DEADLINE_MS));
	ck_assert_msg(r.broken, "on_done without a reason after the backend "
				"was killed");
	ck_assert(r.why[0]);
	rec_clear(&r);
	struct wait w2;
	struct fpg_conn *again = acquire_ok(&w2, false);
	char *pid2 = scalar(again, "SELECT pg_backend_pid()", 0);
	ck_assert_str_ne(pid2, pid);
	free(pid2);
	free(kill);
	free(pid);
	pool_down();
}
END_TEST

START_TEST(cancel_ends_a_held_statement)
{
	pool_up(2);
	struct wait w;
	struct fpg_conn *conn = acquire_ok(&w, true);
	struct rec r;
	push(conn, &r, "SELECT pg_sleep(30)", 0, NULL, 0);
	bool never = false;
	run_until(&never, 100 + (unsigned)rand() % 200);
	ck_assert(!r.done);
	uint64_t t0 = fpg_now_ms();
	fpg_conn_cancel(conn);
	ck_assert(!fpg_conn_idle(conn));
	ck_assert(run_until(&r.done, DEADLINE_MS));
	uint64_t took = fpg_now_ms() - t0;
	ck_assert_msg(took < 5000, "cancel took %llu ms",
		      (unsigned long long)took);
	ck_assert(!r.broken);
	ck_assert_int_eq(r.nres, 1);
	ck_assert_int_eq(PQresultStatus(r.res[0]), PGRES_FATAL_ERROR);
	ck_assert_str_eq(PQresultErrorField(r.res[0], PG_DIAG_SQLSTATE),
			 "57014");
	rec_clear(&r);
	/* The connection survives: same session, usable again. */
	ck_assert(fpg_conn_alive(conn));
	char *v = scalar(conn, "SELECT 42", 0);
	ck_assert_str_eq(v, "42");
	free(v);
	fpg_conn_release(conn);
	pool_down();
}
END_TEST

START_TEST(free_with_ops_in_flight_ends_every_op)
{
	pool_up(3);
	struct wait a, b;
	struct fpg_conn *shared = acquire_ok(&a, false);
	enum { N = 6 };
	struct rec r[N];
	for (int i = 0; i < N - 1; i++)
		push(shared, &r[i], "SELECT pg_sleep(30)", 0, NULL,
		     i % 2 ? FPG_OP_RESET : 0);
	/* An exclusive waiter gets an idle connection, not the busy one. */
	struct fpg_conn *held = acquire_ok(&b, true);
	ck_assert_ptr_ne(shared, held);
	char *pid = scalar(held, "SELECT pg_backend_pid()", 0);
	push(held, &r[N - 1], "SELECT pg_sleep(30)", 0, NULL, 0);
	bool never = false;
	run_until(&never, 100);
	fpg_pool_free(fx.pool);
	fx.pool = NULL;
	for (int i = 0; i < N; i++) {
		ck_assert_msg(r[i].done, "op %d got no on_done", i);
		ck_assert_msg(r[i].broken, "op %d ended without a reason", i);
		rec_clear(&r[i]);
	}
	/* The running statement was cancelled, not left to PostgreSQL. */
	uint64_t end = fpg_now_ms() + DEADLINE_MS;
	while (backend_exists(pid) && fpg_now_ms() < end)
		;
	ck_assert_msg(!backend_exists(pid), "backend %s still there", pid);
	free(pid);
	pool_down();
}
END_TEST

static const struct test_case cases[] = {
    TEST_CASE(shared_op_gets_result_and_done),
    TEST_CASE(pipelined_ops_come_back_in_order),
    TEST_CASE(reset_restores_settings_and_drops_temp_tables),
    TEST_CASE(begin_replaces_the_connection),
    TEST_CASE(exclusive_holder_is_alone_until_release),
    TEST_CASE(waiter_deadline_fails_with_503),
    TEST_CASE(killed_backend_breaks_op_and_pool_reconnects),
    TEST_CASE(cancel_ends_a_held_statement),
    TEST_CASE(free_with_ops_in_flight_ends_every_op),
    {0},
};

const struct it_program it_program = {
    .name = "pool",
    .cases = cases,
    .fork = true,
    .timeout_s = 60,
};
