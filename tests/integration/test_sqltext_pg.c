/*
 * fpg_sqltext (src/sqltext.c) against PostgreSQL's own lexer: random
 * texts built from the pieces that open and close comments and quotes,
 * each put where the server's answer tells which reading it took.
 *   SELECT 1 <text>: accepted exactly when the text is only whitespace
 *     and comments (every other piece is a syntax error there);
 *   SELECT <text>: for a text opening a string, accepted exactly when
 *     the text is that one string (nothing else may follow it).
 * Each is sent as an unnamed Parse, so nothing runs. \v is left out
 * (whitespace since PostgreSQL 16 and here, a syntax error in 15), and so
 * are backslashes in U&'' (escapes whose content PostgreSQL refuses,
 * although the string ends where we say).
 */
#include <check.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "it.h"
#include "sqltext.h"

static bool only_blank(const char *t)
{
	struct fpg_sqltext s;
	struct fpg_sqltext_token k;
	fpg_sqltext_init(&s, t);
	return fpg_sqltext_next(&s, &k) == FPG_SQLTEXT_END;
}

static bool one_string(const char *t)
{
	struct fpg_sqltext s;
	struct fpg_sqltext_token k;
	fpg_sqltext_init(&s, t);
	return fpg_sqltext_next(&s, &k) == FPG_SQLTEXT_STRING &&
	       fpg_sqltext_next(&s, &k) == FPG_SQLTEXT_END;
}

static bool parses(PGconn *c, const char *sql)
{
	PGresult *r = PQprepare(c, "", sql, 0, NULL);
	bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	PQclear(r);
	return ok;
}

static void gen(char *out, size_t cap, const char *open,
		const char *const *pieces, size_t n, bool no_backslash)
{
	snprintf(out, cap, "%s", open);
	for (int i = rand() % 14; i > 0; i--) {
		const char *pc = pieces[(size_t)rand() % n];
		if ((no_backslash && strchr(pc, '\\')) ||
		    strlen(out) + strlen(pc) + 1 > cap)
			continue;
		strcat(out, pc);
	}
}

START_TEST(agrees_with_postgres)
{
	static const char *const blank[] = {
	    "--", "/*", "*/", " ", "\n", "\r", "\t", "\f", "-", "*", "/",
	    "'", "$$",
	};
	static const char *const inside[] = {
	    "\\", "\\'", "''", "'", "1", " ", "\n", "\r", "--", "/*", "*/",
	    "$$", ")", "\t",
	};
	static const char *const opens[] = {"'", "E'", "e'", "U&'", "N'"};
	unsigned seed = it_seed();
	PGconn *c = PQconnectdb(it_db());
	ck_assert_int_eq(PQstatus(c), CONNECTION_OK);
	int accepted[2] = {0, 0};
	for (int round = 0; round < 6000; round++) {
		bool str = round % 2;
		char t[256], sql[300];
		if (str) {
			int o = rand() % 5;
			gen(t, sizeof(t), opens[o], inside,
			    sizeof(inside) / sizeof(inside[0]), o == 3);
		} else {
			gen(t, sizeof(t), "", blank,
			    sizeof(blank) / sizeof(blank[0]), false);
		}
		snprintf(sql, sizeof(sql), str ? "SELECT %s" : "SELECT 1 %s",
			 t);
		bool ours = str ? one_string(t) : only_blank(t);
		accepted[str] += ours;
		ck_assert_msg(ours == parses(c, sql),
			      "seed %u: [%s]: ours %d, PostgreSQL: %s", seed,
			      sql, ours, PQerrorMessage(c));
	}
	/* both readings were met often */
	ck_assert_int_gt(accepted[0], 300);
	ck_assert_int_gt(accepted[1], 300);
	PQfinish(c);
}
END_TEST

static const struct test_case cases[] = {
    TEST_CASE(agrees_with_postgres),
    {0},
};

const struct it_program it_program = {
    .name = "sqltext_pg",
    .cases = cases,
    .fork = true,
    .timeout_s = 120,
};
