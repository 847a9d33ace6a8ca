/* Neon's request headers: the connection string and the option values. */
#include <check.h>
#include <string.h>

#include "neon.h"
#include "unit.h"

static struct fpg_error err;
static struct fpg_neon_login l;

START_TEST(connection_strings)
{
	static const struct {
		const char *s, *user, *password, *dbname;
	} good[] = {
	    {"postgresql://alice:secret@ep-x.neon.tech/app", "alice", "secret",
	     "app"},
	    {"postgres://u@h:5432/d?sslmode=require&application_name=x", "u",
	     "", "d"},
	    /* percent-encoding; parameters libpq does not know (an ORM's) */
	    {"postgresql://al%40ice:p%3Aw%2F%3F%23@[::1]:6543/my%20db?schema="
	     "public&pgbouncer=true",
	     "al@ice", "p:w/?#", "my db"},
	    {"postgresql://h", "", "", ""},
	    {"postgresql://user:@h/db", "user", "", "db"},
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++) {
		ck_assert_msg(fpg_neon_parse_login(good[i].s, &l, &err), "%s: %s",
			      good[i].s, err.message);
		ck_assert_str_eq(l.user, good[i].user);
		ck_assert_str_eq(l.password, good[i].password);
		ck_assert_str_eq(l.dbname, good[i].dbname);
		fpg_neon_login_wipe(&l);
		ck_assert_str_eq(l.password, "");
	}
	char long_user[200];
	memset(long_user, 'u', sizeof(long_user));
	memcpy(long_user, "postgresql://", 13);
	strcpy(long_user + 150, ":pw@h/db");
	static const char *const bad[] = {
	    "host=h dbname=d", "mysql://u:p@h/d", "", "postgresql://u:topsecret@h/d%zz",
	    "postgresql://u:topsecret@[::1/d",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		ck_assert_msg(!fpg_neon_parse_login(bad[i], &l, &err), "%s",
			      bad[i]);
		ck_assert_int_eq(err.http_status, 400);
		/* the message never quotes the string (it has a password) */
		ck_assert_ptr_null(strstr(err.message, "topsecret"));
	}
	ck_assert(!fpg_neon_parse_login(long_user, &l, &err));
	ck_assert_int_eq(err.http_status, 400);
}
END_TEST

START_TEST(option_values)
{
	bool b = false;
	ck_assert(fpg_neon_parse_bool("X", NULL, true, &b, &err) && b);
	ck_assert(fpg_neon_parse_bool("X", "false", true, &b, &err) && !b);
	ck_assert(fpg_neon_parse_bool("X", "TRUE", false, &b, &err) && b);
	ck_assert(!fpg_neon_parse_bool("X", "1", false, &b, &err));
	ck_assert_int_eq(err.http_status, 400);
	enum fpg_tx_isolation iso;
	ck_assert(fpg_neon_parse_isolation(NULL, &iso, &err));
	ck_assert_int_eq(iso, FPG_TX_READ_COMMITTED);
	ck_assert(fpg_neon_parse_isolation("ReadUncommitted", &iso, &err));
	ck_assert_int_eq(iso, FPG_TX_READ_COMMITTED);
	ck_assert(fpg_neon_parse_isolation("RepeatableRead", &iso, &err));
	ck_assert_int_eq(iso, FPG_TX_REPEATABLE_READ);
	ck_assert(fpg_neon_parse_isolation("serializable", &iso, &err));
	ck_assert_int_eq(iso, FPG_TX_SERIALIZABLE);
	ck_assert(fpg_neon_parse_isolation("read committed", &iso, &err));
	ck_assert(!fpg_neon_parse_isolation("Snapshot", &iso, &err));
	ck_assert_int_eq(err.http_status, 400);
}
END_TEST

static const struct test_case cases[] = {
	TEST_CASE(connection_strings),
	TEST_CASE(option_values),
	{0},
};

const struct unit_program unit_program = {.name = "neon", .cases = cases};
