/*
 * What a connection tells PostgreSQL when it starts (the session settings
 * fasterpg relies on, as startup options), and how to read PostgreSQL
 * turning a login down. Pure functions.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "fasterpg.h"

/*
 * The startup options for a connection of opts (read_only: its sessions
 * start read-only; its statement timeout) into out, after what
 * opts->db's own "options" says.
 */
void fpg_startup_options(const struct fpg_options *opts, bool read_only,
			 unsigned statement_timeout_ms, char *out,
			 size_t size);

/*
 * Whether why, a failed connect's message, says PostgreSQL refused the
 * login itself (wrong or missing password, no such role, no pg_hba.conf
 * entry) rather than being unreachable. libpq keeps no SQLSTATE for a
 * failed connect, only the server's text, in its lc_messages: these are
 * the English ones (see docs/security.md).
 */
bool fpg_startup_refused(const char *why);

/*
 * The database and user a connection of db (--db: a conninfo, a URI or a
 * database name; NULL: libpq's defaults) logs in to, as libpq fills them
 * in: db's own, else PGDATABASE and PGUSER (or PGSERVICE's entry), else
 * the operating system user's name, and the database defaults to the
 * user. "" where it cannot be known without connecting (db names a
 * service, whose file may say). Truncated to size - 1 bytes (size 64
 * holds any PostgreSQL name).
 */
void fpg_startup_target(const char *db, char *dbname, size_t dbsize,
			char *user, size_t usize);
