/*
 * libFuzzer target: the COPY statement builder (fpg_copy_build in
 * src/copy.c) on arbitrary query arguments.
 *
 * Input: a flag byte, then up to seven NUL-separated values. Bit 0 of the
 * flag byte is `in` (POST: FROM STDIN); bits 1 to 7 say which of table,
 * query, columns, format, header, delimiter and null are given. The i-th
 * value always belongs to the i-th argument, given or not, so that a flag
 * flip does not move the others.
 *
 * When the builder accepts the arguments, the statement is split into
 * tokens the way PostgreSQL 15's lexer (scan.l, standard_conforming_strings
 * on) would, and the tokens must be exactly what the arguments ask for:
 * COPY, the quoted table and columns or "(" query ")" with that ")" being
 * the one the builder wrote after the query, then FROM STDIN or TO STDOUT
 * and the WITH options, and nothing else. A query= that closes COPY's
 * parenthesis early or swallows part of the suffix fails this. A statement
 * that PostgreSQL could not even lex (an open comment or string) is
 * refused by the server, so it is not reported. This lexer is written
 * apart from src/sqltext.c, which the builder uses, so that the two must
 * agree: backslashes in E'' strings and their continuation lines
 * included, which the builder reads exactly (it gave up on them before).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "copy.h"
#include "error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum {
	ARG_TABLE,
	ARG_QUERY,
	ARG_COLUMNS,
	ARG_FORMAT,
	ARG_HEADER,
	ARG_DELIM,
	ARG_NULL,
	N_ARGS
};

static const char *const arg_names[N_ARGS] = {
    "table", "query", "columns", "format", "header", "delimiter", "null"};

struct args {
	const char *v[N_ARGS]; /* NULL: not given */
};

static const char *lookup(void *ctx, const char *name)
{
	const struct args *a = ctx;
	for (int i = 0; i < N_ARGS; i++)
		if (strcmp(arg_names[i], name) == 0)
			return a->v[i];
	return NULL;
}

/* ---- what went wrong, with the arguments and the statement ---- */

static void dump(const char *label, const char *s)
{
	fprintf(stderr, "%s: ", label);
	if (!s) {
		fputs("(not given)\n", stderr);
		return;
	}
	for (; *s; s++)
		fprintf(stderr, *s >= 0x20 && *s < 0x7f ? "%c" : "\\x%02x",
			(unsigned char)*s);
	fputc('\n', stderr);
}

static const struct args *cur_args;
static const char *cur_sql;

static void fail(int line, const char *what)
{
	fprintf(stderr, "fuzz_copy.c:%d: check failed: %s\n", line, what);
	for (int i = 0; i < N_ARGS; i++)
		dump(arg_names[i], cur_args->v[i]);
	dump("sql", cur_sql);
	abort();
}

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond))                                                   \
			fail(__LINE__, #cond);                                 \
	} while (0)

/* ---- a PostgreSQL 15 lexer, reduced to what the check needs ---- */

enum tok_kind {
	TOK_WORD,   /* keyword or identifier, as written */
	TOK_QIDENT, /* "quoted identifier", value unquoted */
	TOK_STRING, /* string constant of any kind, value unquoted for '...' */
	TOK_OTHER,  /* anything else: one punctuation character, an
		       operator, a number, a parameter */
};

struct token {
	enum tok_kind kind;
	size_t off; /* where it starts in the statement */
	size_t len; /* of its text */
	struct fpg_buf val;
};

struct lexer {
	const char *s, *p;
	struct token *toks;
	size_t n, cap;
};

/* \v since PostgreSQL 16; 15 refuses it outside quotes and comments. */
static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
	       c == '\v';
}

static bool is_ident_start(char c)
{
	unsigned char u = (unsigned char)c;
	return (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || u == '_' ||
	       u >= 0x80;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_ident_cont(char c)
{
	return is_ident_start(c) || is_digit(c) || c == '$';
}

static bool is_op_char(char c)
{
	return c && strchr("~!@#^&|`?+-*/%<>=", c);
}

static struct token *push(struct lexer *lx, enum tok_kind kind,
			  const char *start)
{
	if (lx->n == lx->cap) {
		lx->cap = lx->cap ? 2 * lx->cap : 32;
		lx->toks = realloc(lx->toks, lx->cap * sizeof(*lx->toks));
		if (!lx->toks)
			abort();
	}
	struct token *t = &lx->toks[lx->n++];
	t->kind = kind;
	t->off = (size_t)(start - lx->s);
	t->len = (size_t)(lx->p - start);
	fpg_buf_init(&t->val);
	return t;
}

/* Skips whitespace and comments; false inside an unterminated comment. */
static bool skip_blank(struct lexer *lx)
{
	const char *p = lx->p;
	for (;;) {
		if (is_space(*p)) {
			p++;
		} else if (p[0] == '-' && p[1] == '-') {
			while (*p && *p != '\n' && *p != '\r')
				p++;
		} else if (p[0] == '/' && p[1] == '*') {
			int depth = 0;
			do {
				if (!*p)
					return false;
				if (p[0] == '/' && p[1] == '*')
					depth++, p += 2;
				else if (p[0] == '*' && p[1] == '/')
					depth--, p += 2;
				else
					p++;
			} while (depth > 0);
		} else {
			lx->p = p;
			return true;
		}
	}
}

/*
 * A quoted run from the opening quote q at lx->p: a doubled quote is one
 * quote, and with backslash escapes (E'...') a backslash takes the next
 * byte. Unquoted text goes to val. False when it does not end.
 */
static bool lex_quoted(struct lexer *lx, char q, bool doubling, bool backslash,
		       struct fpg_buf *val)
{
	const char *p = lx->p + 1;
	for (;;) {
		if (!*p)
			return false;
		if (backslash && *p == '\\') {
			if (!p[1])
				return false;
			fpg_buf_putc(val, p[1]);
			p += 2;
		} else if (*p == q && doubling && p[1] == q) {
			fpg_buf_putc(val, q);
			p += 2;
		} else if (*p == q) {
			lx->p = p + 1;
			return true;
		} else {
			fpg_buf_putc(val, *p++);
		}
	}
}

/*
 * After a string's closing quote at lx->p: whitespace holding a newline
 * ("--" comments in it too), then a quote, continue the same string in
 * the same mode (scan.l quotecontinue). Moves lx->p to that quote.
 */
static bool continues(struct lexer *lx)
{
	const char *p = lx->p;
	bool newline = false;
	for (;;) {
		if (is_space(*p)) {
			newline = newline || *p == '\n' || *p == '\r';
			p++;
		} else if (p[0] == '-' && p[1] == '-') {
			while (*p && *p != '\n' && *p != '\r')
				p++;
		} else {
			break;
		}
	}
	if (!newline || *p != '\'')
		return false;
	lx->p = p;
	return true;
}

/* $tag$ at lx->p (tag may be empty): its length, or 0 if it is not one. */
static size_t dollar_tag(const char *p)
{
	size_t n = 1;
	if (is_ident_start(p[1]))
		for (n = 2; is_ident_start(p[n]) || is_digit(p[n]); n++)
			;
	return p[n] == '$' ? n + 1 : 0;
}

/* A string constant starting at lx->p; prefix bytes (E, B, U&, ...). */
static bool lex_string(struct lexer *lx, const char *start, size_t prefix)
{
	struct token *t;
	char kind = (char)(prefix ? lx->p[0] | 0x20 : 0);
	lx->p += prefix;
	struct fpg_buf val;
	fpg_buf_init(&val);
	bool ok;
	do {
		if (kind == 'b' || kind == 'x')
			ok = lex_quoted(lx, '\'', false, false, &val);
		else
			ok = lex_quoted(lx, '\'', true, kind == 'e', &val);
	} while (ok && continues(lx));
	if (!ok) {
		fpg_buf_deinit(&val);
		return false;
	}
	t = push(lx, TOK_STRING, start);
	t->val = val;
	return true;
}

static bool lex_number(struct lexer *lx)
{
	const char *start = lx->p, *p = lx->p;
	while (is_digit(*p))
		p++;
	if (*p == '.' && p[1] != '.') {
		p++;
		while (is_digit(*p))
			p++;
	}
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (!is_digit(*p))
			return false; /* trailing junk */
		while (is_digit(*p))
			p++;
	}
	if (is_ident_start(*p))
		return false; /* trailing junk after numeric literal */
	lx->p = p;
	push(lx, TOK_OTHER, start);
	return true;
}

/* One token at lx->p (not blank). False where PostgreSQL stops. */
static bool lex_token(struct lexer *lx)
{
	const char *p = lx->p;
	char lc = (char)(*p | 0x20);
	if (*p == '\'')
		return lex_string(lx, p, 0);
	if ((lc == 'e' || lc == 'b' || lc == 'x' || lc == 'n') && p[1] == '\'')
		return lex_string(lx, p, 1);
	if (lc == 'u' && p[1] == '&' && p[2] == '\'')
		return lex_string(lx, p, 2);
	if (*p == '"' || (lc == 'u' && p[1] == '&' && p[2] == '"')) {
		struct fpg_buf val;
		fpg_buf_init(&val);
		lx->p += *p == '"' ? 0 : 2;
		if (!lex_quoted(lx, '"', true, false, &val) || val.len == 0) {
			fpg_buf_deinit(&val);
			return false;
		}
		push(lx, TOK_QIDENT, p)->val = val;
		return true;
	}
	if (*p == '$' && is_digit(p[1])) {
		for (lx->p++; is_digit(*lx->p); lx->p++)
			;
		push(lx, TOK_OTHER, p);
		return true;
	}
	if (*p == '$' && dollar_tag(p)) {
		size_t tag = dollar_tag(p);
		const char *end = p + tag;
		while ((end = strchr(end, '$')) && strncmp(end, p, tag) != 0)
			end++;
		if (!end)
			return false; /* unterminated dollar-quoted string */
		lx->p = end + tag;
		push(lx, TOK_STRING, p);
		return true;
	}
	if (is_ident_start(*p)) {
		while (is_ident_cont(*lx->p))
			lx->p++;
		push(lx, TOK_WORD, p);
		return true;
	}
	if (is_digit(*p) || (*p == '.' && is_digit(p[1])))
		return lex_number(lx);
	if (is_op_char(*p)) {
		/* An operator ends where a comment starts. */
		while (is_op_char(*lx->p) &&
		       !(lx->p[0] == '-' && lx->p[1] == '-') &&
		       !(lx->p[0] == '/' && lx->p[1] == '*'))
			lx->p++;
		push(lx, TOK_OTHER, p);
		return true;
	}
	lx->p++;
	push(lx, TOK_OTHER, p);
	return true;
}

static bool lex(struct lexer *lx, const char *sql)
{
	memset(lx, 0, sizeof(*lx));
	lx->s = lx->p = sql;
	for (;;) {
		if (!skip_blank(lx))
			return false;
		if (!*lx->p)
			return true;
		if (!lex_token(lx))
			return false;
	}
}

static void lexer_free(struct lexer *lx)
{
	for (size_t i = 0; i < lx->n; i++)
		fpg_buf_deinit(&lx->toks[i].val);
	free(lx->toks);
}

/* ---- the expected statement, token by token ---- */

struct cursor {
	const struct lexer *lx;
	size_t i;
};

static const struct token *next(struct cursor *c)
{
	CHECK(c->i < c->lx->n);
	return &c->lx->toks[c->i++];
}

static bool text_is(const struct cursor *c, const struct token *t,
		    const char *s)
{
	return t->len == strlen(s) &&
	       strncasecmp(c->lx->s + t->off, s, t->len) == 0;
}

static void expect_word(struct cursor *c, const char *w)
{
	const struct token *t = next(c);
	CHECK(t->kind == TOK_WORD && text_is(c, t, w));
}

static void expect_char(struct cursor *c, char ch)
{
	const struct token *t = next(c);
	CHECK(t->kind == TOK_OTHER && t->len == 1 && c->lx->s[t->off] == ch);
}

static bool val_is(const struct token *t, const char *s, size_t n)
{
	return t->val.len == n && (n == 0 || memcmp(t->val.data, s, n) == 0);
}

static void expect_value(struct cursor *c, enum tok_kind kind, const char *s,
			 size_t n)
{
	const struct token *t = next(c);
	/* "..." names and E'...' strings, as the builder writes them */
	const char *open = c->lx->s + t->off;
	CHECK(t->kind == kind &&
	      (kind == TOK_QIDENT ? open[0] == '"'
				  : open[0] == 'E' && open[1] == '\'') &&
	      val_is(t, s, n));
}

/* "(" query ")": the ")" that closes it must be the builder's. */
static void expect_query(struct cursor *c, const char *query)
{
	expect_char(c, '(');
	int depth = 1;
	for (;;) {
		const struct token *t = next(c);
		if (t->kind != TOK_OTHER || t->len != 1)
			continue;
		char ch = c->lx->s[t->off];
		CHECK(ch != ';');
		if (ch == '(')
			depth++;
		if (ch == ')' && --depth == 0) {
			CHECK(t->off == strlen("COPY (\n") + strlen(query) + 1);
			return;
		}
	}
}

/*
 * One name of table= or columns= as the builder reads it: "..." with ""
 * for a quote (dots and commas inside), else the text up to a stop.
 */
static const char *name_part(const char *p, const char *stops,
			     struct fpg_buf *out)
{
	fpg_buf_reset(out);
	if (*p != '"') {
		size_t n = strcspn(p, stops);
		fpg_buf_append(out, p, n);
		return p + n;
	}
	for (p++; *p; p++) {
		if (*p == '"' && p[1] != '"')
			return p + 1;
		if (*p == '"')
			p++;
		fpg_buf_putc(out, *p);
	}
	return p;
}

static void expect_name(struct cursor *c, const char **p, const char *stops,
			struct fpg_buf *name)
{
	*p = name_part(*p, stops, name);
	expect_value(c, TOK_QIDENT, name->data ? name->data : "", name->len);
}

static void expect_target(struct cursor *c, const struct args *a)
{
	struct fpg_buf name;
	fpg_buf_init(&name);
	const char *p = a->v[ARG_TABLE];
	expect_name(c, &p, ".", &name);
	if (*p == '.') {
		p++;
		expect_char(c, '.');
		expect_name(c, &p, ".", &name);
	}
	const char *col = a->v[ARG_COLUMNS];
	if (col) {
		expect_char(c, '(');
		for (;;) {
			expect_name(c, &col, ",", &name);
			if (!*col)
				break;
			expect_char(c, ',');
			col++;
		}
		expect_char(c, ')');
	}
	fpg_buf_deinit(&name);
}

static void expect_options(struct cursor *c, const struct args *a)
{
	const char *format = a->v[ARG_FORMAT] ? a->v[ARG_FORMAT] : "csv";
	expect_word(c, "WITH");
	expect_char(c, '(');
	expect_word(c, "FORMAT");
	const struct token *t = next(c);
	CHECK(t->kind == TOK_WORD && t->len == strlen(format) &&
	      memcmp(c->lx->s + t->off, format, t->len) == 0);
	if (a->v[ARG_HEADER]) {
		const char *h = a->v[ARG_HEADER];
		bool on = strcmp(h, "true") == 0 || strcmp(h, "1") == 0;
		expect_char(c, ',');
		expect_word(c, "HEADER");
		expect_word(c, on ? "true" : "false");
	}
	if (a->v[ARG_DELIM]) {
		expect_char(c, ',');
		expect_word(c, "DELIMITER");
		expect_value(c, TOK_STRING, a->v[ARG_DELIM],
			     strlen(a->v[ARG_DELIM]));
	}
	if (a->v[ARG_NULL]) {
		expect_char(c, ',');
		expect_word(c, "NULL");
		expect_value(c, TOK_STRING, a->v[ARG_NULL],
			     strlen(a->v[ARG_NULL]));
	}
	expect_char(c, ')');
	CHECK(c->i == c->lx->n);
}

static void check_statement(const struct args *a, bool in, const char *sql,
			    const char *ctype)
{
	static const char *const types[][2] = {
	    {"csv", "text/csv; charset=utf-8"},
	    {"text", "text/plain; charset=utf-8"},
	    {"binary", "application/octet-stream"},
	};
	const char *format = a->v[ARG_FORMAT] ? a->v[ARG_FORMAT] : "csv";
	bool known = false;
	for (size_t i = 0; i < 3; i++) {
		if (strcmp(format, types[i][0]) == 0) {
			CHECK(ctype && strcmp(ctype, types[i][1]) == 0);
			known = true;
		}
	}
	CHECK(known);

	struct lexer lx;
	if (!lex(&lx, sql)) {
		lexer_free(&lx);
		return; /* PostgreSQL refuses it: nothing runs */
	}
	struct cursor c = {&lx, 0};
	expect_word(&c, "COPY");
	if (a->v[ARG_QUERY]) {
		CHECK(!in);
		expect_query(&c, a->v[ARG_QUERY]);
	} else {
		expect_target(&c, a);
	}
	expect_word(&c, in ? "FROM" : "TO");
	expect_word(&c, in ? "STDIN" : "STDOUT");
	expect_options(&c, a);
	lexer_free(&lx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	/* The values, each a NUL-terminated copy of its piece. */
	char *buf = malloc(size);
	if (!buf)
		return 0;
	memcpy(buf, data + 1, size - 1);
	buf[size - 1] = '\0';
	struct args a;
	const char *p = buf, *end = buf + size - 1;
	for (int i = 0; i < N_ARGS; i++) {
		a.v[i] = data[0] & (2u << i) ? p : NULL;
		p += strlen(p);
		if (p < end)
			p++; /* past the NUL, else stay on the last one */
	}
	bool in = data[0] & 1;

	struct fpg_buf sql;
	struct fpg_error err;
	const char *ctype = NULL;
	fpg_buf_init(&sql);
	memset(&err, 0, sizeof(err));
	bool ok = fpg_copy_build(lookup, &a, in, &sql, &ctype, &err);
	fpg_buf_putc(&sql, '\0');
	cur_args = &a;
	cur_sql = sql.data;
	CHECK(!sql.failed);
	if (ok) {
		check_statement(&a, in, sql.data, ctype);
	} else {
		CHECK(err.http_status == 400);
		CHECK(memchr(err.message, '\0', sizeof(err.message)) != NULL);
		CHECK(err.message[0] != '\0');
	}
	fpg_buf_deinit(&sql);
	free(buf);
	return 0;
}
