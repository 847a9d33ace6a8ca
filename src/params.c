#include "params.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"
#include "sqltext.h"

#define MAX_PARAMS 65535

/* ---- loading ---- */

static bool overflows_double(const char *s, size_t n)
{
	char *t = strndup(s, n);
	if (!t)
		return true; /* the 0 that replaces it is then refused below */
	errno = 0;
	double v = strtod(t, NULL);
	bool over = errno == ERANGE && (v == HUGE_VAL || v == -HUGE_VAL);
	free(t);
	return over;
}

json_t *fpg_json_load(const char *body, size_t len, size_t flags,
		      json_error_t *jerr, unsigned *replaced)
{
	char *copy = NULL;
	unsigned n = 0;
	for (size_t i = 0; i < len; i++) {
		if (body[i] == '"') {
			for (i++; i < len && body[i] != '"'; i++)
				if (body[i] == '\\')
					i++;
			continue;
		}
		if (body[i] != '-' && !(body[i] >= '0' && body[i] <= '9'))
			continue;
		size_t e = i;
		bool exp = false;
		while (e < len && strchr("0123456789+-.eE", body[e])) {
			exp |= body[e] == 'e' || body[e] == 'E';
			e++;
		}
		/* Only long numbers or exponents can be out of range. */
		if ((e - i > 300 || exp) && overflows_double(body + i, e - i)) {
			if (!copy && !(copy = malloc(len ? len : 1))) {
				jerr->line = jerr->column = 0;
				snprintf(jerr->text, sizeof(jerr->text),
					 "out of memory");
				return NULL;
			}
			if (n == 0)
				memcpy(copy, body, len);
			copy[i] = '0';
			memset(copy + i + 1, ' ', e - i - 1);
			n++;
		}
		i = e - 1;
	}
	json_t *root = json_loadb(copy ? copy : body, len, flags, jerr);
	free(copy);
	if (replaced)
		*replaced = n;
	return root;
}

/* ---- raw JSON scanning (the text is known to be valid JSON) ---- */

static const char *skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* Returns the end of the value starting at p. */
static const char *skip_value(const char *p, const char *end)
{
	if (p >= end)
		return end;
	if (*p == '"') {
		for (p++; p < end && *p != '"'; p++)
			if (*p == '\\')
				p++;
		return p < end ? p + 1 : end;
	}
	if (*p == '{' || *p == '[') {
		int depth = 0;
		for (; p < end; p++) {
			if (*p == '"') {
				p = skip_value(p, end) - 1;
			} else if (*p == '{' || *p == '[') {
				depth++;
			} else if (*p == '}' || *p == ']') {
				if (--depth == 0)
					return p + 1;
			}
		}
		return end;
	}
	while (p < end && !strchr(",]} \t\r\n", *p))
		p++;
	return p;
}

/* Finds the raw text of the top-level member "key" (unescaped keys only). */
static bool find_member(const char *p, const char *end, const char *key,
			const char **vs, const char **ve)
{
	size_t klen = strlen(key);
	p = skip_ws(p, end);
	if (p >= end || *p != '{')
		return false;
	p++;
	for (;;) {
		p = skip_ws(p, end);
		if (p >= end || *p != '"')
			return false;
		const char *ks = p + 1, *ke = skip_value(p, end) - 1;
		p = skip_ws(ke + 1, end);
		if (p >= end || *p != ':')
			return false;
		p = skip_ws(p + 1, end);
		const char *e = skip_value(p, end);
		if ((size_t)(ke - ks) == klen && memcmp(ks, key, klen) == 0) {
			*vs = p;
			*ve = e;
			return true;
		}
		p = skip_ws(e, end);
		if (p >= end || *p != ',')
			return false;
		p++;
	}
}

/* Walks the elements of a raw array: call first with *p at '['. */
static bool next_element(const char **p, const char *end, const char **s,
			 const char **e)
{
	const char *q = skip_ws(*p + 1, end); /* past '[' or ',' */
	if (q >= end || *q == ']')
		return false;
	*s = q;
	*e = skip_value(q, end);
	*p = skip_ws(*e, end);
	return true;
}

/* ---- JSON value -> PostgreSQL text ---- */

static void put_array_literal(struct fpg_buf *out, const json_t *arr,
			      const char *rs, const char *re);

static void put_quoted(struct fpg_buf *out, const char *s, size_t n)
{
	fpg_buf_putc(out, '"');
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '"' || s[i] == '\\')
			fpg_buf_putc(out, '\\');
		fpg_buf_putc(out, s[i]);
	}
	fpg_buf_putc(out, '"');
}

/* One element inside an array literal. rs..re is its raw text or NULL. */
static void put_array_element(struct fpg_buf *out, const json_t *v,
			      const char *rs, const char *re)
{
	switch (json_typeof(v)) {
	case JSON_NULL:
		fpg_buf_puts(out, "NULL");
		break;
	case JSON_TRUE:
		fpg_buf_puts(out, "true");
		break;
	case JSON_FALSE:
		fpg_buf_puts(out, "false");
		break;
	case JSON_STRING:
		put_quoted(out, json_string_value(v), json_string_length(v));
		break;
	case JSON_INTEGER:
	case JSON_REAL:
		if (rs) {
			fpg_buf_append(out, rs, (size_t)(re - rs));
		} else {
			char *t = json_dumps(v, JSON_ENCODE_ANY);
			if (t)
				fpg_buf_puts(out, t);
			free(t);
		}
		break;
	case JSON_OBJECT:
		if (rs) {
			put_quoted(out, rs, (size_t)(re - rs));
		} else {
			char *t = json_dumps(v, JSON_COMPACT);
			if (t)
				put_quoted(out, t, strlen(t));
			free(t);
		}
		break;
	case JSON_ARRAY:
		put_array_literal(out, v, rs, re);
		break;
	}
}

static void put_array_literal(struct fpg_buf *out, const json_t *arr,
			      const char *rs, const char *re)
{
	const char *p = rs, *s = NULL, *e = NULL;
	fpg_buf_putc(out, '{');
	for (size_t i = 0; i < json_array_size(arr); i++) {
		bool raw = rs && next_element(&p, re, &s, &e);
		if (i)
			fpg_buf_putc(out, ',');
		put_array_element(out, json_array_get(arr, i), raw ? s : NULL,
				  raw ? e : NULL);
	}
	fpg_buf_putc(out, '}');
}

/* Converts one parameter; *out is NULL for SQL NULL. */
static bool param_text(const json_t *v, const char *rs, const char *re,
		       char **out)
{
	struct fpg_buf b;
	fpg_buf_init(&b);
	*out = NULL;
	switch (json_typeof(v)) {
	case JSON_NULL:
		return true;
	case JSON_STRING:
		fpg_buf_append(&b, json_string_value(v), json_string_length(v));
		break;
	case JSON_OBJECT:
	case JSON_INTEGER:
	case JSON_REAL:
	case JSON_TRUE:
	case JSON_FALSE:
		/* The client's own text: numbers keep every digit. */
		if (rs) {
			fpg_buf_append(&b, rs, (size_t)(re - rs));
		} else {
			char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
			if (!t)
				return false;
			fpg_buf_puts(&b, t);
			free(t);
		}
		break;
	case JSON_ARRAY:
		put_array_literal(&b, v, rs, re);
		break;
	}
	fpg_buf_putc(&b, '\0');
	if (b.failed) {
		fpg_buf_deinit(&b);
		return false;
	}
	*out = b.data;
	return true;
}

static bool parse_params(struct fpg_statement *st, const json_t *params,
			 const char *body, size_t len, struct fpg_error *err)
{
	size_t n = json_array_size(params);
	if (n > MAX_PARAMS) {
		fpg_error_set(err, FPG_ERR_REQUEST, 400,
			      "params has %zu values; at most %d are allowed",
			      n, MAX_PARAMS);
		return false;
	}
	st->params = calloc(n ? n : 1, sizeof(char *));
	if (!st->params)
		goto nomem;
	st->nparams = (int)n;
	const char *rs = NULL, *re = NULL, *p = NULL, *s = NULL, *e = NULL;
	bool raw = find_member(body, body + len, "params", &rs, &re);
	if (!raw && st->huge_numbers) {
		/* jansson holds a 0 for them: only the raw text has them. */
		fpg_error_set(err, FPG_ERR_REQUEST, 400,
			      "numbers this large need \"params\" written "
			      "without escapes in its name");
		return false;
	}
	p = rs;
	for (size_t i = 0; i < n; i++) {
		bool have = raw && next_element(&p, re, &s, &e);
		raw = have;
		if (!param_text(json_array_get(params, i), have ? s : NULL,
				have ? e : NULL, &st->params[i]))
			goto nomem;
	}
	return true;
nomem:
	fpg_error_set(err, FPG_ERR_NOMEM, 503, "out of memory");
	return false;
}

/* ---- fields ---- */

static bool string_field(const json_t *v, const char *name,
			 const char *const *allowed, int *index,
			 struct fpg_error *err)
{
	if (json_is_string(v)) {
		for (int i = 0; allowed[i]; i++) {
			if (strcmp(json_string_value(v), allowed[i]) == 0) {
				*index = i;
				return true;
			}
		}
	}
	char list[128] = "";
	for (int i = 0; allowed[i]; i++) {
		strcat(list, i ? ", \"" : "\"");
		strcat(list, allowed[i]);
		strcat(list, "\"");
	}
	fpg_error_set(err, FPG_ERR_REQUEST, 400, "\"%s\" must be one of %s",
		      name, list);
	return false;
}

static bool parse_field(struct fpg_statement *st, const char *key,
			const json_t *v, struct fpg_error *err)
{
	static const char *const rows[] = {"object", "array", NULL};
	static const char *const expect[] = {"one", "first", "scalar", NULL};
	static const char *const big[] = {"number", "string", NULL};
	int i;
	if (strcmp(key, "sql") == 0) {
		if (!json_is_string(v)) {
			fpg_error_set(err, FPG_ERR_REQUEST, 400,
				      "\"sql\" must be a string");
			return false;
		}
		st->sql = json_string_value(v);
		return true;
	}
	if (strcmp(key, "params") == 0) {
		if (!json_is_array(v)) {
			fpg_error_set(err, FPG_ERR_REQUEST, 400,
				      "\"params\" must be an array");
			return false;
		}
		return true; /* converted once all fields are known good */
	}
	if (strcmp(key, "rows") == 0) {
		if (!string_field(v, key, rows, &i, err))
			return false;
		st->rows = (enum fpg_rows_shape)i;
		return true;
	}
	if (strcmp(key, "expect") == 0) {
		if (!string_field(v, key, expect, &i, err))
			return false;
		st->expect = (enum fpg_expect)(i + 1);
		return true;
	}
	if (strcmp(key, "big_numbers") == 0) {
		if (!string_field(v, key, big, &i, err))
			return false;
		st->big_numbers_string = i == 1;
		return true;
	}
	if (strcmp(key, "timeout_ms") == 0) {
		double ms = json_number_value(v);
		if (!json_is_number(v) || ms < 1 || ms > 86400000 ||
		    ms != (double)(unsigned)ms) {
			fpg_error_set(err, FPG_ERR_REQUEST, 400,
				      "\"timeout_ms\" must be an integer from "
				      "1 to 86400000");
			return false;
		}
		st->timeout_ms = (unsigned)ms;
		return true;
	}
	fpg_error_set(err, FPG_ERR_REQUEST, 400,
		      "unknown field \"%.64s\" (known: sql, params, rows, "
		      "expect, big_numbers, timeout_ms)",
		      key);
	return false;
}

static bool blank(const char *s)
{
	for (; *s; s++)
		if (!isspace((unsigned char)*s))
			return false;
	return true;
}

/* Whose body a statement is: /query's ("sql", ...) or Neon's ("query",
 * "params", "arrayMode"; rows as arrays when array_mode says so). */
struct syntax {
	bool neon;
	bool array_mode;
};

static const struct syntax ours = {false, false};

/*
 * A field of Neon's statement object. Others are ignored, as Neon's own
 * server does: its clients may add some.
 */
static bool parse_field_neon(struct fpg_statement *st, const char *key,
			     const json_t *v, struct fpg_error *err)
{
	if (strcmp(key, "query") == 0 || strcmp(key, "params") == 0) {
		bool ok = key[0] == 'q' ? json_is_string(v) : json_is_array(v);
		if (!ok) {
			fpg_error_set(err, FPG_ERR_REQUEST, 400,
				      "\"%s\" must be %s", key,
				      key[0] == 'q' ? "a string" : "an array");
			return false;
		}
		if (key[0] == 'q')
			st->sql = json_string_value(v);
		return true;
	}
	if (strcmp(key, "arrayMode") == 0) {
		if (!json_is_boolean(v)) {
			fpg_error_set(err, FPG_ERR_REQUEST, 400,
				      "\"arrayMode\" must be true or false");
			return false;
		}
		st->rows = json_is_true(v) ? FPG_ROWS_ARRAY : FPG_ROWS_OBJECT;
	}
	return true;
}

/* The body as a JSON object (st->root). */
static bool load_object(struct fpg_statement *st, const char *body,
			size_t len, const char *sql_key,
			struct fpg_error *err)
{
	json_error_t jerr;
	if (len == 0) {
		fpg_error_set(err, FPG_ERR_REQUEST, 400,
			      "the request body is empty; expected a JSON "
			      "object with \"%s\"",
			      sql_key);
		return false;
	}
	/* jansson skips NUL bytes between tokens, the raw scan for numbers
	 * does not: it would give parameters the text of others. */
	if (memchr(body, '\0', len)) {
		fpg_error_set(err, FPG_ERR_REQUEST, 400,
			      "invalid JSON: the body holds a NUL byte");
		return false;
	}
	/* Integers as reals: jansson refuses integers beyond int64, and
	 * numbers are taken from the raw text anyway. */
	st->root = fpg_json_load(body, len,
				 JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL,
				 &jerr, &st->huge_numbers);
	if (!st->root) {
		fpg_error_set(err, FPG_ERR_REQUEST, 400,
			      "invalid JSON at line %d, column %d: %s",
			      jerr.line, jerr.column, jerr.text);
		return false;
	}
	if (!json_is_object(st->root)) {
		fpg_error_set(err, FPG_ERR_REQUEST, 400,
			      "the body must be a JSON object");
		return false;
	}
	return true;
}

/* The statement from its loaded object (st->root, whose text is body);
 * named as for parse_body. */
static bool fill(struct fpg_statement *st, const char *body, size_t len,
		 const char *named, const struct syntax *sx,
		 struct fpg_error *err)
{
	const char *sql_key = sx->neon ? "query" : "sql";
	const char *key;
	json_t *v;
	st->rows = sx->array_mode ? FPG_ROWS_ARRAY : FPG_ROWS_OBJECT;
	json_object_foreach(st->root, key, v) {
		if (!(sx->neon ? parse_field_neon(st, key, v, err)
			       : parse_field(st, key, v, err)))
			return false;
	}
	if (named && st->sql) {
		fpg_error_set(err, FPG_ERR_REQUEST, 400,
			      "a named query brings its own SQL: send no "
			      "\"sql\"");
		return false;
	}
	if (named)
		st->sql = named;
	if (!st->sql) {
		fpg_error_set(err, FPG_ERR_REQUEST, 400, "\"%s\" is missing",
			      sql_key);
		return false;
	}
	if (blank(st->sql)) {
		fpg_error_set(err, FPG_ERR_REQUEST, 400, "\"%s\" is empty",
			      sql_key);
		return false;
	}
	json_t *params = json_object_get(st->root, "params");
	return !params || parse_params(st, params, body, len, err);
}

/* The body of a statement; named is the SQL of a named query (the body
 * then must not bring its own), or NULL. */
static bool parse_body(struct fpg_statement *st, const char *body,
		       size_t len, const char *named, const struct syntax *sx,
		       struct fpg_error *err)
{
	memset(st, 0, sizeof(*st));
	if (len == 0 && named) {
		st->sql = named;
		return true;
	}
	return load_object(st, body, len, sx->neon ? "query" : "sql", err) &&
	       fill(st, body, len, named, sx, err);
}

bool fpg_statement_parse(struct fpg_statement *st, const char *body,
			 size_t len, struct fpg_error *err)
{
	return parse_body(st, body, len, NULL, &ours, err);
}

bool fpg_statement_parse_named(struct fpg_statement *st, const char *sql,
			       const char *body, size_t len,
			       struct fpg_error *err)
{
	return parse_body(st, body, len, sql, &ours, err);
}

void fpg_statement_deinit(struct fpg_statement *st)
{
	for (int i = 0; st->params && i < st->nparams; i++)
		free(st->params[i]);
	free(st->params);
	json_decref(st->root);
	memset(st, 0, sizeof(*st));
}

static bool list_parse(const char *body, size_t len, const char *key,
		       unsigned max, const struct syntax *sx,
		       struct fpg_statement **list, unsigned *n,
		       struct fpg_error *err)
{
	const char *rs, *re, *p, *s, *e;
	*list = NULL;
	*n = 0;
	/* rs == re: the body ends right after the key's colon. */
	if (!find_member(body, body + len, key, &rs, &re) || rs == re ||
	    *rs != '[') {
		fpg_error_set(err, FPG_ERR_REQUEST, 400,
			      "\"%s\" must be an array of statements", key);
		return false;
	}
	unsigned count = 0;
	for (p = rs; next_element(&p, re, &s, &e);)
		count++;
	if (count == 0 || count > max) {
		fpg_error_set(err, FPG_ERR_REQUEST, 400,
			      "\"%s\" must hold 1 to %u statements", key, max);
		return false;
	}
	*list = calloc(count, sizeof(**list));
	if (!*list) {
		fpg_error_set(err, FPG_ERR_NOMEM, 503, "out of memory");
		return false;
	}
	p = rs;
	for (unsigned i = 0; i < count && next_element(&p, re, &s, &e); i++) {
		*n = i + 1;
		if (!parse_body(&(*list)[i], s, (size_t)(e - s), NULL, sx,
				err)) {
			size_t m = strlen(err->message);
			snprintf(err->message + m, sizeof(err->message) - m,
				 " (statement %u)", i);
			return false;
		}
		if ((*list)[i].expect != FPG_EXPECT_ALL) {
			fpg_error_set(err, FPG_ERR_REQUEST, 400,
				      "\"expect\" is not supported in a batch "
				      "(statement %u)",
				      i);
			return false;
		}
	}
	return true;
}

bool fpg_statement_list_parse(const char *body, size_t len, const char *key,
			      unsigned max, struct fpg_statement **list,
			      unsigned *n, struct fpg_error *err)
{
	return list_parse(body, len, key, max, &ours, list, n, err);
}

bool fpg_statement_parse_neon(const char *body, size_t len, bool array_mode,
			      unsigned max, struct fpg_statement **list,
			      unsigned *n, bool *batch, struct fpg_error *err)
{
	const struct syntax sx = {true, array_mode};
	struct fpg_statement one;
	memset(&one, 0, sizeof(one));
	*list = NULL;
	*n = 0;
	*batch = false;
	if (!load_object(&one, body, len, "query", err))
		goto fail;
	if (json_object_get(one.root, "queries")) {
		fpg_statement_deinit(&one);
		*batch = true;
		return list_parse(body, len, "queries", max, &sx, list, n, err);
	}
	if (!fill(&one, body, len, NULL, &sx, err))
		goto fail;
	if (!(*list = malloc(sizeof(**list)))) {
		fpg_error_set(err, FPG_ERR_NOMEM, 503, "out of memory");
		goto fail;
	}
	**list = one;
	*n = 1;
	return true;
fail:
	fpg_statement_deinit(&one);
	return false;
}

void fpg_statement_list_free(struct fpg_statement *list, unsigned n)
{
	for (unsigned i = 0; list && i < n; i++)
		fpg_statement_deinit(&list[i]);
	free(list);
}

/* ---- autocommit check ---- */

/*
 * The next word of the text, past opening parentheses (and semicolons,
 * when asked: empty statements before the first word). Only for friendly
 * early errors: what a statement does is PostgreSQL's to say (the pool
 * checks what it did, see fpg_conn_push_op).
 */
static void next_word(struct fpg_sqltext *s, bool semicolons,
		      struct fpg_sqltext_token *t)
{
	while (fpg_sqltext_next(s, t) == FPG_SQLTEXT_CHAR &&
	       (fpg_sqltext_is_char(t, '(') ||
		(semicolons && fpg_sqltext_is_char(t, ';'))))
		;
}

/* The index of the token's word in the NULL-ended list, or -1. */
static int word_index(const struct fpg_sqltext_token *t,
		      const char *const *words)
{
	for (int i = 0; words[i]; i++)
		if (fpg_sqltext_is_word(t, words[i]))
			return i;
	return -1;
}

bool fpg_statement_check_autocommit(const char *sql, struct fpg_error *err)
{
	static const char *const tx_words[] = {
		"BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT",
		"SAVEPOINT", "RELEASE", "PREPARE", NULL};
	static const char *const session_words[] = {
		"SET", "RESET", "DISCARD", "LISTEN", "UNLISTEN", "DEALLOCATE",
		"DECLARE", "FETCH", "MOVE", "CLOSE", "LOCK", NULL};
	struct fpg_sqltext s;
	struct fpg_sqltext_token t;
	fpg_sqltext_init(&s, sql);
	next_word(&s, true, &t);
	int i = word_index(&t, tx_words);
	if (i >= 0) {
		fpg_error_set(err, FPG_ERR_REQUEST, 400,
			      "%s is not allowed in /query, whose "
			      "statements each commit on their own",
			      tx_words[i]);
		return false;
	}
	i = word_index(&t, session_words);
	if (i >= 0) {
		fpg_error_set(err, FPG_ERR_REQUEST, 400,
			      "%s is not allowed in /query: it would "
			      "change the state of a shared "
			      "connection",
			      session_words[i]);
		return false;
	}
	if (fpg_sqltext_is_word(&t, "COPY")) {
		fpg_error_set(err, FPG_ERR_REQUEST, 400,
			      "COPY is not supported by /query");
		return false;
	}
	return true;
}

/* ROLLBACK [WORK | TRANSACTION] TO [SAVEPOINT] x stays inside it. */
static bool rollback_stays(struct fpg_sqltext *s)
{
	struct fpg_sqltext_token t;
	next_word(s, false, &t);
	if (fpg_sqltext_is_word(&t, "WORK") ||
	    fpg_sqltext_is_word(&t, "TRANSACTION"))
		next_word(s, false, &t);
	return fpg_sqltext_is_word(&t, "TO");
}

/* PREPARE name AS ... is a statement, PREPARE TRANSACTION is 2PC. */
static bool prepare_stays(struct fpg_sqltext *s)
{
	struct fpg_sqltext_token t;
	next_word(s, false, &t);
	return !fpg_sqltext_is_word(&t, "TRANSACTION");
}

bool fpg_statement_check_in_tx(const char *sql, struct fpg_error *err)
{
	static const char *const words[] = {"BEGIN", "START",  "COMMIT",
					    "END",   "ABORT",  "ROLLBACK",
					    "PREPARE", "COPY", NULL};
	struct fpg_sqltext s;
	struct fpg_sqltext_token t;
	fpg_sqltext_init(&s, sql);
	next_word(&s, true, &t);
	int i = word_index(&t, words);
	if (i < 0 || (fpg_sqltext_is_word(&t, "ROLLBACK") && rollback_stays(&s)) ||
	    (fpg_sqltext_is_word(&t, "PREPARE") && prepare_stays(&s)))
		return true;
	if (fpg_sqltext_is_word(&t, "COPY"))
		fpg_error_set(err, FPG_ERR_REQUEST, 400,
			      "COPY is not supported here");
	else
		fpg_error_set(err, FPG_ERR_REQUEST, 400,
			      "%s is not allowed inside a transaction session; "
			      "use /tx/{token}/commit or /rollback",
			      words[i]);
	return false;
}
