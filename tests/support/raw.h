/*
 * Raw TCP to 127.0.0.1, for the tests that speak HTTP where curl would
 * fix the request up, and for ports that refuse connections. The checks
 * fail the running case (Check's macros).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "it.h"

/* A connected socket to 127.0.0.1:port with TCP_NODELAY; caller closes. */
int raw_connect(unsigned port);

/* Sends what the peer takes; a peer that has closed is not an error. */
void raw_send(int fd, const void *data, size_t n);
void raw_sends(int fd, const char *s);

/*
 * Reads into b until the peer closes or timeout_ms pass (0: what is
 * there now). Returns true when it closed (EOF or reset).
 */
bool raw_read(int fd, struct it_buf *b, int timeout_ms);

/* The status of the first response in text, or 0. */
int raw_status(const char *text);

/* The body of the first response (after the blank line), or "". */
const char *raw_body(const char *text);

/*
 * http_record() of the first response in text (headers and body), as
 * the answer to method and path; nothing when text holds no status line.
 */
void raw_record(const char *method, const char *path, const char *text);

/*
 * The value of header name in the first response in text, malloc'd, or
 * NULL.
 */
char *raw_header(const char *text, const char *name);

/*
 * A port on 127.0.0.1 that refuses connections: *fd is bound to it and
 * never listens, so no one else takes the port while the caller keeps
 * *fd open (caller closes).
 */
unsigned raw_refused_port(int *fd);
