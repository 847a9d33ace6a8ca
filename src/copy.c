#include "copy.h"

#include <ctype.h>
#include <string.h>

#include "error.h"

static void put_ident(struct fpg_buf *sql, const char *s, size_t n)
{
	fpg_buf_putc(sql, '"');
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '"')
			fpg_buf_putc(sql, '"');
		fpg_buf_putc(sql, s[i]);
	}
	fpg_buf_putc(sql, '"');
}

static void put_literal(struct fpg_buf *sql, const char *s)
{
	fpg_buf_putc(sql, '\'');
	for (; *s; s++) {
		if (*s == '\'')
			fpg_buf_putc(sql, '\'');
		fpg_buf_putc(sql, *s);
	}
	fpg_buf_putc(sql, '\'');
}

/* "schema.table" or "table"; each part quoted. */
static bool put_table(struct fpg_buf *sql, const char *t,
		      struct fpg_error *err)
{
	const char *dot = strchr(t, '.');
	size_t n1 = dot ? (size_t)(dot - t) : strlen(t);
	if (n1 == 0 || (dot && (dot[1] == '\0' || strchr(dot + 1, '.')))) {
		fpg_error_set(err, FPG_ERR_REQUEST, 400,
			      "\"table\" must be a table or schema.table");
		return false;
	}
	put_ident(sql, t, n1);
	if (dot) {
		fpg_buf_putc(sql, '.');
		put_ident(sql, dot + 1, strlen(dot + 1));
	}
	return true;
}

static bool put_columns(struct fpg_buf *sql, const char *cols,
			struct fpg_error *err)
{
	fpg_buf_puts(sql, " (");
	for (const char *p = cols;;) {
		size_t n = strcspn(p, ",");
		if (n == 0) {
			fpg_error_set(err, FPG_ERR_REQUEST, 400,
				      "\"columns\" must be names separated "
				      "by commas");
			return false;
		}
		put_ident(sql, p, n);
		if (p[n] == '\0')
			break;
		fpg_buf_puts(sql, ", ");
		p += n + 1;
	}
	fpg_buf_putc(sql, ')');
	return true;
}

/* Characters PostgreSQL allows inside an identifier after its start. */
static bool ident_char(char c)
{
	unsigned char u = (unsigned char)c;
	return isalnum(u) || u == '_' || u == '$' || u >= 0x80;
}

/*
 * query= goes inside COPY ( ... ) TO STDOUT: it must not be able to close
 * that parenthesis early (") TO PROGRAM ..."), nor hide the rest in an
 * open comment or string. Scans quotes, dollar quotes and comments.
 */
static bool query_is_enclosable(const char *q)
{
	int depth = 0;
	for (const char *p = q; *p; p++) {
		if (*p == '\'' || *p == '"') {
			char c = *p;
			while (*++p && *p != c)
				/* E'\'' ends where we cannot tell: refuse. */
				if (*p == '\\')
					return false;
			if (!*p)
				return false;
		} else if (p[0] == '-' && p[1] == '-') {
			/* PostgreSQL ends a line comment at \r too. */
			while (*p && *p != '\n' && *p != '\r')
				p++;
			if (!*p)
				return depth == 0;
		} else if (p[0] == '/' && p[1] == '*') {
			int d = 0;
			do {
				if (p[0] == '/' && p[1] == '*')
					d++, p += 2;
				else if (p[0] == '*' && p[1] == '/')
					d--, p += 2;
				else if (*p)
					p++;
				else
					return false;
			} while (d > 0);
			p--;
		} else if (*p == '$' && !isdigit((unsigned char)p[1])) {
			/* $tag$, the tag's bytes as PostgreSQL's (any byte
			 * >= 0x80 included), unless it is a parameter ($1). */
			const char *e = p + 1;
			while (ident_char(*e) && *e != '$')
				e++;
			if (*e != '$')
				continue;
			/* After an identifier's byte it belongs to the
			 * identifier (a_$x$), after a number's it opens a
			 * quote (1$x$): we cannot tell which, refuse. */
			if (p != q && ident_char(p[-1]))
				return false;
			size_t tag = (size_t)(e - p + 1);
			const char *end = e + 1;
			while ((end = strchr(end, '$')) &&
			       strncmp(end, p, tag) != 0)
				end++;
			if (!end)
				return false;
			p = end + tag - 1;
		} else if (*p == '(') {
			depth++;
		} else if (*p == ')') {
			if (--depth < 0)
				return false;
		} else if (*p == ';') {
			return false;
		}
	}
	return depth == 0;
}

static bool bool_arg(const char *v, bool *out)
{
	if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0) {
		*out = true;
		return true;
	}
	if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0) {
		*out = false;
		return true;
	}
	return false;
}

static bool put_options(fpg_copy_arg_fn arg, void *ctx, struct fpg_buf *sql,
			const char **content_type, struct fpg_error *err)
{
	const char *format = arg(ctx, "format");
	const char *header = arg(ctx, "header");
	const char *delim = arg(ctx, "delimiter");
	const char *null = arg(ctx, "null");
	if (!format)
		format = "csv";
	if (strcmp(format, "csv") == 0)
		*content_type = "text/csv; charset=utf-8";
	else if (strcmp(format, "text") == 0)
		*content_type = "text/plain; charset=utf-8";
	else if (strcmp(format, "binary") == 0)
		*content_type = "application/octet-stream";
	else {
		fpg_error_set(err, FPG_ERR_REQUEST, 400,
			      "\"format\" must be csv, text or binary");
		return false;
	}
	bool binary = strcmp(format, "binary") == 0;
	fpg_buf_printf(sql, " WITH (FORMAT %s", format);
	bool h;
	if (header) {
		if (!bool_arg(header, &h) || (h && binary)) {
			fpg_error_set(err, FPG_ERR_REQUEST, 400,
				      "\"header\" must be true or false (and "
				      "binary has none)");
			return false;
		}
		fpg_buf_puts(sql, h ? ", HEADER true" : ", HEADER false");
	}
	if (delim) {
		if (binary || strlen(delim) != 1 || delim[0] == '\r' ||
		    delim[0] == '\n' || delim[0] == '\\') {
			fpg_error_set(err, FPG_ERR_REQUEST, 400,
				      "\"delimiter\" must be one character "
				      "(not for binary)");
			return false;
		}
		fpg_buf_puts(sql, ", DELIMITER ");
		put_literal(sql, delim);
	}
	if (null) {
		if (binary || strpbrk(null, "\r\n")) {
			fpg_error_set(err, FPG_ERR_REQUEST, 400,
				      "\"null\" must be a string without line "
				      "breaks (not for binary)");
			return false;
		}
		fpg_buf_puts(sql, ", NULL ");
		put_literal(sql, null);
	}
	fpg_buf_putc(sql, ')');
	return true;
}

bool fpg_copy_build(fpg_copy_arg_fn arg, void *ctx, bool in,
		    struct fpg_buf *sql, const char **content_type,
		    struct fpg_error *err)
{
	const char *table = arg(ctx, "table");
	const char *query = arg(ctx, "query");
	const char *columns = arg(ctx, "columns");
	if (!table == !query || (query && (in || columns))) {
		fpg_error_set(err, FPG_ERR_REQUEST, 400,
			      in ? "give \"table\" (and optionally "
				   "\"columns\")"
				 : "give either \"table\" (and optionally "
				   "\"columns\") or \"query\"");
		return false;
	}
	fpg_buf_puts(sql, "COPY ");
	if (query) {
		if (!query_is_enclosable(query)) {
			fpg_error_set(err, FPG_ERR_REQUEST, 400,
				      "\"query\" must be one statement with "
				      "balanced parentheses, quotes and "
				      "comments");
			return false;
		}
		/* Newlines keep a trailing line comment off our suffix. */
		fpg_buf_puts(sql, "(\n");
		fpg_buf_puts(sql, query);
		fpg_buf_puts(sql, "\n)");
	} else if (!put_table(sql, table, err) ||
		   (columns && !put_columns(sql, columns, err))) {
		return false;
	}
	fpg_buf_puts(sql, in ? " FROM STDIN" : " TO STDOUT");
	return put_options(arg, ctx, sql, content_type, err);
}
