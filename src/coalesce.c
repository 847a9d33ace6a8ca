#include "coalesce.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "error.h"
#include "stats.h"

/*
 * Before the group's first statement, in its implicit transaction.
 * Prepared with every session (query.c's session statements): parsing it
 * with every group cost PostgreSQL 2-4 us per statement of a group of 4.
 */
const char fpg_read_only_sql[] =
	"SELECT pg_catalog.set_config('transaction_read_only', 'on', true)";

struct slot {
	struct fpg_coalesce_member *m; /* NULL: its owner left */
	int first;	/* the group's index of its first query */
	int lead;	/* queries of the group's before its own: the
			   read-only switch, or the settings reset */
	int n;		/* its own queries */
	int single_row;	/* the group's index of its single-row query, -1 */
};

struct fpg_group {
	struct fpg_conn_deferred later;
	struct fpg_conn *conn;
	unsigned count;	/* slots used */
	unsigned at;	/* the slot results go to */
	int failed;	/* the slot whose query failed first, -1 */
	bool lead_failed; /* ... in its lead */
	struct slot slots[];
};

static void group_free(struct fpg_group *g)
{
	free(g);
}

/* The slot the group's query idx belongs to (queries come in order). */
static struct slot *slot_of(struct fpg_group *g, int idx)
{
	while (g->at + 1 < g->count && idx >= g->slots[g->at + 1].first)
		g->at++;
	return &g->slots[g->at];
}

/* A result of the read-only switch or of the settings reset. */
static bool lead_ok(const struct slot *s, int local, PGresult *res)
{
	if (s->first == 0 && local == 0)
		return PQresultStatus(res) == PGRES_TUPLES_OK &&
		       strcmp(PQcmdStatus(res), "SELECT 1") == 0;
	return fpg_conn_settings_reset_ok(res);
}

static void group_result(struct fpg_pgop *op, PGresult *res)
{
	struct fpg_group *g = op->ctx;
	struct slot *s = slot_of(g, op->queries_done);
	int local = op->queries_done - s->first;
	unsigned at = (unsigned)(s - g->slots);
	ExecStatusType st = PQresultStatus(res);
	if (local < s->lead) {
		/* Skipped after an earlier error: that one is the news. */
		if (st != PGRES_PIPELINE_ABORTED && !lead_ok(s, local, res)) {
			if (g->failed < 0) {
				g->failed = (int)at;
				g->lead_failed = true;
			}
			fpg_conn_taint(g->conn, "a coalesced group's own "
						"statement failed");
		}
		PQclear(res);
		return;
	}
	if (st == PGRES_FATAL_ERROR && g->failed < 0)
		g->failed = (int)at;
	if (s->m)
		s->m->ops->result(s->m, res, local - s->lead);
	else
		PQclear(res);
}

static int group_next_single_row(struct fpg_pgop *op)
{
	struct fpg_group *g = op->ctx;
	for (unsigned i = 0; i < g->count; i++)
		if (g->slots[i].single_row > op->queries_done)
			return g->slots[i].single_row;
	return -1;
}

static void group_done(struct fpg_pgop *op, const char *broken)
{
	struct fpg_group *g = op->ctx;
	struct fpg_stats *stats = g->conn->env->stats;
	FPG_ASSERT(g->conn->groups > 0);
	g->conn->groups--;
	for (unsigned i = 0; i < g->count; i++) {
		struct fpg_coalesce_member *m = g->slots[i].m;
		if (!m)
			continue;
		/* A transaction opened inside the group (client SQL replaced a
		 * statement) voids everything in it. */
		bool again = !broken &&
			     (op->opened_tx ||
			      (g->failed >= 0 &&
			       (i != (unsigned)g->failed || g->lead_failed)));
		if (again)
			FPG_STAT_ADD(stats->coalesce_reruns, 1);
		m->group = NULL;
		g->slots[i].m = NULL;
		m->ops->done(m, broken, again, op->ran_ms);
	}
	group_free(g);
}

/*
 * Members that left before the group was sent leave no hole, and those
 * that cannot join now go to the end: returns how many can.
 */
static unsigned arrange(struct fpg_group *g)
{
	unsigned n = 0, joinable;
	for (unsigned i = 0; i < g->count; i++)
		if (g->slots[i].m)
			g->slots[n++].m = g->slots[i].m;
	g->count = n;
	joinable = 0;
	for (unsigned i = 0; i < n; i++) {
		struct fpg_coalesce_member *m = g->slots[i].m;
		if (!m->ops->can_join(m))
			continue;
		g->slots[i].m = g->slots[joinable].m;
		g->slots[joinable].m = m;
		joinable++;
	}
	for (unsigned i = 0; i < n; i++)
		g->slots[i].m->slot = i;
	return joinable;
}

/* c itself when it can take a member alone, else NULL (elsewhere). */
static struct fpg_conn *here(struct fpg_conn *c)
{
	return fpg_conn_shareable(c) ? c : NULL;
}

/* The members in slots from..to run alone, on c (NULL: elsewhere). */
static void run_alone(struct fpg_group *g, unsigned from, unsigned to,
		      struct fpg_conn *c)
{
	for (unsigned i = from; i < to; i++) {
		struct fpg_coalesce_member *m = g->slots[i].m;
		if (!m)
			continue; /* its owner left */
		g->slots[i].m = NULL;
		m->group = NULL;
		m->ops->alone(m, c);
	}
}

/*
 * Sends the first n members as one op: the read-only switch, the members
 * with the settings reset between them, the Sync and the session reset.
 * False: sending failed (the connection was failed; nothing of the group
 * can commit without its Sync).
 */
static bool send_group(struct fpg_group *g, unsigned n)
{
	struct fpg_conn *c = g->conn;
	PGconn *pg = fpg_conn_pg(c);
	int idx = 1;
	if (!PQsendQueryPrepared(pg, FPG_READ_ONLY_STMT, 0, NULL, NULL, NULL,
				 0)) {
		fpg_conn_fail(c, PQerrorMessage(pg));
		return false;
	}
	for (unsigned i = 0; i < n; i++) {
		struct slot *s = &g->slots[i];
		int lead = i ? fpg_conn_send_settings_reset(c) : 0;
		int queries = 0, single_row = -1;
		if (i && !lead) {
			fpg_conn_fail(c, PQerrorMessage(pg));
			return false;
		}
		if (!s->m->ops->send(s->m, pg, &queries, &single_row))
			return false;
		/* The first member's lead is the switch. */
		s->first = i ? idx : 0;
		s->lead = i ? lead : 1;
		idx += i ? lead : 0;
		s->n = queries;
		s->single_row = single_row >= 0 ? idx + single_row : -1;
		idx += queries;
	}
	g->count = n;
	FPG_STAT_ADD(c->env->stats->coalesced_groups, 1);
	FPG_STAT_ADD(c->env->stats->coalesced_statements, n);
	c->groups++;
	struct fpg_pgop *op = fpg_conn_push_op(c, group_result, group_done, g,
					       g->slots[0].single_row,
					       FPG_OP_RESET);
	if (op)
		op->next_single_row = group_next_single_row;
	return true;
}

/* The end of the loop turn (or the group is full). */
static void group_run(struct fpg_conn *c, struct fpg_conn_deferred *d)
{
	struct fpg_group *g = FPG_CONTAINER_OF(d, struct fpg_group, later);
	unsigned joinable = arrange(g), total = g->count;
	struct fpg_coalesce_member **rest =
		total > joinable ? malloc((total - joinable) * sizeof(*rest))
				 : NULL;
	/* A guest is a transaction session's: never a group's. */
	if (joinable < 2 || !fpg_conn_shareable(c) || c->guest ||
	    (total > joinable && !rest)) {
		run_alone(g, 0, total, here(c));
		group_free(g);
		free(rest);
		return;
	}
	/* Those that cannot join run alone after the group is sent: their
	 * prepare could evict a member's statement, and the group's op may
	 * already have freed g (out of memory). */
	for (unsigned i = joinable; i < total; i++) {
		rest[i - joinable] = g->slots[i].m;
		rest[i - joinable]->group = NULL;
	}
	if (!send_group(g, joinable)) {
		/* Nothing of it committed (no Sync): all go elsewhere. */
		run_alone(g, 0, joinable, here(c));
		group_free(g);
	}
	for (unsigned i = 0; i < total - joinable; i++)
		rest[i]->ops->alone(rest[i], here(c));
	free(rest);
}

/*
 * What c runs ahead of the group turned out slow (the pool's tick): the
 * members, not sent yet, run elsewhere, where they may gather again.
 */
static void group_leave(struct fpg_conn *c, struct fpg_conn_deferred *d)
{
	struct fpg_group *g = FPG_CONTAINER_OF(d, struct fpg_group, later);
	(void)c;
	run_alone(g, 0, g->count, NULL);
	group_free(g);
}

void fpg_coalesce_add(struct fpg_conn *conn, struct fpg_coalesce_member *m,
		      unsigned max)
{
	struct fpg_conn_deferred *d = fpg_conn_deferred_of(conn);
	struct fpg_group *g =
		d ? FPG_CONTAINER_OF(d, struct fpg_group, later) : NULL;
	FPG_ASSERT(max >= 2);
	if (!g) {
		g = malloc(sizeof(*g) + max * sizeof(g->slots[0]));
		if (!g) {
			m->ops->alone(m, conn);
			return;
		}
		g->later.run = group_run;
		g->later.leave = group_leave;
		g->conn = conn;
		g->count = g->at = 0;
		g->failed = -1;
		g->lead_failed = false;
		fpg_conn_defer(conn, &g->later);
	}
	FPG_ASSERT(g->count < max);
	m->group = g;
	m->slot = g->count;
	g->slots[g->count++] = (struct slot){.m = m, .single_row = -1};
	if (g->count == max)
		fpg_conn_run_deferred(conn);
}

void fpg_coalesce_leave(struct fpg_coalesce_member *m)
{
	if (!m->group)
		return;
	m->group->slots[m->slot].m = NULL;
	m->group = NULL;
}
