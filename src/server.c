#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "cancel.h"
#include "error.h"
#include "log.h"
#include "apikeys.h"
#include "queries.h"
#include "roles.h"
#include "startup.h"
#include "tls.h"
#include "tx.h"

static bool copy_str(char **dst, const char **field)
{
	if (!*field)
		return true;
	*dst = strdup(*field);
	*field = *dst;
	return *dst != NULL;
}

/*
 * A --db libpq cannot parse would only fail every connect, forever: it is
 * a startup error. libpq reads it as a conninfo when it holds "=" or
 * starts like a URI, else as a database name (expand_dbname), and so do
 * we. libpq's message may quote any piece of it, password included.
 */
static bool check_db(const char *db, struct fpg_error *err)
{
	if (!db || (!strchr(db, '=') && strncmp(db, "postgresql://", 13) != 0 &&
		    strncmp(db, "postgres://", 11) != 0))
		return true;
	char *msg = NULL;
	PQconninfoOption *parsed = PQconninfoParse(db, &msg);
	if (parsed) {
		PQconninfoFree(parsed);
		return true;
	}
	char redacted[200], why[200];
	fpg_error_redact(redacted, sizeof(redacted),
			 msg ? msg : "out of memory", true);
	PQfreemem(msg);
	fpg_error_tidy(why, sizeof(why), redacted);
	fpg_error_set(err, FPG_ERR_CONFIG, 0,
		      "db is not a valid conninfo or URI: %s", why);
	return false;
}

bool fpg_server_parse_auth(const char *list, unsigned *methods,
			   struct fpg_error *err)
{
	static const struct {
		const char *name;
		unsigned bit;
	} names[] = {{"password", FPG_AUTH_PASSWORD},
		     {"api-key", FPG_AUTH_API_KEY},
		     {"jwt", FPG_AUTH_JWT}};
	*methods = 0;
	for (const char *p = list ? list : ""; *p;) {
		size_t n = strcspn(p, ","), i;
		for (i = 0; n && i < sizeof(names) / sizeof(*names); i++)
			if (strlen(names[i].name) == n &&
			    strncmp(p, names[i].name, n) == 0)
				break;
		if (n && i == sizeof(names) / sizeof(*names)) {
			fpg_error_set(err, FPG_ERR_CONFIG, 0,
				      "auth: %.*s is not password, api-key or "
				      "jwt",
				      (int)(n < 32 ? n : 32), p);
			return false;
		}
		if (n)
			*methods |= names[i].bit;
		p += n + (p[n] == ',');
	}
	return true;
}

/* Valid options; *methods gets those --auth names (fpg_auth_method). */
static bool check_options(const struct fpg_options *o, unsigned *methods,
			  struct fpg_error *err)
{
	enum fpg_log_level level;
	if (!fpg_log_level_parse(o->log_level, &level)) {
		fpg_error_set(err, FPG_ERR_CONFIG, 0,
			      "log-level must be error, warn, info or debug");
		return false;
	}
	if (strcmp(o->log_format, "text") != 0 &&
	    strcmp(o->log_format, "json") != 0) {
		fpg_error_set(err, FPG_ERR_CONFIG, 0,
			      "log-format must be text or json");
		return false;
	}
	if (strcmp(o->access_log, "on") != 0 &&
	    strcmp(o->access_log, "off") != 0) {
		fpg_error_set(err, FPG_ERR_CONFIG, 0,
			      "access-log must be on or off");
		return false;
	}
	if (o->pool_max == 0 || o->pool_min > o->pool_max) {
		fpg_error_set(err, FPG_ERR_CONFIG, 0,
			      "pool-min must not exceed pool-max (>= 1)");
		return false;
	}
	if (o->listen_port > 65535) {
		fpg_error_set(err, FPG_ERR_CONFIG, 0,
			      "listen port %u is not a TCP port", o->listen_port);
		return false;
	}
	if (o->pipeline_depth == 0 || o->max_body_bytes == 0) {
		fpg_error_set(err, FPG_ERR_CONFIG, 0,
			      "pipeline-depth and max-body-bytes must be > 0");
		return false;
	}
	if (!fpg_server_parse_auth(o->auth, methods, err))
		return false;
	bool api_key = *methods & FPG_AUTH_API_KEY;
	if (api_key != (o->api_keys != NULL)) {
		fpg_error_set(err, FPG_ERR_CONFIG, 0,
			      api_key ? "auth api-key needs api-keys (a file)"
				      : "api-keys needs auth api-key");
		return false;
	}
	bool jwt = *methods & FPG_AUTH_JWT;
	bool jwt_opts = o->jwt_secret_file || o->jwt_key_file ||
			o->jwks_file || o->jwks_url || o->jwt_roles ||
			o->jwt_audience || o->jwt_issuer || o->jwt_algorithms ||
			o->claims_key_file;
	if (jwt_opts && !jwt) {
		fpg_error_set(err, FPG_ERR_CONFIG, 0,
			      "the jwt- and jwks- options need auth jwt");
		return false;
	}
	if (!check_db(o->db, err))
		return false;
	fpg_log_configure(level, strcmp(o->log_format, "json") == 0, o->log,
			  o->log_ctx);
	return true;
}

/* The address is on this machine only (127.0.0.0/8, ::1, or 127/8
 * mapped into IPv6). */
static bool is_loopback(const struct sockaddr_storage *a)
{
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)a;
		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)a;
		const uint8_t *b = in6->sin6_addr.s6_addr;
		return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) ||
		       (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && b[12] == 127);
	}
	return false;
}

/*
 * Every client runs its SQL as the --db login: beyond loopback, anyone
 * who reaches the port would. That takes a decision, not a default.
 */
static bool check_exposure(const struct fpg_options *o, bool authenticated,
			   struct fpg_error *err)
{
	struct sockaddr_storage addr;
	socklen_t len;
	if (o->insecure_no_auth || authenticated)
		return true;
	if (!fpg_listen_address(o->listen_host, o->listen_port, &addr, &len,
				err))
		return false;
	if (is_loopback(&addr))
		return true;
	fpg_error_set(err, FPG_ERR_CONFIG, 0,
		      "refusing to listen on %s: no client is authenticated, "
		      "so whoever reaches the port runs SQL as the --db login; "
		      "authenticate clients (--auth password), listen on "
		      "127.0.0.1 (behind a proxy that authenticates), or pass "
		      "--insecure-no-auth if the network itself is trusted "
		      "(e.g. a private container network)",
		      o->listen_host);
	return false;
}

/*
 * SO_REUSEPORT would let us share a port that another server (even
 * another fasterpg) listens on, splitting its traffic: refuse a port in
 * use, found by binding it once without the option.
 */
static bool port_is_free(const char *host, unsigned port,
			 struct fpg_error *err)
{
	if (port == 0)
		return true;
	struct sockaddr_storage addr;
	socklen_t len;
	if (!fpg_listen_address(host, port, &addr, &len, NULL))
		return true; /* the worker reports the bad address */
	int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	bool ok = true;
	if (fd >= 0) {
		(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one,
				 sizeof(one));
		if (bind(fd, (struct sockaddr *)&addr, len) != 0 &&
		    errno == EADDRINUSE) {
			fpg_error_set(err, FPG_ERR_SYSTEM, 0,
				      "cannot listen on %s:%u: address in use",
				      host, port);
			ok = false;
		}
		close(fd);
	}
	return ok;
}

static bool copy_jwt_options(struct fpg_server *srv)
{
	struct fpg_options *o = &srv->opts;
	const char **f[] = {&o->jwt_secret_file, &o->jwt_key_file,
			    &o->jwks_file,	 &o->jwt_role_claim,
			    &o->jwt_audience,	 &o->jwt_issuer,
			    &o->jwt_roles,	 &o->jwt_algorithms};
	_Static_assert(sizeof(f) / sizeof(*f) ==
			       sizeof(srv->jwt_strs) / sizeof(*srv->jwt_strs),
		       "one copy per option");
	for (size_t i = 0; i < sizeof(f) / sizeof(*f); i++)
		if (!copy_str(&srv->jwt_strs[i], f[i]))
			return false;
	return true;
}

/* New API keys and JWT verifier (each NULL: unchanged) for the server and
 * every worker; their references move to the server. Under reload_lock. */
static void swap_auth(struct fpg_server *srv, struct fpg_apikeys *keys,
		      struct fpg_jwt *jwt)
{
	for (unsigned i = 0; i < srv->nworkers; i++)
		fpg_worker_swap(&srv->workers[i], keys, jwt, NULL);
	if (keys) {
		fpg_apikeys_unref(srv->keys);
		srv->keys = keys;
	}
	if (jwt) {
		fpg_jwt_unref(srv->jwt);
		srv->jwt = jwt;
	}
}

/* A JWKS fetched (the fetching thread; at start, the server's). */
static void jwks_fetched(void *ctx, const char *text, size_t len)
{
	struct fpg_server *srv = ctx;
	struct fpg_error err;
	pthread_mutex_lock(&srv->reload_lock);
	struct fpg_jwt *jwt = fpg_jwt_load(&srv->jwt_cfg, text, len, false, &err);
	char *copy = jwt ? malloc(len + 1) : NULL;
	if (copy) {
		memcpy(copy, text, len);
		copy[len] = '\0';
		free(srv->jwks_text);
		srv->jwks_text = copy;
		srv->jwks_len = len;
		swap_auth(srv, NULL, jwt);
		fpg_log_info("jwks", NULL, "%u JWT keys", fpg_jwt_key_count(jwt));
	} else {
		fpg_jwt_unref(jwt);
		fpg_log_error("jwks", NULL, "%s; the keys fetched before stay",
			      jwt ? "out of memory" : err.message);
	}
	pthread_mutex_unlock(&srv->reload_lock);
}

static void jwks_stale(void *ctx)
{
	fpg_jwks_poke(ctx);
}

/* The JWT verifier: its keys from files, and from --jwks-url fetched once
 * now (a gateway that cannot check any token is not started). */
static bool start_jwt(struct fpg_server *srv, struct fpg_error *err)
{
	const struct fpg_options *o = &srv->opts;
	srv->jwt_cfg = (struct fpg_jwt_config){
		.secret_file = o->jwt_secret_file,
		.key_file = o->jwt_key_file,
		.jwks_file = o->jwks_file,
		.role_claim = o->jwt_role_claim,
		.audience = o->jwt_audience,
		.issuer = o->jwt_issuer,
		.roles = o->jwt_roles,
		.algorithms = o->jwt_algorithms,
		.leeway_s = o->jwt_leeway_s,
	};
	if (!o->jwks_url) {
		srv->jwt = fpg_jwt_load(&srv->jwt_cfg, NULL, 0, false, err);
		return srv->jwt != NULL;
	}
	/* The rules are checked before anything is fetched. */
	struct fpg_jwt *probe = fpg_jwt_load(&srv->jwt_cfg, NULL, 0, true, err);
	if (!probe)
		return false;
	fpg_jwt_unref(probe);
	srv->jwks = fpg_jwks_new(o->jwks_url, o->jwks_refresh_s, jwks_fetched,
				 srv, err);
	if (!srv->jwks || !fpg_jwks_fetch(srv->jwks, err))
		return false;
	if (!srv->jwt) {
		fpg_error_set(err, FPG_ERR_CONFIG, 0,
			      "jwks-url: the JWKS fetched holds no usable key "
			      "(see the log)");
		return false;
	}
	return true;
}

struct fpg_server *fpg_server_new(const struct fpg_options *opts,
				  struct fpg_error *err)
{
	struct fpg_server *srv = calloc(1, sizeof(*srv));
	if (!srv) {
		fpg_error_set(err, FPG_ERR_NOMEM, 0, "out of memory");
		return NULL;
	}
	srv->opts = *opts;
	pthread_mutex_init(&srv->reload_lock, NULL);
	srv->reload_ready = true;
	if (!srv->opts.listen_host)
		srv->opts.listen_host = "127.0.0.1";
	if (!srv->opts.log_level)
		srv->opts.log_level = "info";
	if (!srv->opts.log_format)
		srv->opts.log_format = "text";
	if (!srv->opts.access_log)
		srv->opts.access_log = "on";
	if (!copy_str(&srv->db, &srv->opts.db) ||
	    !copy_str(&srv->listen_host, &srv->opts.listen_host) ||
	    !copy_str(&srv->log_level, &srv->opts.log_level) ||
	    !copy_str(&srv->log_format, &srv->opts.log_format) ||
	    !copy_str(&srv->access_log, &srv->opts.access_log) ||
	    !copy_str(&srv->cors_origin, &srv->opts.cors_origin) ||
	    !copy_str(&srv->allowed_hosts, &srv->opts.allowed_hosts) ||
	    !copy_str(&srv->api_keys, &srv->opts.api_keys) ||
	    !copy_str(&srv->tls_cert, &srv->opts.tls_cert) ||
	    !copy_str(&srv->tls_key, &srv->opts.tls_key) ||
	    !copy_str(&srv->anon_role, &srv->opts.anon_role) ||
	    !copy_jwt_options(srv)) {
		fpg_error_set(err, FPG_ERR_NOMEM, 0, "out of memory");
		goto fail;
	}
	unsigned methods = 0;
	if (!check_options(&srv->opts, &methods, err) ||
	    !fpg_hosts_parse(&srv->hosts, srv->opts.allowed_hosts,
			     srv->opts.listen_host, err))
		goto fail;
	if (!srv->opts.tls_cert != !srv->opts.tls_key) {
		fpg_error_set(err, FPG_ERR_CONFIG, 0,
			      "tls-cert and tls-key go together");
		goto fail;
	}
	if (srv->opts.tls_cert &&
	    !(srv->tls = fpg_tls_load(srv->opts.tls_cert, srv->opts.tls_key,
				      err)))
		goto fail;
	if (srv->tls)
		fpg_log_info("server", NULL, "TLS certificate %s",
			     fpg_tls_describe(srv->tls));
	unsigned n = srv->opts.threads;
	if (n == 0) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);
		n = cpus > 0 ? (unsigned)cpus : 1;
	}
	/* Workers divide server-wide budgets by it (max-buffered-total). */
	srv->opts.threads = n;
	srv->canceller = fpg_canceller_new(err);
	if (!srv->canceller)
		goto fail;
	srv->tx_reg = fpg_tx_registry_new(n, srv->opts.max_transactions, err);
	if (!srv->tx_reg)
		goto fail;
	srv->workers = calloc(n, sizeof(*srv->workers));
	if (!srv->workers) {
		fpg_error_set(err, FPG_ERR_NOMEM, 0, "out of memory");
		goto fail;
	}
	if (!check_exposure(&srv->opts, methods != 0, err) ||
	    !port_is_free(srv->opts.listen_host, srv->opts.listen_port, err))
		goto fail;
	/* The first worker binds (port 0 becomes a real one); the others
	 * join it on the same port through SO_REUSEPORT. */
	srv->all_stats = calloc(n, sizeof(*srv->all_stats));
	srv->all_requests = calloc(n, sizeof(*srv->all_requests));
	if (!srv->all_stats || !srv->all_requests) {
		fpg_error_set(err, FPG_ERR_NOMEM, 0, "out of memory");
		goto fail;
	}
	for (unsigned i = 0; i < n; i++) {
		srv->all_stats[i] = &srv->workers[i].stats;
		srv->all_requests[i] = &srv->workers[i].reqs;
	}
	if (srv->opts.api_keys) {
		srv->keys = fpg_apikeys_load(srv->opts.api_keys, err);
		if (!srv->keys)
			goto fail;
		fpg_log_info("server", NULL, "%u API keys", fpg_apikeys_count(srv->keys));
	}
	if (srv->opts.queries &&
	    !(srv->queries = fpg_queries_load(srv->opts.queries, err)))
		goto fail;
	if (srv->opts.anon_role && !methods) {
		fpg_error_set(err, FPG_ERR_CONFIG, 0,
			      "anon-role needs auth (without it every client "
			      "is the --db login)");
		goto fail;
	}
	if (srv->opts.roles && !methods) {
		fpg_error_set(err, FPG_ERR_CONFIG, 0,
			      "roles needs auth: a role is a client's login");
		goto fail;
	}
	if (srv->opts.roles &&
	    !(srv->roles = fpg_roles_load(srv->opts.roles, err)))
		goto fail;
	if ((methods & FPG_AUTH_JWT) && !start_jwt(srv, err))
		goto fail;
	if (srv->opts.claims_key_file &&
	    !(srv->claims_key = fpg_jwt_read_secret(srv->opts.claims_key_file,
						    "claims-key-file",
						    &srv->claims_key_len, err)))
		goto fail;
	fpg_startup_target(srv->opts.db, srv->db_name, sizeof(srv->db_name),
			   srv->db_user, sizeof(srv->db_user));
	struct fpg_services shared = {
		.queries = srv->queries,
		.roles = srv->roles,
		.auth_password = methods & FPG_AUTH_PASSWORD,
		.auth_api_key = methods & FPG_AUTH_API_KEY,
		.auth_jwt = methods & FPG_AUTH_JWT,
		.jwt = srv->jwt,
		.jwks_stale = srv->jwks ? jwks_stale : NULL,
		.jwks_ctx = srv->jwks,
		.claims_key = srv->claims_key,
		.claims_key_len = srv->claims_key_len,
		.anon_role = srv->anon_role,
		.keys = srv->keys,
		.tls = srv->tls,
		.hosts = &srv->hosts,
		.db_name = srv->db_name,
		.db_user = srv->db_user,
		.access_log = strcmp(srv->opts.access_log, "on") == 0,
		.tx_reg = srv->tx_reg,
		.nworkers = n,
		.all_stats = srv->all_stats,
		.all_requests = srv->all_requests,
	};
	unsigned port = srv->opts.listen_port;
	for (unsigned i = 0; i < n; i++) {
		struct fpg_worker *w = &srv->workers[i];
		srv->nworkers = i + 1;
		if (!fpg_worker_init(w, &srv->opts, srv->canceller, &shared, i,
				     &port, err))
			goto fail;
	}
	srv->port = port;
	return srv;
fail:
	fpg_server_free(srv);
	return NULL;
}

bool fpg_server_start(struct fpg_server *srv, struct fpg_error *err)
{
	if (srv->started) {
		fpg_error_set(err, FPG_ERR_CONFIG, 0, "already started");
		return false;
	}
	/* A client that goes away must not kill an embedding process. */
	signal(SIGPIPE, SIG_IGN);
	srv->started = true;
	for (unsigned i = 0; i < srv->nworkers; i++) {
		if (!fpg_worker_start(&srv->workers[i], err)) {
			fpg_server_stop(srv, 0);
			return false;
		}
	}
	if (srv->jwks && !fpg_jwks_start(srv->jwks, err)) {
		fpg_server_stop(srv, 0);
		return false;
	}
	fpg_log_info("server", NULL, "listening on %s:%u with %u workers",
		     srv->opts.listen_host, srv->port, srv->nworkers);
	return true;
}

unsigned fpg_server_port(const struct fpg_server *srv)
{
	return srv->port;
}

/* What the drain waits for; false when nothing is left. */
static bool log_drain(struct fpg_server *srv, uint64_t left_ms)
{
	long long requests = 0, copies = 0;
	for (unsigned i = 0; i < srv->nworkers; i++) {
		requests += FPG_STAT_GET(srv->workers[i].stats.in_flight);
		copies += FPG_STAT_GET(srv->workers[i].stats.copies);
	}
	unsigned tx = fpg_tx_open_count(srv->tx_reg);
	if (requests <= 0 && !tx)
		return false;
	fpg_log_info("server", NULL,
		     "draining: %lld requests (%lld of them COPY), %u "
		     "transactions open (rolled back at the end); %llu.%llu s "
		     "left",
		     requests, copies, tx, (unsigned long long)left_ms / 1000,
		     (unsigned long long)left_ms % 1000 / 100);
	return true;
}

/*
 * Waits for the workers to end, telling every second what they are
 * still waiting for (their requests end, or the grace does).
 */
static void wait_workers(struct fpg_server *srv, unsigned grace_ms)
{
	uint64_t start = fpg_now_ms(), next_log = start + 200;
	for (;;) {
		bool all = true;
		for (unsigned i = 0; i < srv->nworkers && all; i++)
			all = fpg_worker_finished(&srv->workers[i]);
		if (all)
			return;
		uint64_t now = fpg_now_ms();
		if (now >= next_log) {
			uint64_t end = start + grace_ms;
			(void)log_drain(srv, end > now && !atomic_load(&srv->hurry)
						     ? end - now
						     : 0);
			next_log = now + 1000;
		}
		struct timespec ts = {0, 20 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

void fpg_server_stop_now(struct fpg_server *srv)
{
	atomic_store(&srv->hurry, true);
	if (!srv->started)
		return;
	for (unsigned i = 0; i < srv->nworkers; i++)
		fpg_worker_request_stop(&srv->workers[i], 0);
}

void fpg_server_stop(struct fpg_server *srv, unsigned grace_ms)
{
	if (!srv->started || srv->stopped)
		return;
	srv->stopped = true;
	if (atomic_load(&srv->hurry))
		grace_ms = 0;
	for (unsigned i = 0; i < srv->nworkers; i++)
		fpg_worker_request_stop(&srv->workers[i], grace_ms);
	wait_workers(srv, grace_ms);
	for (unsigned i = 0; i < srv->nworkers; i++)
		fpg_worker_join(&srv->workers[i]);
	/* No worker pokes it now; a fetch it finishes posts to their
	 * loops, which are still there. */
	fpg_jwks_free(srv->jwks);
	srv->jwks = NULL;
	fpg_log_info("server", NULL, "stopped");
}

/* The API key file again; the old keys stay when it does not load. */
static bool reload_keys(struct fpg_server *srv, struct fpg_error *err)
{
	if (!srv->opts.api_keys)
		return true;
	struct fpg_apikeys *keys = fpg_apikeys_load(srv->opts.api_keys, err);
	if (!keys)
		return false;
	swap_auth(srv, keys, NULL);
	fpg_log_info("server", NULL, "reloaded: %u API keys",
		     fpg_apikeys_count(keys));
	return true;
}

/* The JWT key files again (with the JWKS fetched last); the old keys stay
 * when they do not load. */
static bool reload_jwt(struct fpg_server *srv, struct fpg_error *err)
{
	if (!srv->jwt)
		return true;
	struct fpg_jwt *jwt = fpg_jwt_load(&srv->jwt_cfg, srv->jwks_text,
					   srv->jwks_len, srv->jwks != NULL,
					   err);
	if (!jwt)
		return false;
	swap_auth(srv, NULL, jwt);
	fpg_log_info("server", NULL, "reloaded: %u JWT keys",
		     fpg_jwt_key_count(jwt));
	return true;
}

/*
 * The TLS pair again. A pair that does not load (or whose key does not
 * fit) changes nothing, so the server is never left without one; a
 * loaded one serves the workers' next handshakes, while the connections
 * open now keep the pair they began with.
 */
static bool reload_tls(struct fpg_server *srv, struct fpg_error *err)
{
	if (!srv->tls)
		return true;
	struct fpg_tls *tls =
		fpg_tls_load(srv->opts.tls_cert, srv->opts.tls_key, err);
	if (!tls)
		return false;
	for (unsigned i = 0; i < srv->nworkers; i++)
		fpg_worker_swap(&srv->workers[i], NULL, NULL, tls);
	fpg_tls_unref(srv->tls);
	srv->tls = tls;
	fpg_log_info("server", NULL, "reloaded: TLS certificate %s",
		     fpg_tls_describe(tls));
	return true;
}

/*
 * Each part stands alone: a key file with a typo does not hold back a
 * renewed certificate, nor the reverse. What is refused is logged here,
 * where the old one is kept; err gets the first refusal.
 */
bool fpg_server_reload(struct fpg_server *srv, struct fpg_error *err)
{
	static const char *const stays[] = {"the API keys", "the JWT keys",
					     "the TLS certificate"};
	struct fpg_error errs[3] = {0};
	pthread_mutex_lock(&srv->reload_lock);
	bool ok[3] = {reload_keys(srv, &errs[0]), reload_jwt(srv, &errs[1]),
		      reload_tls(srv, &errs[2])};
	pthread_mutex_unlock(&srv->reload_lock);
	bool all = true;
	for (int i = 0; i < 3; i++) {
		if (ok[i])
			continue;
		fpg_log_error("server", NULL, "reload: %s (%s stay as they were)",
			      errs[i].message, stays[i]);
		if (err && all)
			*err = errs[i];
		all = false;
	}
	return all;
}

void fpg_server_free(struct fpg_server *srv)
{
	if (!srv)
		return;
	fpg_server_stop(srv, 0);
	fpg_jwks_free(srv->jwks); /* never started */
	/* Before the workers: a cancel still running posts to them. */
	fpg_canceller_free(srv->canceller);
	for (unsigned i = 0; i < srv->nworkers; i++)
		fpg_worker_deinit(&srv->workers[i]);
	free(srv->workers);
	free(srv->all_stats);
	free(srv->all_requests);
	fpg_tx_registry_free(srv->tx_reg);
	free(srv->db);
	free(srv->listen_host);
	free(srv->log_level);
	free(srv->log_format);
	free(srv->access_log);
	free(srv->cors_origin);
	free(srv->allowed_hosts);
	free(srv->api_keys);
	free(srv->anon_role);
	fpg_apikeys_unref(srv->keys);
	fpg_jwt_unref(srv->jwt);
	free(srv->jwks_text);
	if (srv->claims_key)
		explicit_bzero(srv->claims_key, srv->claims_key_len);
	free(srv->claims_key);
	for (size_t i = 0; i < sizeof(srv->jwt_strs) / sizeof(*srv->jwt_strs); i++)
		free(srv->jwt_strs[i]);
	fpg_queries_free(srv->queries);
	fpg_roles_free(srv->roles);
	if (srv->reload_ready)
		pthread_mutex_destroy(&srv->reload_lock);
	fpg_tls_unref(srv->tls);
	free(srv->tls_cert);
	free(srv->tls_key);
	fpg_hosts_deinit(&srv->hosts);
	free(srv);
}
