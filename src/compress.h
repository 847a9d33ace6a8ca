/*
 * Answers compressed for clients that ask (Accept-Encoding: gzip, zstd):
 * a streaming compressor at a fast level, fed as the answer is written,
 * flushed whenever the client has everything so far, so a streamed answer
 * compresses without waiting for its end. One request, one thread.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

enum fpg_encoding {
	FPG_ENCODING_IDENTITY,
	FPG_ENCODING_GZIP,
	FPG_ENCODING_ZSTD,
};

/* The encoding to answer with for an Accept-Encoding value (NULL: none
 * sent): the best the client accepts (q > 0), zstd before gzip;
 * identity when it accepts neither. */
enum fpg_encoding fpg_encoding_choose(const char *accept_encoding);

/* "gzip", "zstd" (the Content-Encoding), or NULL for identity. */
const char *fpg_encoding_name(enum fpg_encoding e);

struct fpg_compressor;

/* NULL when out of memory (or e is identity). */
struct fpg_compressor *fpg_compressor_new(enum fpg_encoding e);
void fpg_compressor_free(struct fpg_compressor *c);

/*
 * Compresses in[0..n) onto out. flush: out then decodes to everything
 * fed so far; end: the stream ends (nothing may be fed after). False on
 * a compressor or memory failure (out->failed for memory).
 */
bool fpg_compressor_feed(struct fpg_compressor *c, const char *in, size_t n,
			 bool flush, bool end, struct fpg_buf *out) FPG_MUST_CHECK;
