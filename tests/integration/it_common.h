/*
 * Helpers shared by the integration programs that embed the server, next
 * to support/it.h (main(), the servers, the quiet check). Header-only:
 * the checks use Check's macros, which report the line of the caller.
 *
 * The server runs in-process on its own threads, which do not survive
 * fork(): those programs run their cases without forking, so each case
 * must leave the server usable for the next one and use its own table
 * names (it_table() in a schema_per_case program).
 */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <check.h>
#include <curl/curl.h>
#include <jansson.h>
#include <libpq-fe.h>

#include "fasterpg.h"
#include "http.h"
#include "it.h"
#include "pg_harness.h"

#define IT_UNUSED __attribute__((unused))

/* A random lower-case suffix for table names (tests share one cluster). */
IT_UNUSED static void it_suffix(char *out, size_t n)
{
	static unsigned counter;
	snprintf(out, n, "%x_%u", (unsigned)rand(), ++counter);
}

/* ---- HTTP on a caller-owned (keep-alive) curl handle ---- */

IT_UNUSED static size_t it_buf_write(char *p, size_t size, size_t nmemb, void *ud)
{
	size_t n = size * nmemb;
	return it_buf_append(ud, p, n) ? n : 0;
}

/* This process's resident set size in KiB, or -1. */
IT_UNUSED static long it_rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		return -1;
	char line[256];
	long v = -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "VmRSS:", 6) == 0) {
			v = strtol(line + 6, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

IT_UNUSED static size_t it_hdr_write(char *p, size_t size, size_t nmemb, void *ud)
{
	struct it_buf *b = ud;
	if (size * nmemb >= 5 && strncmp(p, "HTTP/", 5) == 0)
		b->len = 0; /* only the last header block */
	return it_buf_write(p, size, nmemb, ud);
}

/*
 * One request on handle c (created by the caller with curl_easy_init and
 * reused, so the TCP connection is kept alive between calls). body NULL
 * sends none; without a Content-Type in headers, application/json is
 * sent with a body or a POST. timeout_s 0 is 60 s. *new_conns (optional)
 * gets how many connections curl had to open. The result is freed with
 * http_resp_free().
 */
IT_UNUSED static struct http_resp *
it_request(CURL *c, unsigned port, const char *method, const char *path,
	   const char *body, size_t body_len, const char *const *headers,
	   long timeout_s, long *new_conns)
{
	struct http_opts o = {.handle = c,
			      .body_len = body_len,
			      .timeout_ms = timeout_s * 1000,
			      .new_conns = new_conns};
	struct http_resp *r =
	    http_request_opts(port, method, path, body, headers, &o);
	if (!r)
		abort();
	return r;
}

/* POST /query with a JSON body on handle c. */
IT_UNUSED static struct http_resp *it_query_on(CURL *c, unsigned port,
					       const char *body)
{
	return it_request(c, port, "POST", "/query", body, strlen(body), NULL,
			  0, NULL);
}

/* POST /query with a JSON body on a fresh connection. */
IT_UNUSED static struct http_resp *it_query(unsigned port, const char *body)
{
	return http_post_json(port, "/query", body);
}

/* ---- checks ---- */

/* Prints the response when a check about it fails. */
#define it_assert_resp(r, cond)                                              \
	ck_assert_msg((cond), "%s failed: status %ld curl %d body: %.2000s",   \
		      #cond, (r)->status, (r)->curl_code, (r)->body)

IT_UNUSED static bool it_is_null_or_string(const json_t *v)
{
	return v && (json_is_null(v) || json_is_string(v));
}

/*
 * The error contract: status, a JSON body
 * {"error":{"code","message","detail","hint","position"}} (code and
 * message strings, detail/hint string or null, position null or a
 * number) and an X-Request-Id header. code NULL accepts any code.
 */
IT_UNUSED static void it_assert_error(const struct http_resp *r, long status,
				      const char *code)
{
	ck_assert_msg(r->curl_code == 0, "curl error %d", r->curl_code);
	ck_assert_msg(r->status == status, "status %ld, want %ld; body: %.1000s",
		      r->status, status, r->body);
	ck_assert_msg(r->json && json_is_object(r->json),
		      "error body is not JSON: %.1000s", r->body);
	json_t *e = json_object_get(r->json, "error");
	ck_assert_msg(json_is_object(e), "no error object: %.1000s", r->body);
	json_t *c = json_object_get(e, "code");
	ck_assert_msg(json_is_string(c), "error.code: %.1000s", r->body);
	ck_assert_msg(json_is_string(json_object_get(e, "message")) &&
			  json_string_length(json_object_get(e, "message")) > 0,
		      "error.message: %.1000s", r->body);
	ck_assert_msg(it_is_null_or_string(json_object_get(e, "detail")),
		      "error.detail: %.1000s", r->body);
	ck_assert_msg(it_is_null_or_string(json_object_get(e, "hint")),
		      "error.hint: %.1000s", r->body);
	json_t *pos = json_object_get(e, "position");
	ck_assert_msg(pos && (json_is_null(pos) || json_is_integer(pos)),
		      "error.position: %.1000s", r->body);
	if (code)
		ck_assert_msg(strcmp(json_string_value(c), code) == 0,
			      "error.code %s, want %s; body: %.1000s",
			      json_string_value(c), code, r->body);
	char *id = http_header(r, "X-Request-Id");
	ck_assert_msg(id && *id, "no X-Request-Id on an error response");
	free(id);
	char *ct = http_header(r, "Content-Type");
	ck_assert_msg(ct && strncasecmp(ct, "application/json", 16) == 0,
		      "error Content-Type: %s", ct ? ct : "(none)");
	free(ct);
}

/* ---- PostgreSQL as the oracle ---- */

/*
 * Runs sql with text parameters on a fresh connection and returns the
 * result (caller PQclears); aborts the test on error.
 */
IT_UNUSED static PGresult *it_pg(const char *sql, int n,
				 const char *const *params)
{
	PGconn *c = PQconnectdb(pgh_conninfo());
	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "connect: %s",
		      PQerrorMessage(c));
	PGresult *res = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(res);
	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
		char msg[1024];
		snprintf(msg, sizeof(msg), "%s", PQresultErrorMessage(res));
		PQclear(res);
		PQfinish(c);
		ck_abort_msg("%.300s -> %s", sql, msg);
	}
	PQfinish(c);
	return res;
}

/*
 * PostgreSQL's own JSON parser says whether text is valid JSON: it keeps
 * numbers of any size, which jansson cannot. *why gets the error.
 */
IT_UNUSED static bool it_json_valid(const char *text, char *why, size_t n)
{
	const char *p[1] = {text};
	PGconn *c = PQconnectdb(pgh_conninfo());
	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "connect: %s",
		      PQerrorMessage(c));
	PGresult *res =
	    PQexecParams(c, "SELECT $1::json IS NOT NULL", 1, NULL, p, NULL,
			 NULL, 0);
	bool ok = PQresultStatus(res) == PGRES_TUPLES_OK;
	if (!ok && why)
		snprintf(why, n, "%s", PQresultErrorMessage(res));
	PQclear(res);
	PQfinish(c);
	return ok;
}
