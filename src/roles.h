/*
 * Per-role policy (--roles FILE): one line per login role, `*` for every
 * role no line names,
 *
 *	reporting  read-only  raw-sql=no  rate=50
 *
 * - raw-sql=no: the role runs named queries only (403 raw_sql_off on
 *   /query, /tx and /copy);
 * - read-only: its statements run in read-only transactions (its pool's
 *   sessions start read-only, as with --read-only);
 * - rate=N: at most N requests a second (429 with Retry-After beyond);
 * - statement-timeout-ms=N: its statements' time cap, if below the
 *   server's --statement-timeout-ms;
 * - transactions=N: at most N open sessions per worker (429 beyond);
 * - streams=N: at most N requests at once per worker that hold a
 *   connection of their own while they stream (a /query answer as NDJSON,
 *   CSV or ?stream=true, COPY in or out; not a session's): 429
 *   too_many_streams beyond, before any SQL runs. A /query the lane
 *   memory would stream shares a connection instead;
 * - listen=a,b,news.*: the channels GET /listen may name (a trailing *
 *   takes every name it begins): 403 channel_not_allowed for others.
 *
 * Without a line (and without `*`) a role may do all of it. Loaded once
 * at start; immutable after, read by every worker.
 */
#pragma once

#include <stdbool.h>

#include "fasterpg.h"

struct fpg_roles;

struct fpg_role_policy {
	bool raw_sql;
	bool read_only;
	unsigned rate; /* requests per second, 0: no limit */
	unsigned statement_timeout_ms; /* a lower cap than the server's,
					  0: the server's */
	unsigned transactions; /* open sessions per worker, 0: no limit */
	char *listen;	       /* GET /listen: the channels it may name,
				  "a,b,prefix*"; NULL: any */
	unsigned streams;      /* streaming requests at once per worker,
				  0: no limit (fpg_request_hold_stream) */
};

/* Loads path; NULL with err (file:line and what is wrong) on failure. */
struct fpg_roles *fpg_roles_load(const char *path, struct fpg_error *err);

void fpg_roles_free(struct fpg_roles *roles);

/* The policy of role (roles may be NULL: no file, no limits). */
const struct fpg_role_policy *fpg_roles_for(const struct fpg_roles *roles,
					    const char *role);

/* Whether p lets GET /listen name channel. */
bool fpg_roles_may_listen(const struct fpg_role_policy *p, const char *channel);
