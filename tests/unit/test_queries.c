/* queries.c: the header of a named query's file (roles, read-only) and
 * what is left of it as the SQL. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "queries.h"
#include "unit.h"

static char dir[64];

static void write_query(const char *name, const char *text)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/%s.sql", dir, name);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

static void make_dir(void)
{
	snprintf(dir, sizeof(dir), "/tmp/fpg_unit_queries_XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void remove_dir(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

/* Loads dir with the one query q holding text; NULL with err on failure. */
static struct fpg_queries *load_one(const char *text, struct fpg_error *err)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -f '%s'/*.sql", dir);
	ck_assert_int_eq(system(cmd), 0);
	write_query("q", text);
	return fpg_queries_load(dir, err);
}

START_TEST(header_lines_in_any_order)
{
	static const char *const texts[] = {
		"-- roles: alice, bob\n-- read-only\nSELECT 1\n",
		"-- read-only\n-- roles: alice, bob\nSELECT 1\n",
		("-- what it does\n\n--read-only\r\n--  roles:alice,bob \r\n"
		 "SELECT 1\n"),
	};
	for (size_t i = 0; i < sizeof(texts) / sizeof(*texts); i++) {
		struct fpg_error err = {0};
		struct fpg_queries *q = load_one(texts[i], &err);
		ck_assert_msg(q, "%zu: %s", i, err.message);
		ck_assert_msg(fpg_queries_read_only(q, "q"), "%zu", i);
		ck_assert(fpg_queries_allows(q, "q", "alice"));
		ck_assert(fpg_queries_allows(q, "q", "bob"));
		ck_assert(!fpg_queries_allows(q, "q", "carol"));
		ck_assert(!fpg_queries_allows(q, "q", ""));
		ck_assert_str_eq(fpg_queries_sql(q, "q"), "SELECT 1\n");
		fpg_queries_free(q);
	}
}
END_TEST

START_TEST(no_header_no_marks)
{
	struct fpg_error err = {0};
	struct fpg_queries *q = load_one("SELECT 2 -- read-only\n", &err);
	ck_assert_msg(q, "%s", err.message);
	ck_assert(!fpg_queries_read_only(q, "q"));
	ck_assert(fpg_queries_allows(q, "q", "anyone"));
	ck_assert_str_eq(fpg_queries_sql(q, "q"), "SELECT 2 -- read-only\n");
	ck_assert(!fpg_queries_read_only(q, "nope"));
	fpg_queries_free(q);
	/* A mark after the SQL began is SQL (a comment), not a mark. */
	q = load_one("SELECT 3\n-- read-only\n", &err);
	ck_assert_msg(q, "%s", err.message);
	ck_assert(!fpg_queries_read_only(q, "q"));
	fpg_queries_free(q);
}
END_TEST

START_TEST(bad_headers_do_not_load)
{
	static const char *const texts[] = {
		"-- readonly\nSELECT 1\n",
		"-- read-only please\nSELECT 1\n",
		"-- Read-Only\nSELECT 1\n",
		"-- roles: a\n-- roles: b\nSELECT 1\n",
		"-- read-only\n-- roles: a\n\n",
	};
	for (size_t i = 0; i < sizeof(texts) / sizeof(*texts); i++) {
		struct fpg_error err = {0};
		struct fpg_queries *q = load_one(texts[i], &err);
		ck_assert_msg(!q, "%zu loaded", i);
		ck_assert_int_eq(err.code, FPG_ERR_CONFIG);
		ck_assert_msg(strstr(err.message, "q.sql"), "%s", err.message);
	}
}
END_TEST

static const struct test_case cases[] = {
	TEST_CASE(header_lines_in_any_order),
	TEST_CASE(no_header_no_marks),
	TEST_CASE(bad_headers_do_not_load),
	{0},
};

const struct unit_program unit_program = {
	.name = "queries",
	.cases = cases,
	.before_each = make_dir,
	.after_each = remove_dir,
};
