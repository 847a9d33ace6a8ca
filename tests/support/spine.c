/* The shared half of the test mains (spine.h). */
#include "spine.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

unsigned spine_pick_seed(void)
{
	const char *e = getenv("FPG_TEST_SEED");
	if (e)
		return (unsigned)strtoul(e, NULL, 10);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (unsigned)(ts.tv_sec ^ ts.tv_nsec);
}

Suite *spine_suite(const char *name, const struct test_case *cases,
		   int timeout_s, void (*setup)(void), void (*teardown)(void))
{
	Suite *s = suite_create(name);
	for (const struct test_case *c = cases; c->name; c++) {
		TCase *tc = tcase_create(c->name);
		if (timeout_s)
			tcase_set_timeout(tc, timeout_s);
		if (setup || teardown)
			tcase_add_checked_fixture(tc, setup, teardown);
		if (c->loop_end > 0)
			tcase_add_loop_test(tc, *c->fn, 0, c->loop_end);
		else if (c->signal > 0)
			tcase_add_test_raise_signal(tc, *c->fn, c->signal);
		else
			tcase_add_test(tc, *c->fn);
		suite_add_tcase(s, tc);
	}
	return s;
}

static double seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int spine_run(Suite *s, bool fork, const char *program, unsigned seed)
{
	double t0 = seconds();
	SRunner *sr = srunner_create(s);
	if (!fork)
		srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	fprintf(stderr, "test_%s: %.2f s\n", program, seconds() - t0);
	if (failed)
		fprintf(stderr,
			"test_%s: %d failed; FPG_TEST_SEED=%u replays this "
			"run's random data\n",
			program, failed, seed);
	return failed;
}
