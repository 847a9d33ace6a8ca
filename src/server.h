/*
 * struct fpg_server: the options, the workers, start and stop.
 */
#pragma once

#include <stdbool.h>

#include "config.h"
#include "fasterpg.h"
#include "worker.h"

struct fpg_server {
	struct fpg_options opts; /* strings point into the copies below */
	char *db;
	char *listen_host;
	char *log_level;
	char *log_format;
	unsigned nworkers;	 /* initialised workers */
	struct fpg_worker *workers;
	unsigned port;
	bool started;
	bool stopped;
};
