/*
 * The statement cache of one connection: the statements prepared on it
 * by SQL text (hashed), most recently used first, at most FPG_STMT_MAX,
 * and what each is known to be (its state, kind, parameters, columns and
 * the composite types among them). query.c prepares and runs them; the
 * cache hangs off the connection (fpg_conn_env.stmts_new/free). One
 * thread.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "list.h"

struct fpg_column;
struct fpg_conn;
struct fpg_pool;
struct fpg_query;

#define FPG_STMT_BUCKETS 256
#define FPG_STMT_MAX 256      /* prepared statements kept per connection */
#define FPG_STMT_MAX_TYPES 64 /* column types looked up per statement */

enum fpg_stmt_state {
	FPG_STMT_PREPARING, /* Parse + Describe sent */
	FPG_STMT_TYPING,    /* looking up column types not yet known */
	FPG_STMT_READY,
};

/*
 * What a statement does to its connection, known from the command tag
 * of its first successful execution (a prepared statement's kind never
 * changes). Until then it runs behind a barrier, so that nothing else
 * can be queued inside a transaction it might open.
 */
enum fpg_stmt_kind {
	FPG_STMT_UNTRIED,
	FPG_STMT_PLAIN,
	FPG_STMT_OPENS_TX,
};

struct fpg_stmt {
	struct fpg_stmt *hnext;	      /* hash chain */
	struct fpg_list lru;	      /* in the cache's, most recent first */
	struct fpg_stmt_cache *cache;
	char *sql;
	uint64_t hash;
	char name[24];
	enum fpg_stmt_state state;
	enum fpg_stmt_kind kind;
	bool reads;		      /* its command tag was SELECT: it may join
					 a coalesced group (coalesce.h) */
	bool alone;		      /* it failed inside a group for being
					 one (it writes): it never joins one
					 again */
	int nparams;
	int ncols;
	struct fpg_column *cols;      /* names in one block after the array */
	struct fpg_list waiters;      /* of fpg_query.wait_link: waiting for
					 READY */
	PGresult *error;	      /* the Parse failed */
	uint32_t missing[FPG_STMT_MAX_TYPES];
	size_t nmissing;
	uint32_t composite[FPG_STMT_MAX_TYPES]; /* column types holding one */
	size_t ncomposite;
};

struct fpg_stmt_cache {
	struct fpg_pool *pool;
	struct fpg_conn *conn;	      /* the connection the cache belongs to */
	struct fpg_stmt *buckets[FPG_STMT_BUCKETS];
	struct fpg_list lru;	      /* of fpg_stmt.lru */
	unsigned count;
	unsigned next_id;
};

/* The hash the cache uses for sql (FNV-1a). */
uint64_t fpg_stmt_hash(const char *sql);

/* A statement cache for conn of pool. Caller owns. */
struct fpg_stmt_cache *fpg_stmt_cache_new(struct fpg_pool *pool,
					  struct fpg_conn *conn);

/* Frees the cache and its statements; queries waiting on them must be
 * gone. NULL is a no-op. */
void fpg_stmt_cache_free(struct fpg_stmt_cache *cache);

/* Frees a statement that is in no cache. NULL is a no-op. */
void fpg_stmt_free(struct fpg_stmt *st);

/* The statement for sql (h = fpg_stmt_hash(sql)), or NULL. */
struct fpg_stmt *fpg_stmt_find(struct fpg_stmt_cache *c, const char *sql,
			       uint64_t h);

/* Adds st (takes ownership), most recent. */
void fpg_stmt_insert(struct fpg_stmt_cache *c, struct fpg_stmt *st);

/* Takes st out of the cache (the caller owns it again). */
void fpg_stmt_remove(struct fpg_stmt_cache *c, struct fpg_stmt *st);

/* st was used: it becomes the most recent. */
void fpg_stmt_touch(struct fpg_stmt_cache *c, struct fpg_stmt *st);

/*
 * Forgets a ready statement and frees it. Its DEALLOCATE queues behind
 * every execution already sent on conn, so nothing in flight loses it.
 */
void fpg_stmt_drop(struct fpg_conn *conn, struct fpg_stmt_cache *c,
		   struct fpg_stmt *st);

/* Drops the least recently used ready statement, if any. */
void fpg_stmt_evict(struct fpg_conn *conn, struct fpg_stmt_cache *c);
