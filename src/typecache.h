/*
 * Type descriptions needed to encode PostgreSQL text values as JSON.
 *
 * Built-in types (OID < 16384) come from a static table. Everything else
 * (enums, domains, composite types, arrays of them, ranges, ...) is loaded
 * from pg_type/pg_attribute with fpg_typecache_lookup_sql and added with
 * fpg_typecache_load(). One cache per worker: it is not thread-safe and
 * needs no lock.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "fasterpg.h"

enum fpg_type_kind {
	FPG_TYPE_STRING,      /* any other type: its text form as a string */
	FPG_TYPE_NUMBER,      /* int2/int4/int8/oid/float/numeric: a number
				 when the text is a valid JSON number, else a
				 string (NaN, Infinity) */
	FPG_TYPE_BOOL,	      /* t/f -> true/false */
	FPG_TYPE_JSON,	      /* json, jsonb: text embedded as is */
	FPG_TYPE_DATE,	      /* to_json()'s date format */
	FPG_TYPE_TIMESTAMP,   /* to_json()'s ISO 8601 timestamp format */
	FPG_TYPE_TIMESTAMPTZ, /* same, with the offset as +HH:MM */
	FPG_TYPE_ARRAY,	      /* a JSON array of elem's values */
	FPG_TYPE_COMPOSITE,   /* a JSON object of attrs */
	FPG_TYPE_VECTOR,      /* int2vector, oidvector: space-separated
				 elements without braces, a JSON array of
				 elem's values */
};

/* "string", "number", ... for logs. */
const char *fpg_type_kind_to_str(enum fpg_type_kind kind);

struct fpg_type_attr {
	char *name;    /* owned by the cache */
	uint32_t type; /* attribute type OID */
};

struct fpg_type {
	uint32_t oid;
	enum fpg_type_kind kind;
	const char *name; /* pg_type.typname ("int4", "_text", "mood") */
	bool big;	  /* int8 or numeric: a string with big_numbers */
	uint32_t elem;	  /* ARRAY, VECTOR: element type OID (0: unknown,
			     elements as strings) */
	char delim;	  /* ARRAY: element delimiter (',' or ';' for box) */
	int nattrs;	  /* COMPOSITE: live attributes, in order */
	struct fpg_type_attr *attrs;
};

struct fpg_typecache;

/* Creates an empty cache (built-ins need no loading). Caller owns. */
struct fpg_typecache *fpg_typecache_new(void);

/* Frees the cache. NULL is a no-op. */
void fpg_typecache_free(struct fpg_typecache *tc);

/*
 * The description of oid: borrowed, valid until the cache is freed.
 * NULL when the type is neither built in nor loaded.
 */
const struct fpg_type *fpg_typecache_get(const struct fpg_typecache *tc,
					 uint32_t oid);

/*
 * Writes to out[] (at most outcap) the OIDs among oids[0..n) that must be
 * looked up before their values can be encoded, without duplicates.
 * Returns how many were written.
 */
size_t fpg_typecache_missing(const struct fpg_typecache *tc,
			     const uint32_t *oids, size_t n, uint32_t *out,
			     size_t outcap);

/*
 * Catalog query that describes the types in $1 (an oid[] literal such as
 * "{16385,16390}") and, recursively, every type they refer to (element,
 * base and attribute types). Its result is what fpg_typecache_load takes.
 */
extern const char fpg_typecache_lookup_sql[];

/*
 * Adds the types described by a result of fpg_typecache_lookup_sql.
 * Requested OIDs that the catalog does not know are recorded as strings so
 * that they are never looked up again. res is borrowed.
 */
bool fpg_typecache_load(struct fpg_typecache *tc, const PGresult *res,
			const uint32_t *requested, size_t nrequested,
			struct fpg_error *err) FPG_MUST_CHECK;

/*
 * Replaces the loaded descriptions of the types in res (a result of
 * fpg_typecache_lookup_sql) with what the catalog says now: ALTER TYPE
 * renames, adds and drops attributes of a composite type under the same
 * OID. Descriptions handed out before are freed: callers hold none across
 * a call.
 */
bool fpg_typecache_refresh(struct fpg_typecache *tc, const PGresult *res,
			   struct fpg_error *err) FPG_MUST_CHECK;

/* The values of oid hold a composite (directly or in an array). */
bool fpg_typecache_has_composite(const struct fpg_typecache *tc,
				 uint32_t oid);

/*
 * Adds one description, deep-copied: t and its strings stay the caller's.
 * An OID the cache already knows is left as it is. For tests, and for
 * callers that know a type without asking the catalog. A domain is added
 * as a copy of its base type's description under the domain's OID.
 * Fails only on OOM.
 */
bool fpg_typecache_add(struct fpg_typecache *tc, const struct fpg_type *t,
		       struct fpg_error *err) FPG_MUST_CHECK;
