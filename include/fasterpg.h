/*
 * fasterpg — PostgreSQL over HTTP, embeddable.
 *
 * The embedding API: fill a struct fpg_options (start from
 * fpg_options_init()), create a server with fpg_server_new(), start it,
 * and stop/free it when done. The server runs its own worker threads; the
 * calling thread is never used for request processing.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define FPG_MUST_CHECK __attribute__((warn_unused_result))
#define FPG_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
/* What libfasterpg exports; everything else in it stays inside. */
#define FPG_API __attribute__((visibility("default")))
#else
#define FPG_MUST_CHECK
#define FPG_PRINTF(fmt, args)
#define FPG_API
#endif

/*
 * A log line for the host program (struct fpg_options.log): level 0
 * error, 1 warn, 2 info, 3 debug; line as fasterpg would write it to
 * stderr (text or JSON, see log_format), without the newline, borrowed for
 * the call. Called from any of the server's threads, one line at a time;
 * it must not call into the server.
 */
typedef void (*fpg_log_fn)(void *ctx, int level, const char *line);

enum fpg_errcode {
	FPG_ERR_NONE = 0,
	FPG_ERR_NOMEM,	   /* allocation failed */
	FPG_ERR_SYSTEM,	   /* a system call failed; message has strerror */
	FPG_ERR_CONFIG,	   /* invalid option or configuration */
	FPG_ERR_REQUEST,   /* the client's request is invalid */
	FPG_ERR_PG,	   /* PostgreSQL reported an error (sqlstate set) */
	FPG_ERR_UNAVAILABLE, /* PostgreSQL unreachable, pool exhausted */
	FPG_ERR_LIMIT,	   /* a configured limit was hit */
};

/*
 * Error details of a failed call. Fixed buffers, so filling one never
 * allocates. http_status is the status a client would see for it (0 when
 * not applicable).
 */
struct fpg_error {
	enum fpg_errcode code;
	int http_status;
	char sqlstate[6];
	const char *reason; /* static code for clients ("result_too_large"),
			       or NULL for the default of code */
	char message[256];
};

/*
 * Server options. Strings are borrowed: they must stay valid until
 * fpg_server_new() returns (the server copies what it keeps).
 */
struct fpg_options {
	const char *listen_host; /* address to bind, "127.0.0.1" */
	unsigned listen_port;	 /* 0 picks a free port (see fpg_server_port) */
	const char *db;		 /* libpq conninfo or URI (a word without
				    "=" is a database name); one that does
				    not parse fails fpg_server_new() */
	unsigned threads;	 /* workers; 0 = online CPUs */
	unsigned pool_min;	 /* connections per worker kept open */
	unsigned pool_max;	 /* connections per worker at most */
	unsigned pipeline_depth; /* requests in flight per connection */
	unsigned coalesce;	 /* reads of one loop turn that may share a
				    transaction (one Sync) on a connection,
				    at most; 0 or 1: never */
	unsigned acquire_timeout_ms; /* wait for a connection, then 503 */
	unsigned statement_timeout_ms; /* server maximum for a statement */
	unsigned statement_cache; /* 1: prepared statements are kept per
				     connection (fast); 0: none outlives
				     its request (statements are parsed
				     with each run and the reset ends with
				     DEALLOCATE ALL), which also undoes
				     PREPARE run by functions */
	unsigned sql_precheck;	 /* 1: refuse BEGIN, SET, COPY, ... in
				    /query with a friendly error before they
				    reach PostgreSQL; 0: PostgreSQL sees
				    them (the guarantees hold either way) */
	size_t max_body_bytes;	 /* request body limit (413 beyond) */
	size_t max_inflated_bytes; /* a gzip/deflate COPY upload inflated, at
				      most (413 beyond); 0 = no limit */
	unsigned max_inflate_ratio; /* inflated:compressed of such an upload
				       past its first MiB (413 beyond); 0 =
				       no limit */
	size_t max_result_bytes; /* encoded bytes of one result; 0 = no limit */
	uint64_t max_result_rows; /* rows of one result; 0 = no limit */
	size_t max_buffered_bytes; /* a shared-lane answer held for a slow
				      client at most; past it rows are dropped */
	size_t max_buffered_total; /* answers waiting for their clients, all
				      requests together (split between the
				      workers); past it shared-lane answers
				      are dropped as above */
	unsigned max_connections; /* HTTP connections per worker */
	unsigned max_transactions; /* open transaction sessions, server-wide */
	unsigned tx_idle_timeout_ms; /* default idle timeout of a session */
	unsigned tx_max_idle_timeout_ms; /* cap of a requested idle timeout */
	unsigned tx_max_lifetime_ms; /* a session is rolled back after this */
	unsigned http_idle_timeout_s; /* keep-alive idle reaping */
	size_t http_connection_memory; /* per HTTP connection: headers, upload
					  pieces, response chunks */
	const char *cors_origin; /* Access-Control-Allow-Origin for browsers
				    ("*" or an origin); NULL = no CORS */
	const char *allowed_hosts; /* Host header values served, comma
				      separated, "*" = any; NULL = localhost,
				      loopback and the listen address (421
				      for others) */
	unsigned header_timeout_ms; /* a request line and headers must have
				       arrived this long after their first
				       byte, or the connection is closed;
				       0 = no deadline */
	size_t min_upload_rate;	 /* bytes/s a request body must arrive at,
				    over each 5 s the server waits for it;
				    0 = no minimum */
	const char *auth;	 /* how clients are authenticated, a comma
				    list: "password" (a PostgreSQL user and
				    password, HTTP Basic, checked by
				    PostgreSQL), "api-key" (a key of
				    api_keys, Bearer), "jwt" (a JSON Web
				    Token, Bearer); NULL or "": none
				    (every client is the --db login) */
	const char *api_keys;	 /* the API key file (see docs/security.md) */
	const char *jwt_secret_file; /* HS256/384/512 secret (the file's bytes) */
	const char *jwt_key_file; /* RS/PS/ES public key: PEM, JWK or JWKS */
	const char *jwks_file;	 /* a JWKS file (read again on SIGHUP) */
	const char *jwks_url;	 /* a JWKS fetched over HTTP(S), refreshed */
	unsigned jwks_refresh_s; /* ... this often (and for an unknown kid) */
	const char *jwt_role_claim; /* path of the role claim, "role" */
	const char *jwt_audience; /* aud a token must name; NULL: any */
	const char *jwt_issuer;	 /* iss a token must have; NULL: any */
	const char *jwt_roles;	 /* the roles a token may name, comma list */
	const char *jwt_algorithms; /* accepted; NULL: every one a key fits */
	unsigned jwt_leeway_s;	 /* clock skew allowed for exp and nbf */
	const char *claims_key_file; /* signs the claims SQL sees, for
					docs/verified-claims.sql */
	unsigned listen_heartbeat_ms; /* GET /listen: a ": ping" this often
					 (0 = none) */
	unsigned listen_max_channels; /* channels per subscriber */
	unsigned listen_max_subscribers; /* subscribers per worker */
	size_t listen_queue_bytes; /* events waiting for one slow subscriber;
				      beyond: dropped, and a gap event */
	const char *queries;	 /* a directory of named queries, NAME.sql */
	const char *roles;	 /* per-role policy file (see docs/security.md) */
	const char *anon_role;	 /* with auth: the role of requests that send
				    no Authorization (NULL: 401) */
	unsigned max_logins;	 /* per worker, logins with a pool open */
	unsigned login_idle_timeout_ms; /* a login unused this long closes */
	unsigned auth_recheck_ms; /* a password that logged in is trusted
				     this long, then checked again */
	unsigned max_connections_per_ip; /* HTTP connections one client
					    address may hold per worker
					    (0 = no limit) */
	unsigned read_only;	 /* 1: every statement runs in a read-only
				    transaction (a write: 403, 25006) */
	const char *tls_cert;	 /* PEM certificate (chain) file: serve
				    HTTPS; NULL: plain HTTP */
	const char *tls_key;	 /* its PEM private key file */
	unsigned insecure_no_auth; /* 1: listen beyond loopback although no
				      client is authenticated (every
				      client is the --db login) */
	const char *log_level;	 /* "error", "warn", "info", "debug" */
	const char *log_format;	 /* "text" or "json" */
	const char *access_log;	 /* "on": a line per request at its end,
				    info level (see docs/operations.md);
				    "off": none; NULL: on */
	fpg_log_fn log;		 /* receives the log lines; NULL: stderr.
				    Process-wide, like log_level: the last
				    server created decides */
	void *log_ctx;		 /* for log */
};

struct fpg_server;

/* Fills *opts with the defaults (the values `fasterpg --help` shows). */
FPG_API void fpg_options_init(struct fpg_options *opts);

/*
 * Creates a server: validates options, binds the listening port (so that
 * fpg_server_port() is known) and prepares the workers. Nothing runs until
 * fpg_server_start(). Returns NULL and fills *err on failure.
 * Caller owns the result; release it with fpg_server_free().
 */
FPG_API struct fpg_server *fpg_server_new(const struct fpg_options *opts,
					  struct fpg_error *err) FPG_MUST_CHECK;

/* Starts the worker threads. Returns false and fills *err on failure. */
FPG_API bool fpg_server_start(struct fpg_server *srv,
			      struct fpg_error *err) FPG_MUST_CHECK;

/* The TCP port the server listens on (useful with listen_port = 0). */
FPG_API unsigned fpg_server_port(const struct fpg_server *srv);

/*
 * Reads again what may change while the server runs: the API key file,
 * the JWT key files, and the TLS certificate and key files. Every worker switches to what
 * loaded at its next loop turn (TLS: for the connections it accepts from
 * then on; open ones keep their certificate). A part that does not load
 * (a TLS key that does not fit its certificate among them) is logged as
 * an error and keeps its old value; then the result is false and err
 * says why (the first such part). Any thread.
 */
FPG_API bool fpg_server_reload(struct fpg_server *srv,
			       struct fpg_error *err) FPG_MUST_CHECK;

/*
 * Stops the server: stops accepting, lets requests in flight finish for up
 * to grace_ms, then ends the rest, and joins the workers. While it waits
 * it logs, about every second at info level, what it waits for (requests,
 * COPYs among them, open transactions). Safe to call from any thread
 * except a worker's; a second call does nothing.
 */
FPG_API void fpg_server_stop(struct fpg_server *srv, unsigned grace_ms);

/*
 * Cuts the grace of fpg_server_stop() short: the requests still in flight
 * are ended at once (as when the grace runs out), so that a stop under
 * way on another thread returns within a loop turn; a stop called later
 * gets no grace either. For a second SIGTERM. Any thread except a
 * worker's, between fpg_server_new() and fpg_server_free().
 */
FPG_API void fpg_server_stop_now(struct fpg_server *srv);

/* Stops (if needed) and frees the server. NULL is a no-op. */
FPG_API void fpg_server_free(struct fpg_server *srv);
