/*
 * PostgreSQL text-format values -> JSON, following to_json() exactly.
 *
 * The connection must use DateStyle=ISO (the pool sets it), because
 * date/time values are converted from their ISO text form.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "typecache.h"

/* Flags for fpg_encode_value. */
#define FPG_ENC_BIG_STRING 1u /* int8 and numeric as JSON strings */
#define FPG_ENC_TEXT 2u	      /* every value as the JSON string of its
				 text form (Neon's raw text output) */

/*
 * Appends the JSON form of one non-NULL value of type oid, given as its
 * text form val[0..len), to out. The type (and every type it refers to)
 * must be known to tc, or the value is written as a string. Never fails:
 * a value that does not parse as its type claims is written as a string.
 */
void fpg_encode_value(struct fpg_buf *out, const struct fpg_typecache *tc,
		      uint32_t oid, const char *val, size_t len,
		      unsigned flags);

/*
 * Appends the type name of oid as a JSON string ("int4", "_text"); an
 * unknown type is written as its number in a string.
 */
void fpg_encode_type_name(struct fpg_buf *out, const struct fpg_typecache *tc,
			  uint32_t oid);
