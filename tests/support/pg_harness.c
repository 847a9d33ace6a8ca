/*
 * Throwaway PostgreSQL cluster for integration tests (recipe from pgbouncer
 * test/utils.py): initdb into a mkdtemp dir, a port chosen with a bind()
 * probe plus an O_EXCL lock file, pg_ctl -w start.
 *
 * Cleanup happens on three paths:
 * - pgh_stop(), called by the test's main();
 * - an atexit handler, for a main() that exits early (only in the process
 *   that started the cluster: Check forks each test and the children exit
 *   through exit() too);
 * - a watchdog process forked at start, which holds the read end of a pipe
 *   whose write end only this process has. When the test binary dies
 *   without a clean stop (SIGKILL, meson timeout), the pipe reaches EOF and
 *   the watchdog stops the server and removes the dir and the lock file.
 *
 * Environment: PG_BINDIR selects the PostgreSQL binaries (default: initdb
 * on PATH, else the newest /usr/lib/postgresql/N/bin); PGH_KEEP=1 keeps the
 * temp dir (with pg.log) after the run for post-mortems.
 */
#include "pg_harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#define PORT_FIRST 15000u /* below Linux's ephemeral range (32768+) */
#define PORT_SPAN 15000u
#define PORT_TRIES 500u
#define PG_CTL_TIMEOUT "60"

static struct {
	char bindir[512];
	char dir[64]; /* the mkdtemp dir; also the unix socket dir */
	char pgdata[128];
	char log[128];
	char lock[64]; /* port lock file, ours while lock[0] != 0 */
	char conninfo[128];
	unsigned port;
	pid_t owner;	 /* process that ran pgh_start() */
	bool as_pg_user; /* we are root: drop to the postgres user */
	uid_t pg_uid;
	gid_t pg_gid;
	int watchdog_fd; /* write end of the watchdog pipe, or -1 */
	pid_t watchdog_pid;
	bool atexit_done;
} h = {.watchdog_fd = -1};

static void die(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "pg_harness: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(1);
}

static bool is_exe(const char *dir, const char *name)
{
	char p[600];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return access(p, X_OK) == 0;
}

static bool bindir_ok(const char *dir)
{
	return is_exe(dir, "initdb") && is_exe(dir, "pg_ctl");
}

static void set_bindir(const char *dir)
{
	snprintf(h.bindir, sizeof(h.bindir), "%s", dir);
}

/* PG_BINDIR, then PATH, then the newest Debian /usr/lib/postgresql/N/bin. */
static bool find_bindir(void)
{
	const char *env = getenv("PG_BINDIR");
	if (env && *env) {
		/* An explicit choice that is wrong is an error, not a skip. */
		if (!bindir_ok(env))
			die("PG_BINDIR=%s has no initdb and pg_ctl", env);
		set_bindir(env);
		return true;
	}
	const char *path = getenv("PATH");
	char *copy = strdup(path ? path : "");
	char *save = NULL;
	bool found = false;
	for (char *d = strtok_r(copy, ":", &save); d && !found;
	     d = strtok_r(NULL, ":", &save)) {
		if (*d && bindir_ok(d)) {
			set_bindir(d);
			found = true;
		}
	}
	free(copy);
	if (found)
		return true;

	glob_t g;
	if (glob("/usr/lib/postgresql/*/bin", 0, NULL, &g) == 0) {
		/* glob sorts; pick the highest version (numeric compare). */
		long best = -1;
		for (size_t i = 0; i < g.gl_pathc; i++) {
			const char *v =
			    g.gl_pathv[i] + strlen("/usr/lib/postgresql/");
			long n = strtol(v, NULL, 10);
			if (n > best && bindir_ok(g.gl_pathv[i])) {
				best = n;
				set_bindir(g.gl_pathv[i]);
				found = true;
			}
		}
		globfree(&g);
	}
	return found;
}

static void child_fail(const char *msg, int code)
{
	if (write(STDERR_FILENO, msg, strlen(msg)) < 0) {
		/* nothing left to report to */
	}
	_exit(code);
}

/* The environment minus the PG* variables that would override our flags. */
static char **tool_environ(void)
{
	size_t n = 0;
	while (environ[n])
		n++;
	char **env = calloc(n + 1, sizeof(*env));
	if (!env)
		return NULL;
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (strncmp(environ[i], "PGDATA=", 7) != 0 &&
		    strncmp(environ[i], "PGPORT=", 7) != 0 &&
		    strncmp(environ[i], "PGHOST=", 7) != 0)
			env[k++] = environ[i];
	}
	return env;
}

/*
 * Runs bindir/prog with args (NULL-terminated, without argv[0]) as the
 * postgres user when we are root, stdout+stderr appended to out_path (or
 * inherited when NULL). Returns the exit status, or -1.
 *
 * Everything is prepared before fork(): the test process may have threads
 * (the server under test), so the child only makes async-signal-safe calls.
 */
static int run_pg_tool(const char *prog, const char *const *args,
		       const char *out_path)
{
	char *argv[16] = {NULL};
	char **envp = tool_environ();
	size_t n = 0;
	int rc = -1;
	bool oom = !envp;

	argv[n] = malloc(strlen(h.bindir) + strlen(prog) + 2);
	if (argv[n])
		sprintf(argv[n], "%s/%s", h.bindir, prog);
	oom |= !argv[n++];
	for (size_t i = 0; args[i] && n < 15; i++) {
		argv[n] = strdup(args[i]);
		oom |= !argv[n++];
	}
	if (oom)
		goto out;

	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		goto out;
	if (pid == 0) {
		int null_fd = open("/dev/null", O_RDONLY);
		if (null_fd >= 0)
			dup2(null_fd, STDIN_FILENO);
		if (out_path) {
			int fd =
			    open(out_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
			if (fd >= 0) {
				dup2(fd, STDOUT_FILENO);
				dup2(fd, STDERR_FILENO);
			}
		}
		if (h.as_pg_user &&
		    (setgroups(0, NULL) != 0 || setgid(h.pg_gid) != 0 ||
		     setuid(h.pg_uid) != 0))
			child_fail("pg_harness: cannot become postgres\n", 126);
		/* initdb as postgres cannot stay in a root-only cwd. */
		if (chdir(h.dir) != 0)
			child_fail("pg_harness: chdir failed\n", 126);
		execve(argv[0], argv, envp);
		child_fail("pg_harness: exec of a PostgreSQL tool failed\n",
			   127);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			goto out;
	}
	rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
out:
	for (size_t i = 0; i < n; i++)
		free(argv[i]);
	free(envp);
	return rc;
}

static void print_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[1024];

	if (!f) {
		fprintf(stderr, "pg_harness: (no %s)\n", path);
		return;
	}
	fprintf(stderr, "----- %s -----\n", path);
	while (fgets(line, sizeof(line), f))
		fputs(line, stderr);
	fprintf(stderr, "----- end of %s -----\n", path);
	fclose(f);
}

static int rm_entry(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void rm_rf(const char *path)
{
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* True when no other process holds 127.0.0.1:port. */
static bool port_is_free(unsigned port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bool ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

/* Removes the lock file when the pid written in it is gone. */
static void clear_stale_lock(const char *path)
{
	char buf[32] = {0};
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	long pid = n > 0 ? strtol(buf, NULL, 10) : 0;
	if (pid > 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH)
		unlink(path);
}

/* Takes the lock file for port; true when it is now ours. */
static bool lock_port(unsigned port)
{
	char path[64];
	snprintf(path, sizeof(path), "/tmp/fasterpg-pgh-port-%u.lock", port);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0 && errno == EEXIST) {
		clear_stale_lock(path);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	}
	if (fd < 0)
		return false;
	char pid[32];
	int len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (write(fd, pid, (size_t)len) != len) {
		close(fd);
		unlink(path);
		return false;
	}
	close(fd);
	memcpy(h.lock, path, sizeof(path));
	return true;
}

/*
 * The lock file keeps other harnesses off the port even while the server is
 * stopped for a restart test; the bind() probe skips ports that anything
 * else holds.
 */
static void pick_port(void)
{
	unsigned start = (unsigned)getpid() * 7919u + (unsigned)time(NULL);
	for (unsigned i = 0; i < PORT_TRIES; i++) {
		unsigned port = PORT_FIRST + (start + i) % PORT_SPAN;
		if (!lock_port(port))
			continue;
		if (port_is_free(port)) {
			h.port = port;
			return;
		}
		unlink(h.lock);
		h.lock[0] = '\0';
	}
	die("no free port found");
}

static int stop_server(const char *mode, const char *out)
{
	const char *args[] = {"stop", "-D", h.pgdata,	    "-m", mode,
			      "-w",   "-t", PG_CTL_TIMEOUT, NULL};
	return run_pg_tool("pg_ctl", args, out);
}

static void remove_files(void)
{
	const char *keep = getenv("PGH_KEEP");
	if (h.dir[0] && !(keep && *keep && strcmp(keep, "0") != 0))
		rm_rf(h.dir);
	if (h.lock[0])
		unlink(h.lock);
}

/*
 * The watchdog. It starts its own session so that a signal to the test's
 * process group (Ctrl-C, meson's timeout kill) does not take it down before
 * it has cleaned up. One byte from the owner means "already cleaned up".
 */
static void start_watchdog(void)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0)
		return;
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return;
	}
	if (pid == 0) {
		close(p[1]);
		setsid();
		signal(SIGINT, SIG_IGN);
		signal(SIGTERM, SIG_IGN);
		signal(SIGHUP, SIG_IGN);
		signal(SIGPIPE, SIG_IGN);
		int null_fd = open("/dev/null", O_RDWR);
		if (null_fd >= 0) {
			dup2(null_fd, STDIN_FILENO);
			dup2(null_fd, STDOUT_FILENO);
			dup2(null_fd, STDERR_FILENO);
		}
		char c;
		ssize_t n;
		do
			n = read(p[0], &c, 1);
		while (n < 0 && errno == EINTR);
		if (n != 1) {
			(void)stop_server("immediate", NULL);
			remove_files();
		}
		_exit(0);
	}
	close(p[0]);
	h.watchdog_fd = p[1];
	h.watchdog_pid = pid;
}

static void dismiss_watchdog(void)
{
	if (h.watchdog_fd < 0)
		return;
	if (write(h.watchdog_fd, "q", 1) != 1) {
		/* Then it sees EOF and cleans up again: harmless. */
	}
	close(h.watchdog_fd);
	h.watchdog_fd = -1;
	while (waitpid(h.watchdog_pid, NULL, 0) < 0 && errno == EINTR)
		;
}

static void at_exit(void)
{
	if (h.owner == getpid() && !h.atexit_done)
		pgh_stop();
}

static void resolve_user(void)
{
	if (geteuid() != 0)
		return;
	struct passwd *pw = getpwnam("postgres");
	if (!pw)
		die("running as root, but there is no 'postgres' user to "
		    "run the server as (initdb refuses root)");
	h.as_pg_user = true;
	h.pg_uid = pw->pw_uid;
	h.pg_gid = pw->pw_gid;
}

static void make_dir(void)
{
	snprintf(h.dir, sizeof(h.dir), "/tmp/fasterpg-pgh-XXXXXX");
	if (!mkdtemp(h.dir)) {
		h.dir[0] = '\0';
		die("mkdtemp: %s", strerror(errno));
	}
	if (h.as_pg_user && chown(h.dir, h.pg_uid, h.pg_gid) != 0)
		die("chown temp dir: %s", strerror(errno));
	snprintf(h.pgdata, sizeof(h.pgdata), "%s/pgdata", h.dir);
	snprintf(h.log, sizeof(h.log), "%s/pg.log", h.dir);
}

static void write_conf(void)
{
	char path[160];
	snprintf(path, sizeof(path), "%s/postgresql.conf", h.pgdata);
	FILE *f = fopen(path, "a");
	if (!f)
		die("open postgresql.conf: %s", strerror(errno));
	fprintf(f,
		"\n# pg_harness\n"
		"port = %u\n"
		"listen_addresses = '127.0.0.1'\n"
		"unix_socket_directories = '%s'\n"
		"fsync = off\n"
		"synchronous_commit = off\n"
		"full_page_writes = off\n"
		"max_connections = 300\n"
		"shared_buffers = 64MB\n"
		"log_min_messages = warning\n",
		h.port, h.dir);
	if (fclose(f) != 0)
		die("write postgresql.conf: %s", strerror(errno));
}

static void run_initdb(void)
{
	char out[160];
	snprintf(out, sizeof(out), "%s/initdb.log", h.dir);
	const char *args[] = {"-A",	  "trust",  "--nosync", "-U",
			      "postgres", "-E",	    "UTF8",	"--locale=C",
			      "-D",	  h.pgdata, NULL};
	if (run_pg_tool("initdb", args, out) != 0) {
		print_file(out);
		die("initdb failed");
	}
}

const char *pgh_start(void)
{
	if (h.owner)
		return h.conninfo;
	if (!find_bindir()) {
		fprintf(stderr, "pg_harness: initdb/pg_ctl not found (set "
				"PG_BINDIR); skipping\n");
		exit(77);
	}
	resolve_user();
	h.owner = getpid();
	atexit(at_exit);
	make_dir();
	pick_port();
	start_watchdog();
	run_initdb();
	write_conf();
	snprintf(h.conninfo, sizeof(h.conninfo),
		 "host=127.0.0.1 port=%u user=postgres dbname=postgres",
		 h.port);
	if (!pgh_server_start())
		exit(1); /* the log is printed; at_exit cleans up */
	fprintf(stderr, "pg_harness: PostgreSQL up on port %u in %s\n", h.port,
		h.dir);
	return h.conninfo;
}

const char *pgh_conninfo(void)
{
	return h.owner ? h.conninfo : NULL;
}

unsigned pgh_port(void)
{
	return h.port;
}

bool pgh_server_stop(void)
{
	if (!h.owner)
		return false;
	char out[160];
	snprintf(out, sizeof(out), "%s/pg_ctl.log", h.dir);
	int rc = stop_server("fast", out);
	if (rc != 0) {
		print_file(out);
		fprintf(stderr, "pg_harness: pg_ctl stop failed (%d)\n", rc);
		return false;
	}
	return true;
}

bool pgh_server_start(void)
{
	if (!h.owner)
		return false;
	char out[160];
	snprintf(out, sizeof(out), "%s/pg_ctl.log", h.dir);
	const char *args[] = {"start",	      "-w",  "-t",
			      PG_CTL_TIMEOUT, "-D",  h.pgdata,
			      "-l",	      h.log, NULL};
	int rc = run_pg_tool("pg_ctl", args, out);
	if (rc != 0) {
		print_file(out);
		print_file(h.log);
		fprintf(stderr, "pg_harness: pg_ctl start failed (%d)\n", rc);
		return false;
	}
	return true;
}

void pgh_stop(void)
{
	/* A forked Check child must not tear down its parent's cluster. */
	if (!h.owner || h.owner != getpid())
		return;
	h.atexit_done = true;
	/*
	 * Always try: a forked test may have stopped or restarted the server
	 * without this process knowing. Output goes to a file in the dir about
	 * to be removed ("not running" is fine).
	 */
	char out[160];
	snprintf(out, sizeof(out), "%s/pg_ctl.log", h.dir);
	(void)stop_server("fast", out);
	remove_files();
	h.lock[0] = '\0';
	dismiss_watchdog();
	h.owner = 0;
}

static void no_notices(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

static PGconn *connect_or_abort(void)
{
	if (!h.owner) {
		fprintf(stderr, "pg_harness: pgh_start() was not called\n");
		abort();
	}
	PGconn *c = PQconnectdb(h.conninfo);
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "pg_harness: connect: %s", PQerrorMessage(c));
		abort();
	}
	PQsetNoticeProcessor(c, no_notices, NULL);
	return c;
}

void pgh_exec(const char *sql)
{
	PGconn *c = connect_or_abort();
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		fprintf(stderr, "pg_harness: pgh_exec(%s): %s", sql,
			PQerrorMessage(c));
		abort();
	}
	PQclear(r);
	PQfinish(c);
}

char *pgh_scalar(const char *sql)
{
	PGconn *c = connect_or_abort();
	PGresult *r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "pg_harness: pgh_scalar(%s): %s", sql,
			PQerrorMessage(c));
		abort();
	}
	if (PQntuples(r) != 1 || PQnfields(r) < 1) {
		fprintf(stderr,
			"pg_harness: pgh_scalar(%s): %d rows, %d columns; "
			"expected one value\n",
			sql, PQntuples(r), PQnfields(r));
		abort();
	}
	char *v = NULL;
	if (!PQgetisnull(r, 0, 0)) {
		v = strdup(PQgetvalue(r, 0, 0));
		if (!v)
			abort();
	}
	PQclear(r);
	PQfinish(c);
	return v;
}
