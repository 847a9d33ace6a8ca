#include "rowfmt.h"

#include <stdlib.h>
#include <string.h>

#include "encode.h"

static const char *const content_types[] = {
	[FPG_ROWFMT_JSON] = "application/json",
	[FPG_ROWFMT_NDJSON] = "application/x-ndjson",
	[FPG_ROWFMT_CSV] = "text/csv; charset=utf-8",
	[FPG_ROWFMT_NEON] = "application/json",
};

void fpg_rowfmt_init(struct fpg_rowfmt *f, enum fpg_rowfmt_format format,
		     enum fpg_rows_shape shape, enum fpg_expect expect,
		     unsigned enc_flags, const struct fpg_typecache *tc)
{
	memset(f, 0, sizeof(*f));
	f->format = format;
	f->shape = shape;
	f->expect = expect;
	f->enc_flags = enc_flags;
	f->tc = tc;
	fpg_buf_init(&f->keys);
}

void fpg_rowfmt_deinit(struct fpg_rowfmt *f)
{
	fpg_buf_deinit(&f->keys);
	free(f->types);
	free(f->key_end);
	f->types = NULL;
	f->key_end = NULL;
}

const char *fpg_rowfmt_content_type(enum fpg_rowfmt_format format)
{
	return content_types[format];
}

bool fpg_rowfmt_streams(enum fpg_rowfmt_format format)
{
	return format == FPG_ROWFMT_NDJSON || format == FPG_ROWFMT_CSV;
}

bool fpg_rowfmt_single(const struct fpg_rowfmt *f)
{
	return f->format == FPG_ROWFMT_JSON && f->expect != FPG_EXPECT_ALL;
}

/* ---- the header ---- */

static void put_columns_json(const struct fpg_rowfmt *f, struct fpg_buf *out,
			     int n, const struct fpg_column *cols)
{
	fpg_buf_puts(out, "{\"columns\":[");
	for (int i = 0; i < n; i++) {
		fpg_buf_puts(out, i ? ",{\"name\":" : "{\"name\":");
		fpg_buf_json_str(out, cols[i].name, strlen(cols[i].name));
		fpg_buf_puts(out, ",\"type\":");
		fpg_encode_type_name(out, f->tc, cols[i].type);
		fpg_buf_putc(out, '}');
	}
	fpg_buf_putc(out, ']');
}

/* node-postgres' FieldDef, which Neon's clients read. */
static void put_fields_neon(struct fpg_buf *out, int n,
			    const struct fpg_column *cols)
{
	fpg_buf_puts(out, "{\"fields\":[");
	for (int i = 0; i < n; i++) {
		const struct fpg_column *c = &cols[i];
		fpg_buf_puts(out, i ? ",{\"name\":" : "{\"name\":");
		fpg_buf_json_str(out, c->name, strlen(c->name));
		fpg_buf_printf(out,
			       ",\"dataTypeID\":%u,\"tableID\":%u,"
			       "\"columnID\":%d,\"dataTypeSize\":%d,"
			       "\"dataTypeModifier\":%d,\"format\":\"text\"}",
			       c->type, c->table, c->table_col, c->size,
			       c->mod);
	}
	fpg_buf_puts(out, "],\"rows\":[");
}

static bool csv_needs_quotes(const char *s, size_t n)
{
	static const bool special[256] = {[','] = true, ['"'] = true,
					  ['\r'] = true, ['\n'] = true};
	if (n == 0)
		return true;
	for (size_t i = 0; i < n; i++)
		if (special[(unsigned char)s[i]])
			return true;
	return false;
}

/* RFC 4180: quote when needed; "" stays quoted to differ from NULL. */
static void put_csv_field(struct fpg_buf *out, const char *s, size_t n)
{
	bool quote = csv_needs_quotes(s, n);
	if (!quote) {
		fpg_buf_append(out, s, n);
		return;
	}
	fpg_buf_putc(out, '"');
	for (const char *q; (q = memchr(s, '"', n)); n -= (size_t)(q + 1 - s),
						     s = q + 1) {
		fpg_buf_append(out, s, (size_t)(q + 1 - s));
		fpg_buf_putc(out, '"');
	}
	fpg_buf_append(out, s, n);
	fpg_buf_putc(out, '"');
}

static void put_header(const struct fpg_rowfmt *f, struct fpg_buf *out, int n,
		       const struct fpg_column *cols)
{
	switch (f->format) {
	case FPG_ROWFMT_JSON:
		if (f->expect == FPG_EXPECT_SCALAR) {
			fpg_buf_puts(out, "{\"value\":");
		} else if (f->expect != FPG_EXPECT_ALL) {
			fpg_buf_puts(out, "{\"row\":");
		} else {
			put_columns_json(f, out, n, cols);
			fpg_buf_puts(out, ",\"rows\":[");
		}
		break;
	case FPG_ROWFMT_NDJSON:
		put_columns_json(f, out, n, cols);
		fpg_buf_puts(out, "}\n");
		break;
	case FPG_ROWFMT_NEON:
		put_fields_neon(out, n, cols);
		break;
	case FPG_ROWFMT_CSV:
		for (int i = 0; i < n; i++) {
			if (i)
				fpg_buf_putc(out, ',');
			put_csv_field(out, cols[i].name, strlen(cols[i].name));
		}
		fpg_buf_puts(out, "\r\n");
		break;
	}
}

bool fpg_rowfmt_put_header(struct fpg_rowfmt *f, struct fpg_buf *out, int n,
			   const struct fpg_column *cols)
{
	fpg_buf_reset(&f->keys);
	free(f->types);
	free(f->key_end);
	f->written = 0;
	f->ncols = n;
	f->types = malloc(sizeof(uint32_t) * (size_t)(n ? n : 1));
	f->key_end = malloc(sizeof(size_t) * (size_t)(n ? n : 1));
	if (!f->types || !f->key_end) {
		free(f->types);
		f->types = NULL;
		out->failed = true;
		return false;
	}
	for (int i = 0; i < n; i++) {
		f->types[i] = cols[i].type;
		fpg_buf_json_str(&f->keys, cols[i].name, strlen(cols[i].name));
		fpg_buf_putc(&f->keys, ':');
		f->key_end[i] = f->keys.len;
	}
	put_header(f, out, n, cols);
	return true;
}

/* ---- rows ---- */

static void put_value(const struct fpg_rowfmt *f, struct fpg_buf *out,
		      const PGresult *res, int row, int col)
{
	if (PQgetisnull(res, row, col)) {
		fpg_buf_puts(out, "null");
		return;
	}
	fpg_encode_value(out, f->tc, f->types[col], PQgetvalue(res, row, col),
			 (size_t)PQgetlength(res, row, col), f->enc_flags);
}

static void put_row_json(const struct fpg_rowfmt *f, struct fpg_buf *out,
			 const PGresult *res, int row)
{
	if (f->shape == FPG_ROWS_ARRAY) {
		fpg_buf_putc(out, '[');
		for (int i = 0; i < f->ncols; i++) {
			if (i)
				fpg_buf_putc(out, ',');
			put_value(f, out, res, row, i);
		}
		fpg_buf_putc(out, ']');
		return;
	}
	fpg_buf_putc(out, '{');
	size_t start = 0;
	for (int i = 0; i < f->ncols; i++) {
		if (i)
			fpg_buf_putc(out, ',');
		fpg_buf_append(out, f->keys.data + start,
			       f->key_end[i] - start);
		start = f->key_end[i];
		put_value(f, out, res, row, i);
	}
	fpg_buf_putc(out, '}');
}

static void put_row_csv(const struct fpg_rowfmt *f, struct fpg_buf *out,
			const PGresult *res, int row)
{
	for (int i = 0; i < f->ncols; i++) {
		if (i)
			fpg_buf_putc(out, ',');
		if (!PQgetisnull(res, row, i))
			put_csv_field(out, PQgetvalue(res, row, i),
				      (size_t)PQgetlength(res, row, i));
	}
	fpg_buf_puts(out, "\r\n");
}

/* Only the first row is written; the caller counts the rest. */
static void put_single(const struct fpg_rowfmt *f, struct fpg_buf *out,
		       const PGresult *res, int row)
{
	if (f->written > 1)
		return;
	if (f->expect != FPG_EXPECT_SCALAR)
		put_row_json(f, out, res, row);
	else if (f->ncols > 0)
		put_value(f, out, res, row, 0);
	else
		fpg_buf_puts(out, "null");
}

void fpg_rowfmt_put_row(struct fpg_rowfmt *f, struct fpg_buf *out,
			const PGresult *res, int row)
{
	if (!f->types)
		return;
	f->written++;
	if (fpg_rowfmt_single(f)) {
		put_single(f, out, res, row);
		return;
	}
	switch (f->format) {
	case FPG_ROWFMT_JSON:
	case FPG_ROWFMT_NEON:
		if (f->written > 1)
			fpg_buf_putc(out, ',');
		put_row_json(f, out, res, row);
		break;
	case FPG_ROWFMT_NDJSON:
		put_row_json(f, out, res, row);
		fpg_buf_putc(out, '\n');
		break;
	case FPG_ROWFMT_CSV:
		put_row_csv(f, out, res, row);
		break;
	}
}

/* ---- the end ---- */

/* "INSERT 0 3" -> "INSERT"; "CREATE TABLE" stays. */
static void put_command(struct fpg_buf *out, const char *tag)
{
	size_t n = strlen(tag);
	for (;;) {
		size_t k = n;
		while (k > 0 && tag[k - 1] >= '0' && tag[k - 1] <= '9')
			k--;
		if (k == n || k == 0 || tag[k - 1] != ' ')
			break;
		n = k - 1;
	}
	fpg_buf_json_str(out, tag, n);
}

/* node-postgres' Result: the tag's first word, and its count or null. */
static void put_end_neon(const struct fpg_rowfmt *f, struct fpg_buf *out,
			 PGresult *res)
{
	const char *tag = PQcmdStatus(res);
	const char *count = PQcmdTuples(res);
	fpg_buf_puts(out, "],\"command\":");
	fpg_buf_json_str(out, tag, strcspn(tag, " "));
	fpg_buf_printf(out, ",\"rowCount\":%s,\"rowAsArray\":%s}\n",
		       *count ? count : "null",
		       f->shape == FPG_ROWS_ARRAY ? "true" : "false");
}

void fpg_rowfmt_put_end(struct fpg_rowfmt *f, struct fpg_buf *out,
			PGresult *res)
{
	if (fpg_rowfmt_single(f)) {
		if (f->written == 0)
			fpg_buf_puts(out, "null");
		fpg_buf_puts(out, "}\n");
		return;
	}
	if (f->format == FPG_ROWFMT_CSV)
		return;
	if (f->format == FPG_ROWFMT_NEON) {
		put_end_neon(f, out, res);
		return;
	}
	fpg_buf_puts(out, f->format == FPG_ROWFMT_JSON ? "],\"command\":"
						       : "{\"command\":");
	put_command(out, PQcmdStatus(res));
	const char *count = PQcmdTuples(res);
	fpg_buf_printf(out, ",\"row_count\":%s}\n", *count ? count : "null");
}

bool fpg_rowfmt_put_error(struct fpg_rowfmt *f, struct fpg_buf *out,
			  const struct fpg_error *err, const PGresult *res)
{
	switch (f->format) {
	case FPG_ROWFMT_JSON:
		fpg_buf_puts(out, "],\"error\":");
		fpg_error_json_object(out, err, res);
		fpg_buf_puts(out, "}\n");
		return true;
	case FPG_ROWFMT_NDJSON:
		fpg_error_json(out, err, res);
		fpg_buf_putc(out, '\n');
		return true;
	case FPG_ROWFMT_CSV:
	case FPG_ROWFMT_NEON:
		break;
	}
	return false;
}
