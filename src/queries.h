/*
 * Named queries (--queries DIR): SQL the operator wrote, one statement
 * per NAME.sql file, that clients run by name (POST /q/NAME) with
 * parameters only. A file may start with a line
 *
 *	-- roles: alice, bob
 *
 * naming the logins that may call it; without one, any caller may (its
 * own grants still apply, as the query runs as the caller). Loaded once
 * at start; immutable after, read by every worker.
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

unsigned fpg_queries_count(const struct fpg_queries *q);
