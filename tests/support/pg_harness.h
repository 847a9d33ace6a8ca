/*
 * Throwaway PostgreSQL 15 cluster for integration tests: initdb in a temp
 * dir, a free port picked with a bind() probe plus a lock file, started with
 * pg_ctl. When running as root the server runs as the "postgres" OS user
 * (initdb refuses root). One cluster per test binary: support/it_main.c
 * calls pgh_start() before the cases run and pgh_stop() after them.
 */
#pragma once

#include <stdbool.h>

/*
 * Initialises and starts the cluster. Returns its libpq conninfo
 * ("host=127.0.0.1 port=N user=postgres dbname=postgres"), static storage.
 * Exits the process with 77 (meson "skip") when initdb is not installed and
 * with 1 (after printing the server log) when start-up fails.
 */
const char *pgh_start(void);

/* The conninfo of the running cluster (NULL before pgh_start). */
const char *pgh_conninfo(void);

/* The port of the cluster. */
unsigned pgh_port(void);

/* Stops the server (fast mode) without removing the cluster. */
bool pgh_server_stop(void);

/* Starts the server again after pgh_server_stop(). */
bool pgh_server_start(void);

/* Stops the server and removes the temp dir. */
void pgh_stop(void);

/*
 * Runs one SQL statement on a fresh blocking libpq connection and fails the
 * process (abort with a message) if it errors. For fixtures only.
 */
void pgh_exec(const char *sql);

/*
 * Runs a query returning one value; returns it malloc'd (caller frees) or
 * NULL for SQL NULL. Aborts on error.
 */
char *pgh_scalar(const char *sql);
