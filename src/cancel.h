/*
 * The canceller: one thread per server that sends PostgreSQL cancel
 * requests. PQcancel() blocks for milliseconds (it connects to the
 * postmaster and waits for it to close), so a worker never calls it: it
 * queues a job here and hears back through its loop's mailbox when the
 * cancel was delivered.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "fasterpg.h"

struct fpg_loop;
struct fpg_msg;
struct fpg_canceller;

struct fpg_canceller *fpg_canceller_new(struct fpg_error *err);

/* Stops the thread; jobs not yet run are dropped. NULL is a no-op. */
void fpg_canceller_free(struct fpg_canceller *c);

/*
 * Queues a cancel (takes ownership of pgcancel and of done). When it has
 * been sent (or could not be), done is posted to reply_to; jobs dropped
 * by fpg_canceller_free get done->handle(done, false) instead. Any
 * thread.
 */
void fpg_canceller_submit(struct fpg_canceller *c, PGcancel *pgcancel,
			  struct fpg_loop *reply_to, struct fpg_msg *done);
