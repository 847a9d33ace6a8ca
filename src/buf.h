/*
 * fpg_buf: a growable byte buffer with a read offset, used for request
 * bodies and response output. Append at the end, consume from the front.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "fasterpg.h"

struct fpg_buf {
	char *data;   /* owned; NULL until the first append */
	size_t len;   /* bytes written, data[0..len) */
	size_t off;   /* bytes consumed from the front, off <= len */
	size_t cap;   /* allocated size of data */
	bool failed;  /* an append failed for lack of memory: sticky */
};

void fpg_buf_init(struct fpg_buf *b);
void fpg_buf_deinit(struct fpg_buf *b);

/* Makes room for at least n more bytes. False (and failed set) on OOM. */
bool fpg_buf_reserve(struct fpg_buf *b, size_t n) FPG_MUST_CHECK;

/*
 * Appenders. On OOM they set b->failed and drop the bytes, so a caller
 * appending many pieces checks b->failed once at the end.
 */
void fpg_buf_append(struct fpg_buf *b, const void *p, size_t n);
void fpg_buf_puts(struct fpg_buf *b, const char *s);
void fpg_buf_putc(struct fpg_buf *b, char c);
void fpg_buf_printf(struct fpg_buf *b, const char *fmt, ...) FPG_PRINTF(2, 3);

/*
 * Appends s[0..n) JSON-escaped as PostgreSQL's escape_json() does, so that
 * text values are byte-identical to to_json(); without the quotes.
 */
void fpg_buf_json_chars(struct fpg_buf *b, const char *s, size_t n);

/* Appends s[0..n) as a JSON string literal, quotes included. */
void fpg_buf_json_str(struct fpg_buf *b, const char *s, size_t n);

/* Unconsumed bytes. */
static inline size_t fpg_buf_pending(const struct fpg_buf *b)
{
	return b->len - b->off;
}

/* Marks n bytes consumed; rewinds to the start when everything was read. */
void fpg_buf_consume(struct fpg_buf *b, size_t n);

/* Empties the buffer, keeping its memory. */
void fpg_buf_reset(struct fpg_buf *b);

/*
 * Hands the unconsumed bytes to the caller as a malloc'd block (caller
 * owns, free()) and leaves the buffer empty. *n receives the length.
 * Returns NULL for an empty buffer or on OOM.
 */
char *fpg_buf_steal(struct fpg_buf *b, size_t *n);

/* Writes the n bytes of in as 2n lower-case hex digits and a NUL to out
 * (2n + 1 bytes). */
void fpg_hex(char *out, const void *in, size_t n);
