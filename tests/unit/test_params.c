/* JSON body -> statement and text parameters. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "params.h"
#include "unit.h"

static struct fpg_statement st;
static struct fpg_error err;

static bool parse(const char *body)
{
	fpg_statement_deinit(&st);
	memset(&err, 0, sizeof(err));
	return fpg_statement_parse(&st, body, strlen(body), &err);
}

static void teardown(void)
{
	fpg_statement_deinit(&st);
}

START_TEST(scalars_keep_their_text)
{
	ck_assert(parse("{\"sql\":\"x\",\"params\":[null, \"a\\\"b\", "
			"123456789012345678901234567890, 1.50e+3, true, "
			"false, -0.0]}"));
	ck_assert_int_eq(st.nparams, 7);
	ck_assert_ptr_null(st.params[0]);
	ck_assert_str_eq(st.params[1], "a\"b");
	ck_assert_str_eq(st.params[2], "123456789012345678901234567890");
	ck_assert_str_eq(st.params[3], "1.50e+3");
	ck_assert_str_eq(st.params[4], "true");
	ck_assert_str_eq(st.params[5], "false");
	ck_assert_str_eq(st.params[6], "-0.0");
}
END_TEST

/* Numbers beyond a double's range keep every digit (they were refused). */
START_TEST(huge_numbers_keep_their_text)
{
	char big[2100];
	memset(big, '7', 2000);
	big[2000] = '\0';
	char *body = malloc(4500);
	snprintf(body, 4500,
		 "{\"sql\":\"x\",\"params\":[%s, -%s.5, 1e999, [1E+400, 2],"
		 " {\"k\": 9e9999}, \"1e999\"], \"rows\":\"array\"}",
		 big, big);
	ck_assert_msg(parse(body), "%s", err.message);
	ck_assert_int_eq(st.nparams, 6);
	ck_assert_str_eq(st.params[0], big);
	ck_assert_int_eq(strlen(st.params[1]), 2003);
	ck_assert(st.params[1][0] == '-' && strcmp(st.params[1] + 2001, ".5") == 0);
	ck_assert_str_eq(st.params[2], "1e999");
	ck_assert_str_eq(st.params[3], "{1E+400,2}");
	ck_assert_str_eq(st.params[4], "{\"k\": 9e9999}");
	ck_assert_str_eq(st.params[5], "1e999");
	ck_assert_int_eq(st.rows, FPG_ROWS_ARRAY);
	/* Still invalid JSON is still refused. */
	ck_assert(!parse("{\"sql\":\"x\",\"params\":[1e999x]}"));
	ck_assert(!parse("{\"sql\":\"x\",\"params\":[--1e999]}"));
	/* Where the raw text cannot be found, no silent 0. */
	ck_assert(!parse("{\"sql\":\"x\",\"par\\u0061ms\":[1e999]}"));
	ck_assert_int_eq(err.http_status, 400);
	free(body);
}
END_TEST

START_TEST(objects_are_their_json_text)
{
	ck_assert(parse("{\"params\":[{\"a\": [1, 2.000000000000000000001]}],"
			"\"sql\":\"x\"}"));
	ck_assert_str_eq(st.params[0], "{\"a\": [1, 2.000000000000000000001]}");
}
END_TEST

START_TEST(arrays_become_array_literals)
{
	ck_assert(parse("{\"sql\":\"x\",\"params\":[[1,2,null], "
			"[[\"a,b\",\"q\\\"\"],[\"{}\",\"back\\\\slash\"]], [], "
			"[{\"k\":1}], [true, 12345678901234567890123]]}"));
	ck_assert_str_eq(st.params[0], "{1,2,NULL}");
	ck_assert_str_eq(st.params[1],
			 "{{\"a,b\",\"q\\\"\"},{\"{}\",\"back\\\\slash\"}}");
	ck_assert_str_eq(st.params[2], "{}");
	ck_assert_str_eq(st.params[3], "{\"{\\\"k\\\":1}\"}");
	ck_assert_str_eq(st.params[4], "{true,12345678901234567890123}");
}
END_TEST

START_TEST(options_are_parsed)
{
	ck_assert(parse("{\"sql\":\"x\",\"rows\":\"array\",\"expect\":"
			"\"scalar\",\"big_numbers\":\"string\","
			"\"timeout_ms\":250}"));
	ck_assert_int_eq(st.rows, FPG_ROWS_ARRAY);
	ck_assert_int_eq(st.expect, FPG_EXPECT_SCALAR);
	ck_assert(st.big_numbers_string);
	ck_assert_uint_eq(st.timeout_ms, 250);
	ck_assert_int_eq(st.nparams, 0);
}
END_TEST

static const char *const bad_bodies[] = {
	"",
	"nope",
	"[1]",
	"{}",
	"{\"sql\":\"  \\n\"}",
	"{\"sql\":1}",
	"{\"sql\":\"x\",\"params\":{}}",
	"{\"sql\":\"x\",\"rows\":\"table\"}",
	"{\"sql\":\"x\",\"expect\":\"many\"}",
	"{\"sql\":\"x\",\"big_numbers\":true}",
	"{\"sql\":\"x\",\"timeout_ms\":0}",
	"{\"sql\":\"x\",\"timeout_ms\":\"5\"}",
	"{\"sql\":\"x\",\"extra\":1}",
	"{\"sql\":\"x\",\"sql\":\"y\"}",
};

START_TEST(bad_bodies_are_400)
{
	const char *b = bad_bodies[_i];
	ck_assert_msg(!parse(b), "accepted: %s", b);
	ck_assert_int_eq(err.http_status, 400);
	ck_assert_int_eq(err.code, FPG_ERR_REQUEST);
	ck_assert(strlen(err.message) > 5);
}
END_TEST

START_TEST(autocommit_check)
{
	static const char *const refused[] = {
		"BEGIN", " begin;", "/* c */ START TRANSACTION",
		"-- x\ncommit", "ROLLBACK", "savepoint a", "SET x = 1",
		"reset all", "LISTEN x", "copy t from stdin", "(COPY t TO STDOUT)",
		"/* a /* nested */ b */ prepare p as select 1", "discard all",
	};
	static const char *const allowed[] = {
		"select 1", "SELECT 'BEGIN'", "with x as (select 1) select * from x",
		"insert into t values (1)", "settings", "committed", "explain select 1",
	};
	struct fpg_error e;
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		ck_assert_msg(!fpg_statement_check_autocommit(refused[i], &e),
			      "accepted %s", refused[i]);
	for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
		ck_assert_msg(fpg_statement_check_autocommit(allowed[i], &e),
			      "refused %s", allowed[i]);
}
END_TEST

/*
 * A batch body that ends right after "statements": was read one byte past
 * its end (fuzz/fuzz_statement; ASan: heap-buffer-overflow). The byte
 * after it here is '[', which made it look like an empty array.
 */
START_TEST(batch_body_ends_after_key)
{
	static const char body[] = "{\"statements\":[";
	struct fpg_statement *list = NULL;
	unsigned n = 0;
	struct fpg_error e;
	memset(&e, 0, sizeof(e));
	ck_assert(!fpg_statement_list_parse(body, sizeof(body) - 2,
					    "statements", 10, &list, &n, &e));
	ck_assert_int_eq(e.http_status, 400);
	ck_assert_msg(strstr(e.message, "must be an array"), "%s", e.message);
	fpg_statement_list_free(list, n);
}
END_TEST

/*
 * PostgreSQL ends a "--" comment at \r as well as \n: "--\rBEGIN" is a
 * BEGIN, which the checks took for a comment only (fuzz/fuzz_sqlcheck).
 */
START_TEST(line_comment_ends_at_cr)
{
	struct fpg_error e;
	ck_assert(!fpg_statement_check_autocommit("--\rBEGIN", &e));
	ck_assert(
	    !fpg_statement_check_autocommit("-- x\rSET search_path = x", &e));
	ck_assert(!fpg_statement_check_in_tx("--\rCOMMIT", &e));
	ck_assert(fpg_statement_check_in_tx("ROLLBACK --\rTO s", &e));
	ck_assert(fpg_statement_check_autocommit("-- BEGIN\n\rSELECT 1", &e));
}
END_TEST

/*
 * The checks read PostgreSQL's words (sqltext.c), not runs of letters:
 * BEGIN_x or TO_x is another word (PostgreSQL refuses the statement as a
 * syntax error), and PREPARE transactions AS ... names a statement, which
 * a prefix comparison took for PREPARE TRANSACTION.
 */
START_TEST(checks_read_whole_words)
{
	struct fpg_error e;
	ck_assert(fpg_statement_check_autocommit("BEGIN_x", &e));
	ck_assert(fpg_statement_check_autocommit("SET$x", &e));
	ck_assert(fpg_statement_check_autocommit("\"BEGIN\"", &e));
	ck_assert(!fpg_statement_check_autocommit(";(( /* ; */ BEGIN", &e));
	ck_assert(!fpg_statement_check_autocommit("/* a /* b */ c */SET x=1", &e));
	ck_assert(fpg_statement_check_autocommit("/* a /* b */ SET x=1", &e));
	ck_assert(!fpg_statement_check_in_tx("ROLLBACK TO_x", &e));
	ck_assert(fpg_statement_check_in_tx(
	    "PREPARE transactions AS SELECT 1", &e));
	ck_assert(!fpg_statement_check_in_tx("PREPARE transaction 'x'", &e));
	ck_assert(!fpg_statement_check_in_tx("copy t to stdout", &e));
	ck_assert_str_eq(e.message, "COPY is not supported here");
}
END_TEST

/* ROLLBACK's optional noise word before TO (it was refused). */
START_TEST(rollback_work_to_savepoint)
{
	struct fpg_error e;
	ck_assert(fpg_statement_check_in_tx("ROLLBACK WORK TO SAVEPOINT a", &e));
	ck_assert(fpg_statement_check_in_tx("rollback transaction to a", &e));
	ck_assert(!fpg_statement_check_in_tx("ROLLBACK WORK", &e));
	ck_assert(!fpg_statement_check_in_tx("ROLLBACK TRANSACTION", &e));
	ck_assert(!fpg_statement_check_in_tx("ROLLBACK WORKTO a", &e));
	/* a semicolon ends the ROLLBACK (fuzz/fuzz_sqlcheck) */
	ck_assert(!fpg_statement_check_in_tx("ROLLBACK;/**/TO s", &e));
	ck_assert(!fpg_statement_check_in_tx("ROLLBACK WORK; TO s", &e));
}
END_TEST

/*
 * jansson skips a NUL byte between tokens; the raw scan took it for the
 * end of a value, and the parameters after it got their neighbours' text
 * (true went as "null", false as "true"; fuzz/fuzz_statement).
 */
START_TEST(nul_byte_is_400)
{
	static const char body[] =
	    "{\"sql\":\"x\",\"params\":[1\0,null,true,false]}";
	fpg_statement_deinit(&st);
	memset(&err, 0, sizeof(err));
	ck_assert(!fpg_statement_parse(&st, body, sizeof(body) - 1, &err));
	ck_assert_int_eq(err.http_status, 400);
}
END_TEST

/* Neon's body: one statement or a batch, "arrayMode" over the header's
 * default, unknown fields ignored. */
START_TEST(neon_bodies)
{
	struct fpg_statement *list = NULL;
	unsigned n = 0;
	bool batch = true;
	const char *one = "{\"query\":\"SELECT $1\",\"params\":[\"a\",null,"
			  "1.50],\"later\":{}}";
	ck_assert(fpg_statement_parse_neon(one, strlen(one), true, 10, &list,
					   &n, &batch, &err));
	ck_assert(!batch);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(list[0].sql, "SELECT $1");
	ck_assert_int_eq(list[0].nparams, 3);
	ck_assert_str_eq(list[0].params[0], "a");
	ck_assert_ptr_null(list[0].params[1]);
	ck_assert_str_eq(list[0].params[2], "1.50");
	ck_assert_int_eq(list[0].rows, FPG_ROWS_ARRAY);
	fpg_statement_list_free(list, n);
	const char *many = "{\"queries\":[{\"query\":\"SELECT 1\"},"
			   "{\"query\":\"SELECT $1\",\"params\":[2],"
			   "\"arrayMode\":true}]}";
	ck_assert(fpg_statement_parse_neon(many, strlen(many), false, 10,
					   &list, &n, &batch, &err));
	ck_assert(batch);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(list[0].rows, FPG_ROWS_OBJECT);
	ck_assert_int_eq(list[1].rows, FPG_ROWS_ARRAY);
	ck_assert_str_eq(list[1].params[0], "2");
	fpg_statement_list_free(list, n);
	static const char *const bad[] = {
	    "", "[]", "{}", "{\"query\":1}", "{\"query\":\" \"}",
	    "{\"query\":\"x\",\"params\":{}}",
	    "{\"query\":\"x\",\"arrayMode\":1}", "{\"queries\":[]}",
	    "{\"queries\":{}}", "{\"queries\":[{\"sql\":\"x\"}]}",
	    ("{\"queries\":[{\"query\":\"1\"},{\"query\":\"2\"},"
	     "{\"query\":\"3\"}]}"),
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		memset(&err, 0, sizeof(err));
		ck_assert_msg(!fpg_statement_parse_neon(bad[i], strlen(bad[i]),
							false, 2, &list, &n,
							&batch, &err),
			      "%s", bad[i]);
		ck_assert_int_eq(err.http_status, 400);
		fpg_statement_list_free(list, n);
	}
}
END_TEST

static const struct test_case cases[] = {
	TEST_CASE(scalars_keep_their_text),
	TEST_CASE(huge_numbers_keep_their_text),
	TEST_CASE(objects_are_their_json_text),
	TEST_CASE(arrays_become_array_literals),
	TEST_CASE(options_are_parsed),
	TEST_LOOP(bad_bodies_are_400,
		  (int)(sizeof(bad_bodies) / sizeof(bad_bodies[0]))),
	TEST_CASE(autocommit_check),
	TEST_CASE(batch_body_ends_after_key),
	TEST_CASE(line_comment_ends_at_cr),
	TEST_CASE(rollback_work_to_savepoint),
	TEST_CASE(checks_read_whole_words),
	TEST_CASE(nul_byte_is_400),
	TEST_CASE(neon_bodies),
	{0},
};

const struct unit_program unit_program = {
	.name = "params",
	.cases = cases,
	.after_each = teardown,
};
