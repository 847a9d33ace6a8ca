/* guard.c: --allowed-hosts matching, the CORS-preflight test, header
 * ambiguities, client-given ids and keys, secret comparison. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "guard.h"
#include "unit.h"

static struct fpg_hosts parse_ok(const char *list, const char *listen)
{
	struct fpg_hosts h;
	struct fpg_error err = {0};
	ck_assert_msg(fpg_hosts_parse(&h, list, listen, &err), "%s: %s",
		      list ? list : "(default)", err.message);
	return h;
}

START_TEST(default_hosts)
{
	struct fpg_hosts h = parse_ok(NULL, "127.0.0.1");
	const char *ok[] = {"localhost",      "localhost:8080", "LOCALHOST",
			    "localhost.",     "127.0.0.1",	"127.0.0.1:1",
			    "[::1]",	      "[::1]:8080",	NULL};
	for (const char **p = ok; *p; p++)
		ck_assert_msg(fpg_hosts_allow(&h, *p), "%s refused", *p);
	const char *bad[] = {"evil.example",   "evil.example:8080",
			     "localhost.evil", "10.0.0.1",
			     "127.0.0.1.nip.io", "",
			     "localhost:",     "localhost:80:80",
			     "[::1",	       "::1",
			     "local host",     "localhost:8x",
			     NULL};
	for (const char **p = bad; *p; p++)
		ck_assert_msg(!fpg_hosts_allow(&h, *p), "%s allowed", *p);
	/* HTTP/1.0 without Host: browsers always send one. */
	ck_assert(fpg_hosts_allow(&h, NULL));
	fpg_hosts_deinit(&h);

	/* A named listen host joins the list. */
	h = parse_ok("", "gw.internal");
	ck_assert(fpg_hosts_allow(&h, "gw.internal:8080"));
	ck_assert(!fpg_hosts_allow(&h, "10.1.2.3"));
	fpg_hosts_deinit(&h);
}
END_TEST

START_TEST(wildcard_listen_allows_addresses)
{
	const char *listens[] = {"0.0.0.0", "::"};
	for (int i = 0; i < 2; i++) {
		struct fpg_hosts h = parse_ok(NULL, listens[i]);
		ck_assert(fpg_hosts_allow(&h, "10.1.2.3:8080"));
		ck_assert(fpg_hosts_allow(&h, "[fe80::1]:8080"));
		ck_assert(fpg_hosts_allow(&h, "localhost"));
		/* a name could be an attacker's, rebound to us */
		ck_assert(!fpg_hosts_allow(&h, "rebind.example"));
		ck_assert(!fpg_hosts_allow(&h, "[not-v6]"));
		fpg_hosts_deinit(&h);
	}
}
END_TEST

START_TEST(explicit_list)
{
	struct fpg_hosts h =
	    parse_ok(" api.example.com , db.example.com:8443,[::1]", "::");
	ck_assert(fpg_hosts_allow(&h, "api.example.com"));
	ck_assert(fpg_hosts_allow(&h, "API.example.com:443"));
	ck_assert(fpg_hosts_allow(&h, "db.example.com:8443"));
	ck_assert(!fpg_hosts_allow(&h, "db.example.com:8444"));
	ck_assert(!fpg_hosts_allow(&h, "db.example.com"));
	ck_assert(fpg_hosts_allow(&h, "[::1]:1"));
	/* the list replaces the defaults */
	ck_assert(!fpg_hosts_allow(&h, "localhost"));
	ck_assert(!fpg_hosts_allow(&h, "10.0.0.1"));
	fpg_hosts_deinit(&h);

	h = parse_ok("*", "127.0.0.1");
	ck_assert(fpg_hosts_allow(&h, "anything.example:1"));
	fpg_hosts_deinit(&h);

	const char *bad[] = {"a b", "x:port", "a,,b", ",", "[::1", "h:123456"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct fpg_error err = {0};
		ck_assert_msg(!fpg_hosts_parse(&h, bad[i], "127.0.0.1", &err),
			      "%s accepted", bad[i]);
		ck_assert_int_eq(err.code, FPG_ERR_CONFIG);
		ck_assert_ptr_null(h.entries);
	}
}
END_TEST

START_TEST(preflighted)
{
	/* methods a form cannot use */
	ck_assert(fpg_guard_preflighted("DELETE", NULL, NULL));
	ck_assert(fpg_guard_preflighted("PUT", "text/plain", NULL));
	/* a custom header always needs a preflight */
	ck_assert(fpg_guard_preflighted("GET", NULL, "x"));
	ck_assert(fpg_guard_preflighted("POST", "text/plain", ""));
	/* what a page can send unasked */
	ck_assert(!fpg_guard_preflighted("GET", NULL, NULL));
	ck_assert(!fpg_guard_preflighted("HEAD", NULL, NULL));
	ck_assert(!fpg_guard_preflighted("POST", NULL, NULL));
	const char *simple[] = {"text/plain",
				"TEXT/Plain; charset=utf-8",
				"  text/plain  ;x=y",
				"application/x-www-form-urlencoded",
				"multipart/form-data; boundary=xyz",
				NULL};
	for (const char **p = simple; *p; p++)
		ck_assert_msg(!fpg_guard_preflighted("POST", *p, NULL), "%s",
			      *p);
	const char *other[] = {"application/json",
			       "application/json; charset=utf-8",
			       "text/csv",
			       "application/octet-stream",
			       "text/plainx",
			       "",
			       NULL};
	for (const char **p = other; *p; p++)
		ck_assert_msg(fpg_guard_preflighted("POST", *p, NULL), "%s",
			      *p);
	/* a GET cannot carry a Content-Type without a preflight... but it
	 * proves nothing either: only the custom header counts */
	ck_assert(!fpg_guard_preflighted("GET", "application/json", NULL));
}
END_TEST

static const char *problem_of(const char *const *kv, size_t n)
{
	struct fpg_header_scan f = {0};
	for (size_t i = 0; i + 1 < n; i += 2)
		fpg_guard_header(&f, kv[i], kv[i + 1]);
	return fpg_guard_headers_problem(&f);
}

START_TEST(ambiguous_headers)
{
	const char *fine[] = {"Host", "a", "content-length", "3",
			      "X-Tab", "a\tb", "Empty", NULL};
	ck_assert_ptr_null(problem_of(fine, 8));
	const char *two_cl[] = {"Content-Length", "3", "content-length", "3"};
	ck_assert_ptr_nonnull(problem_of(two_cl, 4));
	const char *cl_te[] = {"Content-Length", "3", "Transfer-Encoding",
			       "chunked"};
	ck_assert_ptr_nonnull(problem_of(cl_te, 4));
	const char *two_te[] = {"Transfer-Encoding", "chunked",
				"TRANSFER-ENCODING", "chunked"};
	ck_assert_ptr_nonnull(problem_of(two_te, 4));
	const char *two_hosts[] = {"Host", "a", "HOST", "b"};
	ck_assert_ptr_nonnull(problem_of(two_hosts, 4));
	const char *cr[] = {"X-A", "a\rb"};
	ck_assert_ptr_nonnull(problem_of(cr, 2));
	const char *del[] = {"X\x7f", "v"};
	ck_assert_ptr_nonnull(problem_of(del, 2));
}
END_TEST

START_TEST(client_ids_and_keys)
{
	ck_assert(fpg_guard_request_id("a"));
	ck_assert(fpg_guard_request_id("Req-1_2.3:4"));
	ck_assert(!fpg_guard_request_id(""));
	ck_assert(!fpg_guard_request_id("a b"));
	ck_assert(!fpg_guard_request_id("a\xc3\xa9"));
	char id[70];
	memset(id, 'x', sizeof(id));
	id[64] = '\0';
	ck_assert(fpg_guard_request_id(id));
	id[64] = 'x';
	id[65] = '\0';
	ck_assert(!fpg_guard_request_id(id));
	ck_assert(fpg_guard_cancel_key("abcdefghijklmnop"));
	ck_assert(fpg_guard_cancel_key("AZaz09-_.~+/=AZaz"));
	ck_assert(!fpg_guard_cancel_key("abcdefghijklmno")); /* 15 */
	ck_assert(!fpg_guard_cancel_key("abcdefghijklmno:"));
	char key[140];
	memset(key, 'k', sizeof(key));
	key[128] = '\0';
	ck_assert(fpg_guard_cancel_key(key));
	key[128] = 'k';
	key[129] = '\0';
	ck_assert(!fpg_guard_cancel_key(key));
}
END_TEST

START_TEST(same_secret)
{
	unsigned char a[32], b[32];
	for (int round = 0; round < 200; round++) {
		for (size_t i = 0; i < sizeof(a); i++)
			a[i] = b[i] = (unsigned char)rand();
		ck_assert(fpg_guard_same_secret(a, sizeof(a), b, sizeof(b)));
		size_t at = (size_t)rand() % sizeof(a);
		b[at] ^= (unsigned char)(1 + rand() % 255);
		ck_assert(!fpg_guard_same_secret(a, sizeof(a), b, sizeof(b)));
		ck_assert(!fpg_guard_same_secret(a, sizeof(a), a,
						 sizeof(a) - 1));
	}
	ck_assert(fpg_guard_same_secret("", 0, "", 0));
}
END_TEST

START_TEST(traceparent_is_read_strictly)
{
	char t[33], p[17];
	unsigned f = 99;
	ck_assert(fpg_guard_traceparent(
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", t, p,
		&f));
	ck_assert_str_eq(t, "4bf92f3577b34da6a3ce929d0e0e4736");
	ck_assert_str_eq(p, "00f067aa0ba902b7");
	ck_assert_uint_eq(f, 1);
	ck_assert(fpg_guard_traceparent(
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", t, p,
		&f));
	ck_assert_uint_eq(f, 0);
	static const char *const bad[] = {
		NULL,
		"",
		/* upper case */
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
		/* another version (ff is forbidden, 01 unknown to us) */
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		/* all-zero trace id, all-zero parent id */
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
		/* too short, too long, wrong separators, not hex */
		"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
		"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
		"00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
		" 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		strcpy(t, "untouched");
		ck_assert_msg(!fpg_guard_traceparent(bad[i], t, p, &f),
			      "took %s", bad[i] ? bad[i] : "NULL");
		ck_assert_str_eq(t, "untouched");
	}
}
END_TEST

static const struct test_case cases[] = {
	TEST_CASE(traceparent_is_read_strictly),
	TEST_CASE(default_hosts),
	TEST_CASE(wildcard_listen_allows_addresses),
	TEST_CASE(explicit_list),
	TEST_CASE(preflighted),
	TEST_CASE(ambiguous_headers),
	TEST_CASE(client_ids_and_keys),
	TEST_CASE(same_secret),
	{0},
};

const struct unit_program unit_program = {
	.name = "guard",
	.cases = cases,
};
