/* fasterpg: argv/env/config file -> options -> server. No logic here. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "config.h"
#include "fasterpg.h"
#include "log.h"
#include "probe.h"

/*
 * The log as the configuration asks, before the server exists (which
 * sets it again): so that even a configuration that does not load is
 * told in JSON when --log-format json was understood.
 */
static void configure_log(const struct fpg_options *o)
{
	enum fpg_log_level level = FPG_LOG_INFO;
	if (o->log_level)
		(void)fpg_log_level_parse(o->log_level, &level);
	/* Problems are errors: the level never hides them. */
	fpg_log_configure(level, o->log_format &&
					 strcmp(o->log_format, "json") == 0,
			  NULL, NULL);
}

/* The configuration's problems, one a line: each a line of the log. */
static void tell_problems(const char *text)
{
	for (const char *p = text; p && *p;) {
		size_t n = strcspn(p, "\n");
		fpg_log_error("config", NULL, "%.*s", (int)n, p);
		p += n + (p[n] == '\n');
	}
}

#define GRACE_MS 10000

struct stopper {
	struct fpg_server *srv;
	atomic_bool done;
};

static void *stop_thread(void *arg)
{
	struct stopper *st = arg;
	fpg_server_stop(st->srv, GRACE_MS);
	atomic_store(&st->done, true);
	return NULL;
}

/*
 * The drain runs on a thread of its own, so that this one still takes
 * signals: a second SIGTERM or SIGINT cuts it short.
 */
static void stop(struct fpg_server *srv, const sigset_t *set)
{
	struct stopper st = {.srv = srv};
	pthread_t t;
	if (pthread_create(&t, NULL, stop_thread, &st) != 0) {
		fpg_server_stop(srv, GRACE_MS);
		return;
	}
	while (!atomic_load(&st.done)) {
		struct timespec wait = {0, 100 * 1000 * 1000};
		int sig = sigtimedwait(set, NULL, &wait);
		if (sig == SIGTERM || sig == SIGINT) {
			fpg_log_warn("main", NULL,
				     "signal %d again: ending what is left now",
				     sig);
			fpg_server_stop_now(srv);
		}
	}
	pthread_join(t, NULL);
}

int main(int argc, char **argv)
{
	struct fpg_config cfg;
	enum fpg_config_action action;
	int rc = 1;
	struct fpg_server *srv = NULL;
	/* Problems are collected, then told in the log format asked for. */
	char *problems = NULL;
	size_t problems_len = 0;
	FILE *errout = open_memstream(&problems, &problems_len);
	bool loaded = fpg_config_load(&cfg, argc, argv,
				      errout ? errout : stderr, &action);
	if (errout)
		fclose(errout);
	configure_log(&cfg.opts);
	tell_problems(problems);
	free(problems);
	if (!loaded) {
		fpg_log_error("main", NULL, "invalid configuration (see --help)");
		goto out;
	}
	if (action == FPG_CONFIG_HELP) {
		fpg_config_print_help(stdout);
		rc = 0;
		goto out;
	}
	if (action == FPG_CONFIG_VERSION) {
		printf("fasterpg %s\n", FPG_VERSION);
		rc = 0;
		goto out;
	}
	if (action == FPG_CONFIG_CHECK) {
		rc = fpg_probe(cfg.check_url, stderr) ? 0 : 1;
		goto out;
	}
	/* Every HTTP and PostgreSQL connection is a descriptor: allow as
	 * many as the hard limit does. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	/* Signals are taken synchronously by sigwait below; workers
	 * inherit the mask, so only this thread sees them. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	struct fpg_error err = {0};
	srv = fpg_server_new(&cfg.opts, &err);
	if (!srv || !fpg_server_start(srv, &err)) {
		fpg_log_error("main", NULL, "%s", err.message);
		goto out;
	}
	int sig;
	/* SIGHUP reads the API key file and the TLS pair again (the server
	 * logs what it refuses, and keeps the old); the others stop. */
	while (sigwait(&set, &sig) == 0 && sig == SIGHUP) {
		bool reloaded = fpg_server_reload(srv, &err);
		(void)reloaded;
	}
	fpg_log_info("main", NULL,
		     "signal %d, shutting down: requests in flight get up to "
		     "%u s (a second SIGTERM or SIGINT ends them at once)",
		     sig, GRACE_MS / 1000);
	stop(srv, &set);
	rc = 0;
out:
	fpg_server_free(srv);
	fpg_config_deinit(&cfg);
	return rc;
}
