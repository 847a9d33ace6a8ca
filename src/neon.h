/*
 * The request side of Neon's HTTP protocol (POST /sql, docs/neon.md):
 * the Neon-Connection-String header and the Neon-* option headers.
 * Pure functions; the handler (handler_sql.c) decides what they mean.
 */
#pragma once

#include <stdbool.h>

#include "fasterpg.h"
#include "tx.h"

/*
 * The parts of a connection string fasterpg reads: user, password and
 * database. The host, port and every parameter (sslmode, options,
 * application_name, ...) are ignored: the gateway serves one database
 * and connects only where --db says.
 */
struct fpg_neon_login {
	char user[64];		/* "" when the string names none */
	char password[1024];	/* "" when it holds none */
	char dbname[64];	/* "" when it names none */
};

/*
 * Parses s, a postgres:// or postgresql:// URI (percent-encoded as
 * libpq reads it). False with err (400) when it is no such URI or a part
 * is too long; the message never quotes s, which holds a password.
 */
bool fpg_neon_parse_login(const char *s, struct fpg_neon_login *out,
			  struct fpg_error *err) FPG_MUST_CHECK;

/* Wipes the password (call on every path once it was parsed). */
void fpg_neon_login_wipe(struct fpg_neon_login *l);

/*
 * A boolean header (Neon-Raw-Text-Output, Neon-Array-Mode,
 * Neon-Batch-Read-Only, Neon-Batch-Deferrable): "true" or "false" in any
 * case; absent (value NULL) is def. False with err (400) otherwise.
 */
bool fpg_neon_parse_bool(const char *name, const char *value, bool def,
			 bool *out, struct fpg_error *err) FPG_MUST_CHECK;

/*
 * Neon-Batch-Isolation-Level: ReadUncommitted, ReadCommitted,
 * RepeatableRead or Serializable (the driver's names; any case, the SQL
 * spellings with a space too). Read uncommitted is read committed, as in
 * PostgreSQL. Absent (NULL) is read committed. False with err (400)
 * otherwise.
 */
bool fpg_neon_parse_isolation(const char *value,
			      enum fpg_tx_isolation *out,
			      struct fpg_error *err) FPG_MUST_CHECK;
