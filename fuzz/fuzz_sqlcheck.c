/*
 * libFuzzer target: the statement pre-checks of /query and /tx/{token}/query
 * (fpg_statement_check_autocommit, fpg_statement_check_in_tx in
 * src/params.c) on arbitrary NUL-terminated text.
 *
 * Besides memory errors (the text is copied into a buffer of its exact
 * size, so a scan past the NUL is seen by ASan), each check is compared
 * with a reference written here from PostgreSQL 15's lexer (scan.l) and
 * grammar: when the reference says that PostgreSQL would read a refused
 * statement (its first keyword after whitespace, comments and opening
 * parentheses), the check must refuse it. The reference only decides
 * "refused"; a check that refuses more (text PostgreSQL would reject as a
 * syntax error anyway) is not reported.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "error.h"
#include "params.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond, sql)                                                       \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr,                                        \
				"%s:%d: check failed: %s\nsql: ", __FILE__,    \
				__LINE__, #cond);                              \
			dump(sql);                                             \
			abort();                                               \
		}                                                              \
	} while (0)

static void dump(const char *s)
{
	for (; *s; s++)
		fprintf(stderr, *s >= 0x20 && *s < 0x7f ? "%c" : "\\x%02x",
			(unsigned char)*s);
	fputc('\n', stderr);
}

/* scan.l: space [ \t\n\r\f] (PostgreSQL 16 adds \v). */
static bool is_pg_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

static bool is_ident_start(char c)
{
	unsigned char u = (unsigned char)c;
	return (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || u == '_' ||
	       u >= 0x80;
}

static bool is_ident_cont(char c)
{
	return is_ident_start(c) || (c >= '0' && c <= '9') || c == '$';
}

/*
 * Skips whitespace, comments ("--" up to \n or \r; nested slash-star
 * comments) and '('. NULL for an unterminated comment, which PostgreSQL
 * refuses.
 */
static const char *skip_ignored(const char *p)
{
	for (;;) {
		if (is_pg_space(*p) || *p == '(') {
			p++;
		} else if (p[0] == '-' && p[1] == '-') {
			while (*p && *p != '\n' && *p != '\r')
				p++;
		} else if (p[0] == '/' && p[1] == '*') {
			int depth = 0;
			do {
				if (!*p)
					return NULL;
				if (p[0] == '/' && p[1] == '*')
					depth++, p += 2;
				else if (p[0] == '*' && p[1] == '/')
					depth--, p += 2;
				else
					p++;
			} while (depth > 0);
		} else {
			return p;
		}
	}
}

/* The identifier or keyword at *p (length 0 if none); *p moves past it. */
static size_t next_word(const char **p, const char **word)
{
	const char *s = *p ? skip_ignored(*p) : NULL;
	size_t n = 0;
	*word = s;
	if (!s || !is_ident_start(*s))
		return 0;
	while (is_ident_cont(s[n]))
		n++;
	*p = s + n;
	return n;
}

static bool word_is(const char *w, size_t n, const char *kw)
{
	return n == strlen(kw) && strncasecmp(w, kw, n) == 0;
}

static bool word_in(const char *w, size_t n, const char *const *list)
{
	for (; *list; list++)
		if (word_is(w, n, *list))
			return true;
	return false;
}

/* Nothing but the end of the statement follows. */
static bool at_end(const char *p)
{
	p = skip_ignored(p);
	return p && (*p == '\0' || *p == ';');
}

static bool refused_in_autocommit(const char *sql)
{
	static const char *const words[] = {
	    "BEGIN",   "START",	    "COMMIT",  "END",	   "ROLLBACK",
	    "ABORT",   "SAVEPOINT", "RELEASE", "PREPARE",  "SET",
	    "RESET",   "DISCARD",   "LISTEN",  "UNLISTEN", "DEALLOCATE",
	    "DECLARE", "FETCH",	    "MOVE",    "CLOSE",	   "LOCK",
	    "COPY",    NULL};
	const char *p = sql, *w;
	size_t n = next_word(&p, &w);
	return word_in(w, n, words);
}

/*
 * ROLLBACK [WORK | TRANSACTION] [AND [NO] CHAIN] ends the transaction,
 * ROLLBACK [WORK | TRANSACTION] TO ... does not, ROLLBACK PREPARED is 2PC;
 * anything else after ROLLBACK is a syntax error.
 */
static bool rollback_ends_tx(const char *p)
{
	const char *w;
	if (at_end(p))
		return true;
	size_t n = next_word(&p, &w);
	if (word_is(w, n, "WORK") || word_is(w, n, "TRANSACTION")) {
		if (at_end(p))
			return true;
		n = next_word(&p, &w);
	}
	return word_is(w, n, "AND") || word_is(w, n, "PREPARED");
}

static bool refused_in_tx(const char *sql)
{
	static const char *const words[] = {"BEGIN", "START", "COMMIT", "END",
					    "ABORT", "COPY",  NULL};
	const char *p = sql, *w;
	size_t n = next_word(&p, &w);
	if (word_in(w, n, words))
		return true;
	if (word_is(w, n, "ROLLBACK"))
		return rollback_ends_tx(p);
	if (word_is(w, n, "PREPARE")) {
		n = next_word(&p, &w);
		return word_is(w, n, "TRANSACTION");
	}
	return false;
}

static void check_error(bool ok, const struct fpg_error *err, const char *sql)
{
	if (ok)
		return;
	CHECK(err->http_status == 400, sql);
	CHECK(memchr(err->message, '\0', sizeof(err->message)) != NULL, sql);
	CHECK(err->message[0] != '\0', sql);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *sql = malloc(size + 1);
	if (!sql)
		return 0;
	memcpy(sql, data, size);
	sql[size] = '\0';

	struct fpg_error err;
	memset(&err, 0, sizeof(err));
	bool ok = fpg_statement_check_autocommit(sql, &err);
	check_error(ok, &err, sql);
	CHECK(ok == fpg_statement_check_autocommit(sql, NULL), sql);
	CHECK(!(ok && refused_in_autocommit(sql)), sql);

	memset(&err, 0, sizeof(err));
	ok = fpg_statement_check_in_tx(sql, &err);
	check_error(ok, &err, sql);
	CHECK(ok == fpg_statement_check_in_tx(sql, NULL), sql);
	CHECK(!(ok && refused_in_tx(sql)), sql);

	free(sql);
	return 0;
}
