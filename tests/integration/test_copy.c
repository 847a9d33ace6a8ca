/*
 * /copy and /tx/{token}/copy end to end (docs/api.md "COPY"): byte-exact
 * round trips in csv, text and binary with awkward values, the format
 * options both ways, 1,000,000 rows each way with the server's RSS
 * sampled, errors that leave the table as it was (with the COPY line in
 * "where"), clients that leave mid-upload and mid-download, COPY inside a
 * transaction session, Expect: 100-continue, and query= injection.
 *
 * One throwaway cluster and one in-process server (2 workers) for the
 * binary; CK_NOFORK because the server's threads live in this process
 * (its RSS is ours). Random values use a seed printed at start
 * (FPG_TEST_SEED replays it); CK_RUN_CASE=name runs one case only.
 */
#include <pthread.h>
#include <unistd.h>

#include <zlib.h>

#include "it_common.h"

#if defined(__SANITIZE_ADDRESS__)
#define CP_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CP_ASAN 1
#endif
#endif
#ifndef CP_ASAN
#define CP_ASAN 0
#endif

#if CP_ASAN
/*
 * ASan's quarantine keeps up to 256 MiB of freed memory resident, and a
 * 1M-row download frees a block per row: with the default the RSS check
 * would measure the quarantine. 16 MiB still catches use after free.
 */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "quarantine_size_mb=16";
}
#endif

static unsigned port;
static long long busy_baseline;

/* ---- growable bytes ---- */

static void b_free(struct it_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

/* ---- paths ---- */

/* base?name=value&... with the values percent-encoded; NULL-terminated. */
static char *cpath(const char *base, ...)
{
	struct it_buf b = {0};
	it_buf_puts(&b, base);
	va_list ap;
	va_start(ap, base);
	char sep = '?';
	for (;;) {
		const char *k = va_arg(ap, const char *);
		if (!k)
			break;
		const char *v = va_arg(ap, const char *);
		it_buf_putc(&b, sep);
		sep = '&';
		it_buf_puts(&b, k);
		it_buf_putc(&b, '=');
		for (const unsigned char *p = (const unsigned char *)v; *p;
		     p++) {
			if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			    (*p >= '0' && *p <= '9') || strchr("-._~", *p)) {
				it_buf_putc(&b, (char)*p);
			} else {
				char h[4];
				snprintf(h, sizeof(h), "%%%02X", *p);
				it_buf_puts(&b, h);
			}
		}
	}
	va_end(ap);
	return b.data;
}

/* ---- one COPY transfer through libcurl ---- */

/* Fills buf (cap bytes) with the next piece of a generated body; 0 = end. */
typedef size_t (*gen_fn)(char *buf, size_t cap, void *ud);

struct cx {
	/* the request */
	const char *method;	  /* "GET" or "POST" */
	const char *path;
	const char *body;	  /* a body in memory (POST) */
	size_t body_len;
	bool chunked;		  /* no Content-Length: chunked */
	gen_fn gen;		  /* a generated body (chunked) */
	void *gen_ud;
	size_t abort_up_after;	  /* CURL_READFUNC_ABORT past these bytes */
	bool expect100;		  /* send Expect: 100-continue */
	const char *ctype;	  /* Content-Type of the body */
	const char *encoding;	  /* Content-Encoding of the body, or NULL */
	unsigned port;		  /* 0: the binary's server */
	size_t abort_down_after;  /* the write callback returns 0 */
	bool keep;		  /* keep the answer (else count lines) */
	long timeout_s;
	/* the answer */
	long status;
	int curl_code;
	struct it_buf body_out, hdr;
	size_t up_bytes, down_bytes;
	uint64_t lines;
	uint64_t id_sum;	  /* the first fields of the lines, summed */
	uint64_t cur_id;
	bool line_start, in_id;
	bool saw_100;
	bool up_aborted, down_aborted;
	double t_start, t_end;
	json_t *json;
	/* internal */
	size_t up_off;
	char *gbuf;
	size_t glen, goff;
	bool gen_done;
};

static size_t cx_read(char *p, size_t size, size_t nitems, void *ud)
{
	struct cx *x = ud;
	size_t cap = size * nitems, n = 0;
	if (x->abort_up_after && x->up_bytes >= x->abort_up_after) {
		x->up_aborted = true;
		return CURL_READFUNC_ABORT;
	}
	if (x->gen) {
		while (n < cap) {
			if (x->goff == x->glen) {
				if (x->gen_done)
					break;
				x->glen = x->gen(x->gbuf, 256 * 1024,
						 x->gen_ud);
				x->goff = 0;
				if (!x->glen) {
					x->gen_done = true;
					break;
				}
			}
			size_t k = x->glen - x->goff;
			if (k > cap - n)
				k = cap - n;
			memcpy(p + n, x->gbuf + x->goff, k);
			x->goff += k;
			n += k;
		}
	} else if (x->body) {
		n = x->body_len - x->up_off;
		if (n > cap)
			n = cap;
		memcpy(p, x->body + x->up_off, n);
		x->up_off += n;
	}
	x->up_bytes += n;
	return n;
}

static size_t cx_write(char *p, size_t size, size_t nmemb, void *ud)
{
	struct cx *x = ud;
	size_t n = size * nmemb;
	x->down_bytes += n;
	if (x->keep || x->body_out.len < 65536)
		it_buf_put(&x->body_out, p, n);
	if (!x->keep) {
		for (size_t i = 0; i < n; i++) {
			char c = p[i];
			if (x->line_start) {
				x->line_start = false;
				x->in_id = true;
				x->cur_id = 0;
			}
			if (x->in_id) {
				if (c >= '0' && c <= '9') {
					x->cur_id = x->cur_id * 10 +
						    (uint64_t)(c - '0');
				} else {
					x->in_id = false;
					x->id_sum += x->cur_id;
				}
			}
			if (c == '\n') {
				x->lines++;
				x->line_start = true;
			}
		}
	}
	if (x->abort_down_after && x->down_bytes >= x->abort_down_after) {
		x->down_aborted = true;
		return 0;
	}
	return n;
}

static size_t cx_header(char *p, size_t size, size_t nmemb, void *ud)
{
	struct cx *x = ud;
	size_t n = size * nmemb;
	if (n >= 12 && strncmp(p, "HTTP/", 5) == 0 && strstr(p, " 100"))
		x->saw_100 = true;
	return it_hdr_write(p, size, nmemb, &x->hdr);
}

/* Runs the transfer described in x (on a fresh connection, closed at the
 * end: an abort is a disconnect). */
static void cx_run(struct cx *x)
{
	CURL *c = curl_easy_init();
	if (!c)
		abort();
	char url[8192];
	snprintf(url, sizeof(url), "http://127.0.0.1:%u%s",
		 x->port ? x->port : port, x->path);
	struct curl_slist *list = NULL;
	char ct[200], ce[200];
	bool post = strcmp(x->method, "POST") == 0;
	x->line_start = true;
	if (post) {
		snprintf(ct, sizeof(ct), "Content-Type: %s",
			 x->ctype ? x->ctype : "text/csv");
		list = curl_slist_append(list, ct);
		if (x->encoding) {
			snprintf(ce, sizeof(ce), "Content-Encoding: %s",
				 x->encoding);
			list = curl_slist_append(list, ce);
		}
		list = curl_slist_append(list, x->expect100
						   ? "Expect: 100-continue"
						   : "Expect:");
		if (x->chunked || x->gen)
			list = curl_slist_append(list,
						 "Transfer-Encoding: chunked");
	} else {
		/* GET /copy runs SQL: no web page may send it unasked. */
		list = curl_slist_append(list, "X-Requested-With: it_copy");
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, x->timeout_s ? x->timeout_s : 120L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, cx_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, cx_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
	if (post) {
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_READFUNCTION, cx_read);
		curl_easy_setopt(c, CURLOPT_READDATA, x);
		if (!x->chunked && !x->gen)
			curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
					 (curl_off_t)x->body_len);
		curl_easy_setopt(c, CURLOPT_EXPECT_100_TIMEOUT_MS, 10000L);
	} else if (strcmp(x->method, "GET") != 0) {
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, x->method);
	}
	if (x->gen) {
		x->gbuf = malloc(256 * 1024);
		if (!x->gbuf)
			abort();
	}
	x->t_start = it_now();
	x->curl_code = (int)curl_easy_perform(c);
	x->t_end = it_now();
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &x->status);
	curl_slist_free_all(list);
	curl_easy_cleanup(c);
	free(x->gbuf);
	x->gbuf = NULL;
	if (!x->body_out.data)
		it_buf_put(&x->body_out, "", 0);
	if (!x->hdr.data)
		it_buf_put(&x->hdr, "", 0);
	if (x->body_out.len && x->body_out.data[0] == '{')
		x->json = json_loadb(x->body_out.data, x->body_out.len, 0,
				     NULL);
	const char *req_hdrs[] = {post ? ct : NULL, NULL};
	http_record(&(struct http_exchange){.method = x->method,
					    .path = x->path,
					    .req_headers = req_hdrs,
					    .has_body = post,
					    .status = x->status,
					    .resp_headers = x->hdr.data,
					    .body = x->body_out.data,
					    .body_len = x->body_out.len,
					    .curl_code = x->curl_code});
}

static void cx_free(struct cx *x)
{
	b_free(&x->body_out);
	b_free(&x->hdr);
	json_decref(x->json);
	x->json = NULL;
}

static const char *cx_desc(const struct cx *x)
{
	static char d[1600];
	snprintf(d, sizeof(d),
		 "%s %.300s: status %ld curl %d, %zu bytes up, %zu down, %llu "
		 "lines, %.2f s; body: %.800s",
		 x->method, x->path, x->status, x->curl_code, x->up_bytes,
		 x->down_bytes, (unsigned long long)x->lines,
		 x->t_end - x->t_start, x->body_out.data ? x->body_out.data : "");
	return d;
}

/* A header of the answer (malloc'd) or NULL. */
static char *cx_header_value(const struct cx *x, const char *name)
{
	struct http_resp r = {0};
	r.headers = x->hdr.data;
	return http_header(&r, name);
}

/* POST body to path; 200 {"command":"COPY","row_count":rows} required. */
static void post_ok(const char *path, const char *body, size_t len,
		    long long rows)
{
	struct cx x = {.method = "POST", .path = path, .body = body,
		       .body_len = len, .keep = true};
	cx_run(&x);
	ck_assert_msg(x.curl_code == 0 && x.status == 200 && x.json,
		      "%s", cx_desc(&x));
	ck_assert_msg(json_is_string(json_object_get(x.json, "command")) &&
			  strcmp(json_string_value(
				     json_object_get(x.json, "command")),
				 "COPY") == 0,
		      "%s", cx_desc(&x));
	ck_assert_msg(json_integer_value(json_object_get(x.json, "row_count")) ==
			      rows &&
			  json_is_integer(json_object_get(x.json, "row_count")),
		      "want row_count %lld: %s", rows, cx_desc(&x));
	char *ct = cx_header_value(&x, "Content-Type");
	ck_assert_msg(ct && strncmp(ct, "application/json", 16) == 0,
		      "Content-Type %s", ct ? ct : "(none)");
	free(ct);
	cx_free(&x);
}

/* GET path; 200 with Content-Type ctype required; the bytes in *out. */
static void get_ok(const char *path, const char *ctype, struct it_buf *out)
{
	struct cx x = {.method = "GET", .path = path, .keep = true};
	cx_run(&x);
	ck_assert_msg(x.curl_code == 0 && x.status == 200, "%s", cx_desc(&x));
	char *ct = cx_header_value(&x, "Content-Type");
	ck_assert_msg(ct && strncmp(ct, ctype, strlen(ctype)) == 0,
		      "%s: Content-Type %s, want %s", path, ct ? ct : "(none)",
		      ctype);
	free(ct);
	*out = x.body_out;
	x.body_out = (struct it_buf){0};
	cx_free(&x);
}

/* An error answer: status, code, and the error object (borrowed from x). */
static json_t *expect_error(struct cx *x, long status, const char *code)
{
	ck_assert_msg(x->curl_code == 0 && x->status == status,
		      "want %ld %s: %s", status, code ? code : "", cx_desc(x));
	ck_assert_msg(x->json, "not JSON: %s", cx_desc(x));
	json_t *e = json_object_get(x->json, "error");
	ck_assert_msg(json_is_object(e), "no error: %s", cx_desc(x));
	const char *c = json_string_value(json_object_get(e, "code"));
	ck_assert_msg(c && (!code || strcmp(c, code) == 0), "want code %s: %s",
		      code ? code : "", cx_desc(x));
	ck_assert_msg(json_is_string(json_object_get(e, "message")), "%s",
		      cx_desc(x));
	char *ct = cx_header_value(x, "Content-Type");
	ck_assert_msg(ct && strncmp(ct, "application/json", 16) == 0,
		      "error Content-Type %s", ct ? ct : "(none)");
	free(ct);
	return e;
}

/* ---- PostgreSQL and /stats as judges ---- */

static long long scalar_ll(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static long long scalar_ll(const char *fmt, ...)
{
	char *sql = NULL;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&sql, fmt, ap) < 0)
		abort();
	va_end(ap);
	char *v = pgh_scalar(sql);
	long long n = v ? strtoll(v, NULL, 10) : -1;
	free(v);
	free(sql);
	return n;
}

static void execf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void execf(const char *fmt, ...)
{
	char *sql = NULL;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&sql, fmt, ap) < 0)
		abort();
	va_end(ap);
	pgh_exec(sql);
	free(sql);
}

/*
 * What was there when the test began (normally nothing but the /stats
 * request itself): a request leaked by an earlier failing test must not
 * make every later test fail too.
 */
static struct it_activity case_base;

static void mark_baseline(void)
{
	struct it_activity a = it_activity_now(port);
	case_base = a;
	if (case_base.busy < busy_baseline)
		case_base.busy = busy_baseline;
	if (case_base.in_flight < 1)
		case_base.in_flight = 1;
	if (a.active || a.copies || a.busy > busy_baseline || a.in_flight > 1)
		fprintf(stderr, "  (left over from before: %ld active, %ld "
				"COPY, busy %lld, in_flight %lld)\n",
			a.active, a.copies, a.busy, a.in_flight);
}

/*
 * Waits up to limit_s for: no fasterpg statement active and no COPY on
 * PostgreSQL, pool busy and waiting back to the baseline, only /stats in
 * flight.
 */
static double wait_quiet(double limit_s, const char *what)
{
	return it_wait_quiet(port, &case_base, limit_s, what);
}

/* ---- RSS ---- */

struct sampler {
	pthread_t th;
	volatile bool stop;
	long base, max_rss;
	int samples;
};

static void *sampler_main(void *arg)
{
	struct sampler *sm = arg;
	while (!sm->stop) {
		long r = it_rss_kib();
		if (r > sm->max_rss)
			sm->max_rss = r;
		sm->samples++;
		usleep(100 * 1000);
	}
	return NULL;
}

static void sampler_start(struct sampler *sm)
{
	memset(sm, 0, sizeof(*sm));
	sm->base = sm->max_rss = it_rss_kib();
	ck_assert_int_eq(pthread_create(&sm->th, NULL, sampler_main, sm), 0);
}

static long sampler_stop(struct sampler *sm)
{
	sm->stop = true;
	pthread_join(sm->th, NULL);
	long r = it_rss_kib();
	if (r > sm->max_rss)
		sm->max_rss = r;
	return (sm->max_rss - sm->base) / 1024;
}

/* ---- awkward values ---- */

struct val {
	bool null;
	char *s;
	size_t n;
};

static const char *pieces[] = {
    "\"", "\"\"", ",", ",,", "\t", "\n", "\r", "\r\n", "\\", "\\\\", "\\N",
    "\\.", "'", "''", ";", " ", "  ", "a", "xyz", "NULL", "null", "\xc3\xa9",
    "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xf0\x9d\x84\x9e", "\x01", "|",
    "\b", "\f", "\v", "$$", "--", "/*", "0", "-1",
};

static void gen_val(struct val *v)
{
	struct it_buf b = {0};
	int k = rand() % 100;
	v->null = k < 10;
	if (v->null) {
		v->s = NULL;
		v->n = 0;
		return;
	}
	if (k < 18) {
		/* empty */
	} else if (k < 20) {
		/* long: 20 KB .. 300 KB */
		size_t want = 20000 + (size_t)(rand() % 280000);
		while (b.len < want) {
			const char *p = pieces[rand() % (sizeof(pieces) /
							 sizeof(pieces[0]))];
			it_buf_puts(&b, p);
			if (rand() % 2)
				it_buf_puts(&b, "lorem ipsum dolor sit amet ");
		}
	} else {
		int m = 1 + rand() % 12;
		for (int i = 0; i < m; i++)
			it_buf_puts(&b, pieces[rand() % (sizeof(pieces) /
						    sizeof(pieces[0]))]);
	}
	if (!b.data)
		it_buf_put(&b, "", 0);
	v->s = b.data;
	v->n = b.len;
}

#define NCOL 3

struct row {
	long id;
	struct val v[NCOL];
};

/* One CSV field as PostgreSQL writes it (quoted only when needed). */
static void csv_field(struct it_buf *b, const struct val *v, bool quote_all,
		      char delim, const char *null_s)
{
	if (v->null) {
		it_buf_puts(b, null_s);
		return;
	}
	bool q = quote_all || v->n == 0 || strcmp(v->s, null_s) == 0;
	for (size_t i = 0; !q && i < v->n; i++)
		q = v->s[i] == delim || v->s[i] == '"' || v->s[i] == '\n' ||
		    v->s[i] == '\r';
	if (!q) {
		it_buf_put(b, v->s, v->n);
		return;
	}
	it_buf_putc(b, '"');
	for (size_t i = 0; i < v->n; i++) {
		if (v->s[i] == '"')
			it_buf_putc(b, '"');
		it_buf_putc(b, v->s[i]);
	}
	it_buf_putc(b, '"');
}

/* One text-format field as PostgreSQL writes it. */
static void text_field(struct it_buf *b, const struct val *v, char delim,
		       const char *null_s)
{
	if (v->null) {
		it_buf_puts(b, null_s);
		return;
	}
	for (size_t i = 0; i < v->n; i++) {
		char c = v->s[i];
		const char *esc = NULL;
		switch (c) {
		case '\b': esc = "\\b"; break;
		case '\f': esc = "\\f"; break;
		case '\n': esc = "\\n"; break;
		case '\r': esc = "\\r"; break;
		case '\t': esc = "\\t"; break;
		case '\v': esc = "\\v"; break;
		case '\\': esc = "\\\\"; break;
		default: break;
		}
		if (esc)
			it_buf_puts(b, esc);
		else if (c == delim) {
			it_buf_putc(b, '\\');
			it_buf_putc(b, c);
		} else
			it_buf_putc(b, c);
	}
}

enum fmt { F_CSV, F_CSV_QUOTED, F_TEXT };

static void render(struct it_buf *b, const struct row *rows, size_t n,
		   enum fmt f)
{
	for (size_t r = 0; r < n; r++) {
		char id[32];
		snprintf(id, sizeof(id), "%ld", rows[r].id);
		it_buf_puts(b, id);
		for (int c = 0; c < NCOL; c++) {
			it_buf_putc(b, f == F_TEXT ? '\t' : ',');
			if (f == F_TEXT)
				text_field(b, &rows[r].v[c], '\t', "\\N");
			else
				csv_field(b, &rows[r].v[c], f == F_CSV_QUOTED,
					  ',', "");
		}
		it_buf_putc(b, '\n');
	}
}

/* Same bytes, or the first difference shown. */
static void assert_same_bytes(const char *what, const struct it_buf *got,
			      const struct it_buf *want)
{
	size_t n = got->len < want->len ? got->len : want->len, i = 0;
	while (i < n && got->data[i] == want->data[i])
		i++;
	if (i == n && got->len == want->len)
		return;
	size_t from = i > 60 ? i - 60 : 0;
	char g[400] = "", w[400] = "";
	for (size_t k = from, l = 0; k < got->len && k < i + 60 && l + 5 < sizeof(g); k++)
		l += (size_t)snprintf(g + l, sizeof(g) - l,
				      (unsigned char)got->data[k] < 0x20 ||
					      (unsigned char)got->data[k] >= 0x7f
					  ? "\\x%02x"
					  : "%c",
				      (unsigned char)got->data[k]);
	for (size_t k = from, l = 0; k < want->len && k < i + 60 && l + 5 < sizeof(w); k++)
		l += (size_t)snprintf(w + l, sizeof(w) - l,
				      (unsigned char)want->data[k] < 0x20 ||
					      (unsigned char)want->data[k] >= 0x7f
					  ? "\\x%02x"
					  : "%c",
				      (unsigned char)want->data[k]);
	ck_abort_msg("%s (seed %u): %zu bytes, want %zu; first difference at "
		     "%zu:\n got  ...%s\n want ...%s",
		     what, it_seed(), got->len, want->len, i, g, w);
}

/* ---- a. byte-exact round trips ---- */

START_TEST(round_trip_csv_text_binary)
{
	char *t = it_table("rt");
	execf("create table %s (id int primary key, a text, b text, c text)", t);
	size_t n = 400;
	struct row *rows = calloc(n, sizeof(*rows));
	for (size_t i = 0; i < n; i++) {
		rows[i].id = (long)i * 3 + 1;
		for (int c = 0; c < NCOL; c++)
			gen_val(&rows[i].v[c]);
	}
	/* Fixed corner cases at the start. */
	const char *fixed[] = {"", "\\.", "\"", "\xf0\x9f\x98\x80", "\\N",
			       "a,b", "x\r\ny", " "};
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		free(rows[i].v[0].s);
		rows[i].v[0].null = false;
		rows[i].v[0].s = strdup(fixed[i]);
		rows[i].v[0].n = strlen(fixed[i]);
	}
	free(rows[8].v[1].s);
	rows[8].v[1] = (struct val){.null = true};
	struct it_buf quoted = {0}, csv = {0}, text = {0}, got = {0};
	render(&quoted, rows, n, F_CSV_QUOTED);
	render(&csv, rows, n, F_CSV);
	render(&text, rows, n, F_TEXT);
	fprintf(stderr, "  round trip: %zu rows, csv %zu bytes, text %zu\n", n,
		csv.len, text.len);

	char *in_csv = cpath("/copy", "table", t, NULL);
	char *in_text = cpath("/copy", "table", t, "format", "text", NULL);
	char *in_bin = cpath("/copy", "table", t, "format", "binary", NULL);
	char *sel = it_fmt("select * from %s order by id", t);
	char *out_csv = cpath("/copy", "query", sel, NULL);
	char *out_text = cpath("/copy", "query", sel, "format", "text", NULL);
	char *out_bin = cpath("/copy", "query", sel, "format", "binary", NULL);

	/* Fully quoted CSV in; PostgreSQL's CSV and text out. */
	post_ok(in_csv, quoted.data, quoted.len, (long long)n);
	get_ok(out_csv, "text/csv", &got);
	assert_same_bytes("CSV out after quoted CSV in", &got, &csv);
	b_free(&got);
	get_ok(out_text, "text/plain", &got);
	assert_same_bytes("text out after quoted CSV in", &got, &text);
	b_free(&got);
	long nulls = 0;
	for (size_t i = 0; i < n; i++)
		nulls += rows[i].v[0].null;
	ck_assert_int_eq(scalar_ll("select count(*) from %s where a is null", t),
			 nulls);

	/* Minimally quoted CSV: byte-exact round trip. */
	execf("truncate %s", t);
	post_ok(in_csv, csv.data, csv.len, (long long)n);
	get_ok(out_csv, "text/csv", &got);
	assert_same_bytes("CSV round trip", &got, &csv);
	b_free(&got);

	/* Text: byte-exact round trip, and CSV out of it. */
	execf("truncate %s", t);
	post_ok(in_text, text.data, text.len, (long long)n);
	get_ok(out_text, "text/plain", &got);
	assert_same_bytes("text round trip", &got, &text);
	b_free(&got);
	get_ok(out_csv, "text/csv", &got);
	assert_same_bytes("CSV out after text in", &got, &csv);
	b_free(&got);

	/* Binary: out, truncate, in, out again. */
	struct it_buf bin1 = {0}, bin2 = {0};
	get_ok(out_bin, "application/octet-stream", &bin1);
	ck_assert_msg(bin1.len > 19 && memcmp(bin1.data, "PGCOPY\n\377\r\n\0", 11) == 0,
		      "binary signature missing (%zu bytes)", bin1.len);
	execf("truncate %s", t);
	post_ok(in_bin, bin1.data, bin1.len, (long long)n);
	get_ok(out_bin, "application/octet-stream", &bin2);
	assert_same_bytes("binary round trip", &bin2, &bin1);
	get_ok(out_csv, "text/csv", &got);
	assert_same_bytes("CSV out after binary in", &got, &csv);
	b_free(&got);
	/* table= out (no query) gives the same rows. */
	char *tab_csv = cpath("/copy", "table", t, "columns", "id,a,b,c", NULL);
	get_ok(tab_csv, "text/csv", &got);
	ck_assert_msg(got.len == csv.len, "table= CSV: %zu bytes, want %zu",
		      got.len, csv.len);
	b_free(&got);
	free(tab_csv);

	b_free(&bin1);
	b_free(&bin2);
	for (size_t i = 0; i < n; i++)
		for (int c = 0; c < NCOL; c++)
			free(rows[i].v[c].s);
	free(rows);
	b_free(&quoted);
	b_free(&csv);
	b_free(&text);
	free(in_csv);
	free(in_text);
	free(in_bin);
	free(out_csv);
	free(out_text);
	free(out_bin);
	free(sel);
	execf("drop table %s", t);
	wait_quiet(1.0, "after the round trips");
	free(t);
}
END_TEST

/* ---- b. header, delimiter, null ---- */

START_TEST(options_both_ways)
{
	char *t = it_table("opt");
	execf("create table %s (id int primary key, a text, b text)", t);
	const char *csv = "id;a;b\n"
			  "1;x;NULL\n"
			  "2;\"NULL\";\n"
			  "3;\"a;b\";y\n"
			  "4;NULL;\"q\"\"q\"\n";
	char *in = cpath("/copy", "table", t, "header", "true", "delimiter",
			 ";", "null", "NULL", NULL);
	post_ok(in, csv, strlen(csv), 4);
	ck_assert_int_eq(scalar_ll("select count(*) from %s where b is null", t), 1);
	ck_assert_int_eq(scalar_ll("select count(*) from %s where a is null", t), 1);
	ck_assert_int_eq(scalar_ll("select count(*) from %s where a = 'NULL'", t), 1);
	ck_assert_int_eq(scalar_ll("select count(*) from %s where b = ''", t), 1);
	ck_assert_int_eq(scalar_ll("select count(*) from %s where a = 'a;b'", t), 1);
	ck_assert_int_eq(scalar_ll("select count(*) from %s where b = 'q\"q'", t), 1);
	char *sel = it_fmt("select * from %s order by id", t);
	char *out = cpath("/copy", "query", sel, "header", "true", "delimiter",
			  ";", "null", "NULL", NULL);
	struct it_buf got = {0}, want = {0};
	it_buf_puts(&want, csv);
	get_ok(out, "text/csv", &got);
	assert_same_bytes("csv header/;/NULL out", &got, &want);
	b_free(&got);
	free(out);

	/* header=false: no header line; the default delimiter and null. */
	out = cpath("/copy", "query", sel, "header", "false", NULL);
	get_ok(out, "text/csv", &got);
	b_free(&want);
	it_buf_puts(&want, "1,x,\n2,NULL,\"\"\n3,a;b,y\n4,,\"q\"\"q\"\n");
	assert_same_bytes("csv header=false", &got, &want);
	b_free(&got);
	free(out);

	/* Text format with header, '|' and a null string, both ways. */
	const char *text = "id|a|b\n"
			   "5|p\\|q|-\n"
			   "6|-x|\n";
	free(in);
	in = cpath("/copy", "table", t, "format", "text", "header", "true",
		   "delimiter", "|", "null", "-", NULL);
	post_ok(in, text, strlen(text), 2);
	ck_assert_int_eq(scalar_ll("select count(*) from %s where id = 5 and a = 'p|q' and b is null", t), 1);
	char *sel2 = it_fmt("select * from %s where id >= 5 order by id", t);
	out = cpath("/copy", "query", sel2, "format", "text", "header", "true",
		    "delimiter", "|", "null", "-", NULL);
	get_ok(out, "text/plain", &got);
	b_free(&want);
	it_buf_puts(&want, text);
	assert_same_bytes("text header/|/- out", &got, &want);
	b_free(&got);
	b_free(&want);
	free(out);
	free(sel2);
	free(sel);
	free(in);
	execf("drop table %s", t);
	free(t);
}
END_TEST

/* ---- c. 1,000,000 rows each way ---- */

struct rowgen {
	long next, last;
	long stop_at; /* 0 = never */
};

static size_t gen_rows(char *buf, size_t cap, void *ud)
{
	struct rowgen *g = ud;
	size_t n = 0;
	while (g->next <= g->last && cap - n > 200) {
		long i = g->next++;
		n += (size_t)snprintf(buf + n, cap - n,
				      "%ld,\"row %ld \"\"%08lx\"\"\",%016lx%016lx\n", i,
				      i, (unsigned long)(i * 2654435761u),
				      (unsigned long)(i * 40503u),
				      (unsigned long)(i ^ 0x5bd1e995));
	}
	return n;
}

START_TEST(million_rows_each_way)
{
	char *t = it_table("big");
	execf("create unlogged table %s (id int, a text, b text)", t);
	char *in = cpath("/copy", "table", t, NULL);

	/* Warm-up, so first-use allocations are in the baseline. */
	struct rowgen wg = {.next = 1, .last = 50000};
	struct cx w = {.method = "POST", .path = in, .gen = gen_rows,
		       .gen_ud = &wg, .keep = true};
	cx_run(&w);
	ck_assert_msg(w.status == 200, "%s", cx_desc(&w));
	cx_free(&w);
	execf("truncate %s", t);

	const long N = 1000000;
	struct rowgen g = {.next = 1, .last = N};
	struct cx x = {.method = "POST", .path = in, .gen = gen_rows,
		       .gen_ud = &g, .keep = true};
	struct sampler sm;
	sampler_start(&sm);
	cx_run(&x);
	long growth = sampler_stop(&sm);
	fprintf(stderr,
		"  upload 1M rows: %zu bytes in %.2f s, RSS base %ld KiB, growth "
		"%ld MiB, %d samples\n",
		x.up_bytes, x.t_end - x.t_start, sm.base, growth, sm.samples);
	ck_assert_msg(x.curl_code == 0 && x.status == 200 && x.json &&
			  json_integer_value(json_object_get(x.json,
							     "row_count")) == N,
		      "%s", cx_desc(&x));
	long limit = CP_ASAN ? 64 : 32;
	ck_assert_msg(growth < limit,
		      "RSS grew by %ld MiB (limit %ld) during a %zu-byte upload",
		      growth, limit, x.up_bytes);
	ck_assert_msg((size_t)growth << 20 < x.up_bytes / 2,
		      "RSS grew by %ld MiB during a %zu-byte upload", growth,
		      x.up_bytes);
	cx_free(&x);
	ck_assert_int_eq(scalar_ll("select count(*) from %s", t), N);
	ck_assert_int_eq(scalar_ll("select sum(id) from %s", t),
			 (long long)N * (N + 1) / 2);
	char *vq = it_fmt("select a || '|' || b from %s where id = 777777", t);
	char *v = pgh_scalar(vq);
	free(vq);
	char want[200];
	long i = 777777;
	snprintf(want, sizeof(want), "row %ld \"%08lx\"|%016lx%016lx", i,
		 (unsigned long)(i * 2654435761u), (unsigned long)(i * 40503u),
		 (unsigned long)(i ^ 0x5bd1e995));
	ck_assert_msg(v && strcmp(v, want) == 0, "row 777777: %s, want %s",
		      v ? v : "NULL", want);
	free(v);
	wait_quiet(2.0, "after the 1M-row upload");

	/* Download: count the lines through the write callback. */
	char *out = cpath("/copy", "table", t, NULL);
	struct cx d = {.method = "GET", .path = out};
	sampler_start(&sm);
	cx_run(&d);
	growth = sampler_stop(&sm);
	fprintf(stderr,
		"  download 1M rows: %zu bytes in %.2f s, RSS base %ld KiB, "
		"growth %ld MiB, %d samples\n",
		d.down_bytes, d.t_end - d.t_start, sm.base, growth, sm.samples);
	ck_assert_msg(d.curl_code == 0 && d.status == 200, "%s", cx_desc(&d));
	ck_assert_msg(d.lines == (uint64_t)N, "%s", cx_desc(&d));
	ck_assert_msg(d.id_sum == (uint64_t)N * (N + 1) / 2,
		      "sum of ids %llu: %s", (unsigned long long)d.id_sum,
		      cx_desc(&d));
	ck_assert_msg(growth < limit,
		      "RSS grew by %ld MiB (limit %ld) during a %zu-byte download",
		      growth, limit, d.down_bytes);
	ck_assert_msg((size_t)growth << 20 < d.down_bytes / 2,
		      "RSS grew by %ld MiB during a %zu-byte download", growth,
		      d.down_bytes);
	char *te = cx_header_value(&d, "Transfer-Encoding");
	ck_assert_msg(te && strcasecmp(te, "chunked") == 0,
		      "Transfer-Encoding %s", te ? te : "(none)");
	free(te);
	cx_free(&d);
	free(out);
	free(in);
	execf("drop table %s", t);
	wait_quiet(2.0, "after the 1M-row download");
	free(t);
}
END_TEST

/* ---- d. errors leave the table as it was ---- */

/* 1000 rows "id,a,b" with ids from 1001; row bad_line replaced. */
static char *err_body(int bad_line, const char *bad_row)
{
	struct it_buf b = {0};
	for (int i = 1; i <= 1000; i++) {
		if (i == bad_line) {
			it_buf_puts(&b, bad_row);
			it_buf_putc(&b, '\n');
			continue;
		}
		char r[64];
		snprintf(r, sizeof(r), "%d,%d,b%d\n", 1000 + i, i, i);
		it_buf_puts(&b, r);
	}
	return b.data;
}

static void expect_copy_error(const char *what, const char *path,
			      const char *body, long status, const char *code,
			      const char *where_has, const char *t)
{
	long long before = scalar_ll("select count(*) from %s", t);
	struct cx x = {.method = "POST", .path = path, .body = body,
		       .body_len = strlen(body), .keep = true};
	cx_run(&x);
	json_t *e = expect_error(&x, status, code);
	if (where_has) {
		const char *w = json_string_value(json_object_get(e, "where"));
		ck_assert_msg(w && strstr(w, where_has),
			      "%s: \"where\" should mention %s: %s", what,
			      where_has, cx_desc(&x));
	}
	fprintf(stderr, "  %s: %ld %s\n", what, x.status,
		json_string_value(json_object_get(e, "where"))
		    ? json_string_value(json_object_get(e, "where"))
		    : "(no where)");
	cx_free(&x);
	long long after = scalar_ll("select count(*) from %s", t);
	ck_assert_msg(before == after, "%s: %lld rows before, %lld after",
		      what, before, after);
}

START_TEST(errors_leave_table_unchanged)
{
	char *t = it_table("err");
	execf("create table %s (id int primary key, a int, b text)", t);
	execf("insert into %s select g, g, 'seed' from generate_series(1,10) g", t);
	char *in = cpath("/copy", "table", t, NULL);

	char *body = err_body(500, "1500,notanint,b");
	expect_copy_error("bad value in row 500", in, body, 400, "22P02",
			  "line 500", t);
	free(body);
	body = err_body(300, "1300,3,b,extra");
	expect_copy_error("extra column in row 300", in, body, 400, "22P04",
			  "line 300", t);
	free(body);
	body = err_body(301, "1301,3");
	expect_copy_error("missing column in row 301", in, body, 400, "22P04",
			  "line 301", t);
	free(body);
	body = err_body(700, "5,5,dup");
	expect_copy_error("unique violation in row 700", in, body, 409,
			  "23505", "line 700", t);
	free(body);
	body = err_body(900, "1100,1,dup of row 100");
	expect_copy_error("unique violation within the upload", in, body, 409,
			  "23505", "line 900", t);
	free(body);
	body = err_body(1000, "\"1999,1,unterminated quote");
	expect_copy_error("unterminated CSV quote", in, body, 400, NULL, NULL,
			  t);
	free(body);

	char *nope = cpath("/copy", "table", "no_such_table_xyz", NULL);
	body = err_body(0, "");
	expect_copy_error("unknown table", nope, body, 400, "42P01", NULL, t);
	char *badcol = cpath("/copy", "table", t, "columns", "id,zz,b", NULL);
	expect_copy_error("unknown column", badcol, body, 400, "42703", NULL,
			  t);
	/* GET of an unknown table too. */
	struct cx g = {.method = "GET", .path = nope, .keep = true};
	cx_run(&g);
	expect_error(&g, 400, "42P01");
	cx_free(&g);
	free(nope);
	free(badcol);

	/* And then the same upload without the errors works. */
	post_ok(in, body, strlen(body), 1000);
	free(body);
	ck_assert_int_eq(scalar_ll("select count(*) from %s", t), 1010);
	free(in);
	execf("drop table %s", t);
	wait_quiet(1.0, "after the errors");
	free(t);
}
END_TEST

/* Bad arguments over HTTP: 400 before any PostgreSQL work. */
START_TEST(bad_arguments_400)
{
	struct {
		const char *method;
		char *path;
	} cases[] = {
	    {"POST", cpath("/copy", NULL)},
	    {"GET", cpath("/copy", NULL)},
	    {"GET", cpath("/copy", "table", "t", "query", "select 1", NULL)},
	    {"GET", cpath("/copy", "query", "select 1", "columns", "a", NULL)},
	    {"POST", cpath("/copy", "query", "select 1", NULL)},
	    {"POST", cpath("/copy", "table", "t", "format", "xml", NULL)},
	    {"POST", cpath("/copy", "table", "t", "header", "yes", NULL)},
	    {"GET", cpath("/copy", "table", "t", "format", "binary", "header",
			  "true", NULL)},
	    {"POST", cpath("/copy", "table", "t", "delimiter", ";;", NULL)},
	    {"POST", cpath("/copy", "table", "a.b.c", NULL)},
	    {"GET", cpath("/copy", "query", "select (1", NULL)},
	    {"GET", cpath("/copy", "query", "select 1; select 2", NULL)},
	    {"GET", cpath("/copy", "query", "select 1) to program 'id' --",
			  NULL)},
	    {"GET", cpath("/copy", "query", "select 1 --\n) to program 'id'",
			  NULL)},
	    {"GET", cpath("/copy", "query", "select 'x", NULL)},
	    {"GET", cpath("/copy", "query", "select 1 /* x", NULL)},
	    {"GET", cpath("/copy", "query",
			  "select E'\\'' ) to program 'id' --'", NULL)},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cx x = {.method = cases[i].method, .path = cases[i].path,
			       .body = "1,2\n", .body_len = 4, .keep = true};
		cx_run(&x);
		expect_error(&x, 400, NULL);
		cx_free(&x);
		free(cases[i].path);
	}
	/* An empty upload is fine: 0 rows. */
	char *t = it_table("empty");
	execf("create table %s (a int)", t);
	char *in = cpath("/copy", "table", t, NULL);
	post_ok(in, "", 0, 0);
	free(in);
	execf("drop table %s", t);
	wait_quiet(1.0, "after bad arguments");
	free(t);
}
END_TEST

/*
 * query= must not reach COPY ... TO PROGRAM: a_$x$ is one identifier for
 * PostgreSQL, so "$x$" there opens no dollar quote; and null= puts a
 * quote of the server's own after the query.
 */
START_TEST(query_injection_to_program)
{
	char marker[128];
	snprintf(marker, sizeof(marker), "/tmp/fpg_copy_injected_%d",
		 (int)getpid());
	unlink(marker);
	char *q = it_fmt("select 1 as a_$x$) to program 'touch %s;$x$", marker);
	char *path = cpath("/copy", "query", q, "null", " --", NULL);
	struct cx x = {.method = "GET", .path = path, .keep = true};
	cx_run(&x);
	usleep(200 * 1000);
	bool ran = access(marker, F_OK) == 0;
	unlink(marker);
	ck_assert_msg(!ran,
		      "GET /copy?query=%s&null=%%20-- ran COPY ... TO PROGRAM "
		      "(%s exists): %s",
		      q, marker, cx_desc(&x));
	expect_error(&x, 400, NULL);
	cx_free(&x);
	free(path);
	free(q);
	wait_quiet(1.0, "after the injection attempt");
}
END_TEST

/*
 * PostgreSQL ends a -- comment at a carriage return too: a text scan that
 * read on to the newline took ") TO PROGRAM ..." for comment, and null=
 * closed the block comment opened after it. PostgreSQL's own Parse of query= refuses
 * all of these, whatever a scan would think of them.
 */
START_TEST(query_injection_cr_comment)
{
	char marker[128];
	snprintf(marker, sizeof(marker), "/tmp/fpg_copy_cr_%d", (int)getpid());
	unlink(marker);
	char *texts[] = {
	    it_fmt("SELECT 1 --\r) TO PROGRAM 'touch %s' /*", marker),
	    it_fmt("SELECT 1 --\r) TO '%s' /*", marker),
	    it_fmt("select E'\\'' ) to program 'touch %s' --'", marker),
	    it_fmt("select '\\' ) to program 'touch %s' --'", marker),
	    it_fmt("select E'\\';' ; copy (select 1) to program 'touch %s'",
		   marker),
	};
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		char *path = cpath("/copy", "query", texts[i], "null", "*/ --",
				   NULL);
		struct cx x = {.method = "GET", .path = path, .keep = true};
		cx_run(&x);
		usleep(100 * 1000);
		bool ran = access(marker, F_OK) == 0;
		unlink(marker);
		ck_assert_msg(!ran, "GET /copy?query=%s wrote %s: %s", texts[i],
			      marker, cx_desc(&x));
		expect_error(&x, 400, NULL);
		cx_free(&x);
		free(path);
		free(texts[i]);
	}
	wait_quiet(1.0, "after the CR comment injection");
}
END_TEST

/* query= must be one statement that returns rows, as PostgreSQL sees it. */
START_TEST(query_checked_by_postgres)
{
	char *t = it_table("qc");
	execf("create table %s (a int)", t);
	char *no_rows = it_fmt("insert into %s values (1)", t);
	struct {
		const char *q;
		const char *code;
	} cases[] = {
	    {no_rows, "bad_request"},	 /* parsed, never run */
	    {"", "bad_request"},
	    {"-- nothing", "bad_request"},
	    /* two statements: E'' is read early now, no 42601 from Parse */
	    {"select E'\\';' ; select 2", "bad_request"},
	    {"select from_nowhere", "42703"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *path = cpath("/copy", "query", cases[i].q, NULL);
		struct cx x = {.method = "GET", .path = path, .keep = true};
		cx_run(&x);
		expect_error(&x, 400, cases[i].code);
		cx_free(&x);
		free(path);
	}
	ck_assert_int_eq(scalar_ll("select count(*) from %s", t), 0);
	/* Backslashes in string literals are PostgreSQL's to read. */
	struct it_buf out = {0};
	char *path = cpath("/copy", "query",
			   "select E'it\\'s' as a, 'a\\b' as b -- \\", NULL);
	get_ok(path, "text/csv", &out);
	ck_assert_msg(strcmp(out.data, "it's,a\\b\n") == 0, "got [%s]",
		      out.data);
	b_free(&out);
	free(path);
	free(no_rows);
	execf("drop table %s", t);
	wait_quiet(1.0, "after the query checks");
	free(t);
}
END_TEST

/*
 * GET /copy?query= runs read-only: data-modifying CTEs and functions that
 * write fail, and nothing is left behind. The connection is fine after.
 */
START_TEST(query_read_only)
{
	char *t = it_table("ro");
	execf("create table %s (a int)", t);
	execf("create function %s_w() returns int language plpgsql as "
	      "$$begin insert into %s values (2); return 1; end$$",
	      t, t);
	execf("create sequence %s_s", t);
	char *texts[] = {
	    it_fmt("with x as (insert into %s values (1) returning a) "
		   "select * from x",
		   t),
	    it_fmt("select %s_w()", t),
	    it_fmt("select nextval('%s_s')", t),
	};
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		char *path = cpath("/copy", "query", texts[i], NULL);
		struct cx x = {.method = "GET", .path = path, .keep = true};
		cx_run(&x);
		json_t *e = expect_error(&x, 403, NULL);
		const char *code = json_string_value(json_object_get(e, "code"));
		ck_assert_msg(strcmp(code, "25006") == 0, "%s: %s", texts[i],
			      cx_desc(&x));
		cx_free(&x);
		free(path);
		free(texts[i]);
	}
	ck_assert_int_eq(scalar_ll("select count(*) from %s", t), 0);
	ck_assert_int_eq(
	    scalar_ll("select count(*) from %s_s where is_called", t), 0);
	/* The same connections still serve, and still read-write. */
	struct it_buf out = {0};
	char *path = cpath("/copy", "query", "select 41 + 1", NULL);
	get_ok(path, "text/csv", &out);
	ck_assert_str_eq(out.data, "42\n");
	b_free(&out);
	free(path);
	path = cpath("/copy", "table", t, NULL);
	post_ok(path, "7\n", 2, 1);
	free(path);
	execf("drop function %s_w()", t);
	execf("drop sequence %s_s", t);
	execf("drop table %s", t);
	wait_quiet(1.0, "after read-only queries");
	free(t);
}
END_TEST

/* Option values that try to end the statement are only data. */
START_TEST(hostile_option_values)
{
	char *t = it_table("hv");
	execf("create table %s (a int, b text)", t);
	execf("insert into %s values (1, null)", t);
	static const char *nulls[] = {
	    "\\' ) to program 'id' --", "*/ --", "/*", "'", "\\", "$$", ";",
	    "a b", "E'x'",
	};
	/* The delimiter too: a quote, doubled inside the literal. */
	char *qpath = cpath("/copy", "table", t, "delimiter", "'", NULL);
	struct it_buf qout = {0};
	get_ok(qpath, "text/csv", &qout);
	ck_assert_msg(strcmp(qout.data, "1'\n") == 0, "got [%s]", qout.data);
	b_free(&qout);
	free(qpath);
	for (size_t i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++) {
		char *path = cpath("/copy", "table", t, "null", nulls[i],
				   "delimiter", "|", NULL);
		struct it_buf out = {0};
		get_ok(path, "text/csv", &out);
		char *want = it_fmt("1|%s\n", nulls[i]);
		ck_assert_msg(strcmp(out.data, want) == 0, "null=[%s]: got [%s]",
			      nulls[i], out.data);
		free(want);
		b_free(&out);
		free(path);
	}
	execf("drop table %s", t);
	wait_quiet(1.0, "after hostile option values");
	free(t);
}
END_TEST

/* table= with a dot in a name ("..." quoting), and schema.table. */
START_TEST(table_names_with_dots)
{
	char sfx[32];
	it_suffix(sfx, sizeof(sfx));
	execf("create schema \"s.%s\"", sfx);
	execf("create table \"s.%s\".\"t.x\" (a int)", sfx);
	execf("create table \"my.%s\" (a int)", sfx);
	execf("create table \"s.%s\".plain (a int)", sfx);
	struct {
		char *table;
		char *sql; /* the same table for PostgreSQL */
	} cases[] = {
	    {it_fmt("\"my.%s\"", sfx), it_fmt("\"my.%s\"", sfx)},
	    {it_fmt("\"s.%s\".\"t.x\"", sfx),
	     it_fmt("\"s.%s\".\"t.x\"", sfx)},
	    {it_fmt("\"s.%s\".plain", sfx), it_fmt("\"s.%s\".plain", sfx)},
	    {it_fmt("public.\"my.%s\"", sfx), it_fmt("\"my.%s\"", sfx)},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *in = cpath("/copy", "table", cases[i].table, NULL);
		post_ok(in, "1\n2\n", 4, 2);
		struct it_buf out = {0};
		get_ok(in, "text/csv", &out);
		ck_assert_msg(strcmp(out.data, "1\n2\n") == 0 ||
				  (i == 3 && strcmp(out.data,
						    "1\n2\n1\n2\n") == 0),
			      "%s: got [%s]", cases[i].table, out.data);
		b_free(&out);
		free(in);
		char *sql = cases[i].sql;
		char *count = it_fmt("select count(*) from %s", sql);
		ck_assert_int_eq(scalar_ll("%s", count), i == 3 ? 4 : 2);
		if (i != 0)
			execf("truncate %s", sql);
		free(count);
		free(sql);
		free(cases[i].table);
	}
	execf("drop schema \"s.%s\" cascade", sfx);
	execf("drop table \"my.%s\"", sfx);
	wait_quiet(1.0, "after dotted names");
}
END_TEST

/* ---- gzip/deflate uploads and decompression bombs ---- */

/* src[0..n) compressed with gzip (level 1: fast); malloc'd, *out_n. */
static char *gzip_bytes(const char *src, size_t n, size_t *out_n)
{
	z_stream z = {0};
	if (deflateInit2(&z, 1, Z_DEFLATED, 16 + MAX_WBITS, 8,
			 Z_DEFAULT_STRATEGY) != Z_OK)
		abort();
	size_t cap = deflateBound(&z, (uLong)n);
	char *out = malloc(cap);
	if (!out)
		abort();
	z.next_in = (unsigned char *)(uintptr_t)src;
	z.avail_in = (uInt)n;
	z.next_out = (unsigned char *)out;
	z.avail_out = (uInt)cap;
	if (deflate(&z, Z_FINISH) != Z_STREAM_END)
		abort();
	*out_n = z.total_out;
	deflateEnd(&z);
	return out;
}

/* rows rows "1,\n" (valid ones): a bomb that gzip takes 200:1. */
static char *ones(size_t rows)
{
	char *b = malloc(rows * 3);
	if (!b)
		abort();
	for (size_t i = 0; i < rows * 3; i++)
		b[i] = "1,\n"[i % 3];
	return b;
}

/* Rows "id,random digits\n": gzip takes it about 2:1. */
static char *digit_rows(size_t n, size_t *rows)
{
	char *b = malloc(n);
	if (!b)
		abort();
	size_t i = 0;
	*rows = 0;
	while (i + 64 <= n) {
		i += (size_t)sprintf(b + i, "%zu,", *rows + 1);
		while (i % 64 != 63)
			b[i++] = (char)('0' + rand() % 10);
		b[i++] = '\n';
		++*rows;
	}
	return b;
}

static void post_gz_expect_413(unsigned p, const char *path, const char *gz,
			       size_t n)
{
	struct cx x = {.method = "POST", .path = path, .body = gz,
		       .body_len = n, .encoding = "gzip", .keep = true,
		       .port = p};
	cx_run(&x);
	json_t *e = expect_error(&x, 413, "inflated_too_large");
	ck_assert_msg(strstr(json_string_value(json_object_get(e, "message")),
			     "max-infl"),
		      "%s", cx_desc(&x));
	cx_free(&x);
}

START_TEST(gzip_bombs_refused)
{
	char *t = it_table("gz");
	execf("create table %s (a int, b text)", t);
	char *in = cpath("/copy", "table", t, NULL);
	/* A genuine gzip upload works. */
	size_t rows, gn;
	char *plain = digit_rows(3 * 1024 * 1024, &rows);
	char *gz = gzip_bytes(plain, rows * 64, &gn);
	struct cx ok = {.method = "POST", .path = in, .body = gz,
			.body_len = gn, .encoding = "gzip", .keep = true};
	cx_run(&ok);
	ck_assert_msg(ok.status == 200 && ok.json &&
			  json_integer_value(json_object_get(
			      ok.json, "row_count")) == (json_int_t)rows,
		      "%s", cx_desc(&ok));
	cx_free(&ok);
	execf("truncate %s", t);
	/* 66 MiB of "1,\n" in about 300 KiB: past 100:1 (the default). */
	size_t bn;
	const size_t bomb_rows = 22 * 1024 * 1024; /* 66 MiB */
	char *bomb_src = ones(bomb_rows);
	char *bomb = gzip_bytes(bomb_src, bomb_rows * 3, &bn);
	free(bomb_src);
	fprintf(stderr, "  bomb: 66 MiB in %zu bytes\n", bn);
	post_gz_expect_413(0, in, bomb, bn);
	ck_assert_int_eq(scalar_ll("select count(*) from %s", t), 0);
	/* A server with a 2 MiB inflated limit and no ratio limit. */
	struct fpg_options o;
	it_options(&o);
	o.threads = 1;
	o.max_inflated_bytes = 2 * 1024 * 1024;
	o.max_inflate_ratio = 0;
	unsigned p2;
	struct fpg_server *srv = it_server_start(&o, &p2);
	post_gz_expect_413(p2, in, gz, gn); /* 3 MiB inflated */
	post_gz_expect_413(p2, in, bomb, bn);
	ck_assert_int_eq(scalar_ll("select count(*) from %s", t), 0);
	/* Within the limit, the same server copies. */
	char *small = gzip_bytes(plain, 1024 * 64, &gn);
	struct cx ok2 = {.method = "POST", .path = in, .body = small,
			 .body_len = gn, .encoding = "gzip", .keep = true,
			 .port = p2};
	cx_run(&ok2);
	ck_assert_msg(ok2.status == 200 && ok2.json &&
			  json_integer_value(json_object_get(
			      ok2.json, "row_count")) == 1024,
		      "%s", cx_desc(&ok2));
	cx_free(&ok2);
	fpg_server_stop(srv, 1000);
	fpg_server_free(srv);
	free(small);
	free(bomb);
	free(gz);
	free(plain);
	free(in);
	execf("drop table %s", t);
	wait_quiet(2.0, "after the bombs");
	free(t);
}
END_TEST

/* ---- e. the client leaves mid-upload ---- */

START_TEST(disconnect_mid_upload)
{
	char *t = it_table("up");
	execf("create table %s (id int, a text, b text)", t);
	execf("insert into %s values (0, 'kept', 'kept')", t);
	char *in = cpath("/copy", "table", t, NULL);
	/* Mid-stream, and right after the first piece (the COPY may not
	 * have started yet). */
	const size_t after[] = {8u << 20, 64u << 10, 1u << 20, 1};
	const char *env = getenv("FPG_COPY_ABORT_AFTER");
	for (size_t round = 0; round < (env ? 1 : 4); round++) {
		struct rowgen g = {.next = 1, .last = 5000000};
		struct cx x = {.method = "POST", .path = in, .gen = gen_rows,
			       .gen_ud = &g, .keep = true,
			       .abort_up_after = env ? strtoul(env, NULL, 10)
						     : after[round]};
		cx_run(&x);
		double t0 = it_now();
		ck_assert_msg(x.up_aborted &&
				  x.curl_code == CURLE_ABORTED_BY_CALLBACK,
			      "%s", cx_desc(&x));
		double q = wait_quiet(2.0, "after a disconnect mid-upload");
		fprintf(stderr,
			"  upload aborted after %zu bytes: quiet after %.2f s "
			"(%.2f s since)\n",
			x.up_bytes, q, it_now() - t0);
		cx_free(&x);
		ck_assert_int_eq(scalar_ll("select count(*) from %s", t), 1);
	}
	/* The next /copy works. */
	post_ok(in, "1,a,b\n2,c,d\n", 12, 2);
	ck_assert_int_eq(scalar_ll("select count(*) from %s", t), 3);
	free(in);
	execf("drop table %s", t);
	wait_quiet(1.0, "after the next upload");
	free(t);
}
END_TEST

/* ---- f. the client leaves mid-download ---- */

START_TEST(disconnect_mid_download)
{
	char *t = it_table("down");
	execf("create unlogged table %s as select g as id, repeat(md5(g::text), 8)"
	      " as a from generate_series(1,200000) g",
	      t);
	char *tab = cpath("/copy", "table", t, NULL);
	char *qry = cpath("/copy", "query",
			  "select g, repeat('x', 200) from"
			  " generate_series(1,3000000) g",
			  NULL);
	char *tab_text = cpath("/copy", "table", t, "format", "text", NULL);
	const char *paths[] = {tab, qry, tab_text};
	for (size_t i = 0; i < 3; i++) {
		struct cx x = {.method = "GET", .path = paths[i],
			       .abort_down_after = 1u << 20};
		cx_run(&x);
		double t0 = it_now();
		ck_assert_msg(x.down_aborted && x.status == 200 &&
				  x.curl_code == CURLE_WRITE_ERROR,
			      "%s", cx_desc(&x));
		double q = wait_quiet(1.0, "after a disconnect mid-download");
		fprintf(stderr,
			"  download aborted after %zu bytes: quiet after %.2f s "
			"(%.2f s since)\n",
			x.down_bytes, q, it_now() - t0);
		cx_free(&x);
	}
	/* The next download works. */
	struct cx d = {.method = "GET", .path = tab};
	cx_run(&d);
	ck_assert_msg(d.curl_code == 0 && d.status == 200 && d.lines == 200000,
		      "%s", cx_desc(&d));
	cx_free(&d);
	free(tab);
	free(qry);
	free(tab_text);
	execf("drop table %s", t);
	wait_quiet(1.0, "after the next download");
	free(t);
}
END_TEST

/* ---- g. inside a transaction session ---- */

static char *tx_begin(void)
{
	struct http_resp *r = http_post_json(port, "/tx", "{}");
	it_assert_resp(r, r->curl_code == 0 && r->status == 201 && r->json);
	const char *tok = json_string_value(json_object_get(r->json, "tx"));
	ck_assert_msg(tok && *tok, "no token: %s", r->body);
	char *t = strdup(tok);
	http_resp_free(r);
	return t;
}

static long long tx_count(const char *tok, const char *t)
{
	char *path = it_fmt("/tx/%s/query", tok);
	char *body = it_fmt("{\"sql\":\"select count(*)::int as n from %s\"}", t);
	struct http_resp *r = http_post_json(port, path, body);
	it_assert_resp(r, r->status == 200 && r->json);
	json_t *rows = json_object_get(r->json, "rows");
	long long n = json_integer_value(
	    json_object_get(json_array_get(rows, 0), "n"));
	http_resp_free(r);
	free(body);
	free(path);
	return n;
}

static void tx_end(const char *tok, const char *what)
{
	char *path = it_fmt("/tx/%s/%s", tok, what);
	struct http_resp *r = http_request(port, "POST", path, NULL, NULL);
	it_assert_resp(r, r->status == 200);
	http_resp_free(r);
	free(path);
}

START_TEST(copy_in_tx_session)
{
	char *t = it_table("tx");
	execf("create table %s (id int primary key, a text)", t);

	/* Commit. */
	char *tok = tx_begin();
	char *base = it_fmt("/tx/%s/copy", tok);
	char *in = cpath(base, "table", t, NULL);
	post_ok(in, "1,a\n2,b\n3,\"c,d\"\n", 16, 3);
	ck_assert_int_eq(tx_count(tok, t), 3);
	ck_assert_int_eq(scalar_ll("select count(*) from %s", t), 0);
	struct it_buf got = {0}, want = {0};
	char *out = cpath(base, "table", t, NULL);
	get_ok(out, "text/csv", &got);
	it_buf_puts(&want, "1,a\n2,b\n3,\"c,d\"\n");
	assert_same_bytes("GET /tx/{token}/copy", &got, &want);
	b_free(&got);
	b_free(&want);
	/* query= in the session: parsed first, sees the session's rows; one
	 * without rows is refused and leaves the transaction usable. */
	char *q = it_fmt("select count(*) from %s", t);
	char *qpath = cpath(base, "query", q, NULL);
	get_ok(qpath, "text/csv", &got);
	ck_assert_str_eq(got.data, "3\n");
	b_free(&got);
	free(qpath);
	free(q);
	q = it_fmt("delete from %s", t);
	qpath = cpath(base, "query", q, NULL);
	struct cx nr = {.method = "GET", .path = qpath, .keep = true};
	cx_run(&nr);
	expect_error(&nr, 400, "bad_request");
	cx_free(&nr);
	free(qpath);
	free(q);
	ck_assert_int_eq(tx_count(tok, t), 3);
	/* A second upload in the same session, in text. */
	char *in_text = cpath(base, "table", t, "format", "text", NULL);
	post_ok(in_text, "4\te\n", 4, 1);
	ck_assert_int_eq(tx_count(tok, t), 4);
	ck_assert_int_eq(scalar_ll("select count(*) from %s", t), 0);
	tx_end(tok, "commit");
	ck_assert_int_eq(scalar_ll("select count(*) from %s", t), 4);
	free(in);
	free(in_text);
	free(out);
	free(base);
	free(tok);

	/* Rollback. */
	tok = tx_begin();
	base = it_fmt("/tx/%s/copy", tok);
	in = cpath(base, "table", t, NULL);
	post_ok(in, "10,x\n11,y\n", 10, 2);
	ck_assert_int_eq(tx_count(tok, t), 6);
	ck_assert_int_eq(scalar_ll("select count(*) from %s", t), 4);
	tx_end(tok, "rollback");
	ck_assert_int_eq(scalar_ll("select count(*) from %s", t), 4);
	free(in);
	free(base);
	free(tok);

	/* A bad row inside a session: the error, nothing committed. */
	tok = tx_begin();
	base = it_fmt("/tx/%s/copy", tok);
	in = cpath(base, "table", t, NULL);
	struct cx x = {.method = "POST", .path = in, .body = "20,x\n1,dup\n",
		       .body_len = 11, .keep = true};
	cx_run(&x);
	expect_error(&x, 409, "23505");
	cx_free(&x);
	char *path = it_fmt("/tx/%s/rollback", tok);
	struct http_resp *r = http_request(port, "POST", path, NULL, NULL);
	http_resp_free(r);
	free(path);
	ck_assert_int_eq(scalar_ll("select count(*) from %s", t), 4);
	free(in);
	free(base);
	free(tok);

	execf("drop table %s", t);
	wait_quiet(1.0, "after the sessions");
	free(t);
}
END_TEST

/* ---- h. Expect: 100-continue ---- */

START_TEST(expect_100_continue)
{
	char *t = it_table("exp");
	execf("create table %s (id int, a text, b text)", t);
	char *in = cpath("/copy", "table", t, NULL);
	struct rowgen g = {.next = 1, .last = 60000};
	struct it_buf body = {0};
	char *chunk = malloc(256 * 1024);
	size_t k;
	while ((k = gen_rows(chunk, 256 * 1024, &g)) > 0)
		it_buf_put(&body, chunk, k);
	free(chunk);
	/* Content-Length and Expect: 100-continue. */
	struct cx x = {.method = "POST", .path = in, .body = body.data,
		       .body_len = body.len, .expect100 = true, .keep = true};
	cx_run(&x);
	fprintf(stderr, "  100-continue, %zu bytes: %.2f s, 100 seen: %d\n",
		body.len, x.t_end - x.t_start, x.saw_100);
	ck_assert_msg(x.curl_code == 0 && x.status == 200 && x.json &&
			  json_integer_value(json_object_get(x.json,
							     "row_count")) ==
			      60000,
		      "%s", cx_desc(&x));
	ck_assert_msg(x.saw_100, "no 100 Continue: %s", cx_desc(&x));
	ck_assert_msg(x.t_end - x.t_start < 5.0,
		      "took %.2f s (waited for the 100 Continue?)",
		      x.t_end - x.t_start);
	cx_free(&x);
	/* Chunked and Expect: 100-continue. */
	struct cx y = {.method = "POST", .path = in, .body = body.data,
		       .body_len = body.len, .expect100 = true,
		       .chunked = true, .keep = true};
	cx_run(&y);
	ck_assert_msg(y.curl_code == 0 && y.status == 200 && y.json &&
			  json_integer_value(json_object_get(y.json,
							     "row_count")) ==
			      60000,
		      "%s", cx_desc(&y));
	ck_assert_msg(y.t_end - y.t_start < 5.0, "took %.2f s",
		      y.t_end - y.t_start);
	cx_free(&y);
	/* An error with Expect: the answer comes, the table is unchanged. */
	char *nope = cpath("/copy", "table", "no_such_table_e", NULL);
	struct cx z = {.method = "POST", .path = nope, .body = body.data,
		       .body_len = body.len, .expect100 = true, .keep = true};
	cx_run(&z);
	expect_error(&z, 400, "42P01");
	ck_assert_msg(z.t_end - z.t_start < 5.0, "took %.2f s",
		      z.t_end - z.t_start);
	cx_free(&z);
	free(nope);
	ck_assert_int_eq(scalar_ll("select count(*) from %s", t), 120000);
	b_free(&body);
	free(in);
	execf("drop table %s", t);
	wait_quiet(1.0, "after 100-continue");
	free(t);
}
END_TEST

/* Lets the pool open, then takes the idle state as the baseline. */
static void take_baseline(void)
{
	struct http_resp *r = it_query(port, "{\"sql\":\"select 1\"}");
	if (!r || r->status != 200) {
		fprintf(stderr, "test_copy: the server does not answer\n");
		exit(1);
	}
	http_resp_free(r);
	usleep(200 * 1000);
	struct it_activity a;
	char text[800];
	if (!it_activity_read(port, &a, text, sizeof(text))) {
		fprintf(stderr, "test_copy: %s\n", text);
		exit(1);
	}
	busy_baseline = a.busy;
	fprintf(stderr, "test_copy: baseline %s%s\n", text,
		CP_ASAN ? " (ASan)" : "");
}

static const struct test_case cases[] = {
    TEST_CASE(round_trip_csv_text_binary),
    TEST_CASE(options_both_ways),
    TEST_CASE(million_rows_each_way),
    TEST_CASE(errors_leave_table_unchanged),
    TEST_CASE(bad_arguments_400),
    TEST_CASE(query_injection_to_program),
    TEST_CASE(query_injection_cr_comment),
    TEST_CASE(query_checked_by_postgres),
    TEST_CASE(query_read_only),
    TEST_CASE(hostile_option_values),
    TEST_CASE(table_names_with_dots),
    TEST_CASE(gzip_bombs_refused),
    TEST_CASE(disconnect_mid_upload),
    TEST_CASE(disconnect_mid_download),
    TEST_CASE(copy_in_tx_session),
    TEST_CASE(expect_100_continue),
    {0},
};

static const struct it_server servers[] = {{&port, NULL}, {0}};

const struct it_program it_program = {
    .name = "copy",
    .cases = cases,
    .schema_per_case = true,
    .servers = servers,
    .started = take_baseline,
    .before_each = mark_baseline,
    .timeout_s = 120,
};
