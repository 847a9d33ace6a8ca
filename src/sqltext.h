/*
 * SQL text split into tokens by PostgreSQL's lexical rules (the server's
 * scan.l), for the text checks that give friendly early errors: the
 * /query pre-check (params.c) and /copy's query= (copy.c). Whitespace and
 * comments ("--" up to \n or \r, nested slash-star comments) are skipped;
 * quoted strings, quoted identifiers and dollar quotes are one token each,
 * ending where PostgreSQL ends them. standard_conforming_strings is taken
 * as on, its default, so a backslash escapes only in E'' strings.
 *
 * Only where tokens start and end is exact; what a token means (keyword or
 * name, a valid number or "trailing junk") is left to PostgreSQL, which
 * may still refuse the text. No check built on this is a security
 * boundary: the server's own answers are (see docs/guarantees.md).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

enum fpg_sqltext_kind {
	FPG_SQLTEXT_END,	  /* no more tokens */
	FPG_SQLTEXT_WORD,	  /* a keyword or unquoted identifier */
	FPG_SQLTEXT_IDENT,	  /* "quoted" or U&"quoted" identifier */
	FPG_SQLTEXT_STRING,	  /* '', E'', U&'', B'', X'', N'', $tag$ */
	FPG_SQLTEXT_NUMBER,	  /* 1, 1.5, .5, 1e-3 */
	FPG_SQLTEXT_PARAM,	  /* $1 */
	FPG_SQLTEXT_OPERATOR,	  /* a run of operator characters: <=, +, ~ */
	FPG_SQLTEXT_CHAR,	  /* any other one byte: ( ) ; , . : [ ] $ */
	FPG_SQLTEXT_UNTERMINATED, /* a comment, string or quoted identifier
				     still open at the end of the text */
};

const char *fpg_sqltext_kind_to_str(enum fpg_sqltext_kind kind);

struct fpg_sqltext_token {
	enum fpg_sqltext_kind kind;
	const char *start; /* borrowed from the scanned text */
	size_t len;	   /* up to the end of the text when UNTERMINATED */
};

/* A position in NUL-terminated SQL text (borrowed, must outlive it). */
struct fpg_sqltext {
	const char *p;
};

void fpg_sqltext_init(struct fpg_sqltext *s, const char *sql);

/*
 * Skips whitespace and comments, fills *t with the next token and returns
 * its kind. Once it has returned END or UNTERMINATED it keeps returning
 * END. Never reads past the text's NUL.
 */
enum fpg_sqltext_kind fpg_sqltext_next(struct fpg_sqltext *s,
				       struct fpg_sqltext_token *t);

/* The token is the single character c: ( ) ; and the like. */
bool fpg_sqltext_is_char(const struct fpg_sqltext_token *t, char c);

/* The token is the unquoted word kw, compared without case (ASCII). */
bool fpg_sqltext_is_word(const struct fpg_sqltext_token *t, const char *kw);
