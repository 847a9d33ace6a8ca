/*
 * The library as a user gets it: this build installed into a temporary
 * root (headers, libfasterpg, fasterpg.pc), the program of
 * docs/embedding.md compiled against it with pkg-config, run against the
 * test cluster, answering a query, its log lines arriving through its own
 * callback, and stopping at SIGTERM with status 0; and `fasterpg --check`
 * (the container's health check) against it.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "http.h"
#include "it.h"

static char out[64];

static void rm_rf(const char *dir)
{
	char *cmd = it_fmt("rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	free(cmd);
}

__attribute__((destructor)) static void remove_out(void)
{
	if (out[0])
		rm_rf(out);
}

/* Installs and compiles; returns the directory of libfasterpg.so. */
static char *build_program(void)
{
	snprintf(out, sizeof(out), "/tmp/fpg_installed_XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(out));
	char *cmd = it_fmt("EXTRA_CFLAGS='%s' '%s/tests/support/build-embed.sh' "
			   "'%s' '%s' '%s'",
			   FPG_EMBED_CFLAGS, FPG_SOURCE_DIR, FPG_BUILD_DIR,
			   FPG_SOURCE_DIR, out);
	FILE *p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	char libdir[512] = "";
	char *got = fgets(libdir, sizeof(libdir), p);
	int status = pclose(p);
	ck_assert_msg(got && status == 0, "%s: status %d", cmd, status);
	free(cmd);
	libdir[strcspn(libdir, "\n")] = '\0';
	return strdup(libdir);
}

START_TEST(the_documented_program_runs)
{
	char *libdir = build_program();
	int to_us[2], err_pipe[2];
	ck_assert(pipe(to_us) == 0 && pipe(err_pipe) == 0);
	char *prog = it_fmt("%s/embed", out);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(to_us[1], 1);
		dup2(err_pipe[1], 2);
		setenv("LD_LIBRARY_PATH", libdir, 1);
		setenv("DATABASE_URL", it_db(), 1);
		execl(prog, prog, (char *)NULL);
		_exit(127);
	}
	close(to_us[1]);
	close(err_pipe[1]);
	FILE *f = fdopen(to_us[0], "r");
	char line[128] = "";
	unsigned port = 0;
	ck_assert_msg(fgets(line, sizeof(line), f) &&
			      sscanf(line, "listening on %u", &port) == 1,
		      "the program said: %s", line);
	struct http_resp *r = http_post_json(
		port, "/query", "{\"sql\":\"SELECT 6 * 7\",\"expect\":\"scalar\"}");
	ck_assert_msg(r->status == 200 && strstr(r->body, "{\"value\":42}"),
		      "%ld %s", r->status, r->body);
	http_resp_free(r);
	const char *paths[] = {"/readyz", "/no-such-route"};
	for (int i = 0; i < 2; i++) {
		char *check = it_fmt("'%s/fasterpg' --check "
				     "http://127.0.0.1:%u%s 2>/dev/null",
				     FPG_BUILD_DIR, port, paths[i]);
		int rc = system(check);
		ck_assert_msg(WIFEXITED(rc) && WEXITSTATUS(rc) == (i ? 1 : 0),
			      "%s: %d", check, rc);
		free(check);
	}
	ck_assert_int_eq(kill(pid, SIGTERM), 0);
	int status = 0;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "status %d", status);
	/* Its log came through its callback: "[fasterpg LEVEL] line". */
	FILE *e = fdopen(err_pipe[0], "r");
	char buf[512];
	bool through_callback = false;
	while (fgets(buf, sizeof(buf), e)) {
		ck_assert_msg(strncmp(buf, "[fasterpg ", 10) == 0,
			      "a line not through the callback: %s", buf);
		through_callback = true;
	}
	ck_assert(through_callback);
	/* Nothing answers now. */
	char *check = it_fmt("'%s/fasterpg' --check http://127.0.0.1:%u/readyz "
			     "2>/dev/null",
			     FPG_BUILD_DIR, port);
	int rc = system(check);
	ck_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 1);
	free(check);
	fclose(e);
	fclose(f);
	free(prog);
	free(libdir);
}
END_TEST

static const struct test_case cases[] = {
    TEST_CASE(the_documented_program_runs),
    {0},
};

const struct it_program it_program = {
    .name = "installed",
    .cases = cases,
    .timeout_s = 240,
};
