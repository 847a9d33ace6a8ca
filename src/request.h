/*
 * One HTTP request: the libmicrohttpd access-handler state machine,
 * suspend/resume, client-disconnect watching while suspended, and the
 * response (a whole buffer, or a chunked stream fed from req->out).
 *
 * Life cycle: the first handler call only allocates the request (queueing
 * a response there would force "Connection: close"); body pieces are
 * collected; the last call routes it. A handler either answers at once or
 * returns 0 and later calls fpg_request_complete() or starts a stream.
 * The request is freed when libmicrohttpd reports it completed.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>
#include <microhttpd.h>

#include <pthread.h>

#include "buf.h"
#include "client.h"
#include "fasterpg.h"
#include "loop.h"
#include "random.h"
#include "services.h"

struct fpg_claims;
struct fpg_compressor;
struct fpg_request;

/*
 * One worker's requests and HTTP connections (request.c's state). Its
 * thread alone touches it, except that other workers read the ids and
 * cancel keys of list under lock (fpg_request_cancel_everywhere).
 */
struct fpg_requests {
	struct fpg_services *svc;
	pthread_mutex_t lock;	/* guards the links of list */
	bool lock_ready;
	struct fpg_list list;	/* of fpg_request.link: live requests */
	struct fpg_list flush_list; /* of fpg_request.flush_link: see
				       fpg_request_flush_streams */
	struct fpg_clients clients; /* their connections */
	struct fpg_fifo uploads; /* of fpg_request.upload: bodies being
				    read, against min-upload-rate */
	bool resumed;		/* a connection was resumed: run MHD again */
	/* libmicrohttpd's own answers (malformed requests, 431): a request
	 * it has not passed to us yet has &early as its context (see
	 * fpg_request_uri_log), and mhd_status is the status of the answer
	 * it made itself last (fpg_request_mhd_answered), for that request */
	char early;
	int mhd_status;
	struct fpg_random random; /* for request ids */
};

/* Sets up rs for a worker with svc (borrowed). */
void fpg_requests_init(struct fpg_requests *rs, struct fpg_services *svc);
void fpg_requests_deinit(struct fpg_requests *rs);

/*
 * Handler-specific state: cleanup runs when the request ends for any
 * reason (client gone included) and must stop any work in progress.
 */
struct fpg_handler_state {
	void (*cleanup)(struct fpg_request *req);
	/* DELETE /query/{id}: stop the statement; NULL if nothing to stop */
	void (*cancel)(struct fpg_request *req);
	/* a stream's reader took bytes from out (for back-pressure), or NULL */
	void (*drained)(struct fpg_request *req);
	/*
	 * stream_body routes: a piece of the body; returns how much was
	 * taken. Taking less suspends the request until the handler resumes
	 * it with fpg_request_resume_upload(); the rest comes again.
	 */
	size_t (*upload)(struct fpg_request *req, const char *data, size_t n);
	/* stream_body routes: the whole body was passed to upload */
	void (*upload_end)(struct fpg_request *req);
};

struct fpg_request {
	struct fpg_services *svc; /* the serving worker's */
	struct fpg_requests *rs;
	struct fpg_pool *pool;	  /* the caller's login's (svc->pool when no
				     client is authenticated) */
	bool holds_stream;	  /* counted as a stream of pool until freed
				     (fpg_request_hold_stream) */
	char login[64];		  /* its user ("": the --db login), set once
				     under rs->lock: cancels by id match it */
	struct fpg_claims *claims; /* a JWT's, or NULL; owned */
	struct MHD_Connection *conn;
	struct fpg_list link;	  /* in the worker's live requests */
	const struct fpg_route *route;
	unsigned route_index;	  /* for statistics */
	int route_status;	  /* 404/405 when route is NULL */
	const char *method;	  /* borrowed from MHD, valid while alive */
	const char *url;	  /* borrowed from MHD, valid while alive */
	const char *path_param;	  /* the "{}" segment of url, or NULL */
	char id[65];		  /* X-Request-Id */
	char cancel_key[129];	  /* X-Cancel-Key, "" when none was sent:
				     DELETE /query/{id} must show it */
	bool cancel_key_bad;	  /* one was sent, but not a valid one */
	/* W3C trace context, when a valid traceparent came ("" otherwise) */
	char trace_id[33];	  /* the client's trace */
	char span_id[17];	  /* ours, a child of the client's span */
	unsigned trace_flags;	  /* the client's (01: sampled) */
	char trace_app[64];	  /* a sampled trace's application_name for
				     its statements, or "" */
	const char *header_problem; /* static; set: refused unread, and the
				       connection closed (see request.c) */
	uint64_t start_us;
	struct fpg_buf body;	  /* request body, up to max_body_bytes */
	bool body_too_large;
	bool routed;		  /* the handler ran */
	bool upload_ended;	  /* upload_end was called */

	/* response */
	int status;		  /* 0 until known */
	struct fpg_buf out;	  /* response bytes not yet handed to MHD */
	struct fpg_compressor *z; /* compresses a streamed out, or NULL */
	struct fpg_buf zout;	  /* what z made, not yet handed to MHD */
	bool z_ended;		  /* z's stream has ended */
	const char *content_type; /* static string */
	const char *allow;	  /* Allow header for 405, or NULL */
	bool preflight;		  /* a CORS preflight (OPTIONS) */
	char allow_buf[48];
	unsigned retry_after;	  /* seconds, for 503/429; 0 = none */
	bool complete;		  /* out holds everything that is left */
	bool streaming;		  /* answer with a chunked stream */
	bool stream_failed;	  /* end the stream abnormally */
	int late_status;	  /* an error after the status went out: the
				     status it would have had (counted so) */
	char sqlstate[6];	  /* of the error answered, "" for none */
	uint64_t rows;		  /* result rows sent (set by the handler) */
	uint64_t bytes_in;	  /* body bytes received */
	uint64_t bytes_out;	  /* body bytes handed to MHD */
	bool queued;		  /* the response was queued */

	/* suspension */
	bool suspended;
	bool client_gone;	  /* disconnected while suspended */
	struct fpg_client *client; /* its connection's watch, or NULL */
	struct fpg_list flush_link; /* in the worker's flush list */

	/* the body: linked in the worker's uploads while it is read (since
	 * = the current rate window's start); unlinked while suspended, when
	 * the server does not read and a slow rate is not the client's */
	struct fpg_fifo_link upload;
	size_t upload_bytes;	  /* body bytes taken in the window */
	bool body_done;		  /* MHD has passed the whole body */

	struct fpg_handler_state *handler; /* owned by the handler, or NULL */
};

/* The handler signature: returns an HTTP status when the response is
 * ready in req->out, or 0 when it will finish later. */
typedef int (*fpg_handler_fn)(struct fpg_request *req);

/* What SQL a route runs (fpg_route.raw_sql; false and true are the
 * first two). */
enum fpg_route_sql {
	FPG_ROUTE_NO_RAW_SQL = 0,  /* none the client wrote */
	FPG_ROUTE_RAW_SQL = 1,	   /* SQL the client wrote */
	FPG_ROUTE_NEON_SQL = 2,	   /* that, over Neon's protocol (docs/neon.md):
				      its error bodies and statuses, the
				      Neon-Request-Id header; the handler
				      names the login (fpg_request_login) */
};

/* An entry of the route table (router.c, found through svc->route_match). */
struct fpg_route {
	const char *method;
	const char *path;	/* "{}" segments match any one segment */
	fpg_handler_fn handler;
	bool stream_body;	/* the handler takes the body as it comes
				   (its upload callbacks), not collected */
	bool cross_site_ok;	/* read-only and runs no SQL: a web page may
				   send it without a preflight (see guard.h);
				   every other route refuses such requests */
	enum fpg_route_sql raw_sql; /* runs SQL the client wrote (a role
				   with raw-sql=no may not, see roles.h) */
	bool event_source;	/* for browsers' EventSource, which can send
				   no header of its own: no preflight check
				   (it runs no SQL, and only CORS lets a page
				   read it), and the credential may come as
				   ?access_token= */
};

/* MHD callbacks, registered by the worker. cls is its fpg_requests. */
enum MHD_Result fpg_request_access(void *cls, struct MHD_Connection *conn,
				   const char *url, const char *method,
				   const char *version,
				   const char *upload_data,
				   size_t *upload_data_size, void **con_cls);
void fpg_request_completed(void *cls, struct MHD_Connection *conn,
			   void **con_cls,
			   enum MHD_RequestTerminationCode toe);

/*
 * MHD_OPTION_URI_LOG_CALLBACK: a request line arrived. Marks the request
 * so that its end is counted even when libmicrohttpd answers it itself
 * (its headers too large: 431; malformed: 400) and the access handler
 * never runs.
 */
void *fpg_request_uri_log(void *cls, const char *uri,
			  struct MHD_Connection *conn);

/* libmicrohttpd is answering a request itself with status (from its log
 * message): counted when that request ends. */
void fpg_request_mhd_answered(struct fpg_requests *rs, int status);

/* The whole response is in req->out: send it with status. */
void fpg_request_complete(struct fpg_request *req, int status);

/*
 * The response streams: status is sent now, req->out is sent as it fills
 * (call fpg_request_stream_push after appending) until
 * fpg_request_stream_end.
 */
void fpg_request_stream_begin(struct fpg_request *req, int status);
void fpg_request_stream_push(struct fpg_request *req);
void fpg_request_stream_end(struct fpg_request *req, bool failed);

/*
 * The stream ends with err (and PostgreSQL's res, may be NULL) after its
 * status went out: the handler told it in the body, or cut (true) ends
 * the transfer abnormally. Statistics and the log count the request with
 * err's status, not the 200 the client got first.
 */
void fpg_request_stream_fail(struct fpg_request *req,
			     const struct fpg_error *err, const PGresult *res,
			     bool cut);

/* A stream_body handler can take more of the body now. */
void fpg_request_resume_upload(struct fpg_request *req);

/*
 * Puts the JSON error for err (and PostgreSQL's error result res, may be
 * NULL) into req->out and returns the HTTP status to answer with.
 */
int fpg_request_error(struct fpg_request *req, const struct fpg_error *err,
		      const PGresult *res);

/* Shortcut: a request error with a formatted message. */
int fpg_request_fail(struct fpg_request *req, int status, const char *code,
		     const char *fmt, ...) FPG_PRINTF(4, 5);

/*
 * For a FPG_ROUTE_NEON_SQL route, whose login request.c does not look
 * for: identifies the request as authenticate() does for other routes
 * (with --auth; user and password as for fpg_auth_identify_as, borrowed
 * for the call) and sets req->pool, login and claims. Returns 0, or the
 * error status with the body in req->out.
 */
int fpg_request_login(struct fpg_request *req, const char *user,
		      const char *password);

/* A request header value, borrowed, or NULL. */
const char *fpg_request_header(struct fpg_request *req, const char *name);

/*
 * req will hold a connection of its own while it streams (the slow lane
 * of /query, COPY): counts it against its role's streams=N (--roles) on
 * req->pool here until the request ends, whichever way (freed). False
 * when the role has that many already (nothing counted); true again for
 * a request that holds one.
 */
bool fpg_request_hold_stream(struct fpg_request *req) FPG_MUST_CHECK;

/* The 429 too_many_streams (with Retry-After) of a request refused by
 * fpg_request_hold_stream. */
int fpg_request_too_many_streams(struct fpg_request *req);

/*
 * Finds live requests with this id and key on every worker and has them
 * cancelled. Returns how many were found. Any worker thread.
 */
unsigned fpg_request_cancel_everywhere(struct fpg_request *self,
				       const char *id, const char *key);

/*
 * Resumes the streams that got rows this loop turn but not enough to be
 * resumed at once: a slow trickle of rows still reaches its client within
 * a loop turn. The worker calls it before MHD_run().
 */
void fpg_request_flush_streams(struct fpg_requests *rs);

/*
 * Closes the connections that took longer than header-timeout-ms for a
 * request's headers, and the requests whose body came more slowly than
 * min-upload-rate over the last window. The worker's tick calls it.
 */
void fpg_request_tick(struct fpg_requests *rs);

/* Ends every live request of the worker (shutdown): they are closed. */
void fpg_request_kill_all(struct fpg_requests *rs);
