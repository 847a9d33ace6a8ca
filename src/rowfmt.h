/*
 * PostgreSQL result rows -> answer bytes, as JSON, NDJSON or CSV
 * (docs/api.md): the column header, each row, and the end. Values are
 * written by encode.c (to_json rules); nothing here allocates per row.
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
};

/* One result column as the formatter (and query.c) describes it. */
struct fpg_column {
	const char *name;
	uint32_t type;
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
 * nothing for CSV; a single-value answer only closes (null without rows).
 */
void fpg_rowfmt_put_end(struct fpg_rowfmt *f, struct fpg_buf *out,
			PGresult *res);

/*
 * Appends the end of an answer that failed after it began streaming
 * (res as for fpg_error_json). False for CSV, which has no place for an
 * error: the caller must cut the transfer short instead.
 */
bool fpg_rowfmt_put_error(struct fpg_rowfmt *f, struct fpg_buf *out,
			  const struct fpg_error *err, const PGresult *res);
