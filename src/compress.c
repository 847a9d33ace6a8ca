#include "compress.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <zlib.h>
#include <zstd.h>

#define CHUNK 16384

struct fpg_compressor {
	enum fpg_encoding e;
	z_stream z;
	ZSTD_CCtx *zstd;
};

/* The q value Accept-Encoding gives coding (-1: not named; "*" counts
 * for codings not named). */
static double q_of(const char *header, const char *coding)
{
	double star = -1, named = -1;
	for (const char *p = header; *p;) {
		p += strspn(p, " \t,");
		size_t n = strcspn(p, " \t;,");
		const char *params = p + n;
		double q = 1;
		const char *end = params + strcspn(params, ",");
		const char *qp = params;
		while ((qp = strchr(qp, ';')) && qp < end) {
			qp++;
			qp += strspn(qp, " \t");
			if ((qp[0] == 'q' || qp[0] == 'Q') && qp[1] == '=')
				q = strtod(qp + 2, NULL);
		}
		if (n == strlen(coding) && strncasecmp(p, coding, n) == 0)
			named = q;
		else if (n == 1 && *p == '*')
			star = q;
		p = end;
	}
	return named >= 0 ? named : star;
}

enum fpg_encoding fpg_encoding_choose(const char *accept_encoding)
{
	if (!accept_encoding)
		return FPG_ENCODING_IDENTITY;
	double zstd = q_of(accept_encoding, "zstd");
	double gzip = q_of(accept_encoding, "gzip");
	if (zstd > 0 && zstd >= gzip)
		return FPG_ENCODING_ZSTD;
	if (gzip > 0)
		return FPG_ENCODING_GZIP;
	return FPG_ENCODING_IDENTITY;
}

const char *fpg_encoding_name(enum fpg_encoding e)
{
	return e == FPG_ENCODING_GZIP	? "gzip"
	       : e == FPG_ENCODING_ZSTD ? "zstd"
					: NULL;
}

struct fpg_compressor *fpg_compressor_new(enum fpg_encoding e)
{
	if (e == FPG_ENCODING_IDENTITY)
		return NULL;
	struct fpg_compressor *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->e = e;
	bool ok;
	if (e == FPG_ENCODING_GZIP) {
		/* 16 + window bits: a gzip header and trailer; level 1: the
		 * answer must not wait on the CPU. */
		ok = deflateInit2(&c->z, 1, Z_DEFLATED, 16 + MAX_WBITS, 8,
				  Z_DEFAULT_STRATEGY) == Z_OK;
	} else {
		c->zstd = ZSTD_createCCtx();
		ok = c->zstd && !ZSTD_isError(ZSTD_CCtx_setParameter(
					c->zstd, ZSTD_c_compressionLevel, 1));
	}
	if (!ok) {
		if (e == FPG_ENCODING_ZSTD)
			ZSTD_freeCCtx(c->zstd);
		free(c);
		return NULL;
	}
	return c;
}

void fpg_compressor_free(struct fpg_compressor *c)
{
	if (!c)
		return;
	if (c->e == FPG_ENCODING_GZIP)
		deflateEnd(&c->z);
	else
		ZSTD_freeCCtx(c->zstd);
	free(c);
}

static bool feed_gzip(struct fpg_compressor *c, const char *in, size_t n,
		      int mode, struct fpg_buf *out)
{
	c->z.next_in = (Bytef *)(uintptr_t)in;
	c->z.avail_in = (uInt)n;
	int rc;
	do {
		if (!fpg_buf_reserve(out, CHUNK))
			return false;
		c->z.next_out = (Bytef *)out->data + out->len;
		c->z.avail_out = CHUNK;
		rc = deflate(&c->z, mode);
		if (rc == Z_STREAM_ERROR)
			return false;
		out->len += CHUNK - c->z.avail_out;
	} while (c->z.avail_out == 0 || c->z.avail_in > 0);
	return mode != Z_FINISH || rc == Z_STREAM_END;
}

static bool feed_zstd(struct fpg_compressor *c, const char *in, size_t n,
		      ZSTD_EndDirective mode, struct fpg_buf *out)
{
	ZSTD_inBuffer src = {in, n, 0};
	size_t left;
	do {
		if (!fpg_buf_reserve(out, CHUNK))
			return false;
		ZSTD_outBuffer dst = {out->data + out->len, CHUNK, 0};
		left = ZSTD_compressStream2(c->zstd, &dst, &src, mode);
		if (ZSTD_isError(left))
			return false;
		out->len += dst.pos;
	} while (mode == ZSTD_e_continue ? src.pos < src.size : left > 0);
	return true;
}

bool fpg_compressor_feed(struct fpg_compressor *c, const char *in, size_t n,
			 bool flush, bool end, struct fpg_buf *out)
{
	/* Input too large for zlib's 32-bit counts goes in pieces. */
	while (n > (1u << 30)) {
		if (!fpg_compressor_feed(c, in, 1u << 30, false, false, out))
			return false;
		in += 1u << 30;
		n -= 1u << 30;
	}
	if (c->e == FPG_ENCODING_GZIP)
		return feed_gzip(c, in, n,
				 end ? Z_FINISH : flush ? Z_SYNC_FLUSH : Z_NO_FLUSH,
				 out);
	return feed_zstd(c, in, n,
			 end ? ZSTD_e_end : flush ? ZSTD_e_flush : ZSTD_e_continue,
			 out);
}
