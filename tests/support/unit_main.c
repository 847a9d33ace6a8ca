/* The one main() of the unit programs (unit.h): one TCase per case, seed. */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>

static unsigned run_seed;

unsigned unit_seed(void)
{
	return run_seed;
}

static void before_case(void)
{
	srand(run_seed);
	if (unit_program.before_each)
		unit_program.before_each();
}

static void after_case(void)
{
	if (unit_program.after_each)
		unit_program.after_each();
}

int main(void)
{
	run_seed = spine_pick_seed();
	fprintf(stderr, "test_%s: seed %u\n", unit_program.name, run_seed);
	if (unit_program.setup)
		unit_program.setup();
	Suite *s = spine_suite(unit_program.name, unit_program.cases,
			       unit_program.timeout_s, before_case,
			       after_case);
	return spine_run(s, true, unit_program.name, run_seed) != 0;
}
