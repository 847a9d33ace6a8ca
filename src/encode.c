#include "encode.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/*
 * Every value is converted from its text form the way PostgreSQL 15's
 * datum_to_json() (src/backend/utils/adt/json.c) would convert the datum:
 * numbers stay bare when the output text is a valid JSON number, dates and
 * timestamps are re-spelled from ISO to XSD, arrays and composites are
 * parsed from array_out()/record_out() syntax and their elements encoded
 * by element type. Anything that does not parse is written as a string, so
 * the output is always valid JSON.
 */

/* Deeper nesting than real types produce: give up and write a string. */
#define MAX_DEPTH 64
/* PostgreSQL's MAXDIM. */
#define MAX_DIMS 6
/* Scratch for an escaped nested value; bigger ones go to the heap. */
#define SCRATCH 512

static void encode(struct fpg_buf *out, const struct fpg_typecache *tc,
		   const struct fpg_type *t, const char *s, size_t n,
		   unsigned flags, int depth);

/*
 * Escaped text inside array and record literals, decoded as a sequence of
 * literal runs without copying. ARRAY syntax (array_in): a backslash quotes
 * the next byte. RECORD syntax (record_in): the same, plus double quotes
 * toggle quoting and "" inside quotes is one quote.
 */
enum esc_syntax { ESC_ARRAY, ESC_RECORD };

struct unesc {
	const char *p, *end;
	enum esc_syntax syntax;
	bool inq;
};

static bool is_special(const struct unesc *u, char c)
{
	return c == '\\' || (c == '"' && u->syntax == ESC_RECORD);
}

static bool next_run(struct unesc *u, const char **run, size_t *len)
{
	const char *p = u->p;
	while (p < u->end) {
		const char *start = p, *q = p + 1;
		if (*p == '\\') {
			if (p + 1 == u->end)
				break; /* dangling: input_in would reject */
			start = p + 1;
			q = p + 2;
		} else if (*p == '"' && u->syntax == ESC_RECORD) {
			if (!(u->inq && p + 1 < u->end && p[1] == '"')) {
				u->inq = !u->inq;
				p++;
				continue;
			}
			start = p + 1;
			q = p + 2;
		}
		while (q < u->end && !is_special(u, *q))
			q++;
		*run = start;
		*len = (size_t)(q - start);
		u->p = q;
		return true;
	}
	u->p = u->end;
	return false;
}

static void put_str(struct fpg_buf *out, const char *s, size_t n)
{
	fpg_buf_json_str(out, s, n);
}

/*
 * JSON number grammar, as PostgreSQL's IsValidJsonNumber(): the whole
 * text must be -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
 */
static bool is_json_number(const char *s, size_t n)
{
	const char *p = s, *end = s + n;
	if (p < end && *p == '-')
		p++;
	if (p == end)
		return false;
	if (*p == '0') {
		p++;
	} else if (*p >= '1' && *p <= '9') {
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	} else {
		return false;
	}
	if (p < end && *p == '.') {
		if (++p == end || *p < '0' || *p > '9')
			return false;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (p == end || *p < '0' || *p > '9')
			return false;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	return p == end;
}

static void put_number(struct fpg_buf *out, const struct fpg_type *t,
		       const char *s, size_t n, unsigned flags)
{
	if ((t->big && (flags & FPG_ENC_BIG_STRING)) || !is_json_number(s, n))
		put_str(out, s, n);
	else
		fpg_buf_append(out, s, n);
}

static bool digits(const char *s, size_t at, size_t count, size_t n)
{
	if (at + count > n)
		return false;
	for (size_t i = at; i < at + count; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/*
 * ISO "YYYY-MM-DD HH:MM:SS[.f][+HH[:MM[:SS]]][ BC]" -> to_json()'s XSD form:
 * 'T' between date and time, and (EncodeTimezone() with USE_XSD_DATES) an
 * offset of at least +HH:MM. infinity and -infinity are the same in both.
 * False when s is not in that form.
 */
static bool put_timestamp(struct fpg_buf *out, const char *s, size_t n, bool tz)
{
	char buf[64];
	size_t i = 0;
	if (n + 5 > sizeof(buf))
		return false;
	while (i < n && s[i] >= '0' && s[i] <= '9')
		i++;
	if (i < 4 || !(i + 15 <= n && s[i] == '-' && digits(s, i + 1, 2, n) &&
		       s[i + 3] == '-' && digits(s, i + 4, 2, n) &&
		       s[i + 6] == ' ' && digits(s, i + 7, 2, n) &&
		       s[i + 9] == ':' && digits(s, i + 10, 2, n) &&
		       s[i + 12] == ':' && digits(s, i + 13, 2, n)))
		return false;
	size_t sep = i + 6;
	i += 15;
	if (i < n && s[i] == '.') {
		if (!digits(s, ++i, 1, n))
			return false;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
	}
	size_t hour_end = 0; /* where ":00" goes for a whole-hour offset */
	if (tz) {
		if (i == n || (s[i] != '+' && s[i] != '-') ||
		    !digits(s, i + 1, 2, n))
			return false;
		i += 3;
		if (i < n && s[i] == ':') {
			if (!digits(s, i + 1, 2, n))
				return false;
			i += 3;
			if (i < n && s[i] == ':') {
				if (!digits(s, i + 1, 2, n))
					return false;
				i += 3;
			}
		} else {
			hour_end = i;
		}
	}
	if (i != n && !(n - i == 3 && memcmp(s + i, " BC", 3) == 0))
		return false;

	char *o = buf;
	*o++ = '"';
	size_t head = hour_end ? hour_end : n;
	memcpy(o, s, head);
	o[sep] = 'T';
	o += head;
	if (hour_end) {
		memcpy(o, ":00", 3);
		o += 3;
		memcpy(o, s + hour_end, n - hour_end);
		o += n - hour_end;
	}
	*o++ = '"';
	fpg_buf_append(out, buf, (size_t)(o - buf));
	return true;
}

/*
 * Where a nested value's literal needed escaping, produce its plain text
 * and encode that. Strings and json are written from the runs directly;
 * other kinds need the whole text, in scratch or (if large) heap memory.
 */
static void encode_escaped(struct fpg_buf *out, const struct fpg_typecache *tc,
			   const struct fpg_type *t, const char *s, size_t n,
			   enum esc_syntax syntax, unsigned flags, int depth)
{
	struct unesc u = {s, s + n, syntax, false};
	const char *run;
	size_t len;
	enum fpg_type_kind kind = t ? t->kind : FPG_TYPE_STRING;

	if (kind == FPG_TYPE_STRING || kind == FPG_TYPE_DATE) {
		fpg_buf_putc(out, '"');
		while (next_run(&u, &run, &len))
			fpg_buf_json_chars(out, run, len);
		fpg_buf_putc(out, '"');
		return;
	}
	char scratch[SCRATCH];
	char *text = n <= sizeof(scratch) ? scratch : malloc(n);
	if (!text) {
		out->failed = true;
		return;
	}
	size_t tn = 0;
	while (next_run(&u, &run, &len)) {
		memcpy(text + tn, run, len);
		tn += len;
	}
	encode(out, tc, t, text, tn, flags, depth);
	if (text != scratch)
		free(text);
}

struct array_parser {
	struct fpg_buf *out;
	const struct fpg_typecache *tc;
	const struct fpg_type *elem; /* NULL: elements are strings */
	char delim;
	unsigned flags;
	int depth;
	const char *p, *end;
};

/*
 * One element of an array literal, up to (not including) the delimiter or
 * closing brace. array_out() quotes an element as a whole and escapes
 * quotes and backslashes inside with a backslash.
 */
static bool parse_array_elem(struct array_parser *ap)
{
	const char *s = ap->p, *e;
	bool escaped = false;
	if (*s == '"') {
		e = ++s;
		while (e < ap->end && *e != '"') {
			if (*e == '\\' && e + 1 < ap->end) {
				escaped = true;
				e++;
			}
			e++;
		}
		if (e >= ap->end)
			return false;
		ap->p = e + 1;
	} else {
		e = s;
		while (e < ap->end && *e != ap->delim && *e != '}') {
			if (*e == '"' || *e == '{')
				return false;
			if (*e == '\\' && e + 1 < ap->end) {
				escaped = true;
				e++;
			}
			e++;
		}
		if (e >= ap->end || e == s)
			return false;
		ap->p = e;
		if (!escaped && e - s == 4 && strncasecmp(s, "NULL", 4) == 0) {
			fpg_buf_append(ap->out, "null", 4);
			return true;
		}
	}
	size_t n = (size_t)(e - s);
	if (escaped)
		encode_escaped(ap->out, ap->tc, ap->elem, s, n, ESC_ARRAY,
			       ap->flags, ap->depth + 1);
	else
		encode(ap->out, ap->tc, ap->elem, s, n, ap->flags,
		       ap->depth + 1);
	return true;
}

/* A {...} level whose '{' is at ap->p; dims counts the levels open. */
static bool parse_array_level(struct array_parser *ap, int dims)
{
	if (dims > MAX_DIMS)
		return false;
	ap->p++;
	fpg_buf_putc(ap->out, '[');
	if (ap->p < ap->end && *ap->p == '}') {
		ap->p++;
		fpg_buf_putc(ap->out, ']');
		return true;
	}
	for (;;) {
		if (ap->p >= ap->end)
			return false;
		bool ok = *ap->p == '{' ? parse_array_level(ap, dims + 1)
					: parse_array_elem(ap);
		if (!ok || ap->p >= ap->end)
			return false;
		char c = *ap->p++;
		if (c == '}')
			break;
		if (c != ap->delim)
			return false;
		fpg_buf_putc(ap->out, ',');
	}
	fpg_buf_putc(ap->out, ']');
	return true;
}

/*
 * array_out() syntax: an optional "[lo:hi]...=" prefix when a lower bound
 * is not 1 (to_json() ignores bounds), then nested braces. Writes nothing
 * useful on failure; the caller rolls back.
 */
static bool put_array(struct fpg_buf *out, const struct fpg_typecache *tc,
		      const struct fpg_type *t, const char *s, size_t n,
		      unsigned flags, int depth)
{
	struct array_parser ap = {
	    .out = out,
	    .tc = tc,
	    .elem = t->elem ? fpg_typecache_get(tc, t->elem) : NULL,
	    .delim = t->delim ? t->delim : ',',
	    .flags = flags,
	    .depth = depth,
	    .p = s,
	    .end = s + n,
	};
	if (ap.p < ap.end && *ap.p == '[') {
		while (ap.p < ap.end && *ap.p != '=') {
			if (!strchr("[]:-+0123456789", *ap.p))
				return false;
			ap.p++;
		}
		if (ap.p == ap.end)
			return false;
		ap.p++;
	}
	if (ap.p >= ap.end || *ap.p != '{')
		return false;
	if (!parse_array_level(&ap, 1))
		return false;
	return ap.p == ap.end;
}

/* int2vector/oidvector: "1 2 3", to_json() [1,2,3]. */
static bool put_vector(struct fpg_buf *out, const struct fpg_typecache *tc,
		       const struct fpg_type *t, const char *s, size_t n,
		       unsigned flags, int depth)
{
	const struct fpg_type *elem = fpg_typecache_get(tc, t->elem);
	const char *p = s, *end = s + n;
	fpg_buf_putc(out, '[');
	while (p < end) {
		const char *e = memchr(p, ' ', (size_t)(end - p));
		if (!e)
			e = end;
		if (e == p)
			return false;
		if (p != s)
			fpg_buf_putc(out, ',');
		encode(out, tc, elem, p, (size_t)(e - p), flags, depth + 1);
		if (e == end)
			break;
		p = e + 1;
		if (p == end)
			return false;
	}
	fpg_buf_putc(out, ']');
	return true;
}

/*
 * record_out() syntax: "(f1,f2,...)" with one field per live attribute,
 * an empty field for NULL, and fields quoted with "..." (quotes and
 * backslashes doubled) when they need it.
 */
static bool put_composite(struct fpg_buf *out, const struct fpg_typecache *tc,
			  const struct fpg_type *t, const char *s, size_t n,
			  unsigned flags, int depth)
{
	const char *p = s, *end = s + n;
	if (p == end || *p++ != '(')
		return false;
	fpg_buf_putc(out, '{');
	if (t->nattrs == 0) {
		fpg_buf_putc(out, '}');
		return p + 1 == end && *p == ')';
	}
	for (int i = 0; i < t->nattrs; i++) {
		const char *f = p;
		bool inq = false, special = false;
		while (p < end && (inq || (*p != ',' && *p != ')'))) {
			if (*p == '\\' && p + 1 < end) {
				special = true;
				p++;
			} else if (*p == '"') {
				special = true;
				inq = !inq; /* "" inside quotes toggles twice */
			}
			p++;
		}
		if (p >= end)
			return false;
		if (i > 0)
			fpg_buf_putc(out, ',');
		const char *name = t->attrs[i].name ? t->attrs[i].name : "";
		fpg_buf_json_str(out, name, strlen(name));
		fpg_buf_putc(out, ':');
		const struct fpg_type *at =
		    fpg_typecache_get(tc, t->attrs[i].type);
		size_t fn = (size_t)(p - f);
		if (fn == 0)
			fpg_buf_append(out, "null", 4);
		else if (!special)
			encode(out, tc, at, f, fn, flags, depth + 1);
		else if (fn >= 2 && f[0] == '"' && f[fn - 1] == '"' &&
			 !memchr(f + 1, '"', fn - 2) &&
			 !memchr(f + 1, '\\', fn - 2))
			encode(out, tc, at, f + 1, fn - 2, flags, depth + 1);
		else
			encode_escaped(out, tc, at, f, fn, ESC_RECORD, flags,
				       depth + 1);
		char c = *p++;
		if ((c == ')') != (i == t->nattrs - 1))
			return false;
	}
	fpg_buf_putc(out, '}');
	return p == end;
}

/*
 * Encodes one value. Containers that fail to parse are rolled back and
 * written as a string. The mark is counted from the read offset because
 * fpg_buf_reserve() may move pending bytes to the front.
 */
static void encode(struct fpg_buf *out, const struct fpg_typecache *tc,
		   const struct fpg_type *t, const char *s, size_t n,
		   unsigned flags, int depth)
{
	size_t mark = fpg_buf_pending(out);
	bool ok = true;

	if (!t || depth > MAX_DEPTH) {
		put_str(out, s, n);
		return;
	}
	switch (t->kind) {
	case FPG_TYPE_NUMBER:
		put_number(out, t, s, n, flags);
		return;
	case FPG_TYPE_BOOL:
		if (n == 1 && (s[0] == 't' || s[0] == 'f'))
			fpg_buf_append(out, s[0] == 't' ? "true" : "false",
				       s[0] == 't' ? 4 : 5);
		else
			put_str(out, s, n);
		return;
	case FPG_TYPE_JSON:
		if (n > 0)
			fpg_buf_append(out, s, n);
		else
			put_str(out, s, n);
		return;
	case FPG_TYPE_TIMESTAMP:
	case FPG_TYPE_TIMESTAMPTZ:
		if (!put_timestamp(out, s, n, t->kind == FPG_TYPE_TIMESTAMPTZ))
			put_str(out, s, n);
		return;
	case FPG_TYPE_ARRAY:
		ok = put_array(out, tc, t, s, n, flags, depth);
		break;
	case FPG_TYPE_VECTOR:
		ok = put_vector(out, tc, t, s, n, flags, depth);
		break;
	case FPG_TYPE_COMPOSITE:
		ok = put_composite(out, tc, t, s, n, flags, depth);
		break;
	case FPG_TYPE_STRING:
	case FPG_TYPE_DATE: /* ISO date text is already to_json()'s form */
	default:
		put_str(out, s, n);
		return;
	}
	if (!ok && !out->failed) {
		out->len = out->off + mark;
		put_str(out, s, n);
	}
}

void fpg_encode_value(struct fpg_buf *out, const struct fpg_typecache *tc,
		      uint32_t oid, const char *val, size_t len, unsigned flags)
{
	if (flags & FPG_ENC_TEXT) {
		fpg_buf_json_str(out, val, len);
		return;
	}
	encode(out, tc, fpg_typecache_get(tc, oid), val, len, flags, 0);
}

void fpg_encode_type_name(struct fpg_buf *out, const struct fpg_typecache *tc,
			  uint32_t oid)
{
	const struct fpg_type *t = fpg_typecache_get(tc, oid);
	if (t && t->name)
		fpg_buf_json_str(out, t->name, strlen(t->name));
	else
		fpg_buf_printf(out, "\"%u\"", oid);
}
