#include "logins.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "error.h"
#include "guard.h"
#include "hmac.h"
#include "list.h"
#include "log.h"
#include "loop.h"
#include "pool.h"
#include "roles.h"
#include "stats.h"

/* Credentials waiting for PostgreSQL's word at once, per worker. */
#define CHECKS_AT_ONCE 8
#define MAC_LEN FPG_HMAC_LEN

struct login {
	struct fpg_list link;	    /* in fpg_logins.all */
	struct fpg_logins *ls;
	char *user;
	char *password;		    /* for its new connections */
	unsigned char mac[MAC_LEN]; /* of user and password */
	bool by_key;		    /* an API key's: no password of ours */
	double tokens;		    /* of the role's rate, this worker's */
	uint64_t tokens_ms;	    /* when they were counted */
	struct fpg_conn_env env;    /* the worker's, with the two above */
	struct fpg_pool *pool;
	bool checked;		    /* a connection logged in with it */
	bool retiring;		    /* no new requests; freed once quiet */
	uint64_t checked_ms;	    /* when it first logged in */
	uint64_t used_ms;	    /* its last request */
};

struct fpg_logins {
	struct fpg_conn_env env;
	struct fpg_pool *main;
	struct fpg_list all;	    /* of struct login */
	unsigned open;		    /* not retiring */
	unsigned checking;	    /* open and not checked yet */
	struct fpg_hmac *keyed;	    /* keyed with random bytes of this
				       worker's: credentials' MACs */
};

static bool mac_of(const struct fpg_logins *ls, const char *user,
		   const char *password, unsigned char *out)
{
	/* user, a NUL, password: no two pairs give the same bytes. */
	if (!password)
		password = "";
	const void *parts[] = {user, password};
	size_t lens[] = {strlen(user) + 1, strlen(password)};
	return fpg_hmac_parts(ls->keyed, parts, lens, 2, out);
}

static void login_free(struct login *l)
{
	fpg_list_remove(&l->link);
	FPG_STAT_ADD(l->ls->env.stats->logins_open, -1);
	fpg_pool_free(l->pool);
	if (l->password)
		OPENSSL_cleanse(l->password, strlen(l->password));
	free(l->password);
	free(l->user);
	free(l);
}

/* It takes no new request; its pool closes once nothing uses it. */
static void retire(struct login *l)
{
	if (l->retiring)
		return;
	l->retiring = true;
	l->ls->open--;
	if (!l->checked)
		l->ls->checking--;
}

static void logged_in(struct fpg_pool *pool, void *ctx)
{
	struct login *l = ctx;
	if (l->checked)
		return;
	l->checked = true;
	l->checked_ms = l->ls->env.loop->now_ms;
	if (!l->retiring)
		l->ls->checking--;
}

static void refused(struct fpg_pool *pool, void *ctx)
{
	struct login *l = ctx;
	FPG_STAT_ADD(l->ls->env.stats->login_refusals, 1);
	retire(l);
}

struct fpg_logins *fpg_logins_new(const struct fpg_conn_env *env,
				  unsigned main_min, struct fpg_error *err)
{
	struct fpg_logins *ls = calloc(1, sizeof(*ls));
	if (!ls) {
		fpg_error_set(err, FPG_ERR_NOMEM, 0, "out of memory");
		return NULL;
	}
	ls->env = *env;
	fpg_list_init(&ls->all);
	if (!(ls->keyed = fpg_hmac_new(NULL, 0))) {
		fpg_error_set(err, FPG_ERR_SYSTEM, 0, "cannot key an HMAC");
		free(ls);
		return NULL;
	}
	struct fpg_pool_owner owner = {.min = main_min};
	ls->main = fpg_pool_new(&ls->env, &owner, err);
	if (!ls->main) {
		fpg_hmac_free(ls->keyed);
		free(ls);
		return NULL;
	}
	return ls;
}

void fpg_logins_free(struct fpg_logins *ls)
{
	if (!ls)
		return;
	struct fpg_list *n;
	while ((n = fpg_list_first(&ls->all)))
		login_free(FPG_CONTAINER_OF(n, struct login, link));
	fpg_pool_free(ls->main);
	fpg_hmac_free(ls->keyed);
	free(ls);
}

struct fpg_pool *fpg_logins_main(struct fpg_logins *ls)
{
	return ls->main;
}

static struct login *login_new(struct fpg_logins *ls, const char *user,
			       const char *password,
			       const struct fpg_role_policy *policy,
			       const unsigned char *mac,
			       struct fpg_error *err)
{
	struct login *l = calloc(1, sizeof(*l));
	if (!l || !(l->user = strdup(user)) ||
	    (password && !(l->password = strdup(password))))
		goto nomem;
	l->by_key = !password;
	memcpy(l->mac, mac, MAC_LEN);
	l->ls = ls;
	l->env = ls->env;
	l->env.user = l->user;
	l->env.password = l->password;
	l->env.read_only = ls->env.read_only || policy->read_only;
	unsigned cap = policy->statement_timeout_ms;
	if (cap && (!l->env.statement_timeout_ms ||
		    cap < l->env.statement_timeout_ms))
		l->env.statement_timeout_ms = cap;
	struct fpg_pool_owner owner = {
		.min = 0, /* a login opens connections only when asked */
		.logged_in = logged_in,
		.refused = refused,
		.ctx = l,
	};
	l->pool = fpg_pool_new(&l->env, &owner, err);
	if (!l->pool)
		goto fail;
	l->used_ms = ls->env.loop->now_ms;
	fpg_list_push_back(&ls->all, &l->link);
	FPG_STAT_ADD(ls->env.stats->logins_open, 1);
	ls->open++;
	ls->checking++;
	return l;
nomem:
	fpg_error_set(err, FPG_ERR_NOMEM, 503, "out of memory");
fail:
	if (l) {
		free(l->password);
		free(l->user);
	}
	free(l);
	return NULL;
}

bool fpg_logins_find(struct fpg_logins *ls, const char *user,
		     const char *password,
		     const struct fpg_role_policy *policy,
		     struct fpg_pool **pool, struct fpg_error *err)
{
	unsigned char mac[MAC_LEN];
	if (!mac_of(ls, user, password, mac)) {
		fpg_error_set(err, FPG_ERR_NOMEM, 503, "out of memory");
		return false;
	}
	uint64_t now = ls->env.loop->now_ms;
	unsigned recheck = ls->env.opts->auth_recheck_ms;
	for (struct fpg_list *n = fpg_list_first(&ls->all); n;
	     n = fpg_list_next(&ls->all, n)) {
		struct login *l = FPG_CONTAINER_OF(n, struct login, link);
		if (l->retiring || l->by_key != !password ||
		    l->env.read_only != (ls->env.read_only || policy->read_only) ||
		    strcmp(l->user, user) != 0 ||
		    !fpg_guard_same_secret(l->mac, MAC_LEN, mac, MAC_LEN))
			continue;
		if (l->checked && now - l->checked_ms >= recheck) {
			retire(l); /* log in afresh: still allowed? */
			break;
		}
		l->used_ms = now;
		*pool = l->pool;
		return true;
	}
	if (ls->open >= ls->env.opts->max_logins ||
	    ls->checking >= CHECKS_AT_ONCE) {
		fpg_error_set(err, FPG_ERR_LIMIT, 503,
			      ls->checking >= CHECKS_AT_ONCE
				      ? "too many logins are being checked; "
					"try again"
				      : "too many logins are open (max-logins "
					"is %u)",
			      ls->env.opts->max_logins);
		return false;
	}
	struct login *l = login_new(ls, user, password, policy, mac, err);
	if (!l)
		return false;
	*pool = l->pool;
	return true;
}

unsigned fpg_logins_admit(struct fpg_logins *ls, struct fpg_pool *pool,
			  double rate)
{
	/* A login's pool has it as its owner; the main pool has none. */
	struct login *l = pool == ls->main ? NULL : fpg_pool_owner_ctx(pool);
	if (!l || rate <= 0)
		return 0;
	/* A token bucket that holds a second's worth. */
	uint64_t now = ls->env.loop->now_ms;
	if (l->tokens_ms)
		l->tokens += (double)(now - l->tokens_ms) * rate / 1000.0;
	else
		l->tokens = rate;
	l->tokens_ms = now;
	if (l->tokens > rate)
		l->tokens = rate;
	if (l->tokens >= 1.0) {
		l->tokens -= 1.0;
		return 0;
	}
	double wait_s = (1.0 - l->tokens) / rate;
	return wait_s < 1.0 ? 1 : (unsigned)(wait_s + 0.999);
}

void fpg_logins_reap(struct fpg_logins *ls)
{
	fpg_pool_reap(ls->main);
	for (struct fpg_list *n = fpg_list_first(&ls->all); n;
	     n = fpg_list_next(&ls->all, n))
		fpg_pool_reap(FPG_CONTAINER_OF(n, struct login, link)->pool);
}

void fpg_logins_end_turn(struct fpg_logins *ls)
{
	fpg_pool_end_turn(ls->main);
	for (struct fpg_list *n = fpg_list_first(&ls->all); n;
	     n = fpg_list_next(&ls->all, n))
		fpg_pool_end_turn(FPG_CONTAINER_OF(n, struct login, link)->pool);
}

/* Ticks every pool; closes retired and idle logins once quiet. */
void fpg_logins_tick(struct fpg_logins *ls)
{
	fpg_pool_tick(ls->main);
	uint64_t now = ls->env.loop->now_ms;
	struct fpg_list *n = fpg_list_first(&ls->all), *next;
	for (; n; n = next) {
		next = fpg_list_next(&ls->all, n);
		struct login *l = FPG_CONTAINER_OF(n, struct login, link);
		fpg_pool_tick(l->pool);
		if (!l->retiring &&
		    now - l->used_ms >= ls->env.opts->login_idle_timeout_ms)
			retire(l);
		if (l->retiring && fpg_pool_quiet(l->pool)) {
			fpg_log_debug("logins", NULL, "worker %u: login %s closed",
				      ls->env.worker_id, l->user);
			login_free(l);
		}
	}
}
