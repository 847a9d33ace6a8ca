#include "stmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "error.h"

uint64_t fpg_stmt_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

struct fpg_stmt_cache *fpg_stmt_cache_new(struct fpg_pool *pool,
					  struct fpg_conn *conn)
{
	struct fpg_stmt_cache *c = calloc(1, sizeof(*c));
	if (c) {
		c->pool = pool;
		c->conn = conn;
	}
	return c;
}

void fpg_stmt_free(struct fpg_stmt *st)
{
	if (!st)
		return;
	PQclear(st->error);
	free(st->cols);
	free(st->sql);
	free(st);
}

void fpg_stmt_cache_free(struct fpg_stmt_cache *cache)
{
	if (!cache)
		return;
	struct fpg_stmt *st = cache->lru_head;
	while (st) {
		struct fpg_stmt *next = st->lru_next;
		fpg_stmt_free(st);
		st = next;
	}
	free(cache);
}

static void lru_unlink(struct fpg_stmt_cache *c, struct fpg_stmt *st)
{
	if (st->lru_prev)
		st->lru_prev->lru_next = st->lru_next;
	else
		c->lru_head = st->lru_next;
	if (st->lru_next)
		st->lru_next->lru_prev = st->lru_prev;
	else
		c->lru_tail = st->lru_prev;
	st->lru_prev = st->lru_next = NULL;
}

static void lru_push_front(struct fpg_stmt_cache *c, struct fpg_stmt *st)
{
	st->lru_next = c->lru_head;
	if (c->lru_head)
		c->lru_head->lru_prev = st;
	else
		c->lru_tail = st;
	c->lru_head = st;
}

struct fpg_stmt *fpg_stmt_find(struct fpg_stmt_cache *c, const char *sql,
			       uint64_t h)
{
	for (struct fpg_stmt *st = c->buckets[h % FPG_STMT_BUCKETS]; st;
	     st = st->hnext)
		if (st->hash == h && strcmp(st->sql, sql) == 0)
			return st;
	return NULL;
}

void fpg_stmt_remove(struct fpg_stmt_cache *c, struct fpg_stmt *st)
{
	struct fpg_stmt **pp = &c->buckets[st->hash % FPG_STMT_BUCKETS];
	while (*pp != st)
		pp = &(*pp)->hnext;
	*pp = st->hnext;
	lru_unlink(c, st);
	c->count--;
}

void fpg_stmt_insert(struct fpg_stmt_cache *c, struct fpg_stmt *st)
{
	FPG_ASSERT(!fpg_stmt_find(c, st->sql, st->hash));
	struct fpg_stmt **b = &c->buckets[st->hash % FPG_STMT_BUCKETS];
	st->hnext = *b;
	*b = st;
	lru_push_front(c, st);
	c->count++;
}

void fpg_stmt_touch(struct fpg_stmt_cache *c, struct fpg_stmt *st)
{
	lru_unlink(c, st);
	lru_push_front(c, st);
}

/*
 * Forgets a ready statement. Its DEALLOCATE queues behind every execution
 * already sent, so nothing in flight loses it.
 */
void fpg_stmt_drop(struct fpg_conn *conn, struct fpg_stmt_cache *c,
		   struct fpg_stmt *st)
{
	char sql[64];
	snprintf(sql, sizeof(sql), "DEALLOCATE %s", st->name);
	bool named = st->name[0] != '\0'; /* else described only */
	fpg_stmt_remove(c, st);
	fpg_stmt_free(st);
	if (!named)
		return;
	if (!PQsendQueryParams(fpg_conn_pg(conn), sql, 0, NULL, NULL, NULL,
			       NULL, 0)) {
		fpg_conn_fail(conn, PQerrorMessage(fpg_conn_pg(conn)));
		return;
	}
	fpg_conn_push_op(conn, fpg_pgop_ignore_result, fpg_pgop_ignore_done,
			 NULL, -1, 0);
}

/* Drops the least recently used ready statement. */
void fpg_stmt_evict(struct fpg_conn *conn, struct fpg_stmt_cache *c)
{
	struct fpg_stmt *st = c->lru_tail;
	while (st && st->state != FPG_STMT_READY)
		st = st->lru_prev;
	if (st)
		fpg_stmt_drop(conn, c, st);
}
