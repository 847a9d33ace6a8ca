#include "startup.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

/* The session settings the encoder relies on: RESET ALL (the reset, see
 * conn.c) goes back to them. The conninfo's own options come first, so
 * that ours win. */
void fpg_startup_options(const struct fpg_options *opts, bool read_only,
			 unsigned statement_timeout_ms, char *out, size_t size)
{
	const char *user = NULL;
	PQconninfoOption *info =
		PQconninfoParse(opts->db ? opts->db : "", NULL);
	for (PQconninfoOption *o = info; o && o->keyword; o++)
		if (strcmp(o->keyword, "options") == 0 && o->val)
			user = o->val;
	/* --read-only: every transaction starts read-only, and a statement
	 * cannot make its own read-write once it runs; a default it sets
	 * for later ones goes with the reset (RESET ALL). */
	snprintf(out, size,
		 "%s%s-c DateStyle=ISO,MDY -c IntervalStyle=postgres"
		 " -c bytea_output=hex -c standard_conforming_strings=on"
		 " -c statement_timeout=%u%s",
		 user ? user : "", user ? " " : "",
		 statement_timeout_ms,
		 read_only ? " -c default_transaction_read_only=on" : "");
	PQconninfoFree(info);
}

/* The server's English texts for these refusals (its libpq/auth.c and
 * miscinit.c), and libpq's own when no password was given. */
bool fpg_startup_refused(const char *why)
{
	static const char *const texts[] = {
		"password authentication failed",
		"authentication failed for user",
		"no pg_hba.conf entry",
		"no password supplied",
		"pg_hba.conf rejects connection",
	};
	for (size_t i = 0; i < sizeof(texts) / sizeof(*texts); i++)
		if (strstr(why, texts[i]))
			return true;
	return strstr(why, "role \"") && strstr(why, "\" does not exist");
}

static const char *option(const PQconninfoOption *opts, const char *key)
{
	for (const PQconninfoOption *o = opts; o && o->keyword; o++)
		if (strcmp(o->keyword, key) == 0 && o->val && *o->val)
			return o->val;
	return NULL;
}

void fpg_startup_target(const char *db, char *dbname, size_t dbsize,
			char *user, size_t usize)
{
	/* As libpq reads dbname (expand_dbname): a conninfo when it holds
	 * "=" or starts like a URI, else a database name. */
	bool conninfo = db && (strchr(db, '=') ||
			       strncmp(db, "postgresql://", 13) == 0 ||
			       strncmp(db, "postgres://", 11) == 0);
	PQconninfoOption *info = conninfo ? PQconninfoParse(db, NULL) : NULL;
	PQconninfoOption *defs = PQconndefaults();
	const char *d = conninfo ? option(info, "dbname")
				 : (db && *db ? db : NULL);
	const char *u = option(info, "user");
	bool service = option(info, "service") != NULL;
	if (!u && !service)
		u = option(defs, "user");
	if (!d && !service)
		d = option(defs, "dbname");
	if (!d && !service)
		d = u;
	snprintf(dbname, dbsize, "%s", d ? d : "");
	snprintf(user, usize, "%s", u ? u : "");
	PQconninfoFree(info);
	PQconninfoFree(defs);
}
