/*
 * Minimal libcurl wrapper for integration tests.
 */
#pragma once

#include <stddef.h>

#include <jansson.h>

struct http_resp {
	long status;
	char *body;	    /* NUL-terminated, caller frees via http_resp_free */
	size_t body_len;
	char *headers;	    /* raw response header block, NUL-terminated */
	json_t *json;	    /* parsed body when it is JSON, else NULL */
	int curl_code;	    /* CURLcode of the transfer (0 = complete) */
};

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

/* The value of a response header (case-insensitive name), malloc'd or NULL. */
char *http_header(const struct http_resp *r, const char *name);

void http_resp_free(struct http_resp *r);
