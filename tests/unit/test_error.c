/* SQLSTATE -> HTTP status, error JSON, message tidying, redaction,
 * FPG_ASSERT. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <jansson.h>
#include <string.h>

#include "error.h"
#include "unit.h"

START_TEST(status_map)
{
	static const struct {
		const char *state;
		int status;
	} cases[] = {
		{"42P01", 400}, {"42601", 400}, {"22012", 400}, {"22P02", 400},
		{"42501", 403}, {"23505", 409}, {"23503", 409}, {"40001", 409},
		{"40P01", 409}, {"57014", 504}, {"28P01", 401}, {"08006", 503},
		{"53300", 503}, {"57P01", 503}, {"XX000", 500}, {"P0001", 500},
		{"25P02", 409}, {NULL, 500}, {"4", 500},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ck_assert_msg(fpg_error_status_for_sqlstate(cases[i].state) ==
				      cases[i].status,
			      "%s", cases[i].state ? cases[i].state : "NULL");
}
END_TEST

START_TEST(json_without_pg_result)
{
	struct fpg_error err;
	struct fpg_buf b;
	fpg_buf_init(&b);
	fpg_error_set(&err, FPG_ERR_REQUEST, 400, "bad \"%s\"\n", "x");
	fpg_error_json(&b, &err, NULL);
	fpg_buf_putc(&b, '\0');
	json_error_t je;
	json_t *j = json_loads(b.data, 0, &je);
	ck_assert_msg(j != NULL, "%s: %s", b.data, je.text);
	json_t *e = json_object_get(j, "error");
	ck_assert_str_eq(json_string_value(json_object_get(e, "code")),
			 "bad_request");
	ck_assert_str_eq(json_string_value(json_object_get(e, "message")),
			 "bad \"x\"\n");
	ck_assert(json_is_null(json_object_get(e, "detail")));
	ck_assert(json_is_null(json_object_get(e, "hint")));
	ck_assert(json_is_null(json_object_get(e, "position")));
	json_decref(j);
	fpg_buf_deinit(&b);
}
END_TEST

START_TEST(tidy)
{
	char out[64];
	fpg_error_tidy(out, sizeof(out),
		       "connection refused\n\tIs the server running?\n");
	ck_assert_str_eq(out, "connection refused Is the server running?");
	fpg_error_tidy(out, 8, "abcdefghijk");
	ck_assert_str_eq(out, "abcdefg");
	fpg_error_tidy(out, sizeof(out), NULL);
	ck_assert_str_eq(out, "");
}
END_TEST

static void expect_redacted(const char *msg, bool echoes, const char *want)
{
	char out[256];
	fpg_error_redact(out, sizeof(out), msg, echoes);
	ck_assert_msg(strcmp(out, want) == 0, "[%s]:\n got  [%s]\n want [%s]",
		      msg, out, want);
}

/* Our own errors read as fpg_error_json writes them without a result. */
START_TEST(json_code_like_json)
{
	struct fpg_error err;
	fpg_error_set(&err, FPG_ERR_REQUEST, 404, "no \"such\"\n thing");
	err.reason = "not_found";
	struct fpg_buf a, b;
	fpg_buf_init(&a);
	fpg_buf_init(&b);
	fpg_error_json(&a, &err, NULL);
	fpg_error_json_code(&b, "not_found", "no \"such\"\n thing");
	ck_assert_int_eq(a.len, b.len);
	ck_assert(memcmp(a.data, b.data, a.len) == 0);
	fpg_buf_deinit(&a);
	fpg_buf_deinit(&b);
}
END_TEST

START_TEST(redact_passwords)
{
	/* conninfo: plain, quoted (escapes, blanks), spaced, any case */
	expect_redacted("host=h password=s3cret user=u", false,
			"host=h password=*** user=u");
	expect_redacted("password='a b\\' c' dbname=d", false,
			"password=*** dbname=d");
	expect_redacted("host=h password = s3cret", false,
			"host=h password = ***");
	expect_redacted("PASSWORD=s3cret sslpassword=k3y", false,
			"PASSWORD=*** sslpassword=***");
	expect_redacted("password=", false, "password=***");
	expect_redacted("password='unterminated", false, "password=***");
	/* URIs: user info, and password= in the query */
	expect_redacted("postgresql://user:s3cret@host:5432/db", false,
			"postgresql://user:***@host:5432/db");
	expect_redacted("postgres://u:p@ss@h/db?sslmode=require", false,
			"postgres://u:***@h/db?sslmode=require");
	expect_redacted("postgresql://h/db?user=u&password=s3cret&x=1", false,
			"postgresql://h/db?user=u&password=***&x=1");
	expect_redacted("bad URI: \"postgresql://u:s3cret@[::1\"", false,
			"bad URI: \"postgresql://u:***@[::1\"");
	/* Nothing to hide stays as it is. */
	expect_redacted("postgresql://user@host/db", false,
			"postgresql://user@host/db");
	expect_redacted("http://host:8080/x", false, "http://host:8080/x");
	expect_redacted("connection to server at \"h\" (::1), port 5432 "
			"failed: FATAL:  password authentication failed for "
			"user \"u\"",
			false,
			"connection to server at \"h\" (::1), port 5432 "
			"failed: FATAL:  password authentication failed for "
			"user \"u\"");
	expect_redacted(NULL, false, "");
	/* A message about a conninfo that did not parse may quote any of
	 * it: every quoted piece goes. */
	expect_redacted("missing \"=\" after \"b\" in connection info "
			"string",
			true,
			"missing \"=\" after \"***\" in connection info "
			"string");
	expect_redacted("invalid percent-encoded token: \"s3%zz", true,
			"invalid percent-encoded token: \"***");
	/* Truncated, still terminated. */
	char small[12];
	fpg_error_redact(small, sizeof(small), "password=s3cret and more",
			 false);
	ck_assert_str_eq(small, "password=**");
	/* tidy redacts too */
	fpg_error_tidy(small, sizeof(small), "password=x\ny");
	ck_assert_str_eq(small, "password=**");
}
END_TEST

static int evaluated;

static bool counted(bool v)
{
	evaluated++;
	return v;
}

START_TEST(assert_holds)
{
	evaluated = 0;
	FPG_ASSERT(counted(true));
#ifdef FPG_CASSERT
	ck_assert_int_eq(evaluated, 1);
#else
	ck_assert_int_eq(evaluated, 0); /* compiled out, not evaluated */
#endif
}
END_TEST

#ifdef FPG_CASSERT
START_TEST(assert_fails_aborts)
{
	FPG_ASSERT(counted(false));
}
END_TEST
#endif

/* Neon's error object and status for errors without a PGresult (the
 * fields of one are checked against PostgreSQL in it_sql). */
START_TEST(neon_errors)
{
	static const struct {
		enum fpg_errcode code;
		int status;
		const char *sqlstate, *reason;
		int want_status;
		const char *want_code;
	} cases[] = {
	    {FPG_ERR_REQUEST, 400, "", NULL, 400, NULL},
	    {FPG_ERR_REQUEST, 401, "", "unauthorized", 400, "28P01"},
	    {FPG_ERR_REQUEST, 401, "", "token_expired", 400, "28000"},
	    {FPG_ERR_REQUEST, 403, "", "raw_sql_off", 400, "42501"},
	    {FPG_ERR_LIMIT, 413, "", "result_too_large", 400, "54000"},
	    {FPG_ERR_LIMIT, 507, "", "result_not_read", 400, "54000"},
	    {FPG_ERR_PG, 504, "57014", NULL, 400, "57014"},
	    {FPG_ERR_PG, 409, "40001", NULL, 400, "40001"},
	    {FPG_ERR_UNAVAILABLE, 503, "", NULL, 503, NULL},
	    {FPG_ERR_LIMIT, 429, "", "rate_limited", 429, NULL},
	    {FPG_ERR_REQUEST, 415, "", NULL, 415, NULL},
	    {FPG_ERR_NOMEM, 503, "", NULL, 503, NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		struct fpg_error err;
		struct fpg_buf b;
		fpg_buf_init(&b);
		fpg_error_set(&err, cases[i].code, cases[i].status, "m%zu", i);
		snprintf(err.sqlstate, sizeof(err.sqlstate), "%s",
			 cases[i].sqlstate);
		err.reason = cases[i].reason;
		ck_assert_int_eq(fpg_error_neon_status(&err, NULL),
				 cases[i].want_status);
		fpg_error_neon_json(&b, &err, NULL);
		fpg_buf_putc(&b, '\0');
		json_t *j = json_loads(b.data, 0, NULL);
		ck_assert_msg(j != NULL, "%s", b.data);
		char m[8];
		snprintf(m, sizeof(m), "m%zu", i);
		ck_assert_str_eq(json_string_value(json_object_get(j, "message")),
				 m);
		const char *code = json_string_value(json_object_get(j, "code"));
		if (cases[i].want_code)
			ck_assert_msg(code && strcmp(code, cases[i].want_code) == 0,
				      "%zu: %s", i, b.data);
		else
			ck_assert_msg(!code, "%zu: %s", i, b.data);
		ck_assert(json_is_string(json_object_get(j, "reason")));
		json_decref(j);
		fpg_buf_deinit(&b);
	}
}
END_TEST

static const struct test_case cases[] = {
	TEST_CASE(status_map),
	TEST_CASE(json_without_pg_result),
	TEST_CASE(tidy),
	TEST_CASE(redact_passwords),
	TEST_CASE(json_code_like_json),
	TEST_CASE(assert_holds),
	TEST_CASE(neon_errors),
#ifdef FPG_CASSERT
	TEST_RAISES(assert_fails_aborts, SIGABRT),
#endif
	{0},
};

const struct unit_program unit_program = {
	.name = "error",
	.cases = cases,
};
