/*
 * Coalesced reads: statements of different requests that only read share
 * one Sync on a connection, so PostgreSQL ends one transaction (and the
 * pool resets the session once) for all of them instead of once each.
 *
 * What keeps their answers those of separate transactions:
 * - The group's implicit transaction is made read-only before anything in
 *   it runs: a statement that writes (a function that inserts) fails with
 *   25006 instead of committing, and its owner runs it again alone.
 * - In READ COMMITTED every statement takes a snapshot of its own.
 * - Between two members RESET ALL and RESET ROLE (fpg_conn_send_settings_
 *   reset) undo whatever settings the one before made, session or local:
 *   no member sees its neighbour's search_path, TimeZone or role. The
 *   transaction's read-only mode and isolation cannot be changed by SQL
 *   once a statement ran.
 * - An error aborts the transaction: every other member is answered again
 *   from a run of its own (never with the neighbour's error, never with
 *   rows a rolled-back transaction saw), and so is the failing one when
 *   the error was not its own (a lead statement of the group failed).
 *
 * A group gathers its members on one connection until the end of the
 * first loop turn in which the connection has nothing in flight (at once
 * on an idle one), or until it is full: it waits for the connection, never
 * for more members. A group of one is run as a statement alone. One loop
 * only.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

struct fpg_conn;
struct fpg_coalesce_member;

/*
 * The read-only switch a group starts with: every session of a pool
 * that coalesces prepares it under this name (fpg_conn_env.session_stmts).
 * Its tag ("SELECT 1") is checked: a statement client SQL put in its
 * place taints the connection (see docs/guarantees.md on prepared
 * statements).
 */
#define FPG_READ_ONLY_STMT "fpg_read_only"
extern const char fpg_read_only_sql[];
struct fpg_group;

struct fpg_coalesce_ops {
	/* Whether it can still join when the group leaves (its prepared
	 * statement is still there): if not, alone() follows. */
	bool (*can_join)(struct fpg_coalesce_member *m);
	/*
	 * Sends the member's statements on pg (no Sync): how many (*n) and
	 * which of them runs in single-row mode (*single_row, -1: none).
	 * False: sending failed and the callee failed the connection (the
	 * group never commits; alone() follows).
	 */
	bool (*send)(struct fpg_coalesce_member *m, PGconn *pg, int *n,
		     int *single_row);
	/* Result idx (0-based, among those send() counted); owned by the
	 * callee. */
	void (*result)(struct fpg_coalesce_member *m, PGresult *res, int idx);
	/*
	 * The group is over: its Sync and the reset after it arrived, or the
	 * connection broke (broken says why). again: the results void, the
	 * member must run again, alone. Otherwise its results stand.
	 * ran_ms: how long the group took on PostgreSQL's side, roughly.
	 */
	void (*done)(struct fpg_coalesce_member *m, const char *broken,
		     bool again, uint64_t ran_ms);
	/* Not run in a group: run alone on conn, which can take it, or
	 * (conn NULL) on another connection. */
	void (*alone)(struct fpg_coalesce_member *m, struct fpg_conn *conn);
};

struct fpg_coalesce_member {
	const struct fpg_coalesce_ops *ops; /* set by the owner */
	/* Private to coalesce.c. */
	struct fpg_group *group; /* NULL when in none */
	unsigned slot;
};

/*
 * Adds m to conn's gathering group (made on first use; sent when conn is
 * free at the end of a turn, or now if it holds max members). conn must
 * be shareable and keep prepared statements. m is borrowed until done() or
 * alone(), or fpg_coalesce_leave().
 */
void fpg_coalesce_add(struct fpg_conn *conn, struct fpg_coalesce_member *m,
		      unsigned max);

/* m's owner goes away: no callback any more (its results are dropped). */
void fpg_coalesce_leave(struct fpg_coalesce_member *m);

/* m is in a group whose outcome is not known yet. */
static inline bool fpg_coalesce_pending(const struct fpg_coalesce_member *m)
{
	return m->group != NULL;
}
