/*
 * The COPY statement behind /copy, built by the server from the request's
 * query arguments: identifiers are quoted, literals are escape strings
 * with every quote and backslash doubled, options come from a fixed list,
 * and the data always goes through STDIN/STDOUT, so no argument can reach
 * SQL unquoted or name a file or a program. A query= text is taken as it
 * is: the caller must have PostgreSQL parse it alone first (one statement
 * returning rows) before running the COPY built around it.
 */
#pragma once

#include <stdbool.h>

#include "buf.h"
#include "fasterpg.h"

/* Looks up a query argument by name; NULL when absent. */
typedef const char *(*fpg_copy_arg_fn)(void *ctx, const char *name);

/*
 * Writes to sql the COPY for the arguments: table=T or schema.T (a part
 * in double quotes, "" for a quote, may hold a dot) with columns=a,b (a
 * name in double quotes may hold a comma), or query=SELECT... (out only,
 * written between newlines so that a trailing line comment cannot reach
 * the server's suffix); format=csv|text|binary (default csv),
 * header=true|false, delimiter=C, null=S. in: FROM STDIN, else TO STDOUT.
 * *content_type gets the media type of the data. Fills err with a 400 on
 * a bad argument (for query=, only when it is plainly not one statement).
 */
bool fpg_copy_build(fpg_copy_arg_fn arg, void *ctx, bool in,
		    struct fpg_buf *sql, const char **content_type,
		    struct fpg_error *err) FPG_MUST_CHECK;
