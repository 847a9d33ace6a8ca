/*
 * The COPY statement behind /copy, built by the server from the request's
 * query arguments: identifiers are quoted, options come from a fixed
 * list, and the data always goes through STDIN/STDOUT, so no argument
 * can reach SQL unquoted or name a file or a program.
 */
#pragma once

#include <stdbool.h>

#include "buf.h"
#include "fasterpg.h"

/* Looks up a query argument by name; NULL when absent. */
typedef const char *(*fpg_copy_arg_fn)(void *ctx, const char *name);

/*
 * Writes to sql the COPY for the arguments: table=T (schema.table allowed)
 * with columns=a,b, or query=SELECT... (out only); format=csv|text|binary
 * (default csv), header=true|false, delimiter=C, null=S. in: FROM STDIN,
 * else TO STDOUT. *content_type gets the media type of the data. Fills
 * err with a 400 on a bad argument.
 */
bool fpg_copy_build(fpg_copy_arg_fn arg, void *ctx, bool in,
		    struct fpg_buf *sql, const char **content_type,
		    struct fpg_error *err) FPG_MUST_CHECK;
