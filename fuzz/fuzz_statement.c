/*
 * libFuzzer target: the request body parser (src/params.c) on arbitrary
 * bytes: fpg_statement_parse() as POST /query calls it, then
 * fpg_statement_list_parse() as POST /tx calls it for a batch
 * ("statements", at most 1000), then fpg_statement_parse_neon() as POST
 * /sql calls it. The body is not NUL-terminated, as a request body is
 * not.
 *
 * For each statement parsed, the fields are checked against jansson's own
 * reading of the body: sql is the "sql" string, every field is a known
 * one, nparams is the length of "params", and each parameter is the text
 * PostgreSQL must get for its JSON value: NULL for null, the string
 * itself, "true"/"false", the client's number text (same value as
 * jansson's), an object's JSON text (same tree), and for an array a
 * PostgreSQL array literal that reads back as the same elements.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "error.h"
#include "params.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #cond);                              \
			abort();                                               \
		}                                                              \
	} while (0)

/* ---- parameters read back ---- */

/*
 * Both sides read as the parser reads bodies (fpg_json_load): a number
 * beyond a double's range is a 0 in the tree, its text in the parameter.
 */
static bool same_number(const char *text, size_t n, const json_t *v)
{
	json_error_t jerr;
	json_t *t = fpg_json_load(text, n,
				  JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL,
				  &jerr, NULL);
	bool same = t && json_is_number(t) &&
		    json_number_value(t) == json_number_value(v);
	json_decref(t);
	return same;
}

static bool same_json(const char *text, size_t n, const json_t *v)
{
	json_error_t jerr;
	json_t *t = fpg_json_load(text, n,
				  JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL,
				  &jerr, NULL);
	bool same = t && json_equal(t, v);
	json_decref(t);
	return same;
}

/* A "..." element with backslash escapes; *p moves past it. */
static bool quoted_element(const char **p, char **s, size_t *n)
{
	const char *q = *p;
	if (*q++ != '"')
		return false;
	char *out = malloc(strlen(q) + 1);
	CHECK(out != NULL);
	size_t len = 0;
	while (*q && *q != '"') {
		if (*q == '\\')
			q++;
		if (!*q)
			break;
		out[len++] = *q++;
	}
	if (*q != '"') {
		free(out);
		return false;
	}
	*p = q + 1;
	*s = out;
	*n = len;
	return true;
}

static bool array_literal(const char **p, const json_t *arr);

static bool word(const char **p, const char *w)
{
	size_t n = strlen(w);
	if (strncmp(*p, w, n) != 0)
		return false;
	*p += n;
	return true;
}

static bool array_element(const char **p, const json_t *v)
{
	char *s = NULL;
	size_t n = 0;
	bool ok;
	switch (json_typeof(v)) {
	case JSON_NULL:
		return word(p, "NULL");
	case JSON_TRUE:
		return word(p, "true");
	case JSON_FALSE:
		return word(p, "false");
	case JSON_INTEGER:
	case JSON_REAL:
		n = strcspn(*p, ",}");
		ok = same_number(*p, n, v);
		*p += n;
		return ok;
	case JSON_STRING:
		if (!quoted_element(p, &s, &n))
			return false;
		ok = n == json_string_length(v) &&
		     memcmp(s, json_string_value(v), n) == 0;
		free(s);
		return ok;
	case JSON_OBJECT:
		if (!quoted_element(p, &s, &n))
			return false;
		ok = same_json(s, n, v);
		free(s);
		return ok;
	case JSON_ARRAY:
		return array_literal(p, v);
	}
	return false;
}

static bool array_literal(const char **p, const json_t *arr)
{
	if (*(*p)++ != '{')
		return false;
	for (size_t i = 0; i < json_array_size(arr); i++) {
		if (i && *(*p)++ != ',')
			return false;
		if (!array_element(p, json_array_get(arr, i)))
			return false;
	}
	return *(*p)++ == '}';
}

static void check_param(const json_t *v, const char *text)
{
	switch (json_typeof(v)) {
	case JSON_NULL:
		CHECK(text == NULL);
		return;
	case JSON_STRING:
		CHECK(text != NULL);
		CHECK(strlen(text) == json_string_length(v));
		CHECK(strcmp(text, json_string_value(v)) == 0);
		return;
	case JSON_TRUE:
	case JSON_FALSE:
		CHECK(text != NULL);
		CHECK(strcmp(text, json_is_true(v) ? "true" : "false") == 0);
		return;
	case JSON_INTEGER:
	case JSON_REAL:
		CHECK(text != NULL);
		CHECK(same_number(text, strlen(text), v));
		return;
	case JSON_OBJECT:
		CHECK(text != NULL);
		CHECK(same_json(text, strlen(text), v));
		return;
	case JSON_ARRAY: {
		CHECK(text != NULL);
		const char *p = text;
		CHECK(array_literal(&p, v));
		CHECK(*p == '\0');
		return;
	}
	}
	CHECK(!"unknown JSON type");
}

/* ---- statements ---- */

static void check_statement(const struct fpg_statement *st)
{
	static const char *const fields[] = {
	    "sql",	   "params",	 "rows", "expect",
	    "big_numbers", "timeout_ms", NULL};
	CHECK(json_is_object(st->root));
	const char *key;
	const json_t *v;
	json_object_foreach(st->root, key, v)
	{
		int i = 0;
		while (fields[i] && strcmp(fields[i], key) != 0)
			i++;
		CHECK(fields[i] != NULL);
	}
	const json_t *sql = json_object_get(st->root, "sql");
	CHECK(st->sql != NULL && st->sql == json_string_value(sql));
	CHECK(st->sql[strspn(st->sql, " \t\n\r\f\v")] != '\0');
	CHECK(st->rows == FPG_ROWS_OBJECT || st->rows == FPG_ROWS_ARRAY);
	CHECK(st->expect >= FPG_EXPECT_ALL && st->expect <= FPG_EXPECT_SCALAR);
	const json_t *ms = json_object_get(st->root, "timeout_ms");
	CHECK(ms ? st->timeout_ms == json_number_value(ms)
		 : st->timeout_ms == 0);
	CHECK(st->timeout_ms <= 86400000);

	const json_t *params = json_object_get(st->root, "params");
	if (!params) {
		CHECK(st->nparams == 0);
		return;
	}
	CHECK(json_is_array(params));
	CHECK(st->nparams >= 0 &&
	      (size_t)st->nparams == json_array_size(params));
	CHECK(st->params != NULL);
	for (int i = 0; i < st->nparams; i++)
		check_param(json_array_get(params, (size_t)i), st->params[i]);
}

/* Neon's statement object: "query" is the SQL, "arrayMode" the shape
 * (else the default), other fields ignored. */
static void check_neon_statement(const struct fpg_statement *st,
				 bool array_default)
{
	CHECK(json_is_object(st->root));
	const json_t *sql = json_object_get(st->root, "query");
	CHECK(st->sql != NULL && st->sql == json_string_value(sql));
	CHECK(st->sql[strspn(st->sql, " \t\n\r\f\v")] != '\0');
	const json_t *am = json_object_get(st->root, "arrayMode");
	bool array = am ? json_is_true(am) : array_default;
	CHECK(st->rows == (array ? FPG_ROWS_ARRAY : FPG_ROWS_OBJECT));
	CHECK(st->expect == FPG_EXPECT_ALL && st->timeout_ms == 0);
	const json_t *params = json_object_get(st->root, "params");
	CHECK(params ? (size_t)st->nparams == json_array_size(params)
		     : st->nparams == 0);
	for (int i = 0; i < st->nparams; i++)
		check_param(json_array_get(params, (size_t)i), st->params[i]);
}

static void check_error(const struct fpg_error *err)
{
	CHECK(err->http_status == 400 || err->http_status == 503);
	CHECK(memchr(err->message, '\0', sizeof(err->message)) != NULL);
	CHECK(err->message[0] != '\0');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body = (const char *)data;
	struct fpg_statement st;
	struct fpg_error err;
	memset(&err, 0, sizeof(err));
	if (fpg_statement_parse(&st, body, size, &err))
		check_statement(&st);
	else
		check_error(&err);
	fpg_statement_deinit(&st);
	CHECK(st.root == NULL && st.params == NULL && st.nparams == 0);

	struct fpg_statement *list = NULL;
	unsigned n = 0;
	memset(&err, 0, sizeof(err));
	if (fpg_statement_list_parse(body, size, "statements", 1000, &list, &n,
				     &err)) {
		CHECK(n >= 1 && n <= 1000 && list != NULL);
		for (unsigned i = 0; i < n; i++) {
			check_statement(&list[i]);
			CHECK(list[i].expect == FPG_EXPECT_ALL);
		}
	} else {
		check_error(&err);
		CHECK(list != NULL || n == 0);
	}
	fpg_statement_list_free(list, n);

	bool array_default = size & 1, batch = false;
	list = NULL;
	n = 0;
	memset(&err, 0, sizeof(err));
	if (fpg_statement_parse_neon(body, size, array_default, 1000, &list,
				     &n, &batch, &err)) {
		CHECK(n >= 1 && n <= 1000 && list != NULL && (batch || n == 1));
		for (unsigned i = 0; i < n; i++)
			check_neon_statement(&list[i], array_default);
	} else {
		check_error(&err);
	}
	fpg_statement_list_free(list, n);
	return 0;
}
