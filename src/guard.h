/*
 * Checks at the HTTP edge: that keep web pages from using the server
 * through a browser (the Host header against --allowed-hosts, DNS
 * rebinding; whether a request is one that a browser sends only after a
 * CORS preflight, CSRF), and headers that a proxy in front may read
 * another way than we do. Pure functions of their arguments: no MHD,
 * unit-tested alone.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "fasterpg.h"

/* The hosts a request's Host header may name (see fpg_hosts_parse). */
struct fpg_hosts {
	bool any;	  /* "*": every host */
	bool ip_literals; /* any IPv4 or [IPv6] address */
	size_t n;
	char **entries; /* lower case, "name" or "name:port", IPv6 in [] */
};

/*
 * Builds the allowed set from list, a comma-separated list of hosts,
 * each with an optional ":port" (without one, any port matches), or "*".
 * NULL or "" means the default: localhost, 127.0.0.1, [::1] and
 * listen_host; when listen_host is a wildcard address (0.0.0.0, ::)
 * every IP address literal too. An address literal cannot come from DNS
 * rebinding, which needs a name the attacker controls.
 * On failure *out holds nothing and err says which entry is wrong.
 * Release with fpg_hosts_deinit().
 */
bool fpg_hosts_parse(struct fpg_hosts *out, const char *list,
		     const char *listen_host,
		     struct fpg_error *err) FPG_MUST_CHECK;

void fpg_hosts_deinit(struct fpg_hosts *h);

/*
 * Whether host, a Host header value ("name", "name:port", "[v6]:port"),
 * is allowed. A missing header (NULL: HTTP/1.0) is: browsers always send
 * one.
 */
bool fpg_hosts_allow(const struct fpg_hosts *h, const char *host);

/*
 * Whether a browser would send this request only after a CORS preflight
 * (which fails unless --cors-origin allows the page): a method other than
 * GET, HEAD and POST; an X-Requested-With header (requested_with, any
 * value, NULL when absent); or, for POST, a Content-Type that is not one
 * of the three a form can send (application/x-www-form-urlencoded,
 * multipart/form-data, text/plain). content_type is NULL when absent.
 */
bool fpg_guard_preflighted(const char *method, const char *content_type,
			   const char *requested_with);

/* What fpg_guard_header() saw of one request's headers. */
struct fpg_header_scan {
	unsigned content_length, transfer_encoding, host;
	bool control_bytes;
};

/* Feeds one header (value NULL when it has none) to f (zeroed first). */
void fpg_guard_header(struct fpg_header_scan *f, const char *key,
		      const char *value);

/*
 * What libmicrohttpd lets through but a proxy in front may read another
 * way: two Content-Length headers, or one with Transfer-Encoding (MHD
 * takes one of them; the bytes in between would be read as a request of
 * their own: request smuggling), two Host headers (which one did
 * --allowed-hosts check?), and control bytes in headers (RFC 9110 5.5).
 * Returns why the request is refused, or NULL.
 */
const char *fpg_guard_headers_problem(const struct fpg_header_scan *f);

/*
 * Whether two secrets are equal, without an early exit: the time taken
 * tells nothing of where they differ (only whether their lengths do).
 */
bool fpg_guard_same_secret(const void *a, size_t alen, const void *b,
			   size_t blen);

/* A client's X-Request-Id we keep: 1-64 of A-Z a-z 0-9 - _ . : */
bool fpg_guard_request_id(const char *s);

/* X-Cancel-Key, a client's secret: 16-128 base64/base64url/hex chars. */
bool fpg_guard_cancel_key(const char *s);

/*
 * A W3C Trace Context traceparent header (www.w3.org/TR/trace-context/),
 * read strictly: version 00 only, "00-" 32 lower-case hex digits (the
 * trace id, not all zero) "-" 16 (the parent's span id, not all zero)
 * "-" 2 (the flags), 55 characters, nothing else. On success the parts
 * go to trace_id and parent_id (NUL-terminated) and *flags; false (and
 * nothing written) for anything else, which the caller ignores.
 */
bool fpg_guard_traceparent(const char *s, char trace_id[33],
			   char parent_id[17], unsigned *flags) FPG_MUST_CHECK;
