/*
 * POST /sql with the real npm drivers: tests/js/neon.mjs runs
 * @neondatabase/serverless and Drizzle's neon-http against two servers of
 * this program (one without --auth, one with --auth password,jwt), as a
 * child process; its exit status is the verdict.
 *
 * The packages are the ones tests/js/package-lock.json pins, installed
 * with `npm ci` into the build tree (FPG_JS_DIR, where meson copied the
 * files) when that lock changed since the last install. Without node or
 * npm, or when npm cannot install, the program is skipped -- except
 * under CI (CI set), where that fails it.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "it_common.h"

extern char **environ;

static unsigned port;	   /* no --auth */
static unsigned auth_port; /* --auth password,jwt */
static char alice_pw[40], jwt_secret[48];
static char secret_path[64];
static char node[512], npm[512];
static const char *js_dir;

/* The program path of name in PATH into out; false when none. */
static bool find_program(const char *name, char *out, size_t n)
{
	const char *path = getenv("PATH");
	for (const char *p = path ? path : ""; *p;) {
		size_t len = strcspn(p, ":");
		snprintf(out, n, "%.*s/%s", (int)len, p, name);
		if (len && access(out, X_OK) == 0)
			return true;
		p += len + (p[len] == ':');
	}
	return false;
}

/* Ends the program early: skipped (77), or failed under CI. */
__attribute__((noreturn)) static void cannot_run(const char *why)
{
	bool ci = getenv("CI") && *getenv("CI");
	fprintf(stderr, "test_js: %s%s\n", why,
		ci ? " (CI is set: failing)" : "; skipped");
	pgh_stop();
	exit(ci ? 1 : 77);
}

/* environ plus extra ("NAME=value" strings, NULL-terminated): the
 * child's, built before fork (setenv would race the servers' threads). */
static char **child_env(const char *const *extra)
{
	size_t n = 0, k = 0;
	while (environ[n])
		n++;
	while (extra[k])
		k++;
	char **env = calloc(n + k + 1, sizeof(*env));
	if (!env)
		abort();
	memcpy(env, environ, n * sizeof(*env));
	memcpy(env + n, extra, k * sizeof(*env));
	return env;
}

/*
 * Runs argv in dir with env, for at most limit_s seconds (then killed).
 * Returns the exit status, or -1 when it did not exit normally.
 */
static int run_child(const char *dir, char *const *argv, char **env,
		     double limit_s)
{
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (chdir(dir) != 0)
			_exit(126);
		execve(argv[0], argv, env);
		_exit(127);
	}
	double end = it_now() + limit_s;
	int status;
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			break;
		if (r < 0 && errno != EINTR)
			return -1;
		if (it_now() > end) {
			fprintf(stderr, "test_js: %s ran past %.0f s: killed\n",
				argv[1], limit_s);
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return -1;
		}
		poll(NULL, 0, 50);
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The whole file at path (NUL-terminated, caller frees), or NULL. */
static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	struct it_buf b = {0};
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		it_buf_put(&b, chunk, n);
	fclose(f);
	it_buf_putc(&b, '\0');
	*len = b.len - 1;
	return b.data;
}

/* npm ci, unless node_modules was installed from this very lock. */
static void install_packages(void)
{
	char *lock_path = it_fmt("%s/package-lock.json", js_dir);
	char *stamp_path = it_fmt("%s/node_modules/.fasterpg-lock", js_dir);
	size_t lock_len = 0, stamp_len = 0;
	char *lock = read_file(lock_path, &lock_len);
	char *stamp = read_file(stamp_path, &stamp_len);
	if (!lock)
		cannot_run("no package-lock.json in FPG_JS_DIR");
	if (!stamp || stamp_len != lock_len || memcmp(stamp, lock, lock_len)) {
		fprintf(stderr, "test_js: npm ci in %s\n", js_dir);
		char *argv[] = {npm, (char[]){"ci"}, (char[]){"--no-audit"},
				(char[]){"--no-fund"},
				(char[]){"--loglevel=error"}, NULL};
		const char *extra[] = {"npm_config_update_notifier=false", NULL};
		char **env = child_env(extra);
		int rc = run_child(js_dir, argv, env, 240);
		free(env);
		if (rc != 0)
			cannot_run("npm ci failed (is the npm registry "
				   "reachable?)");
		FILE *f = fopen(stamp_path, "wb");
		if (f) {
			fwrite(lock, 1, lock_len, f);
			fclose(f);
		}
	}
	free(lock);
	free(stamp);
	free(lock_path);
	free(stamp_path);
}

static void random_text(char *out, size_t n)
{
	static const char chars[] = "abcdefghijkmnopqrstuvwxyzABCDEFGH23456789";
	for (size_t i = 0; i + 1 < n; i++)
		out[i] = chars[(size_t)rand() % (sizeof(chars) - 1)];
	out[n - 1] = '\0';
}

/* node, npm and the packages; alice (a SCRAM password, which
 * pg_hba.conf asks for) and jsreader (a token's role); the JWT secret. */
static void setup(void)
{
	js_dir = getenv("FPG_JS_DIR");
	if (!js_dir)
		cannot_run("FPG_JS_DIR is not set (run it with meson test)");
	if (!find_program("node", node, sizeof(node)) ||
	    !find_program("npm", npm, sizeof(npm)))
		cannot_run("node or npm is not installed (scripts/dev.sh "
			   "deps installs them)");
	install_packages();
	random_text(alice_pw, 24);
	random_text(jwt_secret, 40);
	char sql[512];
	snprintf(sql, sizeof(sql),
		 "SET password_encryption = 'scram-sha-256';"
		 "CREATE ROLE alice LOGIN PASSWORD '%s';"
		 "CREATE ROLE jsreader LOGIN",
		 alice_pw);
	pgh_exec(sql);
	pgh_exec("CREATE TEMP TABLE hba AS SELECT 1 AS n, 'host all alice "
		 "127.0.0.1/32 scram-sha-256' AS line UNION ALL SELECT 2, "
		 "'host all alice ::1/128 scram-sha-256' UNION ALL SELECT "
		 "2 + o, translate(l, chr(9), ' ') FROM regexp_split_to_table("
		 "pg_read_file(current_setting('hba_file')), E'\\n') WITH "
		 "ORDINALITY AS t(l, o);"
		 "DO $$BEGIN EXECUTE format('COPY (SELECT line FROM hba ORDER "
		 "BY n) TO %L', current_setting('hba_file')); END$$;"
		 "SELECT pg_reload_conf()");
	snprintf(secret_path, sizeof(secret_path), "/tmp/fpg_jwt_XXXXXX");
	int fd = mkstemp(secret_path);
	if (fd < 0 || write(fd, jwt_secret, strlen(jwt_secret)) < 0)
		abort(); /* in setup(), where Check cannot */
	close(fd);
}

__attribute__((destructor)) static void remove_files(void)
{
	if (secret_path[0])
		unlink(secret_path);
}

START_TEST(neon_drivers)
{
	char *script = it_fmt("%s/neon.mjs", js_dir);
	char *cfg = it_fmt(
	    "FPG_JS_CONFIG={\"open\":\"http://127.0.0.1:%u/sql\","
	    "\"auth\":\"http://127.0.0.1:%u/sql\",\"db\":\"postgres\","
	    "\"user\":\"postgres\",\"alice\":\"%s\",\"jwt_secret\":\"%s\","
	    "\"jwt_role\":\"jsreader\"}",
	    port, auth_port, alice_pw, jwt_secret);
	const char *extra[] = {cfg, NULL};
	char **env = child_env(extra);
	char *argv[] = {node, script, NULL};
	int rc = run_child(js_dir, argv, env, 180);
	free(env);
	free(cfg);
	free(script);
	ck_assert_msg(rc == 0, "tests/js/neon.mjs exited with %d (its "
			       "output is above)",
		      rc);
}
END_TEST

static void with_auth(struct fpg_options *o)
{
	o->auth = "password,jwt";
	o->jwt_secret_file = secret_path;
	o->jwt_roles = "jsreader";
}

static const struct test_case cases[] = {
    TEST_CASE(neon_drivers),
    {0},
};

static const struct it_server servers[] = {
    {&port, NULL},
    {&auth_port, with_auth},
    {0},
};

const struct it_program it_program = {
    .name = "js",
    .cases = cases,
    .servers = servers,
    .setup = setup,
};
