/*
 * The JSON body of /query (and later /tx/{token}/query) -> a statement
 * with its parameters as PostgreSQL text values.
 *
 * Numbers keep the exact text the client sent (no float round trip), so
 * the raw body is scanned next to jansson's tree for them.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "fasterpg.h"

enum fpg_rows_shape {
	FPG_ROWS_OBJECT, /* each row {"col": value, ...} */
	FPG_ROWS_ARRAY,	 /* each row [value, ...] */
};

enum fpg_expect {
	FPG_EXPECT_ALL,	   /* {"columns", "rows", "command", "row_count"} */
	FPG_EXPECT_ONE,	   /* {"row"}; 404 for none, 409 for several */
	FPG_EXPECT_FIRST,  /* {"row"}: the first row or null */
	FPG_EXPECT_SCALAR, /* {"value"}: first column of the first row */
};

struct fpg_statement {
	json_t *root;	     /* owned */
	const char *sql;     /* borrowed from root */
	int nparams;
	char **params;	     /* owned, nparams entries; NULL = SQL NULL */
	enum fpg_rows_shape rows;
	enum fpg_expect expect;
	bool big_numbers_string;
	unsigned timeout_ms; /* 0 = not given */
	unsigned huge_numbers; /* numbers jansson could not hold */
	bool text_values;    /* every value as its text, a JSON string
				(Neon's raw text output); set by the
				caller */
};

/*
 * json_loadb() for request bodies: numbers beyond what a double holds
 * (more than ~308 digits, 1e999) are kept out of jansson's sight, which
 * would refuse them, as a 0 padded with blanks: the raw text, which
 * parameters are taken from, keeps every digit. *replaced (optional)
 * counts them. Returns a new reference or NULL with jerr filled.
 */
json_t *fpg_json_load(const char *body, size_t len, size_t flags,
		      json_error_t *jerr, unsigned *replaced);

/*
 * Parses and validates a statement body. On failure fills err with a 400
 * (or 503 when out of memory) and a message naming the field.
 */
bool fpg_statement_parse(struct fpg_statement *st, const char *body,
			 size_t len, struct fpg_error *err) FPG_MUST_CHECK;

/*
 * The same for a named query: its SQL is sql (borrowed, must outlive st)
 * and the body (which may be empty) brings the rest ("params", "expect",
 * ...) but no "sql".
 */
bool fpg_statement_parse_named(struct fpg_statement *st, const char *sql,
			       const char *body, size_t len,
			       struct fpg_error *err) FPG_MUST_CHECK;

void fpg_statement_deinit(struct fpg_statement *st);

/*
 * Parses the member `key` of the JSON object body (an array of statement
 * objects, each with the /query fields) into *list (caller frees with
 * fpg_statement_list_free). At least one and at most max statements.
 */
bool fpg_statement_list_parse(const char *body, size_t len, const char *key,
			      unsigned max, struct fpg_statement **list,
			      unsigned *n, struct fpg_error *err) FPG_MUST_CHECK;

void fpg_statement_list_free(struct fpg_statement *list, unsigned n);

/*
 * Neon's POST /sql body: one statement {"query", "params", "arrayMode"}
 * or a batch {"queries": [such objects]} (*batch set; 1 to max of them),
 * into *list either way (caller frees with fpg_statement_list_free).
 * Rows are arrays where "arrayMode" says so, else where array_mode does
 * (the Neon-Array-Mode header). Unknown fields are ignored, as Neon's
 * own server does. On failure err is a 400 (503 out of memory) naming
 * the field.
 */
bool fpg_statement_parse_neon(const char *body, size_t len, bool array_mode,
			      unsigned max, struct fpg_statement **list,
			      unsigned *n, bool *batch,
			      struct fpg_error *err) FPG_MUST_CHECK;

/*
 * Rejects statements that would change the state of a shared connection
 * (transaction control, SET, LISTEN, PREPARE, ...) or need another
 * endpoint (COPY): /query runs on pooled autocommit connections.
 */
bool fpg_statement_check_autocommit(const char *sql,
				    struct fpg_error *err) FPG_MUST_CHECK;

/*
 * Inside a transaction session: everything but ending or starting a
 * transaction (the session's /commit and /rollback do that; SAVEPOINT,
 * RELEASE and ROLLBACK TO are fine) and COPY.
 */
bool fpg_statement_check_in_tx(const char *sql,
			       struct fpg_error *err) FPG_MUST_CHECK;
