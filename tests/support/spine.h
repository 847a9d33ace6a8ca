/*
 * What the two mains of the test programs share (it_main.c for the
 * integration programs, unit_main.c for the unit ones): the shape of a
 * case table, one Check TCase per case, the seed of a run.
 */
#pragma once

#include <stdbool.h>

#include <check.h>

struct test_case {
	const char *name;
	/* START_TEST's name is a variable, not a constant: its address is. */
	const TTest *const *fn;
	int loop_end; /* > 0: a loop test run with _i = 0 .. loop_end - 1 */
	int signal;   /* > 0: the case passes only when it dies of it */
};

#define TEST_CASE(fn) {#fn, &(fn), 0, 0}
#define TEST_LOOP(fn, n) {#fn, &(fn), (n), 0}
#define TEST_RAISES(fn, sig) {#fn, &(fn), 0, (sig)}

/* FPG_TEST_SEED when set, else one taken from the clock. */
unsigned spine_pick_seed(void);

/*
 * A suite named name with one TCase per case of cases (ends with {0}),
 * named after its function so that CK_RUN_CASE picks it; setup and
 * teardown (either may be NULL) are checked fixtures around each case,
 * timeout_s (0: Check's default) its limit when forking.
 */
Suite *spine_suite(const char *name, const struct test_case *cases,
		   int timeout_s, void (*setup)(void), void (*teardown)(void));

/*
 * Runs s (fork: Check's choice, CK_FORK; else never), prints how long it
 * took and, when a case failed, the FPG_TEST_SEED that replays the run.
 * Returns the number of cases that failed; frees s.
 */
int spine_run(Suite *s, bool fork, const char *program, unsigned seed);
