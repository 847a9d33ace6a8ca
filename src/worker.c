#include "worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "error.h"
#include "log.h"
#include "apikeys.h"
#include "hmac.h"
#include "jwt.h"
#include "jwtcache.h"
#include "listen.h"
#include "logins.h"
#include "pool.h"
#include "query.h"
#include "request.h"
#include "router.h"
#include "stmt.h"
#include "tls.h"
#include "tx.h"
#include "typecache.h"

#define TICK_MS 20

/* The loop's tick: what every module does periodically. */
static void on_tick(void *ctx)
{
	struct fpg_worker *w = ctx;
	fpg_logins_tick(w->logins);
	fpg_tx_tick(w->tx_table);
	fpg_request_tick(&w->reqs);
}

/* MHD's own epoll set became readable: MHD_run() below handles it. */
static void on_mhd(struct fpg_evsrc *src, uint32_t events)
{
}

/*
 * MHD's own messages; the ones that matter (bind) we report ourselves.
 * One tells of an answer MHD makes itself (a malformed request, headers
 * too large): its status is counted with the request it ends.
 */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct fpg_worker *w = cls;
	if (strstr(fmt, "(HTTP response code is %u")) {
		va_list cp;
		va_copy(cp, ap);
		fpg_request_mhd_answered(&w->reqs, (int)va_arg(cp, unsigned));
		va_end(cp);
	}
	if (!fpg_log_enabled(FPG_LOG_DEBUG))
		return;
	char msg[512];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	size_t n = strlen(msg);
	while (n && msg[n - 1] == '\n')
		msg[--n] = '\0';
	fpg_log_debug("mhd", NULL, "%s", msg);
}

bool fpg_listen_address(const char *host, unsigned port,
			struct sockaddr_storage *addr, socklen_t *len,
			struct fpg_error *err)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE};
	struct addrinfo *res = NULL;
	char portstr[12];
	snprintf(portstr, sizeof(portstr), "%u", port);
	int rc = getaddrinfo(host, portstr, &hints, &res);
	if (rc != 0) {
		fpg_error_set(err, FPG_ERR_CONFIG, 0, "listen address %s: %s",
			      host, gai_strerror(rc));
		return false;
	}
	memcpy(addr, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return true;
}

static bool start_mhd(struct fpg_worker *w, unsigned *port,
		      struct fpg_error *err)
{
	bool tls = w->svc.tls != NULL;
	/* So the compiler checks it against GnuTLS's type (a vararg). */
	gnutls_certificate_retrieve_function2 *pick = fpg_clients_pick_cert;
	struct sockaddr_storage addr;
	socklen_t len;
	if (!fpg_listen_address(w->opts->listen_host, *port, &addr, &len, err))
		return false;
	unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
			 MHD_USE_TURBO | MHD_USE_ERROR_LOG;
	if (addr.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	if (tls) {
		if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES ||
		    MHD_is_feature_supported(MHD_FEATURE_HTTPS_CERT_CALLBACK) !=
			    MHD_YES) {
			fpg_error_set(err, FPG_ERR_CONFIG, 0,
				      "this libmicrohttpd has no TLS (or no "
				      "certificate callback)");
			return false;
		}
		flags |= MHD_USE_TLS;
	}
	w->mhd = MHD_start_daemon(
		flags, (uint16_t)*port, NULL, NULL, fpg_request_access, &w->reqs,
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
		MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
		MHD_OPTION_CONNECTION_LIMIT, w->opts->max_connections,
		/* Past it, MHD closes the new connection at once. */
		MHD_OPTION_PER_IP_CONNECTION_LIMIT,
		w->opts->max_connections_per_ip,
		MHD_OPTION_CONNECTION_TIMEOUT, w->opts->http_idle_timeout_s,
		/* Refuse ambiguous framing (e.g. whitespace before a header's
		 * colon, HTTP/1.1 without Host) instead of guessing, so that
		 * a proxy in front and we cannot read one request two ways. */
		MHD_OPTION_STRICT_FOR_CLIENT, (int)1,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT,
		w->opts->http_connection_memory,
		MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)4096,
		MHD_OPTION_NOTIFY_COMPLETED, fpg_request_completed, &w->reqs,
		MHD_OPTION_URI_LOG_CALLBACK, fpg_request_uri_log, &w->reqs,
		MHD_OPTION_NOTIFY_CONNECTION, fpg_clients_notify,
		&w->reqs.clients,
		MHD_OPTION_EXTERNAL_LOGGER, mhd_log, w,
		/* The pair comes from the callback at each handshake, so a
		 * reload reaches new connections (tls.h). With TLS off this
		 * is the end of the list. */
		tls ? MHD_OPTION_HTTPS_CERT_CALLBACK : MHD_OPTION_END,
		pick, MHD_OPTION_END);
	if (!w->mhd) {
		fpg_error_set(err, FPG_ERR_SYSTEM, 0,
			      "cannot listen on %s:%u (in use, or not "
			      "allowed?)",
			      w->opts->listen_host, *port);
		return false;
	}
	const union MHD_DaemonInfo *di =
		MHD_get_daemon_info(w->mhd, MHD_DAEMON_INFO_BIND_PORT);
	if (di)
		*port = di->port;
	di = MHD_get_daemon_info(w->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	if (!di || !fpg_loop_watch(&w->loop, di->epoll_fd, EPOLLIN, &w->mhd_ev)) {
		fpg_error_set(err, FPG_ERR_SYSTEM, 0, "cannot watch MHD epoll");
		return false;
	}
	return true;
}

bool fpg_worker_init(struct fpg_worker *w, const struct fpg_options *opts,
		     struct fpg_canceller *canceller,
		     const struct fpg_services *shared, unsigned id,
		     unsigned *port, struct fpg_error *err)
{
	w->opts = opts;
	w->id = id;
	atomic_store(&w->drain_deadline_ms, UINT64_MAX);
	w->mhd_ev.on_event = on_mhd;
	w->svc = *shared;
	/* The worker's own references, taken before anything can fail:
	 * deinit releases them whatever init reached. */
	fpg_apikeys_ref(w->svc.keys);
	fpg_jwt_ref(w->svc.jwt);
	fpg_tls_ref(w->svc.tls);
	fpg_requests_init(&w->reqs, &w->svc);
	if (!fpg_loop_init(&w->loop, TICK_MS, on_tick, w, err))
		return false;
	w->types = fpg_typecache_new();
	w->lanes = fpg_lanes_new();
	if (!w->types || !w->lanes) {
		fpg_error_set(err, FPG_ERR_NOMEM, 0, "out of memory");
		return false;
	}
	struct fpg_conn_env env = {
		.loop = &w->loop,
		.opts = opts,
		.stats = &w->stats,
		.canceller = canceller,
		.types = w->types,
		.draining = &w->draining,
		.worker_id = id,
		.random = &w->reqs.random,
		.statement_timeout_ms = opts->statement_timeout_ms,
		.read_only = opts->read_only != 0,
		.stmts_new = fpg_stmt_cache_new,
		.stmts_free = fpg_stmt_cache_free,
		.session_stmts = fpg_query_session_stmts,
		.nsession_stmts = fpg_query_nsession_stmts,
	};
	/* With clients' own logins, the --db one serves /readyz only: it
	 * connects when asked, and may have no password at all. */
	bool own_logins = shared->auth_password || shared->auth_api_key ||
			  shared->auth_jwt;
	w->logins = fpg_logins_new(&env, own_logins ? 0 : opts->pool_min, err);
	if (!w->logins)
		return false;
	w->pool = fpg_logins_main(w->logins);
	struct fpg_tx_deps txd = {
		.index = id,
		.pool = w->pool,
		.loop = &w->loop,
		.stats = &w->stats,
		.opts = opts,
	};
	w->tx_table = fpg_tx_table_new(shared->tx_reg, &txd,
				       opts->max_transactions, err);
	if (!w->tx_table)
		return false;
	w->svc.worker_id = id;
	w->svc.opts = opts;
	w->svc.loop = &w->loop;
	w->svc.pool = w->pool;
	w->svc.logins = w->logins;
	struct fpg_listener_env lenv = {
		.loop = &w->loop,
		.opts = opts,
		.worker_id = id,
		.draining = &w->draining,
		.stats = &w->stats,
	};
	if (!(w->svc.listener = fpg_listener_new(&lenv))) {
		fpg_error_set(err, FPG_ERR_NOMEM, 0, "out of memory");
		return false;
	}
	if (shared->auth_jwt && !(w->svc.jwt_cache = fpg_jwt_cache_new())) {
		fpg_error_set(err, FPG_ERR_NOMEM, 0, "out of memory");
		return false;
	}
	if (shared->claims_key &&
	    !(w->svc.claims_signer = fpg_hmac_new(shared->claims_key,
						  shared->claims_key_len))) {
		fpg_error_set(err, FPG_ERR_NOMEM, 0, "out of memory");
		return false;
	}
	w->svc.types = w->types;
	w->svc.tx = w->tx_table;
	w->svc.lanes = w->lanes;
	w->svc.stats = &w->stats;
	w->svc.draining = &w->draining;
	w->svc.buffered = 0;
	w->svc.route_match = fpg_router_match;
	w->svc.route_index = fpg_router_index;
	w->svc.route_names = fpg_router_stat_names();
	w->svc.nroutes = fpg_router_count() + 1;
	return start_mhd(w, port, err);
}

static int loop_timeout(struct fpg_worker *w)
{
	if (w->reqs.resumed)
		return 0;
	MHD_UNSIGNED_LONG_LONG to;
	/* The timerfd ticks anyway; this only shortens the wait. */
	if (MHD_get_timeout(w->mhd, &to) == MHD_YES)
		return to > INT_MAX ? INT_MAX : (int)to;
	return -1;
}

static void begin_drain(struct fpg_worker *w)
{
	w->draining = true;
	MHD_socket ls = MHD_quiesce_daemon(w->mhd);
	if (ls != MHD_INVALID_SOCKET)
		close(ls);
}

static void run_once(struct fpg_worker *w, int timeout)
{
	fpg_loop_wait(&w->loop, timeout);
	fpg_logins_reap(w->logins);
	fpg_request_flush_streams(&w->reqs);
	w->reqs.resumed = false;
	MHD_run(w->mhd);
	fpg_clients_settle(&w->reqs.clients);
	fpg_logins_reap(w->logins);
	fpg_logins_end_turn(w->logins);
}

static void *worker_main(void *arg)
{
	struct fpg_worker *w = arg;
	for (;;) {
		run_once(w, loop_timeout(w));
		if (!w->draining && atomic_load(&w->stop_requested))
			begin_drain(w);
		if (w->draining &&
		    (fpg_list_empty(&w->reqs.list) ||
		     w->loop.now_ms >= atomic_load(&w->drain_deadline_ms)))
			break;
	}
	/* Whatever is left is closed; every connection must be resumed
	 * before MHD_stop_daemon. */
	fpg_request_kill_all(&w->reqs);
	for (int i = 0; i < 4 && !fpg_list_empty(&w->reqs.list); i++)
		run_once(w, 0);
	atomic_store(&w->finished, true);
	return NULL;
}

bool fpg_worker_start(struct fpg_worker *w, struct fpg_error *err)
{
	int rc = pthread_create(&w->thread, NULL, worker_main, w);
	if (rc != 0) {
		fpg_error_set(err, FPG_ERR_SYSTEM, 0, "pthread_create: %s",
			      strerror(rc));
		return false;
	}
	w->thread_started = true;
	return true;
}

void fpg_worker_request_stop(struct fpg_worker *w, unsigned grace_ms)
{
	uint64_t want = grace_ms ? fpg_now_ms() + grace_ms : 0;
	uint64_t was = atomic_load(&w->drain_deadline_ms);
	while (want < was &&
	       !atomic_compare_exchange_weak(&w->drain_deadline_ms, &was, want))
		;
	atomic_store(&w->stop_requested, true);
	fpg_loop_wake(&w->loop);
}

bool fpg_worker_finished(struct fpg_worker *w)
{
	return !w->thread_started || atomic_load(&w->finished);
}

/* What a reload brought a worker: API keys, a JWT verifier, a TLS pair
 * (their references travel along; NULL: unchanged). */
struct reload_msg {
	struct fpg_msg msg;
	struct fpg_worker *w;
	struct fpg_apikeys *keys;
	struct fpg_jwt *jwt;
	struct fpg_tls *tls;
};

/* Puts *fresh in *slot when given, leaving the old one in *fresh. */
#define SWAP_IN(slot, fresh)                                                   \
	do {                                                                   \
		if (*(fresh)) {                                                \
			void *old_ = *(slot);                                  \
			*(slot) = *(fresh);                                    \
			*(fresh) = old_;                                       \
		}                                                              \
	} while (0)

static void reload_arrive(struct fpg_msg *msg, bool live)
{
	struct reload_msg *m = FPG_CONTAINER_OF(msg, struct reload_msg, msg);
	struct fpg_services *svc = &m->w->svc;
	if (live) {
		SWAP_IN(&svc->keys, &m->keys);
		SWAP_IN(&svc->jwt, &m->jwt);
		SWAP_IN(&svc->tls, &m->tls);
	}
	fpg_apikeys_unref(m->keys);
	fpg_jwt_unref(m->jwt);
	fpg_tls_unref(m->tls);
	free(m);
}

void fpg_worker_swap(struct fpg_worker *w, struct fpg_apikeys *keys,
		     struct fpg_jwt *jwt, struct fpg_tls *tls)
{
	struct reload_msg *m = malloc(sizeof(*m));
	if (!m) {
		fpg_log_error("worker", NULL, "worker %u: out of memory: what "
			      "was reloaded stays unused",
			      w->id);
		return;
	}
	fpg_apikeys_ref(keys);
	fpg_jwt_ref(jwt);
	fpg_tls_ref(tls);
	*m = (struct reload_msg){.msg.handle = reload_arrive,
				 .w = w,
				 .keys = keys,
				 .jwt = jwt,
				 .tls = tls};
	fpg_loop_post(&w->loop, &m->msg);
}

void fpg_worker_join(struct fpg_worker *w)
{
	if (w->thread_started)
		pthread_join(w->thread, NULL);
	w->thread_started = false;
}

void fpg_worker_deinit(struct fpg_worker *w)
{
	if (w->mhd)
		MHD_stop_daemon(w->mhd);
	w->mhd = NULL;
	fpg_logins_free(w->logins);
	w->logins = NULL;
	w->pool = NULL;
	fpg_tx_table_free(w->tx_table);
	w->tx_table = NULL;
	fpg_typecache_free(w->types);
	w->types = NULL;
	fpg_lanes_free(w->lanes);
	w->lanes = NULL;
	/* After MHD: its requests' cleanups unsubscribe. */
	fpg_listener_free(w->svc.listener);
	w->svc.listener = NULL;
	fpg_loop_deinit(&w->loop);
	fpg_requests_deinit(&w->reqs);
	fpg_apikeys_unref(w->svc.keys);
	w->svc.keys = NULL;
	fpg_jwt_unref(w->svc.jwt);
	w->svc.jwt = NULL;
	fpg_hmac_free(w->svc.claims_signer);
	w->svc.claims_signer = NULL;
	fpg_jwt_cache_free(w->svc.jwt_cache);
	w->svc.jwt_cache = NULL;
	fpg_tls_unref(w->svc.tls);
	w->svc.tls = NULL;
}
