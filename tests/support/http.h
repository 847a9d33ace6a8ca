/*
 * The libcurl client of the tests: every request that wants its whole
 * answer goes through http_request_opts(). Clients that look at an answer
 * while it streams (stream_util.h, test_copy.c) set their handle up with
 * http_prepare() and bring their own callbacks.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <curl/curl.h>
#include <jansson.h>

struct http_resp {
	long status;
	char *body;	    /* NUL-terminated, caller frees via http_resp_free */
	size_t body_len;
	char *headers;	    /* raw response header block, NUL-terminated */
	json_t *json;	    /* parsed body when it is JSON, else NULL */
	int curl_code;	    /* CURLcode of the transfer (0 = complete) */
};

/* How one request goes; all zero is http_request()'s way. */
struct http_opts {
	/* Reused for the request (keep-alive) when set, else a fresh one. */
	CURL *handle;
	size_t body_len;    /* bytes of body; 0: strlen(body) */
	long timeout_ms;    /* the whole transfer; 0: 60 s */
	bool fresh_connect; /* a new connection, closed afterwards */
	long *new_conns;    /* gets how many connections curl had to open */
};

/*
 * Sets c up for one request to http://127.0.0.1:<port><path>: method,
 * body (NULL: none; body_len 0: strlen), headers (NULL-terminated "Name:
 * value" list or NULL; Content-Type: application/json is added for a body
 * or a POST unless named, and "Expect:" unless named), no proxy, no
 * signals, TCP_NODELAY, a 10 s connect timeout. Returns the header list
 * that must outlive the transfer (caller frees it with
 * curl_slist_free_all), or NULL when out of memory.
 */
struct curl_slist *http_prepare(CURL *c, unsigned port, const char *method,
				const char *path, const char *body,
				size_t body_len, const char *const *headers);

/*
 * Performs one request and captures the answer. Never fails the test
 * itself: check curl_code/status. NULL only when out of memory.
 */
struct http_resp *http_request_opts(unsigned port, const char *method,
				    const char *path, const char *body,
				    const char *const *extra_headers,
				    const struct http_opts *o);

/*
 * Performs one request to http://127.0.0.1:<port><path>. body may be NULL.
 * extra_headers is a NULL-terminated list of "Name: value" strings or NULL.
 * Never fails the test itself: check curl_code/status.
 */
struct http_resp *http_request(unsigned port, const char *method,
			       const char *path, const char *body,
			       const char *const *extra_headers);

/* POST path with a JSON body and Content-Type: application/json. */
struct http_resp *http_post_json(unsigned port, const char *path,
				 const char *json_body);

/* GET path. */
struct http_resp *http_get(unsigned port, const char *path);

/* One request and its answer, for http_record(). */
struct http_exchange {
	const char *method;
	const char *path;		/* with its query string */
	const char *const *req_headers; /* as given to http_prepare */
	bool has_body;			/* a request body was sent */
	long status;			/* 0: no answer */
	const char *resp_headers;	/* the raw header block */
	const char *body;		/* NULL: not kept by the client */
	size_t body_len;
	int curl_code; /* 0: the answer is complete */
};

/*
 * With FPG_TEST_RECORD=FILE set, appends one JSON line describing x to
 * FILE, for tests/spec/validate.mjs to check against api/openapi.yaml:
 * method, path, the request's Content-Type (named in req_headers, else
 * the application/json that http_prepare adds), status, the response
 * headers, and the body when it is JSON of at most 1 MiB. Without the
 * variable, or without an answer (status 0), it does nothing. Safe from
 * any thread and process: each line is one write() to a file opened
 * O_APPEND.
 */
void http_record(const struct http_exchange *x);

/* The value of a response header (case-insensitive name), malloc'd or NULL. */
char *http_header(const struct http_resp *r, const char *name);

void http_resp_free(struct http_resp *r);
