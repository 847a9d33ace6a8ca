/*
 * The canceller: one thread per server that sends PostgreSQL cancel
 * requests. PQcancel() blocks for milliseconds (it connects to the
 * postmaster and waits for it to close), so a worker never calls it: it
 * queues a job here and hears back through its mailbox when the cancel
 * was delivered.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "fasterpg.h"

struct fpg_worker;
struct fpg_canceller;

struct fpg_canceller *fpg_canceller_new(struct fpg_error *err);

/* Stops the thread; jobs not yet run are dropped. NULL is a no-op. */
void fpg_canceller_free(struct fpg_canceller *c);

/*
 * Queues a cancel (takes ownership of pgcancel). When it has been sent,
 * the worker gets FPG_MSG_CANCEL_DONE with conn_id in its mailbox.
 * Any thread.
 */
void fpg_canceller_submit(struct fpg_canceller *c, PGcancel *pgcancel,
			  struct fpg_worker *w, uint64_t conn_id);
