/*
 * The spine of the unit programs: tests/support/unit_main.c holds the
 * one main(), and a program only describes itself in a struct
 * unit_program named unit_program:
 *
 *	START_TEST(empty_buffer_is_empty) { ... } END_TEST
 *
 *	static const struct test_case cases[] = {
 *		TEST_CASE(empty_buffer_is_empty),
 *		{0},
 *	};
 *	const struct unit_program unit_program = {
 *		.name = "buf", .cases = cases,
 *	};
 *
 * No database, no servers: main() prints the seed of the run, gives
 * every case its own Check TCase named after its function (CK_RUN_CASE
 * runs one) and runs them, forking as Check chooses (CK_FORK=no: never).
 * Every case starts with srand(unit_seed()), so a case replays alone
 * what it did in the whole run; FPG_TEST_SEED=N replays a run.
 */
#pragma once

#include "spine.h"

struct unit_program {
	const char *name;
	const struct test_case *cases; /* ends with {0} */
	/* Once, before the first case. */
	void (*setup)(void);
	/* Checked fixtures around every case; either may be NULL. */
	void (*before_each)(void);
	void (*after_each)(void);
	int timeout_s; /* per case when forking; 0: Check's default */
};

/* Defined by each unit program. */
extern const struct unit_program unit_program;

/* The seed of this run (FPG_TEST_SEED or the clock). */
unsigned unit_seed(void);
