/* What a connection tells PostgreSQL at start, and where it logs in. */
#include <check.h>
#include <stdlib.h>

#include "startup.h"
#include "unit.h"

static char db[64], user[64];

static void target(const char *conninfo)
{
	fpg_startup_target(conninfo, db, sizeof(db), user, sizeof(user));
}

/* libpq's order: the conninfo's own, then the environment, then the
 * database named after the user. */
START_TEST(target_as_libpq_resolves_it)
{
	unsetenv("PGSERVICE");
	setenv("PGUSER", "envuser", 1);
	setenv("PGDATABASE", "envdb", 1);
	target("host=h user=u dbname=d");
	ck_assert_str_eq(db, "d");
	ck_assert_str_eq(user, "u");
	target("postgresql://u2@h/d2?sslmode=disable");
	ck_assert_str_eq(db, "d2");
	ck_assert_str_eq(user, "u2");
	target("plain_name");
	ck_assert_str_eq(db, "plain_name");
	ck_assert_str_eq(user, "envuser");
	target("host=h");
	ck_assert_str_eq(db, "envdb");
	ck_assert_str_eq(user, "envuser");
	unsetenv("PGDATABASE");
	target(NULL);
	ck_assert_str_eq(db, "envuser");
	ck_assert_str_eq(user, "envuser");
	/* a service file may say: unknown */
	target("service=mine");
	ck_assert_str_eq(db, "");
	ck_assert_str_eq(user, "");
	target("service=mine user=u dbname=d");
	ck_assert_str_eq(db, "d");
	ck_assert_str_eq(user, "u");
	unsetenv("PGUSER");
}
END_TEST

static const struct test_case cases[] = {
	TEST_CASE(target_as_libpq_resolves_it),
	{0},
};

const struct unit_program unit_program = {.name = "startup", .cases = cases};
