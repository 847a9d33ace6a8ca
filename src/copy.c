#include "copy.h"

#include <string.h>

#include "error.h"
#include "sqltext.h"

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

/*
 * An escape string literal: E'' reads a backslash the same way whatever
 * standard_conforming_strings says, so doubling both backslashes and
 * quotes closes the literal exactly where we do.
 */
static void put_literal(struct fpg_buf *sql, const char *s)
{
	fpg_buf_puts(sql, "E'");
	for (; *s; s++) {
		if (*s == '\'' || *s == '\\')
			fpg_buf_putc(sql, *s);
		fpg_buf_putc(sql, *s);
	}
	fpg_buf_putc(sql, '\'');
}

/*
 * Takes one name from *p up to one of the stop characters (or the end)
 * and writes it quoted: "a.b" (PostgreSQL's quoting, "" for a quote) is
 * taken as written, dots and commas included; anything else is taken
 * verbatim, case and all. *p is left on the stop character. False for an
 * empty name or text after a closing quote.
 */
static bool put_name(struct fpg_buf *sql, const char **p, const char *stops)
{
	const char *s = *p;
	if (*s != '"') {
		size_t n = strcspn(s, stops);
		put_ident(sql, s, n);
		*p = s + n;
		return n > 0;
	}
	size_t start = sql->len;
	fpg_buf_putc(sql, '"');
	for (s++;; s++) {
		if (*s == '\0')
			return false; /* no closing quote */
		if (*s == '"' && s[1] != '"')
			break;
		if (*s == '"')
			fpg_buf_putc(sql, *s++);
		fpg_buf_putc(sql, *s);
	}
	fpg_buf_putc(sql, '"');
	*p = s + 1;
	return sql->len - start > 2 && (**p == '\0' || strchr(stops, **p));
}

/* T, schema.T, with "..." quoting for names holding a dot. */
static bool put_table(struct fpg_buf *sql, const char *t,
		      struct fpg_error *err)
{
	const char *p = t;
	bool ok = put_name(sql, &p, ".");
	if (ok && *p == '.') {
		fpg_buf_putc(sql, '.');
		p++;
		ok = put_name(sql, &p, ".");
	}
	if (!ok || *p != '\0') {
		fpg_error_set(err, FPG_ERR_REQUEST, 400,
			      "\"table\" must be a table or schema.table "
			      "(\"...\" quotes a name with a dot)");
		return false;
	}
	return true;
}

static bool put_columns(struct fpg_buf *sql, const char *cols,
			struct fpg_error *err)
{
	fpg_buf_puts(sql, " (");
	for (const char *p = cols;; p++) {
		if (!put_name(sql, &p, ",")) {
			fpg_error_set(err, FPG_ERR_REQUEST, 400,
				      "\"columns\" must be names separated "
				      "by commas (\"...\" quotes a name "
				      "with a comma)");
			return false;
		}
		if (*p == '\0')
			break;
		fpg_buf_puts(sql, ", ");
	}
	fpg_buf_putc(sql, ')');
	return true;
}

/*
 * A friendly early 400 for a query= that is plainly not one statement: a
 * semicolon, an unbalanced parenthesis, an open quote or comment, read
 * by PostgreSQL's lexical rules (sqltext.c). It is no security boundary:
 * PostgreSQL parses the query on its own before it goes inside COPY
 * ( ... ) (handler_copy.c), which also covers a server whose
 * standard_conforming_strings is off, where a backslash in '' would read
 * otherwise than here.
 */
static bool query_looks_single(const char *q)
{
	struct fpg_sqltext s;
	struct fpg_sqltext_token t;
	int depth = 0;
	fpg_sqltext_init(&s, q);
	while (fpg_sqltext_next(&s, &t) != FPG_SQLTEXT_END) {
		if (t.kind == FPG_SQLTEXT_UNTERMINATED ||
		    fpg_sqltext_is_char(&t, ';'))
			return false;
		if (fpg_sqltext_is_char(&t, '('))
			depth++;
		else if (fpg_sqltext_is_char(&t, ')') && --depth < 0)
			return false;
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
		if (!query_looks_single(query)) {
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
