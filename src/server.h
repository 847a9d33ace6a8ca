/*
 * struct fpg_server: the options, the workers, start and stop.
 */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>

#include "config.h"
#include "fasterpg.h"
#include "guard.h"
#include "jwks.h"
#include "jwt.h"
#include "worker.h"

struct fpg_tls;

struct fpg_server {
	struct fpg_options opts; /* strings point into the copies below */
	char *db;
	char *listen_host;
	char *log_level;
	char *log_format;
	char *access_log;
	char *cors_origin;
	char *allowed_hosts;
	char *tls_cert, *tls_key; /* the files' paths */
	struct fpg_tls *tls;	  /* the pair now, or NULL: plain HTTP */
	struct fpg_hosts hosts;	 /* from allowed_hosts; read-only once built */
	char db_name[64], db_user[64]; /* what --db logs in to (/sql) */
	unsigned nworkers;	 /* initialised workers */
	struct fpg_worker *workers;
	struct fpg_canceller *canceller;
	struct fpg_tx_registry *tx_reg; /* every worker's sessions */
	struct fpg_apikeys *keys;	 /* the API keys now, or NULL */
	struct fpg_queries *queries;	 /* named queries, or NULL */
	struct fpg_roles *roles;	 /* per-role policy, or NULL */
	struct fpg_jwt_config jwt_cfg;	 /* with auth jwt; strings in opts */
	struct fpg_jwt *jwt;		 /* the verifier now, or NULL */
	struct fpg_jwks *jwks;		 /* fetches --jwks-url, or NULL */
	char *jwks_text;		 /* what it fetched last */
	size_t jwks_len;
	char *jwt_strs[8];		 /* copies of the jwt- options */
	unsigned char *claims_key;	 /* --claims-key-file's bytes */
	size_t claims_key_len;
	pthread_mutex_t reload_lock;	 /* one reload at a time (SIGHUP, a
					    JWKS fetched) */
	bool reload_ready;		 /* reload_lock initialised */
	char *api_keys;			 /* the file's path */
	char *anon_role;
	struct fpg_stats **all_stats;	 /* [nworkers] of the workers' */
	struct fpg_requests **all_requests; /* [nworkers] of the workers' */
	unsigned port;
	bool started;
	bool stopped;
	atomic_bool hurry;		 /* fpg_server_stop_now: no grace */
};

enum fpg_auth_method {
	FPG_AUTH_PASSWORD = 1u << 0,
	FPG_AUTH_API_KEY = 1u << 1,
	FPG_AUTH_JWT = 1u << 2,
};

/*
 * Which methods (fpg_auth_method bits) the --auth list names (NULL or "":
 * none); false with err for anything else.
 */
bool fpg_server_parse_auth(const char *list, unsigned *methods,
			   struct fpg_error *err) FPG_MUST_CHECK;
