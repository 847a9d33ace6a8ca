/*
 * struct fpg_error helpers and the PostgreSQL SQLSTATE -> HTTP status map
 * (docs/api.md, "Errors").
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "buf.h"
#include "fasterpg.h"

/*
 * FPG_ASSERT(cond) checks an internal invariant (a state transition, a
 * count that must match a list) in builds with -Dcassert=true (CI's
 * sanitizer run): when cond is false it prints where and aborts.
 * Elsewhere it compiles to nothing and cond is not evaluated. Never for
 * input checks: those return errors.
 */
#ifdef FPG_CASSERT
#define FPG_ASSERT(cond)                                                   \
	((cond) ? (void)0                                                  \
		: fpg_assert_fail(#cond, __FILE__, __LINE__, __func__))
#else
#define FPG_ASSERT(cond) ((void)(0 && (cond)))
#endif

void fpg_assert_fail(const char *cond, const char *file, int line,
		     const char *func) __attribute__((noreturn));

/* Fills err (may be NULL) with code, HTTP status and a formatted message. */
void fpg_error_set(struct fpg_error *err, enum fpg_errcode code, int status,
		   const char *fmt, ...) FPG_PRINTF(4, 5);

/*
 * Copies msg (NULL: "") into dst (size >= 1, always terminated) with
 * every password it may carry replaced by ***: the value of a conninfo
 * or URI-query key ending in "password" (password=..., 'quoted' ones
 * too, sslpassword=...) and the password of a URI's user:pw@. With
 * echoes_input -- a libpq message about a conninfo that did not parse,
 * which may quote any piece of it -- every "quoted" piece but libpq's
 * own "=" and "]" is *** too.
 */
void fpg_error_redact(char *dst, size_t size, const char *msg,
		      bool echoes_input);

/*
 * Copies a libpq message into dst on one line: runs of newlines and tabs
 * become one space, trailing blanks go, passwords are redacted
 * (fpg_error_redact).
 */
void fpg_error_tidy(char *dst, size_t size, const char *msg);

/* Fills err from a failed PGresult (res borrowed). */
void fpg_error_from_pg(struct fpg_error *err, const PGresult *res);

/* The HTTP status for a SQLSTATE (5 characters; NULL means 500). */
int fpg_error_status_for_sqlstate(const char *sqlstate);

/*
 * Appends {"error":{...}} for err to out. When res is a failed PGresult
 * (borrowed, may be NULL), its fields (code, message, detail, hint,
 * position, ...) are used instead of err's message.
 */
void fpg_error_json(struct fpg_buf *out, const struct fpg_error *err,
		    const PGresult *res);

/*
 * Appends {"error":{...}} for an error of our own named code with message
 * msg (any length; both borrowed for the call), as fpg_error_json writes
 * it without a PGresult.
 */
void fpg_error_json_code(struct fpg_buf *out, const char *code,
			 const char *msg);

/*
 * Appends only the inner error object ({"code":...,"message":...}), for
 * errors reported inside an already started response.
 */
void fpg_error_json_object(struct fpg_buf *out, const struct fpg_error *err,
			   const PGresult *res);

/*
 * Appends the error object of Neon's POST /sql (docs/neon.md), as its
 * clients read it: "message"; "code", the SQLSTATE (PostgreSQL's, err's,
 * or one that stands for the gateway's own refusal: 28P01 or 28000 for a
 * login, 42501 for what the role may not do, 54000 for result limits;
 * none for a malformed request); the fields of node-postgres'
 * DatabaseError that res (a failed PGresult, borrowed, may be NULL) has,
 * as strings; and "reason", fasterpg's own code.
 */
void fpg_error_neon_json(struct fpg_buf *out, const struct fpg_error *err,
			 const PGresult *res);

/*
 * The HTTP status of that answer: 400, the status whose body Neon's
 * clients read, for whatever the client's SQL, request or credentials
 * caused (any error with a SQLSTATE, 4xx of ours); err's own for the
 * server's state (429, 503, 5xx without a SQLSTATE) and for what no
 * Neon client sends (405, 415, 421, ...).
 */
int fpg_error_neon_status(const struct fpg_error *err, const PGresult *res);
