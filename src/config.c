#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum opt_type {
	OPT_STR,
	OPT_UINT,
	OPT_SIZE,
	OPT_U64,
	OPT_LISTEN, /* HOST:PORT into listen_host + listen_port */
	OPT_FLAG,   /* 0 or 1 (an unsigned); alone on the command line: 1 */
};

struct opt_def {
	const char *name;     /* --name and the config-file key */
	const char *env;      /* primary environment variable */
	const char *env_alt;  /* also read when env is unset, or NULL */
	enum opt_type type;
	size_t offset;	      /* into struct fpg_options */
	const char *def;      /* default, as text; NULL = unset */
	unsigned long long min, max;
	const char *help;
};

#define OFF(f) offsetof(struct fpg_options, f)

/* The one place where options and their defaults are defined. */
static const struct opt_def opt_table[] = {
	{"listen", "FASTERPG_LISTEN", NULL, OPT_LISTEN, 0, "127.0.0.1:8080",
	 0, 65535, "HOST:PORT to listen on (port 0 picks a free one)"},
	{"db", "DATABASE_URL", "FASTERPG_DB", OPT_STR, OFF(db), NULL, 0, 0,
	 "PostgreSQL conninfo or URI"},
	{"threads", "FASTERPG_THREADS", NULL, OPT_UINT, OFF(threads), "0", 0,
	 256, "worker threads (0 = online CPUs)"},
	{"pool-min", "FASTERPG_POOL_MIN", NULL, OPT_UINT, OFF(pool_min), "1",
	 0, 1000, "PostgreSQL connections kept open per worker"},
	{"pool-max", "FASTERPG_POOL_MAX", NULL, OPT_UINT, OFF(pool_max), "4",
	 1, 1000, "PostgreSQL connections per worker at most"},
	{"pipeline-depth", "FASTERPG_PIPELINE_DEPTH", NULL, OPT_UINT,
	 OFF(pipeline_depth), "128", 1, 100000,
	 "requests in flight on one pipelined connection"},
	{"coalesce", "FASTERPG_COALESCE", NULL, OPT_UINT, OFF(coalesce), "32",
	 0, 1024,
	 "read-only statements arriving together that may share one "
	 "read-only transaction on a connection (0 = never)"},
	{"acquire-timeout-ms", "FASTERPG_ACQUIRE_TIMEOUT_MS", NULL, OPT_UINT,
	 OFF(acquire_timeout_ms), "5000", 1, 3600000,
	 "wait this long for a connection, then answer 503"},
	{"statement-timeout-ms", "FASTERPG_STATEMENT_TIMEOUT_MS", NULL,
	 OPT_UINT, OFF(statement_timeout_ms), "30000", 0, 86400000,
	 "maximum statement run time (0 = none); caps timeout_ms"},
	{"statement-cache", "FASTERPG_STATEMENT_CACHE", NULL, OPT_UINT,
	 OFF(statement_cache), "1", 0, 1,
	 "1: keep prepared statements per connection; 0: none outlives its "
	 "request (slower; also undoes PREPARE run inside functions)"},
	{"sql-precheck", "FASTERPG_SQL_PRECHECK", NULL, OPT_UINT,
	 OFF(sql_precheck), "1", 0, 1,
	 "1: refuse transaction control, SET, COPY, ... in /query with a "
	 "friendly error; 0: leave it to PostgreSQL"},
	{"max-body-bytes", "FASTERPG_MAX_BODY_BYTES", NULL, OPT_SIZE,
	 OFF(max_body_bytes), "1048576", 64, 1ULL << 32,
	 "request body limit (413 beyond)"},
	{"max-inflated-bytes", "FASTERPG_MAX_INFLATED_BYTES", NULL, OPT_SIZE,
	 OFF(max_inflated_bytes), "1g", 0, 1ULL << 50,
	 "a gzip/deflate COPY upload inflates to this at most (0 = no limit)"},
	{"max-inflate-ratio", "FASTERPG_MAX_INFLATE_RATIO", NULL, OPT_UINT,
	 OFF(max_inflate_ratio), "100", 0, 1000000,
	 "inflated:compressed past the first MiB at most (0 = no limit)"},
	{"max-result-bytes", "FASTERPG_MAX_RESULT_BYTES", NULL, OPT_SIZE,
	 OFF(max_result_bytes), "0", 0, 1ULL << 50,
	 "encoded bytes of one result at most (0 = no limit)"},
	{"max-result-rows", "FASTERPG_MAX_RESULT_ROWS", NULL, OPT_U64,
	 OFF(max_result_rows), "0", 0, 1ULL << 62,
	 "rows of one result at most (0 = no limit)"},
	{"max-buffered-bytes", "FASTERPG_MAX_BUFFERED_BYTES", NULL, OPT_SIZE,
	 OFF(max_buffered_bytes), "16777216", 65536, 1ULL << 40,
	 "bytes a plain JSON answer may hold for a slow client"},
	{"max-buffered-total", "FASTERPG_MAX_BUFFERED_TOTAL", NULL, OPT_SIZE,
	 OFF(max_buffered_total), "268435456", 1048576, 1ULL << 44,
	 "bytes all answers together may hold for slow clients"},
	{"max-connections", "FASTERPG_MAX_CONNECTIONS", NULL, OPT_UINT,
	 OFF(max_connections), "10000", 1, 1000000,
	 "HTTP connections per worker"},
	{"max-connections-per-ip", "FASTERPG_MAX_CONNECTIONS_PER_IP", NULL,
	 OPT_UINT, OFF(max_connections_per_ip), "0", 0, 1000000,
	 "HTTP connections one client address may hold per worker (0 = no "
	 "limit)"},
	{"max-transactions", "FASTERPG_MAX_TRANSACTIONS", NULL, OPT_UINT,
	 OFF(max_transactions), "1000", 1, 65535,
	 "open transaction sessions at most (server-wide)"},
	{"tx-idle-timeout-ms", "FASTERPG_TX_IDLE_TIMEOUT_MS", NULL, OPT_UINT,
	 OFF(tx_idle_timeout_ms), "30000", 100, 86400000,
	 "a session idle this long is rolled back (default)"},
	{"tx-max-idle-timeout-ms", "FASTERPG_TX_MAX_IDLE_TIMEOUT_MS", NULL,
	 OPT_UINT, OFF(tx_max_idle_timeout_ms), "600000", 100, 86400000,
	 "the largest idle_timeout_ms a client may ask for"},
	{"tx-max-lifetime-ms", "FASTERPG_TX_MAX_LIFETIME_MS", NULL, OPT_UINT,
	 OFF(tx_max_lifetime_ms), "3600000", 1000, 604800000,
	 "a session open this long is rolled back"},
	{"http-idle-timeout-s", "FASTERPG_HTTP_IDLE_TIMEOUT_S", NULL, OPT_UINT,
	 OFF(http_idle_timeout_s), "60", 0, 86400,
	 "close idle keep-alive connections after this long (0 = never)"},
	{"http-connection-memory", "FASTERPG_HTTP_CONNECTION_MEMORY", NULL,
	 OPT_SIZE, OFF(http_connection_memory), "16384", 8192, 1048576,
	 "memory per HTTP connection (headers, upload pieces, chunks)"},
	{"cors-origin", "FASTERPG_CORS_ORIGIN", NULL, OPT_STR,
	 OFF(cors_origin), NULL, 0, 0,
	 "allow browsers from this origin (\"*\" for any); off if unset"},
	{"allowed-hosts", "FASTERPG_ALLOWED_HOSTS", NULL, OPT_STR,
	 OFF(allowed_hosts), NULL, 0, 0,
	 "Host names served (else 421), comma separated, * = any; "
	 "unset: localhost, loopback, the listen host"},
	{"header-timeout-ms", "FASTERPG_HEADER_TIMEOUT_MS", NULL, OPT_UINT,
	 OFF(header_timeout_ms), "10000", 100, 3600000,
	 "close a connection whose request headers take longer than this"},
	{"min-upload-rate", "FASTERPG_MIN_UPLOAD_RATE", NULL, OPT_SIZE,
	 OFF(min_upload_rate), "1024", 0, 1ULL << 30,
	 "bytes/s a request body must arrive at, per 5 s (0 = no minimum)"},
	{"auth", "FASTERPG_AUTH", NULL, OPT_STR, OFF(auth), NULL, 0, 0,
	 "password (a PostgreSQL user and password, HTTP Basic, checked by "
	 "PostgreSQL), api-key (Bearer keys of --api-keys), jwt (Bearer "
	 "JSON Web Tokens), comma separated; unset: none"},
	{"api-keys", "FASTERPG_API_KEYS", NULL, OPT_STR, OFF(api_keys), NULL,
	 0, 0, "file of SHA-256(key) role [name] lines, read again on SIGHUP"},
	{"jwt-secret-file", "FASTERPG_JWT_SECRET_FILE", NULL, OPT_STR,
	 OFF(jwt_secret_file), NULL, 0, 0,
	 "HS256/384/512 secret: the file's bytes (at least 32)"},
	{"jwt-key-file", "FASTERPG_JWT_KEY_FILE", NULL, OPT_STR,
	 OFF(jwt_key_file), NULL, 0, 0,
	 "RS/PS/ES public key: PEM key or certificate, JWK or JWKS"},
	{"jwks-file", "FASTERPG_JWKS_FILE", NULL, OPT_STR, OFF(jwks_file),
	 NULL, 0, 0, "JWKS file (keys matched by kid), read again on SIGHUP"},
	{"jwks-url", "FASTERPG_JWKS_URL", NULL, OPT_STR, OFF(jwks_url), NULL, 0,
	 0, "JWKS fetched over https (http: loopback only), refreshed (and "
	 "for an unknown kid)"},
	{"jwks-refresh-s", "FASTERPG_JWKS_REFRESH_S", NULL, OPT_UINT,
	 OFF(jwks_refresh_s), "300", 10, 86400, "fetch --jwks-url this often"},
	{"jwt-role-claim", "FASTERPG_JWT_ROLE_CLAIM", NULL, OPT_STR,
	 OFF(jwt_role_claim), "role", 0, 0,
	 "path of the role claim: role, app.role, roles[0], \"a.b\".c"},
	{"jwt-audience", "FASTERPG_JWT_AUDIENCE", NULL, OPT_STR,
	 OFF(jwt_audience), NULL, 0, 0, "aud a token must name; unset: any"},
	{"jwt-issuer", "FASTERPG_JWT_ISSUER", NULL, OPT_STR, OFF(jwt_issuer),
	 NULL, 0, 0, "iss a token must have; unset: any"},
	{"jwt-roles", "FASTERPG_JWT_ROLES", NULL, OPT_STR, OFF(jwt_roles), NULL,
	 0, 0, "the roles a token may name, comma separated (required)"},
	{"jwt-algorithms", "FASTERPG_JWT_ALGORITHMS", NULL, OPT_STR,
	 OFF(jwt_algorithms), NULL, 0, 0,
	 "accepted algorithms, comma separated; unset: all a key fits"},
	{"jwt-leeway-s", "FASTERPG_JWT_LEEWAY_S", NULL, OPT_UINT,
	 OFF(jwt_leeway_s), "30", 0, 3600, "clock skew allowed for exp, nbf"},
	{"listen-heartbeat-ms", "FASTERPG_LISTEN_HEARTBEAT_MS", NULL, OPT_UINT,
	 OFF(listen_heartbeat_ms), "15000", 0, 3600000,
	 "GET /listen: send a comment this often, for proxies (0 = never)"},
	{"listen-max-channels", "FASTERPG_LISTEN_MAX_CHANNELS", NULL, OPT_UINT,
	 OFF(listen_max_channels), "16", 1, 1000,
	 "GET /listen: channels one subscriber may name"},
	{"listen-max-subscribers", "FASTERPG_LISTEN_MAX_SUBSCRIBERS", NULL,
	 OPT_UINT, OFF(listen_max_subscribers), "10000", 1, 1000000,
	 "GET /listen: subscribers per worker (503 beyond)"},
	{"listen-queue-bytes", "FASTERPG_LISTEN_QUEUE_BYTES", NULL, OPT_SIZE,
	 OFF(listen_queue_bytes), "1048576", 4096, 1ULL << 30,
	 "GET /listen: events held for a slow subscriber; beyond, a gap"},
	{"claims-key-file", "FASTERPG_CLAIMS_KEY_FILE", NULL, OPT_STR,
	 OFF(claims_key_file), NULL, 0, 0,
	 "key (32+ bytes) signing the claims SQL sees, checked by "
	 "docs/verified-claims.sql"},
	{"queries", "FASTERPG_QUERIES", NULL, OPT_STR, OFF(queries), NULL, 0,
	 0, "directory of named queries (NAME.sql) for POST /q/NAME (and GET "
	 "for those marked -- read-only)"},
	{"roles", "FASTERPG_ROLES", NULL, OPT_STR, OFF(roles), NULL, 0, 0,
	 "per-role policy file: ROLE [read-only] [raw-sql=no] [rate=N] "
	 "[statement-timeout-ms=N] [transactions=N] [streams=N] "
	 "[listen=CHANNEL,PREFIX*]"},
	{"anon-role", "FASTERPG_ANON_ROLE", NULL, OPT_STR, OFF(anon_role), NULL,
	 0, 0, "with --auth: the role of requests without Authorization "
	 "(logged in as with API keys); unset: 401"},
	{"max-logins", "FASTERPG_MAX_LOGINS", NULL, OPT_UINT, OFF(max_logins),
	 "100", 1, 100000, "logins with connections open, per worker"},
	{"login-idle-timeout-ms", "FASTERPG_LOGIN_IDLE_TIMEOUT_MS", NULL,
	 OPT_UINT, OFF(login_idle_timeout_ms), "300000", 1000, 86400000,
	 "close a login's connections after it is unused this long"},
	{"auth-recheck-ms", "FASTERPG_AUTH_RECHECK_MS", NULL, OPT_UINT,
	 OFF(auth_recheck_ms), "60000", 0, 86400000,
	 "trust a password that logged in this long, then log in again"},
	{"read-only", "FASTERPG_READ_ONLY", NULL, OPT_FLAG, OFF(read_only),
	 "0", 0, 1,
	 "run every statement in a read-only transaction (writes: 403)"},
	{"tls-cert", "FASTERPG_TLS_CERT", NULL, OPT_STR, OFF(tls_cert), NULL,
	 0, 0,
	 "PEM certificate (chain) file: serve HTTPS (with --tls-key); read "
	 "again on SIGHUP"},
	{"tls-key", "FASTERPG_TLS_KEY", NULL, OPT_STR, OFF(tls_key), NULL, 0,
	 0, "PEM private key file of --tls-cert; read again on SIGHUP"},
	{"insecure-no-auth", "FASTERPG_INSECURE_NO_AUTH", NULL, OPT_FLAG,
	 OFF(insecure_no_auth), "0", 0, 1,
	 "listen beyond loopback without authenticating clients: every "
	 "client is the --db login"},
	{"log-level", "FASTERPG_LOG_LEVEL", NULL, OPT_STR, OFF(log_level),
	 "info", 0, 0, "error, warn, info or debug"},
	{"log-format", "FASTERPG_LOG_FORMAT", NULL, OPT_STR, OFF(log_format),
	 "text", 0, 0, "text or json"},
	{"access-log", "FASTERPG_ACCESS_LOG", NULL, OPT_STR, OFF(access_log),
	 "on", 0, 0,
	 "on: one info line per request at its end; off: none (5xx are "
	 "logged at warn either way)"},
};

#define N_OPTS (sizeof(opt_table) / sizeof(opt_table[0]))
_Static_assert(N_OPTS <= FPG_CONFIG_MAX_OPTIONS, "grow owned[]");

static bool parse_number(const char *s, unsigned long long *out)
{
	char *end;
	errno = 0;
	/* strtoull() would take leading blanks and a sign (and wrap "-1"). */
	if (*s < '0' || *s > '9')
		return false;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s)
		return false;
	/* Sizes may carry a binary suffix. */
	unsigned long long mul = 1;
	if (*end == 'k' || *end == 'K')
		mul = 1024ULL, end++;
	else if (*end == 'm' || *end == 'M')
		mul = 1024ULL * 1024, end++;
	else if (*end == 'g' || *end == 'G')
		mul = 1024ULL * 1024 * 1024, end++;
	if (*end != '\0' || v > ULLONG_MAX / mul)
		return false;
	*out = v * mul;
	return true;
}

static bool set_listen(struct fpg_config *cfg, const char *val,
		       const char **why)
{
	const char *colon = strrchr(val, ':');
	unsigned long long port;
	if (!colon || !parse_number(colon + 1, &port) || port > 65535) {
		*why = "expected HOST:PORT";
		return false;
	}
	size_t hl = (size_t)(colon - val);
	/* [::1]:8080 */
	if (hl >= 2 && val[0] == '[' && val[hl - 1] == ']') {
		val++;
		hl -= 2;
	}
	char *host = strndup(val, hl);
	if (!host) {
		*why = "out of memory";
		return false;
	}
	free(cfg->listen_host);
	cfg->listen_host = host;
	cfg->opts.listen_host = host;
	cfg->opts.listen_port = (unsigned)port;
	return true;
}

/* Applies one textual value; on failure *why says what is wrong. */
static bool apply(struct fpg_config *cfg, size_t idx, const char *val,
		  const char **why)
{
	const struct opt_def *d = &opt_table[idx];
	char *base = (char *)&cfg->opts;
	unsigned long long n;
	switch (d->type) {
	case OPT_LISTEN:
		return set_listen(cfg, val, why);
	case OPT_STR: {
		char *copy = strdup(val);
		if (!copy) {
			*why = "out of memory";
			return false;
		}
		free(cfg->owned[idx]);
		cfg->owned[idx] = copy;
		*(const char **)(base + d->offset) = copy;
		return true;
	}
	case OPT_FLAG:
	case OPT_UINT:
	case OPT_SIZE:
	case OPT_U64:
		if (!parse_number(val, &n)) {
			*why = "not a non-negative number";
			return false;
		}
		if (n < d->min || n > d->max) {
			*why = "out of range";
			return false;
		}
		if (d->type == OPT_UINT || d->type == OPT_FLAG)
			*(unsigned *)(base + d->offset) = (unsigned)n;
		else if (d->type == OPT_SIZE)
			*(size_t *)(base + d->offset) = (size_t)n;
		else
			*(uint64_t *)(base + d->offset) = (uint64_t)n;
		return true;
	}
	return false;
}

static int find_opt(const char *name, size_t len)
{
	for (size_t i = 0; i < N_OPTS; i++) {
		const char *o = opt_table[i].name;
		if (strlen(o) != len)
			continue;
		/* Config files may spell dashes as underscores. */
		size_t k = 0;
		while (k < len && (o[k] == name[k] ||
				   (o[k] == '-' && name[k] == '_')))
			k++;
		if (k == len)
			return (int)i;
	}
	return -1;
}

static void apply_defaults(struct fpg_config *cfg)
{
	for (size_t i = 0; i < N_OPTS; i++) {
		const char *why;
		if (opt_table[i].def && !apply(cfg, i, opt_table[i].def, &why))
			abort(); /* the table itself is wrong */
	}
}

void fpg_options_init(struct fpg_options *opts)
{
	struct fpg_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	apply_defaults(&cfg);
	*opts = cfg.opts;
	/* Hand out literals, not the temporary config's copies. */
	for (size_t i = 0; i < N_OPTS; i++) {
		char *base = (char *)opts;
		if (opt_table[i].type == OPT_STR)
			*(const char **)(base + opt_table[i].offset) =
				opt_table[i].def;
	}
	opts->listen_host = "127.0.0.1";
	fpg_config_deinit(&cfg);
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	char *e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' ||
			 e[-1] == '\r'))
		*--e = '\0';
	return s;
}

static bool load_file(struct fpg_config *cfg, const char *path, FILE *errout)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(errout, "%s: %s\n", path, strerror(errno));
		return false;
	}
	bool ok = true;
	char line[4096];
	for (unsigned ln = 1; fgets(line, sizeof(line), f); ln++) {
		char *s = trim(line);
		if (*s == '\0' || *s == '#')
			continue;
		char *eq = strchr(s, '=');
		if (!eq) {
			fprintf(errout, "%s:%u: expected key = value\n", path, ln);
			ok = false;
			continue;
		}
		*eq = '\0';
		char *key = trim(s), *val = trim(eq + 1);
		int idx = find_opt(key, strlen(key));
		const char *why = "unknown key";
		if (idx < 0 || !apply(cfg, (size_t)idx, val, &why)) {
			fprintf(errout, "%s:%u: %s: %s\n", path, ln, key, why);
			ok = false;
		}
	}
	fclose(f);
	return ok;
}

static bool load_env(struct fpg_config *cfg, FILE *errout)
{
	bool ok = true;
	for (size_t i = 0; i < N_OPTS; i++) {
		const char *name = opt_table[i].env;
		const char *v = getenv(name);
		if ((!v || !*v) && opt_table[i].env_alt) {
			name = opt_table[i].env_alt;
			v = getenv(name);
		}
		const char *why;
		if (v && *v && !apply(cfg, i, v, &why)) {
			fprintf(errout, "environment %s: %s\n", name, why);
			ok = false;
		}
	}
	return ok;
}

/* Finds --config FILE / --config=FILE in argv. */
static const char *config_path(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			return argv[i + 1];
		if (strncmp(argv[i], "--config=", 9) == 0)
			return argv[i] + 9;
	}
	return getenv("FASTERPG_CONFIG");
}

static bool load_args(struct fpg_config *cfg, int argc, char **argv,
		      FILE *errout, enum fpg_config_action *action)
{
	bool ok = true;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			*action = FPG_CONFIG_HELP;
			continue;
		}
		if (strcmp(a, "--version") == 0) {
			*action = FPG_CONFIG_VERSION;
			continue;
		}
		if (strcmp(a, "--check") == 0 || strncmp(a, "--check=", 8) == 0) {
			const char *url = a[7] == '=' ? a + 8
				       : i + 1 < argc ? argv[++i]
						      : NULL;
			free(cfg->check_url);
			if (!url || !(cfg->check_url = strdup(url))) {
				fprintf(errout, "option --check: needs a URL\n");
				ok = false;
			}
			*action = FPG_CONFIG_CHECK;
			continue;
		}
		if (strncmp(a, "--", 2) != 0) {
			fprintf(errout, "argument %s: unexpected\n", a);
			ok = false;
			continue;
		}
		const char *name = a + 2, *eq = strchr(name, '=');
		size_t len = eq ? (size_t)(eq - name) : strlen(name);
		const char *val = eq ? eq + 1 : NULL;
		if (len == 6 && strncmp(name, "config", 6) == 0) {
			if (!val)
				i++; /* handled by config_path */
			continue;
		}
		int idx = find_opt(name, len);
		if (idx < 0) {
			fprintf(errout, "option --%.*s: unknown\n", (int)len,
				name);
			ok = false;
			continue;
		}
		if (!val && opt_table[idx].type == OPT_FLAG)
			val = "1";
		if (!val) {
			if (i + 1 >= argc) {
				fprintf(errout, "option --%s: needs a value\n",
					opt_table[idx].name);
				ok = false;
				continue;
			}
			val = argv[++i];
		}
		const char *why;
		if (!apply(cfg, (size_t)idx, val, &why)) {
			fprintf(errout, "option --%s: %s\n", opt_table[idx].name,
				why);
			ok = false;
		}
	}
	return ok;
}

bool fpg_config_load(struct fpg_config *cfg, int argc, char **argv,
		     FILE *errout, enum fpg_config_action *action)
{
	memset(cfg, 0, sizeof(*cfg));
	*action = FPG_CONFIG_RUN;
	apply_defaults(cfg);
	bool ok = true;
	const char *path = config_path(argc, argv);
	if (path && !load_file(cfg, path, errout))
		ok = false;
	if (!load_env(cfg, errout))
		ok = false;
	if (!load_args(cfg, argc, argv, errout, action))
		ok = false;
	return ok;
}

void fpg_config_deinit(struct fpg_config *cfg)
{
	for (size_t i = 0; i < N_OPTS; i++) {
		free(cfg->owned[i]);
		cfg->owned[i] = NULL;
	}
	free(cfg->listen_host);
	cfg->listen_host = NULL;
	free(cfg->check_url);
	cfg->check_url = NULL;
}

void fpg_config_print_help(FILE *out)
{
	fprintf(out, "Usage: fasterpg [OPTIONS]\n\n"
		     "PostgreSQL over HTTP. Options (also settable in the "
		     "environment, or as\n`key = value` lines in the file "
		     "given by --config FILE / FASTERPG_CONFIG):\n\n");
	for (size_t i = 0; i < N_OPTS; i++) {
		const struct opt_def *d = &opt_table[i];
		fprintf(out, "  --%-22s %s\n", d->name, d->help);
		fprintf(out, "  %-24s   env %s%s%s; default %s\n", "", d->env,
			d->env_alt ? " or " : "",
			d->env_alt ? d->env_alt : "", d->def ? d->def : "(none)");
	}
	fprintf(out, "  --%-22s %s\n  --%-22s %s\n  --%-22s %s\n  --%-22s %s\n",
		"config FILE", "read options from FILE", "check URL",
		"GET URL (e.g. http://127.0.0.1:8080/readyz), exit 0 on a 2xx "
		"answer: a health check without curl",
		"help", "show this help", "version", "print the version");
}
