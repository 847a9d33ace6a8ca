/* SQLSTATE -> HTTP status, error JSON, message tidying. */
#include <check.h>
#include <jansson.h>
#include <string.h>

#include "error.h"

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

int main(void)
{
	Suite *s = suite_create("error");
	TCase *tc = tcase_create("error");
	tcase_add_test(tc, status_map);
	tcase_add_test(tc, json_without_pg_result);
	tcase_add_test(tc, tidy);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
