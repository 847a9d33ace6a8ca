/*
 * API keys (--api-keys FILE): a client that sends `Authorization: Bearer
 * KEY` runs as the PostgreSQL role the file names for that key. The file
 * holds no keys, only their SHA-256: one line per key,
 *
 *	<64 hex digits of SHA-256(KEY)> <role> [<name>]
 *
 * with # comments and blank lines. The gateway logs in as the role with
 * libpq's own means (PGPASSFILE, a service file, a certificate), never
 * with a password of ours. A loaded set never changes: a reload (SIGHUP)
 * loads a new one and every worker swaps to it; the old one goes with
 * its last reference (any thread).
 */
#pragma once

#include <stdbool.h>

#include "fasterpg.h"

struct fpg_apikeys;

/* Loads path; NULL with err (file:line and what is wrong) on failure. */
struct fpg_apikeys *fpg_apikeys_load(const char *path, struct fpg_error *err);

/* References: one is the loader's; the last unref frees. NULL no-op. */
void fpg_apikeys_ref(struct fpg_apikeys *keys);
void fpg_apikeys_unref(struct fpg_apikeys *keys);

/*
 * The role of key (its length len), or NULL when no line names it;
 * *name gets the line's name ("" when none). Both borrowed from keys.
 */
const char *fpg_apikeys_role(const struct fpg_apikeys *keys, const char *key,
			     size_t len, const char **name);

/* Keys loaded (for logs). */
unsigned fpg_apikeys_count(const struct fpg_apikeys *keys);
