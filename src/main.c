/* fasterpg: argv/env/config file -> options -> server. No logic here. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "config.h"
#include "fasterpg.h"
#include "probe.h"

int main(int argc, char **argv)
{
	struct fpg_config cfg;
	enum fpg_config_action action;
	int rc = 1;
	struct fpg_server *srv = NULL;
	if (!fpg_config_load(&cfg, argc, argv, stderr, &action)) {
		fprintf(stderr, "fasterpg: invalid configuration (see --help)\n");
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
		fprintf(stderr, "fasterpg: %s\n", err.message);
		goto out;
	}
	int sig;
	/* SIGHUP reads the API key file and the TLS pair again (the server
	 * logs what it refuses, and keeps the old); the others stop. */
	while (sigwait(&set, &sig) == 0 && sig == SIGHUP) {
		bool reloaded = fpg_server_reload(srv, &err);
		(void)reloaded;
	}
	fprintf(stderr, "fasterpg: signal %d, shutting down\n", sig);
	fpg_server_stop(srv, 10000);
	rc = 0;
out:
	fpg_server_free(srv);
	fpg_config_deinit(&cfg);
	return rc;
}
