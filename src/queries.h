/*
 * Named queries (--queries DIR): SQL the operator wrote, one statement
 * per NAME.sql file, that clients run by name (POST /q/NAME) with
 * parameters only. The file's header, its leading lines that are blank
 * or "--" comments, may hold, in any order,
 *
 *	-- roles: alice, bob
 *	-- read-only
 *
 * The roles line names the logins that may call it; without one, any
 * caller may (its own grants still apply, as the query runs as the
 * caller). The read-only mark makes it run in a read-only transaction
 * (PostgreSQL refuses its writes with 25006) and lets clients call it
 * with GET /q/NAME too. Other comments there are comments; a second
 * roles line, or a line that looks like the mark but is not
 * ("-- readonly"), does not load. The SQL is what follows the header.
 * Loaded once at start; immutable after, read by every worker.
 */
#pragma once

#include <stdbool.h>

#include "fasterpg.h"

struct fpg_queries;

/* Loads every NAME.sql of dir (NAME: letters, digits, _ and -). */
struct fpg_queries *fpg_queries_load(const char *dir, struct fpg_error *err);

void fpg_queries_free(struct fpg_queries *q);

/* The SQL of name, or NULL; borrowed from q. */
const char *fpg_queries_sql(const struct fpg_queries *q, const char *name);

/* Whether login (a user, "" for the --db login's) may run name. */
bool fpg_queries_allows(const struct fpg_queries *q, const char *name,
			const char *login);

/* Whether name is marked "-- read-only" (false for an unknown name). */
bool fpg_queries_read_only(const struct fpg_queries *q, const char *name);

unsigned fpg_queries_count(const struct fpg_queries *q);
