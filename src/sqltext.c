#include "sqltext.h"

#include <string.h>
#include <strings.h>

const char *fpg_sqltext_kind_to_str(enum fpg_sqltext_kind kind)
{
	switch (kind) {
	case FPG_SQLTEXT_END:
		return "end";
	case FPG_SQLTEXT_WORD:
		return "word";
	case FPG_SQLTEXT_IDENT:
		return "quoted identifier";
	case FPG_SQLTEXT_STRING:
		return "string";
	case FPG_SQLTEXT_NUMBER:
		return "number";
	case FPG_SQLTEXT_PARAM:
		return "parameter";
	case FPG_SQLTEXT_OPERATOR:
		return "operator";
	case FPG_SQLTEXT_CHAR:
		return "character";
	case FPG_SQLTEXT_UNTERMINATED:
		return "unterminated";
	}
	return "unknown";
}

/* scan.l's space; \v only since PostgreSQL 16 (15 refuses the byte). */
static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
	       c == '\v';
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* ident_start: any byte >= 0x80 too, whatever the encoding. */
static bool is_ident_start(char c)
{
	unsigned char u = (unsigned char)c;
	return (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || u == '_' ||
	       u >= 0x80;
}

/* ident_cont: a '$' after a word's byte belongs to it (a_$x$ is a name). */
static bool is_ident_cont(char c)
{
	return is_ident_start(c) || is_digit(c) || c == '$';
}

static bool is_op_char(char c)
{
	return c != '\0' && strchr("~!@#^&|`?+-*/%<>=", c) != NULL;
}

static bool opens_comment(const char *p)
{
	return (p[0] == '-' && p[1] == '-') || (p[0] == '/' && p[1] == '*');
}

/* A "--" comment ends before a \n or a \r, PostgreSQL's two newlines. */
static const char *line_comment_end(const char *p)
{
	return p + strcspn(p, "\n\r");
}

/* Past a slash-star comment at p (they nest); NULL when it stays open. */
static const char *block_comment_end(const char *p)
{
	unsigned depth = 0;
	do {
		if (*p == '\0')
			return NULL;
		if (p[0] == '/' && p[1] == '*') {
			depth++;
			p += 2;
		} else if (p[0] == '*' && p[1] == '/') {
			depth--;
			p += 2;
		} else {
			p++;
		}
	} while (depth > 0);
	return p;
}

/*
 * Past the quoted run that q opens at p: a doubled q is one q, and with
 * backslash (E'') a backslash takes the next byte, a quote included.
 * NULL when it stays open.
 */
static const char *quoted_end(const char *p, char q, bool backslash)
{
	for (p++;; p++) {
		if (*p == '\0')
			return NULL;
		if (backslash && *p == '\\') {
			if (*++p == '\0')
				return NULL;
		} else if (*p == q) {
			if (p[1] != q)
				return p + 1;
			p++;
		}
	}
}

/*
 * scan.l's quotecontinue: after a closing quote, whitespace holding a
 * newline (with "--" comments anywhere in it) and then a quote continue
 * the same string in the same mode, so E'a'\n'\'' is one E'' string.
 * The position of that quote, or NULL.
 */
static const char *continued_at(const char *p)
{
	bool newline = false;
	for (;;) {
		if (is_space(*p)) {
			newline = newline || *p == '\n' || *p == '\r';
			p++;
		} else if (p[0] == '-' && p[1] == '-') {
			p = line_comment_end(p);
		} else {
			return newline && *p == '\'' ? p : NULL;
		}
	}
}

/* Past a '...' string opening at p, continuations included; NULL: open. */
static const char *string_end(const char *p, bool backslash)
{
	for (;;) {
		p = quoted_end(p, '\'', backslash);
		if (!p)
			return NULL;
		const char *more = continued_at(p);
		if (!more)
			return p;
		p = more;
	}
}

/*
 * The length of the delimiter $tag$ opening at p ($$ included), 0 when
 * there is none: the tag is a name without '$' that does not start with
 * a digit ($1 is a parameter).
 */
static size_t dollar_tag_len(const char *p)
{
	size_t n = 1;
	if (is_ident_start(p[1]))
		for (n = 2; is_ident_start(p[n]) || is_digit(p[n]); n++)
			;
	return p[n] == '$' ? n + 1 : 0;
}

/*
 * Past a dollar-quoted string whose tag of tag bytes opens at p: it ends
 * at the first copy of the tag, whatever is around it; NULL when none.
 */
static const char *dollar_end(const char *p, size_t tag)
{
	for (const char *e = p + tag; (e = strchr(e, '$')); e++)
		if (strncmp(e, p, tag) == 0)
			return e + tag;
	return NULL;
}

/*
 * Past a number at p (a digit, or a '.' before one): digits, a fraction
 * unless ".." follows (1..2), an exponent only when digits follow it (1e
 * leaves the e to the next token, as scan.l's realfail rules do). The
 * number takes no '$': 1$a$ is 1 and a dollar quote.
 */
static const char *number_end(const char *p)
{
	while (is_digit(*p))
		p++;
	if (*p == '.' && p[1] != '.')
		for (p++; is_digit(*p); p++)
			;
	if (*p == 'e' || *p == 'E') {
		const char *e = p + 1;
		if (*e == '+' || *e == '-')
			e++;
		if (is_digit(*e))
			for (p = e; is_digit(*p); p++)
				;
	}
	return p;
}

/*
 * A token opening with a name's byte: B'', E'', N'', U&'', X'' strings
 * and U&"" identifiers when the prefix starts the token (xe'' is the
 * word xe and a plain string), else a word.
 */
static enum fpg_sqltext_kind scan_word(const char *p, const char **end)
{
	char lc = (char)(*p | 0x20);
	if (p[1] == '\'' && strchr("bexn", lc)) {
		*end = string_end(p + 1, lc == 'e');
		return FPG_SQLTEXT_STRING;
	}
	if (lc == 'u' && p[1] == '&' && p[2] == '\'') {
		*end = string_end(p + 2, false);
		return FPG_SQLTEXT_STRING;
	}
	if (lc == 'u' && p[1] == '&' && p[2] == '"') {
		*end = quoted_end(p + 2, '"', false);
		return FPG_SQLTEXT_IDENT;
	}
	do
		p++;
	while (is_ident_cont(*p));
	*end = p;
	return FPG_SQLTEXT_WORD;
}

static enum fpg_sqltext_kind scan_dollar(const char *p, const char **end)
{
	if (is_digit(p[1])) {
		for (p++; is_digit(*p); p++)
			;
		*end = p;
		return FPG_SQLTEXT_PARAM;
	}
	size_t tag = dollar_tag_len(p);
	if (tag == 0) {
		*end = p + 1;
		return FPG_SQLTEXT_CHAR;
	}
	*end = dollar_end(p, tag);
	return FPG_SQLTEXT_STRING;
}

/* The token at p (not blank); *end is NULL when it stays open. */
static enum fpg_sqltext_kind scan_token(const char *p, const char **end)
{
	if (*p == '\'') {
		*end = string_end(p, false);
		return FPG_SQLTEXT_STRING;
	}
	if (*p == '"') {
		*end = quoted_end(p, '"', false);
		return FPG_SQLTEXT_IDENT;
	}
	if (*p == '$')
		return scan_dollar(p, end);
	if (is_ident_start(*p))
		return scan_word(p, end);
	if (is_digit(*p) || (*p == '.' && is_digit(p[1]))) {
		*end = number_end(p);
		return FPG_SQLTEXT_NUMBER;
	}
	if (is_op_char(*p)) {
		/* An operator ends where a comment starts: +-- is + then one. */
		const char *e = p + 1;
		while (is_op_char(*e) && !opens_comment(e))
			e++;
		*end = e;
		return FPG_SQLTEXT_OPERATOR;
	}
	*end = p + 1;
	return FPG_SQLTEXT_CHAR;
}

void fpg_sqltext_init(struct fpg_sqltext *s, const char *sql)
{
	s->p = sql;
}

enum fpg_sqltext_kind fpg_sqltext_next(struct fpg_sqltext *s,
				       struct fpg_sqltext_token *t)
{
	const char *p = s->p, *end = NULL;
	enum fpg_sqltext_kind kind;
	for (;;) {
		if (is_space(*p))
			p++;
		else if (p[0] == '-' && p[1] == '-')
			p = line_comment_end(p);
		else if (p[0] == '/' && p[1] == '*' &&
			 (end = block_comment_end(p)))
			p = end;
		else
			break;
	}
	if (*p == '\0') {
		kind = FPG_SQLTEXT_END;
		end = p;
	} else if (p[0] == '/' && p[1] == '*') {
		kind = FPG_SQLTEXT_UNTERMINATED;
		end = NULL;
	} else {
		kind = scan_token(p, &end);
	}
	if (!end) {
		kind = FPG_SQLTEXT_UNTERMINATED;
		end = p + strlen(p);
	}
	t->kind = kind;
	t->start = p;
	t->len = (size_t)(end - p);
	s->p = end; /* an open token runs to the NUL: END follows */
	return kind;
}

bool fpg_sqltext_is_char(const struct fpg_sqltext_token *t, char c)
{
	return t->kind == FPG_SQLTEXT_CHAR && t->start[0] == c;
}

bool fpg_sqltext_is_word(const struct fpg_sqltext_token *t, const char *kw)
{
	return t->kind == FPG_SQLTEXT_WORD && t->len == strlen(kw) &&
	       strncasecmp(t->start, kw, t->len) == 0;
}
