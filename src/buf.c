#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void fpg_buf_init(struct fpg_buf *b)
{
	memset(b, 0, sizeof(*b));
}

void fpg_buf_deinit(struct fpg_buf *b)
{
	free(b->data);
	fpg_buf_init(b);
}

bool fpg_buf_reserve(struct fpg_buf *b, size_t n)
{
	if (b->failed)
		return false;
	if (b->cap - b->len >= n)
		return true;
	/* Reclaim consumed space before growing, when that is at least as
	 * much as what would move (else a big buffer read slowly would be
	 * moved again and again). */
	if (b->off > 0 && b->off >= b->len - b->off) {
		memmove(b->data, b->data + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
		if (b->cap - b->len >= n)
			return true;
	}
	size_t cap = b->cap ? b->cap : 256;
	while (cap - b->len < n) {
		if (cap > SIZE_MAX / 2)
			goto fail;
		cap *= 2;
	}
	char *p = realloc(b->data, cap);
	if (!p)
		goto fail;
	b->data = p;
	b->cap = cap;
	return true;
fail:
	b->failed = true;
	return false;
}

void fpg_buf_append(struct fpg_buf *b, const void *p, size_t n)
{
	if (n == 0 || !fpg_buf_reserve(b, n))
		return;
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

void fpg_buf_puts(struct fpg_buf *b, const char *s)
{
	fpg_buf_append(b, s, strlen(s));
}

void fpg_buf_putc(struct fpg_buf *b, char c)
{
	if (!fpg_buf_reserve(b, 1))
		return;
	b->data[b->len++] = c;
}

void fpg_buf_printf(struct fpg_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char tmp[256];
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(tmp)) {
		fpg_buf_append(b, tmp, (size_t)n);
		return;
	}
	if (!fpg_buf_reserve(b, (size_t)n + 1))
		return;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/*
 * Escapes exactly as PostgreSQL's escape_json() does, so that our text
 * values are byte-identical to to_json(): the six short escapes, \u00XX for
 * other control characters, everything else (UTF-8 included) as is.
 */
static const char json_esc[256] = {
	['"'] = '"', ['\\'] = '\\', ['\b'] = 'b', ['\f'] = 'f',
	['\n'] = 'n', ['\r'] = 'r', ['\t'] = 't',
	[0x00] = 'u', [0x01] = 'u', [0x02] = 'u', [0x03] = 'u', [0x04] = 'u',
	[0x05] = 'u', [0x06] = 'u', [0x07] = 'u', [0x0b] = 'u', [0x0e] = 'u',
	[0x0f] = 'u', [0x10] = 'u', [0x11] = 'u', [0x12] = 'u', [0x13] = 'u',
	[0x14] = 'u', [0x15] = 'u', [0x16] = 'u', [0x17] = 'u', [0x18] = 'u',
	[0x19] = 'u', [0x1a] = 'u', [0x1b] = 'u', [0x1c] = 'u', [0x1d] = 'u',
	[0x1e] = 'u', [0x1f] = 'u',
};

/* Escapes one piece; the caller reserved 6 bytes per input byte. */
static char *escape_piece(char *o, const unsigned char *p,
			  const unsigned char *end)
{
	static const char hex[] = "0123456789abcdef";
	while (p < end) {
		const unsigned char *run = p;
		while (p < end && !json_esc[*p])
			p++;
		memcpy(o, run, (size_t)(p - run));
		o += p - run;
		if (p == end)
			break;
		char e = json_esc[*p];
		*o++ = '\\';
		*o++ = e;
		if (e == 'u') {
			*o++ = '0';
			*o++ = '0';
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 15];
		}
		p++;
	}
	return o;
}

void fpg_buf_json_chars(struct fpg_buf *b, const char *s, size_t n)
{
	/* In pieces, so that a huge value does not reserve 6x its size. */
	const size_t piece = 4096;
	const unsigned char *p = (const unsigned char *)s, *end = p + n;
	while (p < end) {
		size_t k = (size_t)(end - p) < piece ? (size_t)(end - p) : piece;
		if (!fpg_buf_reserve(b, k * 6))
			return;
		b->len = (size_t)(escape_piece(b->data + b->len, p, p + k) -
				  b->data);
		p += k;
	}
}

void fpg_buf_json_str(struct fpg_buf *b, const char *s, size_t n)
{
	fpg_buf_putc(b, '"');
	fpg_buf_json_chars(b, s, n);
	fpg_buf_putc(b, '"');
}

void fpg_buf_consume(struct fpg_buf *b, size_t n)
{
	b->off += n;
	if (b->off >= b->len)
		b->off = b->len = 0;
}

void fpg_buf_reset(struct fpg_buf *b)
{
	b->off = b->len = 0;
	b->failed = false;
}

char *fpg_buf_steal(struct fpg_buf *b, size_t *n)
{
	size_t len = fpg_buf_pending(b);
	*n = 0;
	if (len == 0 || b->failed)
		return NULL;
	char *p;
	if (b->off == 0) {
		p = b->data;
		fpg_buf_init(b);
	} else {
		p = malloc(len);
		if (!p)
			return NULL;
		memcpy(p, b->data + b->off, len);
		fpg_buf_reset(b);
	}
	*n = len;
	return p;
}

void fpg_hex(char *out, const void *in, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *p = in;
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}
