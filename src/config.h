/*
 * Options from defaults, a config file, environment variables and the
 * command line, in that order of precedence, driven by one table.
 */
#pragma once

#include <stdbool.h>
#include <stdio.h>

#include "fasterpg.h"

#define FPG_CONFIG_MAX_OPTIONS 96

struct fpg_config {
	struct fpg_options opts;  /* strings point into owned[] or literals */
	char *owned[FPG_CONFIG_MAX_OPTIONS]; /* per table entry, malloc'd */
	char *listen_host;	  /* owned copy of the host of --listen */
	char *check_url;	  /* --check URL, owned */
};

enum fpg_config_action {
	FPG_CONFIG_RUN,
	FPG_CONFIG_HELP,
	FPG_CONFIG_VERSION,
	FPG_CONFIG_CHECK, /* probe check_url and exit (a health check) */
};

/*
 * Loads the configuration: table defaults, then the file named by
 * --config or FASTERPG_CONFIG, then FASTERPG_* environment variables, then
 * argv. Every problem found is reported (one line each, "where: key:
 * message") to errout before returning false. On success *action says
 * whether to run or print help/version.
 */
bool fpg_config_load(struct fpg_config *cfg, int argc, char **argv,
		     FILE *errout, enum fpg_config_action *action) FPG_MUST_CHECK;

/* Frees what fpg_config_load allocated. */
void fpg_config_deinit(struct fpg_config *cfg);

/* Prints the option list with defaults and environment variables. */
void fpg_config_print_help(FILE *out);
