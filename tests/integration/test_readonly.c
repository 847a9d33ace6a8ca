/*
 * --read-only: every statement runs in a read-only transaction, whatever
 * its SQL sets, on /query, in sessions and through COPY; writes answer
 * 403 with SQLSTATE 25006 and change nothing.
 */
#include "it_common.h"

static unsigned port;

static struct http_resp *query(const char *sql)
{
	json_t *b = json_pack("{s:s}", "sql", sql);
	char *body = json_dumps(b, JSON_COMPACT);
	json_decref(b);
	struct http_resp *r = http_post_json(port, "/query", body);
	free(body);
	return r;
}

static void assert_refused(struct http_resp *r, const char *what)
{
	ck_assert_msg(r->status == 403 && strstr(r->body, "25006"),
		      "%s: %ld %s", what, r->status, r->body);
	http_resp_free(r);
}

static char *count_rows(const char *table)
{
	char sql[200];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", table);
	return pgh_scalar(sql);
}

START_TEST(writes_are_refused)
{
	char *t = it_table("ro");
	char sql[300];
	snprintf(sql, sizeof(sql), "CREATE TABLE %s (n int)", t);
	pgh_exec(sql);
	/* Reading works. */
	struct http_resp *r = query("SELECT 1 AS one");
	ck_assert_int_eq(r->status, 200);
	http_resp_free(r);
	int n = 1 + rand() % 5;
	for (int i = 0; i < n; i++) {
		snprintf(sql, sizeof(sql), "INSERT INTO %s VALUES (%d)", t, i);
		assert_refused(query(sql), "INSERT");
		/* A default the statement sets does not outlive it... */
		r = query("SELECT set_config('default_transaction_read_only', "
			  "'off', false)");
		http_resp_free(r);
		snprintf(sql, sizeof(sql), "INSERT INTO %s VALUES (%d)", t, i);
		assert_refused(query(sql), "INSERT after set_config");
		/* ...and its own transaction cannot turn read-write. */
		snprintf(sql, sizeof(sql),
			 "DO $$BEGIN SET TRANSACTION READ WRITE; INSERT INTO %s "
			 "VALUES (%d); END$$",
			 t, i);
		r = query(sql);
		ck_assert_int_ne(r->status, 200);
		http_resp_free(r);
	}
	snprintf(sql, sizeof(sql), "CREATE TABLE %s_more (n int)", t);
	assert_refused(query(sql), "CREATE TABLE");
	char *c = count_rows(t);
	ck_assert_str_eq(c, "0");
	free(c);
	free(t);
}
END_TEST

START_TEST(sessions_and_copy_are_read_only)
{
	char *t = it_table("ro_tx");
	char sql[300], path[200];
	snprintf(sql, sizeof(sql), "CREATE TABLE %s (n int)", t);
	pgh_exec(sql);
	/* Even a session that asks to write gets a read-only one. */
	struct http_resp *r =
		http_post_json(port, "/tx", "{\"read_only\":false}");
	ck_assert_msg(r->status == 201, "%ld %s", r->status, r->body);
	char token[128];
	snprintf(token, sizeof(token), "%s",
		 json_string_value(json_object_get(r->json, "tx")));
	http_resp_free(r);
	snprintf(path, sizeof(path), "/tx/%s/query", token);
	snprintf(sql, sizeof(sql), "{\"sql\":\"INSERT INTO %s VALUES (1)\"}", t);
	assert_refused(http_post_json(port, path, sql), "INSERT in a session");
	snprintf(path, sizeof(path), "/tx/%s/rollback", token);
	r = http_post_json(port, path, "{}");
	http_resp_free(r);
	/* COPY FROM too. */
	snprintf(path, sizeof(path), "/copy?table=%s", t);
	const char *headers[] = {"Content-Type: text/csv", NULL};
	r = http_request(port, "POST", path, "1\n2\n", headers);
	ck_assert_msg(r->status == 403, "COPY: %ld %s", r->status, r->body);
	http_resp_free(r);
	char *c = count_rows(t);
	ck_assert_str_eq(c, "0");
	free(c);
	free(t);
}
END_TEST

static void read_only(struct fpg_options *o)
{
	o->read_only = 1;
}

static const struct test_case cases[] = {
    TEST_CASE(writes_are_refused),
    TEST_CASE(sessions_and_copy_are_read_only),
    {0},
};

static const struct it_server servers[] = {
    {&port, read_only},
    {0},
};

const struct it_program it_program = {
    .name = "readonly",
    .cases = cases,
    .servers = servers,
    .schema_per_case = true,
};
