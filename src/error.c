#include "error.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void fpg_error_set(struct fpg_error *err, enum fpg_errcode code, int status,
		   const char *fmt, ...)
{
	if (!err)
		return;
	err->code = code;
	err->http_status = status;
	err->sqlstate[0] = '\0';
	err->reason = NULL;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
}

/* dst[0..size), filled as far as it goes and always terminated. */
struct sink {
	char *dst;
	size_t size, n;
};

static void sink_put(struct sink *k, const char *s, size_t n)
{
	for (size_t i = 0; i < n && k->n + 1 < k->size; i++)
		k->dst[k->n++] = s[i];
	k->dst[k->n] = '\0';
}

/*
 * At a key ending in "password" (password, sslpassword) followed by "="
 * (blanks allowed): the length up to the value, else 0.
 */
static size_t password_key(const char *p)
{
	if (strncasecmp(p, "password", 8) != 0)
		return 0;
	size_t n = 8;
	while (p[n] == ' ')
		n++;
	if (p[n] != '=')
		return 0;
	for (n++; p[n] == ' ';)
		n++;
	return n;
}

/*
 * The length of a conninfo or URI-query value: 'quoted' (a backslash
 * takes the next character) or up to a blank, a "&" or a quote.
 */
static size_t value_len(const char *p)
{
	size_t n = 0;
	if (p[n] == '\'') {
		for (n++; p[n] && p[n] != '\''; n++)
			if (p[n] == '\\' && p[n + 1])
				n++;
		return p[n] ? n + 1 : n;
	}
	while (p[n] && !strchr(" \t\r\n&\"'", p[n]))
		n++;
	return n;
}

/*
 * p just after a URI's "://": when its authority has "user:pw@", *user
 * gets the user's length and the password's is returned; else 0. The
 * last "@" counts, as a password may hold an unescaped one.
 */
static size_t uri_password(const char *p, size_t *user)
{
	size_t end = strcspn(p, "/?# \t\r\n\"'");
	size_t at = end;
	while (at > 0 && p[at - 1] != '@')
		at--;
	if (at == 0)
		return 0;
	const char *colon = memchr(p, ':', at - 1);
	if (!colon)
		return 0;
	*user = (size_t)(colon - p);
	return at - 1 - *user - 1;
}

void fpg_error_redact(char *dst, size_t size, const char *msg,
		      bool echoes_input)
{
	struct sink k = {dst, size, 0};
	const char *p = msg ? msg : "";
	dst[0] = '\0';
	while (*p) {
		size_t n, user;
		if (echoes_input && (strncmp(p, "\"=\"", 3) == 0 ||
				     strncmp(p, "\"]\"", 3) == 0)) {
			/* libpq's own words */
			sink_put(&k, p, 3);
			p += 3;
		} else if (echoes_input && *p == '"') {
			n = strcspn(p + 1, "\"");
			sink_put(&k, "\"***\"", p[1 + n] ? 5 : 4);
			p += 1 + n + (p[1 + n] ? 1 : 0);
		} else if ((n = password_key(p))) {
			sink_put(&k, p, n);
			sink_put(&k, "***", 3);
			p += n + value_len(p + n);
		} else if (strncmp(p, "://", 3) == 0 &&
			   (n = uri_password(p + 3, &user))) {
			sink_put(&k, p, 3 + user);
			sink_put(&k, ":***", 4);
			p += 3 + user + 1 + n;
		} else {
			sink_put(&k, p++, 1);
		}
	}
}

void fpg_error_tidy(char *dst, size_t size, const char *msg)
{
	char clean[1024];
	fpg_error_redact(clean, sizeof(clean), msg, false);
	size_t n = 0;
	bool blank = false;
	for (const char *p = clean; *p && n + 1 < size; p++) {
		if (*p == '\n' || *p == '\t' || *p == '\r' || *p == ' ') {
			blank = n > 0;
			continue;
		}
		if (blank && n + 2 < size)
			dst[n++] = ' ';
		blank = false;
		dst[n++] = *p;
	}
	dst[n] = '\0';
}

int fpg_error_status_for_sqlstate(const char *s)
{
	if (!s || strlen(s) != 5)
		return 500;
	/* no permission; a write in a read-only transaction */
	if (strcmp(s, "42501") == 0 || strcmp(s, "25006") == 0)
		return 403;
	if (strcmp(s, "57014") == 0)
		return 504;
	if (strcmp(s, "40001") == 0 || strcmp(s, "40P01") == 0)
		return 409;
	/* admin/crash shutdown, cannot connect now: the server is going away */
	if (strncmp(s, "57P0", 4) == 0)
		return 503;
	/* data exceptions, invalid statement names, syntax and access */
	if (strncmp(s, "22", 2) == 0 || strncmp(s, "26", 2) == 0 ||
	    strncmp(s, "42", 2) == 0)
		return 400;
	/* integrity violations; invalid transaction state (25P02: an
	 * earlier error aborted the transaction) */
	if (strncmp(s, "23", 2) == 0 || strncmp(s, "25", 2) == 0)
		return 409;
	if (strncmp(s, "28", 2) == 0)
		return 401;
	if (strncmp(s, "08", 2) == 0 || strncmp(s, "53", 2) == 0)
		return 503;
	return 500;
}

void fpg_error_from_pg(struct fpg_error *err, const PGresult *res)
{
	if (!err)
		return;
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	if (!msg)
		msg = PQresultErrorMessage(res);
	fpg_error_set(err, FPG_ERR_PG, fpg_error_status_for_sqlstate(state),
		      "%s", msg ? msg : "unknown PostgreSQL error");
	if (state)
		snprintf(err->sqlstate, sizeof(err->sqlstate), "%s", state);
}

static const char *default_code(const struct fpg_error *err)
{
	if (!err)
		return "internal_error";
	if (err->reason)
		return err->reason;
	switch (err->code) {
	case FPG_ERR_NOMEM:
		return "out_of_memory";
	case FPG_ERR_REQUEST:
		return "bad_request";
	case FPG_ERR_UNAVAILABLE:
		return "unavailable";
	case FPG_ERR_LIMIT:
		return "limit_exceeded";
	case FPG_ERR_CONFIG:
		return "config";
	case FPG_ERR_PG:
		return "pg_error";
	case FPG_ERR_SYSTEM:
	case FPG_ERR_NONE:
		break;
	}
	return "internal_error";
}

static void put_field(struct fpg_buf *out, const char *key, const char *val)
{
	fpg_buf_putc(out, ',');
	fpg_buf_json_str(out, key, strlen(key));
	fpg_buf_putc(out, ':');
	if (val)
		fpg_buf_json_str(out, val, strlen(val));
	else
		fpg_buf_puts(out, "null");
}

/* Optional diagnostic fields passed on when PostgreSQL sets them. */
static const struct {
	const char *key;
	int field;
} pg_fields[] = {
	{"where", PG_DIAG_CONTEXT},
	{"schema", PG_DIAG_SCHEMA_NAME},
	{"table", PG_DIAG_TABLE_NAME},
	{"column", PG_DIAG_COLUMN_NAME},
	{"constraint", PG_DIAG_CONSTRAINT_NAME},
	{"severity", PG_DIAG_SEVERITY_NONLOCALIZED},
};

static void put_start(struct fpg_buf *out, const char *code, const char *msg)
{
	fpg_buf_puts(out, "{\"code\":");
	fpg_buf_json_str(out, code, strlen(code));
	put_field(out, "message", msg);
}

/* An error without PostgreSQL's fields: those are null. */
static void put_plain_object(struct fpg_buf *out, const char *code,
			     const char *msg)
{
	put_start(out, code, msg);
	fpg_buf_puts(out, ",\"detail\":null,\"hint\":null,\"position\":null}");
}

void fpg_error_json_object(struct fpg_buf *out, const struct fpg_error *err,
			   const PGresult *res)
{
	const char *code = err && err->sqlstate[0] ? err->sqlstate
						   : default_code(err);
	const char *msg = err ? err->message : "internal error";
	if (res) {
		const char *s = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		const char *m = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
		if (s)
			code = s;
		if (m)
			msg = m;
	}
	if (!res) {
		put_plain_object(out, code, msg);
		return;
	}
	put_start(out, code, msg);
	put_field(out, "detail", PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL));
	put_field(out, "hint", PQresultErrorField(res, PG_DIAG_MESSAGE_HINT));
	const char *pos = PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION);
	fpg_buf_puts(out, ",\"position\":");
	fpg_buf_puts(out, pos ? pos : "null");
	for (size_t i = 0; i < sizeof(pg_fields) / sizeof(pg_fields[0]); i++) {
		const char *v = PQresultErrorField(res, pg_fields[i].field);
		if (v)
			put_field(out, pg_fields[i].key, v);
	}
	fpg_buf_putc(out, '}');
}

void fpg_error_json(struct fpg_buf *out, const struct fpg_error *err,
		    const PGresult *res)
{
	fpg_buf_puts(out, "{\"error\":");
	fpg_error_json_object(out, err, res);
	fpg_buf_puts(out, "}");
}

void fpg_error_json_code(struct fpg_buf *out, const char *code,
			 const char *msg)
{
	fpg_buf_puts(out, "{\"error\":");
	put_plain_object(out, code, msg);
	fpg_buf_putc(out, '}');
}

/* ---- Neon's /sql ---- */

/* The SQLSTATE standing for an error of the gateway's own, or NULL. */
static const char *neon_code(const struct fpg_error *err)
{
	if (err->sqlstate[0])
		return err->sqlstate;
	switch (err->http_status) {
	case 401:
		return err->reason && strcmp(err->reason, "unauthorized") != 0
			       ? "28000" /* a token: invalid, expired */
			       : "28P01";
	case 403:
		return "42501";
	case 413:
	case 507:
		return err->code == FPG_ERR_LIMIT ? "54000" : NULL;
	default:
		return NULL;
	}
}

/* node-postgres' DatabaseError fields after message and code. */
static const struct {
	const char *key;
	int field;
} neon_fields[] = {
	{"severity", PG_DIAG_SEVERITY},
	{"detail", PG_DIAG_MESSAGE_DETAIL},
	{"hint", PG_DIAG_MESSAGE_HINT},
	{"position", PG_DIAG_STATEMENT_POSITION},
	{"internalPosition", PG_DIAG_INTERNAL_POSITION},
	{"internalQuery", PG_DIAG_INTERNAL_QUERY},
	{"where", PG_DIAG_CONTEXT},
	{"schema", PG_DIAG_SCHEMA_NAME},
	{"table", PG_DIAG_TABLE_NAME},
	{"column", PG_DIAG_COLUMN_NAME},
	{"dataType", PG_DIAG_DATATYPE_NAME},
	{"constraint", PG_DIAG_CONSTRAINT_NAME},
	{"file", PG_DIAG_SOURCE_FILE},
	{"line", PG_DIAG_SOURCE_LINE},
	{"routine", PG_DIAG_SOURCE_FUNCTION},
};

void fpg_error_neon_json(struct fpg_buf *out, const struct fpg_error *err,
			 const PGresult *res)
{
	const char *msg = err ? err->message : "internal error";
	const char *code = err ? neon_code(err) : NULL;
	const char *m = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
			    : NULL;
	const char *s = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	fpg_buf_puts(out, "{\"message\":");
	fpg_buf_json_str(out, m ? m : msg, strlen(m ? m : msg));
	if (s || code)
		put_field(out, "code", s ? s : code);
	if (res) {
		for (size_t i = 0; i < sizeof(neon_fields) / sizeof(*neon_fields);
		     i++) {
			const char *v = PQresultErrorField(res, neon_fields[i].field);
			if (v)
				put_field(out, neon_fields[i].key, v);
		}
	} else if (s || code) {
		put_field(out, "severity", "ERROR");
	}
	if (!res)
		put_field(out, "reason", default_code(err));
	fpg_buf_putc(out, '}');
}

int fpg_error_neon_status(const struct fpg_error *err, const PGresult *res)
{
	int status = err && err->http_status ? err->http_status : 500;
	if (res || (err && neon_code(err)))
		return 400;
	switch (status) {
	case 400:
	case 404:
	case 409:
	case 410:
	case 413:
		return 400;
	default:
		return status;
	}
}

void fpg_assert_fail(const char *cond, const char *file, int line,
		     const char *func)
{
	fprintf(stderr, "fasterpg: %s:%d: %s: invariant failed: %s\n", file,
		line, func, cond);
	abort();
}
