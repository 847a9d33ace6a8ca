/*
 * The one main() of the integration programs (it.h): cluster, servers,
 * one TCase per case, seed.
 */
#include "it.h"

#include <stdio.h>
#include <stdlib.h>

#include <curl/curl.h>

#include "pg_harness.h"

/* Room for "t_" + 10 digits + "_" + 8 hex digits. */
#define IT_SCHEMA_MAX 32

static unsigned run_seed;
static const char *db;
static char schema[IT_SCHEMA_MAX];

unsigned it_seed(void)
{
	return run_seed;
}

const char *it_db(void)
{
	return db;
}

const char *it_schema(void)
{
	ck_assert_msg(it_program.schema_per_case && schema[0],
		      "it_schema() outside a case of a schema_per_case program");
	return schema;
}

char *it_table(const char *name)
{
	return it_fmt("%s.%s", it_schema(), name);
}

static void create_schema(void)
{
	/* Check names no case to a fixture (tcase_name() is NULL here):
	 * a serial number and a random part make the name unique. */
	static unsigned serial;
	snprintf(schema, sizeof(schema), "t_%u_%x", ++serial,
		 (unsigned)rand());
	char *sql = it_fmt("CREATE SCHEMA %s", schema);
	pgh_exec(sql);
	free(sql);
}

static void drop_schema(void)
{
	char *sql = it_fmt("SET client_min_messages = warning;"
			   "DROP SCHEMA IF EXISTS %s CASCADE",
			   schema);
	pgh_exec(sql);
	free(sql);
	schema[0] = '\0';
}

static void before_case(void)
{
	if (it_program.schema_per_case)
		create_schema();
	if (it_program.before_each)
		it_program.before_each();
}

static void after_case(void)
{
	if (it_program.after_each)
		it_program.after_each();
	if (it_program.schema_per_case)
		drop_schema();
}

static size_t server_count(void)
{
	size_t n = 0;
	while (it_program.servers && it_program.servers[n].port)
		n++;
	return n;
}

int main(void)
{
	const char *ext = it_program.external_db ? getenv("FPG_TEST_DB") : NULL;
	db = ext ? ext : pgh_start();
	curl_global_init(CURL_GLOBAL_ALL);
	run_seed = spine_pick_seed();
	srand(run_seed);
	fprintf(stderr, "test_%s: seed %u\n", it_program.name, run_seed);
	if (it_program.setup)
		it_program.setup();

	size_t nsrv = server_count();
	struct fpg_server **srv = calloc(nsrv ? nsrv : 1, sizeof(*srv));
	if (!srv)
		abort();
	for (size_t i = 0; i < nsrv; i++) {
		struct fpg_options o;
		it_options(&o);
		if (it_program.servers[i].configure)
			it_program.servers[i].configure(&o);
		srv[i] = it_server_start(&o, it_program.servers[i].port);
	}
	if (it_program.started)
		it_program.started();

	Suite *s = spine_suite(it_program.name, it_program.cases,
			       it_program.timeout_s, before_case, after_case);
	int failed = spine_run(s, it_program.fork, it_program.name, run_seed);

	for (size_t i = nsrv; i-- > 0;) {
		fpg_server_stop(srv[i], 1000);
		fpg_server_free(srv[i]);
	}
	free(srv);
	curl_global_cleanup();
	if (!ext)
		pgh_stop();
	return failed != 0;
}
