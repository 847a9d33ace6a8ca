/*
 * The pools of one worker, one per database login: the --db login's
 * (the main pool), and with password authentication one per credential
 * a client sent, made on its first request and checked by PostgreSQL
 * itself (the pool's first connection logs in with it). A credential
 * that logged in is remembered as an HMAC under a key of the worker's
 * own, compared in constant time, for --auth-recheck-ms: then its pool
 * retires (it takes no new request, and closes once quiet) and the next
 * request logs in afresh, so that a changed or revoked password is
 * noticed. Pools idle for --login-idle-timeout-ms close; at most
 * --max-logins are open, and at most a few wait for PostgreSQL's word at
 * once (each guess costs PostgreSQL a connection). One thread.
 */
#pragma once

#include <stdbool.h>

#include "conn.h"
#include "fasterpg.h"

struct fpg_logins;
struct fpg_pool;
struct fpg_role_policy;

/*
 * The logins of a worker whose connections get env (copied; its user and
 * password must be NULL). Makes the main pool, which keeps main_min
 * connections open. Caller owns.
 */
struct fpg_logins *fpg_logins_new(const struct fpg_conn_env *env,
				  unsigned main_min, struct fpg_error *err);

/* Closes every pool (their ops end with an error). NULL is a no-op. */
void fpg_logins_free(struct fpg_logins *ls);

/* The --db login's pool. */
struct fpg_pool *fpg_logins_main(struct fpg_logins *ls);

/*
 * The pool for user with password (both borrowed for the call): the
 * remembered one, or a new one whose first connection checks them (its
 * waiters get 401 if PostgreSQL refuses). password NULL: a role the
 * gateway logs in as by libpq's own means (PGPASSFILE, a service file, a
 * certificate), for an API key; never the same login as any password's.
 * policy (its role's, borrowed for the call): read-only sessions, a
 * lower statement timeout.
 * False with err (503) when no more logins may be open or checked now.
 */
bool fpg_logins_find(struct fpg_logins *ls, const char *user,
		     const char *password,
		     const struct fpg_role_policy *policy,
		     struct fpg_pool **pool,
		     struct fpg_error *err) FPG_MUST_CHECK;

/*
 * One more request of pool's login, at most rate a second on this worker
 * (a token bucket holding a second's worth): 0 when it may go, else the
 * seconds to wait. rate <= 0: no limit.
 */
unsigned fpg_logins_admit(struct fpg_logins *ls, struct fpg_pool *pool,
			  double rate);

/* The loop turn's end and tick, for every pool (see pool.h). */
void fpg_logins_reap(struct fpg_logins *ls);
void fpg_logins_end_turn(struct fpg_logins *ls);
void fpg_logins_tick(struct fpg_logins *ls);
