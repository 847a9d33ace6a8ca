/*
 * PostgreSQL result rows -> answer bytes, as JSON, NDJSON or CSV
 * (docs/api.md), or as Neon's /sql answer (docs/neon.md): the column
 * header, each row, and the end. Values are written by encode.c (to_json
 * rules, or their text with FPG_ENC_TEXT); nothing here allocates per
 * row.
 *
 * JSON with an "expect" other than all answers one value: {"row": ...}
 * or {"value": ...} from the first row; later rows are not written.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "buf.h"
#include "error.h"
#include "params.h"
#include "typecache.h"

enum fpg_rowfmt_format {
	FPG_ROWFMT_JSON,
	FPG_ROWFMT_NDJSON,
	FPG_ROWFMT_CSV,
	FPG_ROWFMT_NEON, /* {"fields","rows","command","rowCount",
			    "rowAsArray"}, node-postgres' field names */
};

/* One result column as the formatter (and query.c) describes it. */
struct fpg_column {
	const char *name;
	uint32_t type;
	/* What PostgreSQL's row description says besides (PQftable,
	 * PQftablecol, PQfsize, PQfmod): the /sql answer's fields. */
	uint32_t table;	/* 0: not a table's column */
	int table_col;	/* 0: not a table's column */
	int size;	/* -1: variable */
	int mod;	/* -1: none */
};

struct fpg_rowfmt {
	/* Set by fpg_rowfmt_init; read-only after. */
	enum fpg_rowfmt_format format;
	enum fpg_rows_shape shape;
	enum fpg_expect expect;		/* FPG_EXPECT_ALL unless JSON */
	unsigned enc_flags;		/* FPG_ENC_* */
	const struct fpg_typecache *tc; /* borrowed, outlives the rowfmt */

	/* Private: set by fpg_rowfmt_put_header. */
	int ncols;
	uint32_t *types;	/* column type OIDs; NULL until a header */
	struct fpg_buf keys;	/* "name": per column, for object rows */
	size_t *key_end;	/* end offset of each key in keys */
	uint64_t written;	/* rows written since the header */
};

/* tc is borrowed and must outlive f. */
void fpg_rowfmt_init(struct fpg_rowfmt *f, enum fpg_rowfmt_format format,
		     enum fpg_rows_shape shape, enum fpg_expect expect,
		     unsigned enc_flags, const struct fpg_typecache *tc);
void fpg_rowfmt_deinit(struct fpg_rowfmt *f);

/* The MIME type of the format's answer. */
const char *fpg_rowfmt_content_type(enum fpg_rowfmt_format format);

/* True for the formats that send rows as they come (NDJSON, CSV): the
 * others are one JSON document, whose start may be held back. */
bool fpg_rowfmt_streams(enum fpg_rowfmt_format format);

/* True when the answer is one value from the first row (JSON "expect"). */
bool fpg_rowfmt_single(const struct fpg_rowfmt *f);

/*
 * Appends the start of the answer for these columns (cols borrowed for
 * the call) and starts counting rows anew: a second header replaces the
 * first, the caller taking back what out got since. False when out of
 * memory (out->failed is set then); rows are not written after that.
 */
bool fpg_rowfmt_put_header(struct fpg_rowfmt *f, struct fpg_buf *out, int n,
			   const struct fpg_column *cols) FPG_MUST_CHECK;

/* Appends row number row of res (borrowed), columns as in the header. */
void fpg_rowfmt_put_row(struct fpg_rowfmt *f, struct fpg_buf *out,
			const PGresult *res, int row);

/*
 * Appends the end of a whole answer. res is the final result (command
 * tag, row count; borrowed): {"command","row_count"} for JSON and NDJSON,
 * "command" (its first word, as node-postgres has it), "rowCount" and
 * "rowAsArray" for Neon, nothing for CSV; a single-value answer only
 * closes (null without rows). Every JSON answer ends with a newline.
 */
void fpg_rowfmt_put_end(struct fpg_rowfmt *f, struct fpg_buf *out,
			PGresult *res);

/*
 * Appends the end of an answer that failed after it began streaming
 * (res as for fpg_error_json). False for CSV, which has no place for an
 * error, and for Neon, whose clients would not look for one: the caller
 * must cut the transfer short instead.
 */
bool fpg_rowfmt_put_error(struct fpg_rowfmt *f, struct fpg_buf *out,
			  const struct fpg_error *err, const PGresult *res);
