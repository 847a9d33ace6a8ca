/*
 * Proves the test support code: a throwaway cluster starts, answers, and
 * survives a stop/start on the same port; the HTTP wrapper reports a refused
 * connection instead of failing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <curl/curl.h>
#include <libpq-fe.h>

#include "http.h"
#include "it.h"
#include "pg_harness.h"
#include "raw.h"

START_TEST(scalar_select_1)
{
	char *v = pgh_scalar("select 1");

	ck_assert_ptr_nonnull(v);
	ck_assert_str_eq(v, "1");
	free(v);
}
END_TEST

START_TEST(scalar_null_is_null)
{
	ck_assert_ptr_null(pgh_scalar("select null::text"));
}
END_TEST

START_TEST(exec_then_scalar)
{
	pgh_exec("drop table if exists harness_t; "
		 "create table harness_t (v text); "
		 "insert into harness_t values ('é'), ('b')");
	char *v = pgh_scalar("select string_agg(v, ',' order by v) "
			     "from harness_t");
	ck_assert_str_eq(v, "b,é");
	free(v);
	pgh_exec("drop table harness_t");
}
END_TEST

START_TEST(conninfo_and_port)
{
	char want[128];

	snprintf(want, sizeof(want), "port=%u ", pgh_port());
	ck_assert_ptr_nonnull(pgh_conninfo());
	ck_assert_ptr_nonnull(strstr(pgh_conninfo(), want));
	ck_assert_ptr_nonnull(strstr(pgh_conninfo(), "host=127.0.0.1"));
}
END_TEST

START_TEST(restart_same_port)
{
	char *v;

	ck_assert(pgh_server_stop());
	PGconn *c = PQconnectdb(pgh_conninfo());
	ck_assert_int_ne(PQstatus(c), CONNECTION_OK);
	PQfinish(c);

	ck_assert(pgh_server_start());
	v = pgh_scalar("select current_setting('port')");
	ck_assert_uint_eq(strtoul(v, NULL, 10), pgh_port());
	free(v);
}
END_TEST

START_TEST(http_refused_is_reported)
{
	int fd;
	unsigned port = raw_refused_port(&fd);
	struct http_resp *r = http_get(port, "/healthz");

	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(r->curl_code, CURLE_COULDNT_CONNECT);
	ck_assert_int_eq(r->status, 0);
	ck_assert_str_eq(r->body, "");
	ck_assert_ptr_nonnull(r->headers);
	ck_assert_ptr_null(r->json);
	ck_assert_ptr_null(http_header(r, "Content-Type"));
	http_resp_free(r);
	close(fd);
}
END_TEST

static const struct test_case cases[] = {
    TEST_CASE(scalar_select_1),
    TEST_CASE(scalar_null_is_null),
    TEST_CASE(exec_then_scalar),
    TEST_CASE(conninfo_and_port),
    TEST_CASE(restart_same_port),
    /* After the restart: proves the cluster is still usable. */
    TEST_CASE(scalar_select_1),
    TEST_CASE(http_refused_is_reported),
    {0},
};

const struct it_program it_program = {
    .name = "harness",
    .cases = cases,
    .timeout_s = 120,
    .fork = true,
};
