/* The route table and api/openapi.yaml must list the same routes. */
#include <check.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router.h"
#include "unit.h"

struct spec_route {
	char method[8];
	char path[128];
};

/* Reads "  /path:" and "    get:" lines of the spec's paths section. */
static int read_spec(struct spec_route *out, int max)
{
	FILE *f = fopen(FPG_SOURCE_DIR "/api/openapi.yaml", "r");
	ck_assert_msg(f != NULL, "cannot open api/openapi.yaml");
	char line[512], path[128] = "";
	int n = 0;
	bool in_paths = false;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "paths:", 6) == 0) {
			in_paths = true;
			continue;
		}
		if (in_paths && line[0] != ' ' && line[0] != '\n')
			break;
		if (!in_paths)
			continue;
		if (strncmp(line, "  /", 3) == 0) {
			sscanf(line + 2, "%127[^:]", path);
		} else if (strncmp(line, "    ", 4) == 0 && line[4] != ' ') {
			char m[16] = "";
			if (sscanf(line + 4, "%15[a-z]:", m) == 1 &&
			    (strcmp(m, "get") == 0 || strcmp(m, "post") == 0 ||
			     strcmp(m, "put") == 0 || strcmp(m, "delete") == 0 ||
			     strcmp(m, "patch") == 0)) {
				ck_assert_int_lt(n, max);
				for (char *p = m; *p; p++)
					*p = (char)toupper((unsigned char)*p);
				snprintf(out[n].method, sizeof(out[n].method),
					 "%s", m);
				snprintf(out[n].path, sizeof(out[n].path), "%s",
					 path);
				n++;
			}
		}
	}
	fclose(f);
	return n;
}

START_TEST(table_matches_spec)
{
	struct spec_route spec[64];
	int n = read_spec(spec, 64);
	ck_assert_int_eq(n, (int)fpg_router_count());
	for (int i = 0; i < n; i++) {
		int status = 0;
		char allow[64];
		const char *param;
		const struct fpg_route *r = fpg_router_match(
			spec[i].method, spec[i].path, &status, allow,
			sizeof(allow), &param);
		ck_assert_msg(r != NULL, "spec route %s %s not in the table",
			      spec[i].method, spec[i].path);
	}
}
END_TEST

START_TEST(miss_is_404_or_405)
{
	int status = 0;
	char allow[64];
	const char *param;
	ck_assert_ptr_null(fpg_router_match("GET", "/nope", &status, allow,
					    sizeof(allow), &param));
	ck_assert_int_eq(status, 404);
	ck_assert_ptr_null(fpg_router_match("DELETE", "/query", &status,
					    allow, sizeof(allow), &param));
	ck_assert_int_eq(status, 405);
	ck_assert_str_eq(allow, "POST");
	ck_assert_ptr_null(fpg_router_match("POST", "/query/", &status, allow,
					    sizeof(allow), &param));
	ck_assert_int_eq(status, 404);
	ck_assert_ptr_null(fpg_router_match("DELETE", "/query/a/b", &status,
					    allow, sizeof(allow), &param));
	ck_assert_int_eq(status, 404);
	ck_assert_ptr_nonnull(fpg_router_match("DELETE", "/query/abc", &status,
					       allow, sizeof(allow), &param));
	ck_assert_str_eq(param, "abc");
	ck_assert_ptr_null(fpg_router_match("GET", "/query/abc", &status,
					    allow, sizeof(allow), &param));
	ck_assert_int_eq(status, 405);
	ck_assert_str_eq(allow, "DELETE");
}
END_TEST

/* Named queries: POST, and GET for the read-only ones (the handler
 * answers 405 for the others, the router cannot know). */
START_TEST(named_queries_take_post_and_get)
{
	int status = 0;
	char allow[64];
	const char *param;
	const struct fpg_route *r = fpg_router_match(
		"GET", "/q/my_notes", &status, allow, sizeof(allow), &param);
	ck_assert_ptr_nonnull(r);
	ck_assert_str_eq(r->method, "GET");
	ck_assert_str_eq(param, "my_notes");
	ck_assert(!r->cross_site_ok); /* runs SQL: X-Requested-With */
	ck_assert(!r->raw_sql);
	r = fpg_router_match("POST", "/q/my_notes", &status, allow,
			     sizeof(allow), &param);
	ck_assert_ptr_nonnull(r);
	ck_assert_str_eq(r->method, "POST");
	ck_assert_ptr_null(fpg_router_match("PUT", "/q/my_notes", &status,
					    allow, sizeof(allow), &param));
	ck_assert_int_eq(status, 405);
	ck_assert_str_eq(allow, "POST, GET, HEAD");
	ck_assert_ptr_null(fpg_router_match("GET", "/q/", &status, allow,
					    sizeof(allow), &param));
	ck_assert_int_eq(status, 404);
}
END_TEST

/* HEAD is GET without a body: wherever GET works, and 405 lists it. */
START_TEST(head_goes_where_get_does)
{
	int status = 0;
	char allow[64];
	const char *param;
	const struct fpg_route *r = fpg_router_match(
		"HEAD", "/healthz", &status, allow, sizeof(allow), &param);
	ck_assert_ptr_nonnull(r);
	ck_assert_str_eq(r->method, "GET");
	ck_assert_str_eq(r->path, "/healthz");
	r = fpg_router_match("HEAD", "/tx/abc/copy", &status, allow,
			     sizeof(allow), &param);
	ck_assert_ptr_nonnull(r);
	ck_assert_str_eq(param, "abc/copy");
	ck_assert_ptr_null(fpg_router_match("HEAD", "/query", &status, allow,
					    sizeof(allow), &param));
	ck_assert_int_eq(status, 405);
	ck_assert_str_eq(allow, "POST");
	ck_assert_ptr_null(fpg_router_match("POST", "/metrics", &status, allow,
					    sizeof(allow), &param));
	ck_assert_str_eq(allow, "GET, HEAD");
}
END_TEST

/*
 * A path that exists is a 405 even when its methods do not fit in allow,
 * which then holds whole names only (fuzz/fuzz_router): the status used
 * to follow what had been written, and allow got "POS".
 */
START_TEST(miss_is_405_with_small_allow)
{
	int status = 0;
	char allow[4];
	const char *param;
	ck_assert_ptr_null(fpg_router_match("GET", "/query", &status, allow,
					    sizeof(allow), &param));
	ck_assert_int_eq(status, 405);
	ck_assert_str_eq(allow, "");
	ck_assert_ptr_null(fpg_router_match("PUT", "/copy", &status, allow,
					    sizeof(allow), &param));
	ck_assert_int_eq(status, 405);
}
END_TEST

START_TEST(stat_names_cover_routes)
{
	const char *const *names = fpg_router_stat_names();
	for (unsigned i = 0; i < fpg_router_count(); i++) {
		const struct fpg_route *r = fpg_router_route(i);
		/* "/query/{}" is named as the spec names it. */
		char want[160];
		snprintf(want, sizeof(want), "%s %s", r->method, r->path);
		char *brace = strstr(want, "{}");
		const char *name = names[fpg_router_index(r)];
		if (brace)
			ck_assert_int_eq(strncmp(name, want,
						 (size_t)(brace - want) + 1), 0);
		else
			ck_assert_str_eq(name, want);
	}
	ck_assert_str_eq(names[fpg_router_count()], "unrouted");
}
END_TEST

static const struct test_case cases[] = {
	TEST_CASE(table_matches_spec),
	TEST_CASE(miss_is_404_or_405),
	TEST_CASE(named_queries_take_post_and_get),
	TEST_CASE(head_goes_where_get_does),
	TEST_CASE(miss_is_405_with_small_allow),
	TEST_CASE(stat_names_cover_routes),
	{0},
};

const struct unit_program unit_program = {
	.name = "router",
	.cases = cases,
};
