/*
 * The spine of the integration programs: tests/support/it_main.c holds
 * the one main(), and a program only describes itself in a struct
 * it_program named it_program:
 *
 *	START_TEST(answers_select_1) { ... } END_TEST
 *
 *	static const struct test_case cases[] = {
 *		TEST_CASE(answers_select_1),
 *		{0},
 *	};
 *	static const struct it_server servers[] = {{&port, NULL}, {0}};
 *	const struct it_program it_program = {
 *		.name = "query", .cases = cases, .servers = servers,
 *	};
 *
 * main() starts the PostgreSQL cluster, runs .setup, starts the servers
 * in order, runs .started, gives every case its own Check TCase named after its function
 * (so CK_RUN_CASE=answers_select_1 runs that one, CK_RUN_SUITE the whole
 * program), runs them and stops everything in reverse order. The seed of
 * the run is printed at the start and again when a case fails;
 * FPG_TEST_SEED=N replays it.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <check.h>

#include "fasterpg.h"
#include "spine.h"

struct it_server {
	unsigned *port; /* gets the port the server listens on */
	/* Changes it_options()'s defaults for this server; NULL keeps them. */
	void (*configure)(struct fpg_options *o);
};

struct it_program {
	const char *name;
	const struct test_case *cases;	 /* ends with {0} */
	const struct it_server *servers; /* ends with {0}; may be NULL */
	/* Once, after the cluster is up and before the servers start. */
	void (*setup)(void);
	/* Once, after the servers started and before the first case. */
	void (*started)(void);
	/* Checked fixtures around every case; either may be NULL. */
	void (*before_each)(void);
	void (*after_each)(void);
	/*
	 * Each case gets a schema of its own (it_schema(), it_table()),
	 * created before it and dropped after it with what it holds.
	 */
	bool schema_per_case;
	int timeout_s; /* per case when forking; 0: Check's default */
	/*
	 * Run each case in a child process. Only for programs without
	 * in-process servers: their threads do not survive fork().
	 */
	bool fork;
	/* FPG_TEST_DB, when set, replaces the throwaway cluster. */
	bool external_db;
};

/* Defined by each integration program. */
extern const struct it_program it_program;

/* The seed of this run (FPG_TEST_SEED or the clock); srand() got it. */
unsigned it_seed(void);

/* The conninfo of the database under test (the cluster or FPG_TEST_DB). */
const char *it_db(void);

/*
 * The schema of the running case (program with schema_per_case), e.g.
 * "t_3_1f3a09c2": static storage, valid during the case.
 */
const char *it_schema(void);

/*
 * "schema.name" for a table of the running case (name a plain lower-case
 * identifier): caller frees. Two cases cannot collide on a name.
 */
char *it_table(const char *name);

/* Seconds on the monotonic clock. */
double it_now(void);

/* asprintf that aborts on OOM; caller frees. */
char *it_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Defaults for an in-process test server against the harness cluster. */
void it_options(struct fpg_options *o);

/* Creates and starts a server; exits the process when that fails. */
struct fpg_server *it_server_start(const struct fpg_options *o,
				   unsigned *port);

/*
 * "Quiet again": what a server and PostgreSQL are doing at one moment.
 * active: fasterpg statements running on PostgreSQL (any application_name
 * starting with "fasterpg"); copies: COPY statements not idle (anyone's);
 * busy, waiting (for a connection), in_flight, tx_open: the server's
 * /stats totals (in_flight counts the /stats request itself).
 */
struct it_activity {
	long active, copies;
	long long busy, waiting, in_flight, tx_open;
};

/* fasterpg's statements running on PostgreSQL now (see it_activity). */
long it_active_statements(void);

/*
 * Reads the activity of the server on port; false when /stats does not
 * answer, with the answer in text. text (may be NULL) gets a summary.
 */
bool it_activity_read(unsigned port, struct it_activity *a, char *text,
		      size_t n);

/* The activity now, as a baseline to come back to; fails the test when
 * /stats does not answer. */
struct it_activity it_activity_now(unsigned port);

/*
 * Waits until the server on port and PostgreSQL are back to base or
 * below in every field, for at most limit_s seconds, then fails the test
 * with what was seen last and what fasterpg's backends were doing.
 * Returns the seconds it took.
 */
double it_wait_quiet(unsigned port, const struct it_activity *base,
		     double limit_s, const char *what);

/* A growing NUL-terminated byte buffer; {0} is empty, caller frees data. */
struct it_buf {
	char *data;
	size_t len, cap;
};

/* Appends p[0..n) and keeps the data NUL-terminated; false on OOM. */
bool it_buf_append(struct it_buf *b, const char *p, size_t n);

/* The same for test code that cannot go on without the memory (aborts). */
void it_buf_put(struct it_buf *b, const char *p, size_t n);
void it_buf_puts(struct it_buf *b, const char *s);
void it_buf_putc(struct it_buf *b, char c);
