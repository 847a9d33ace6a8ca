/*
 * POST /sql: Neon's HTTP protocol (docs/neon.md), which
 * @neondatabase/serverless and the ORMs on top of it speak. This file
 * reads what is Neon's -- the Neon-Connection-String header (whose login
 * runs the SQL with --auth password; whose database must be the one
 * served), the Neon-* options, the body -- and hands the statements to
 * the machinery of /query (one statement) or of POST /tx's batches (a
 * transaction). The answer's and errors' shapes are rowfmt.c's and
 * error.c's; request.c sends errors in Neon's shape for this route.
 *
 * The connection string never chooses where the gateway connects: its
 * host, port and parameters are ignored, the --db server is the one.
 */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "handlers.h"
#include "neon.h"
#include "params.h"
#include "services.h"
#include "tx.h"

#define MAX_QUERIES 1000

static bool auth_on(const struct fpg_services *svc)
{
	return svc->auth_password || svc->auth_api_key || svc->auth_jwt;
}

/*
 * The connection string names the database served, and without --auth
 * the --db login (which every client then is): an application that
 * believes it is another login, or on another database, learns it now
 * rather than writing somewhere it did not mean to. A name fasterpg
 * cannot know (--db names a service) is not checked.
 */
static int check_target(struct fpg_request *req,
			const struct fpg_neon_login *l)
{
	const struct fpg_services *svc = req->svc;
	struct fpg_error err;
	if (l->dbname[0] && svc->db_name[0] &&
	    strcmp(l->dbname, svc->db_name) != 0) {
		fpg_error_set(&err, FPG_ERR_REQUEST, 400,
			      "this server serves the database \"%.63s\", "
			      "not \"%.63s\" (Neon-Connection-String)",
			      svc->db_name, l->dbname);
		memcpy(err.sqlstate, "3D000", 6);
		return fpg_request_error(req, &err, NULL);
	}
	if (!auth_on(svc) && l->user[0] && svc->db_user[0] &&
	    strcmp(l->user, svc->db_user) != 0) {
		fpg_error_set(&err, FPG_ERR_REQUEST, 400,
			      "without --auth this server runs SQL as "
			      "\"%.63s\", not \"%.63s\" "
			      "(Neon-Connection-String)",
			      svc->db_user, l->user);
		memcpy(err.sqlstate, "28000", 6);
		return fpg_request_error(req, &err, NULL);
	}
	return 0;
}

/* The connection string's checks and login; 0 when the request goes on. */
static int log_in(struct fpg_request *req)
{
	struct fpg_neon_login l;
	struct fpg_error err;
	const char *cs = fpg_request_header(req, "Neon-Connection-String");
	if (!cs)
		return fpg_request_fail(req, 400, "bad_request",
					"send a Neon-Connection-String header "
					"(postgresql://user:password@host/"
					"dbname)");
	if (!fpg_neon_parse_login(cs, &l, &err))
		return fpg_request_error(req, &err, NULL);
	int status = check_target(req, &l);
	if (!status)
		status = fpg_request_login(req, l.user, l.password);
	fpg_neon_login_wipe(&l);
	return status;
}

/* The batch's transaction, from the Neon-Batch-* headers. */
static bool batch_options(struct fpg_request *req, struct fpg_tx_options *o,
			  struct fpg_error *err)
{
	memset(o, 0, sizeof(*o));
	o->idle_timeout_ms = req->svc->opts->tx_idle_timeout_ms;
	return fpg_neon_parse_isolation(
		       fpg_request_header(req, "Neon-Batch-Isolation-Level"),
		       &o->isolation, err) &&
	       fpg_neon_parse_bool(
		       "Neon-Batch-Read-Only",
		       fpg_request_header(req, "Neon-Batch-Read-Only"), false,
		       &o->read_only, err) &&
	       fpg_neon_parse_bool(
		       "Neon-Batch-Deferrable",
		       fpg_request_header(req, "Neon-Batch-Deferrable"), false,
		       &o->deferrable, err);
}

int fpg_handle_sql(struct fpg_request *req)
{
	struct fpg_error err;
	bool raw, array, batch;
	struct fpg_statement *list;
	unsigned n;
	int status = log_in(req);
	if (status)
		return status;
	if (!fpg_neon_parse_bool(
		    "Neon-Raw-Text-Output",
		    fpg_request_header(req, "Neon-Raw-Text-Output"), false,
		    &raw, &err) ||
	    !fpg_neon_parse_bool("Neon-Array-Mode",
				 fpg_request_header(req, "Neon-Array-Mode"),
				 false, &array, &err))
		return fpg_request_error(req, &err, NULL);
	if (!fpg_statement_parse_neon(req->body.data ? req->body.data : "",
				      req->body.len, array, MAX_QUERIES,
				      &list, &n, &batch, &err)) {
		fpg_statement_list_free(list, n);
		return fpg_request_error(req, &err, NULL);
	}
	for (unsigned i = 0; i < n; i++)
		list[i].text_values = raw;
	if (!batch) {
		struct fpg_statement st = list[0];
		free(list);
		return fpg_handle_sql_statement(req, &st);
	}
	struct fpg_tx_options o;
	if (!batch_options(req, &o, &err)) {
		fpg_statement_list_free(list, n);
		return fpg_request_error(req, &err, NULL);
	}
	return fpg_handle_sql_batch(req, &o, list, n);
}
