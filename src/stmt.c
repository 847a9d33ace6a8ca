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
		fpg_list_init(&c->lru);
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
	struct fpg_list *n;
	while ((n = fpg_list_first(&cache->lru))) {
		fpg_list_remove(n);
		fpg_stmt_free(FPG_CONTAINER_OF(n, struct fpg_stmt, lru));
	}
	free(cache);
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
	fpg_list_remove(&st->lru);
	c->count--;
}

void fpg_stmt_insert(struct fpg_stmt_cache *c, struct fpg_stmt *st)
{
	FPG_ASSERT(!fpg_stmt_find(c, st->sql, st->hash));
	struct fpg_stmt **b = &c->buckets[st->hash % FPG_STMT_BUCKETS];
	st->hnext = *b;
	*b = st;
	fpg_list_push_front(&c->lru, &st->lru);
	c->count++;
}

void fpg_stmt_touch(struct fpg_stmt_cache *c, struct fpg_stmt *st)
{
	fpg_list_remove(&st->lru);
	fpg_list_push_front(&c->lru, &st->lru);
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
	for (struct fpg_list *n = fpg_list_last(&c->lru); n;
	     n = fpg_list_prev(&c->lru, n)) {
		struct fpg_stmt *st = FPG_CONTAINER_OF(n, struct fpg_stmt, lru);
		if (st->state == FPG_STMT_READY) {
			fpg_stmt_drop(conn, c, st);
			return;
		}
	}
}
