/*
 * Streaming HTTP client for test_stream.c: one request through a libcurl
 * write callback that looks at the answer as it arrives instead of holding
 * it (1,000,000-row answers are ~100 MB).
 *
 * Two sinks:
 *  - lines (NDJSON, CSV): counts '\n'-terminated lines, keeps the first
 *    two, the last two and an unterminated tail, counts lines without CR;
 *  - JSON: a small scanner of the one-object answer
 *    {"columns":[…],"rows":[…],…}: counts the elements of "rows", keeps
 *    the first and the last row's text, and keeps everything outside the
 *    rows array so that head + "[]" + tail parses as the answer without
 *    its rows.
 * The callback can abort the transfer after some bytes or seconds, sleep
 * once at the first chunk, and call a hook once past a byte threshold.
 */
#pragma once

#include <pthread.h>
#include <unistd.h>

#include "it_common.h"

enum st_mode { ST_LINES, ST_JSON };

struct st_sink;
typedef void (*st_hook_fn)(struct st_sink *s, void *ud);

struct st_req {
	unsigned port;
	const char *path;	/* "/query" when NULL */
	const char *accept;	/* Accept header or NULL */
	const char *body;	/* JSON body */
	const char *request_id; /* X-Request-Id or NULL; X-Cancel-Key is
				   then st_cancel_key(request_id) */
	enum st_mode mode;
	curl_off_t max_recv_speed; /* bytes/s, 0 = unlimited */
	size_t abort_after_bytes;  /* return 0 from the callback; 0 = never */
	double abort_after_s;	   /* seconds after the first byte; 0 = never */
	long timeout_ms;	   /* whole transfer; 0 = 120 s */
	unsigned first_sleep_ms;   /* sleep once at the first body chunk */
	size_t hook_after_bytes;   /* call hook once past these bytes */
	st_hook_fn hook;
	void *hook_ud;
};

struct st_sink {
	const struct st_req *rq;
	/* transfer */
	long status;
	int curl_code;
	size_t bytes;
	bool aborted; /* we returned 0 */
	bool hook_called;
	bool slept;
	double t_start, t_first, t_end;
	struct it_buf headers;
	/* lines */
	uint64_t lines;
	uint64_t lines_without_cr;
	struct it_buf cur;
	char *first[2];
	char *last, *prev;
	/* JSON */
	int depth;
	bool in_str, esc;
	bool rows_started, rows_done, in_row;
	char key[64];
	size_t key_len;
	bool key_capture;
	uint64_t rows;
	struct it_buf row;
	char *first_row, *last_row;
	struct it_buf head, tail;
};

/*
 * The X-Cancel-Key these tests send with request id: derived from it so
 * that a test can cancel by id alone (a real client keeps a random one).
 * Static storage: valid until the next call.
 */
IT_UNUSED static const char *st_cancel_key(const char *id)
{
	static _Thread_local char key[200];
	snprintf(key, sizeof(key), "key-of-%s", id);
	return key;
}

static char *st_dup(const char *p, size_t n)
{
	char *s = malloc(n + 1);
	if (!s)
		abort();
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

static void st_line(struct st_sink *s, const char *p, size_t n)
{
	if (n > 0 && p[n - 1] == '\r')
		n--;
	else
		s->lines_without_cr++;
	s->lines++;
	if (s->lines <= 2)
		s->first[s->lines - 1] = st_dup(p, n);
	free(s->prev);
	s->prev = s->last;
	s->last = st_dup(p, n);
}

static void st_feed_lines(struct st_sink *s, const char *p, size_t n)
{
	while (n > 0) {
		const char *nl = memchr(p, '\n', n);
		if (!nl) {
			it_buf_put(&s->cur, p, n);
			return;
		}
		size_t k = (size_t)(nl - p);
		if (s->cur.len) {
			it_buf_put(&s->cur, p, k);
			st_line(s, s->cur.data, s->cur.len);
			s->cur.len = 0;
		} else {
			st_line(s, p, k);
		}
		p = nl + 1;
		n -= k + 1;
	}
}

static void st_row_end(struct st_sink *s)
{
	s->rows++;
	s->in_row = false;
	if (s->rows == 1)
		s->first_row = st_dup(s->row.data, s->row.len);
	free(s->last_row);
	s->last_row = st_dup(s->row.data, s->row.len);
	s->row.len = 0;
}

static void st_feed_json(struct st_sink *s, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (s->in_row)
			it_buf_putc(&s->row, c);
		else if (!s->rows_started)
			it_buf_putc(&s->head, c);
		else if (s->rows_done)
			it_buf_putc(&s->tail, c);
		if (s->in_str) {
			if (s->esc)
				s->esc = false;
			else if (c == '\\')
				s->esc = true;
			else if (c == '"')
				s->in_str = false;
			else if (s->key_capture &&
				 s->key_len + 1 < sizeof(s->key))
				s->key[s->key_len++] = c;
			if (!s->in_str)
				s->key[s->key_len] = '\0';
			continue;
		}
		switch (c) {
		case '"':
			s->in_str = true;
			s->key_capture = s->depth == 1;
			if (s->key_capture)
				s->key_len = 0;
			break;
		case '{':
		case '[':
			if (s->depth == 2 && s->rows_started && !s->rows_done &&
			    !s->in_row) {
				s->in_row = true;
				s->row.len = 0;
				it_buf_putc(&s->row, c);
			}
			s->depth++;
			if (s->depth == 2 && c == '[' &&
			    strcmp(s->key, "rows") == 0 && !s->rows_started) {
				s->rows_started = true;
				/* head ends with the '['; drop it */
				s->head.len--;
				s->head.data[s->head.len] = '\0';
			}
			break;
		case '}':
		case ']':
			s->depth--;
			if (s->depth == 2 && s->in_row)
				st_row_end(s);
			else if (s->depth == 1 && s->rows_started &&
				 !s->rows_done && c == ']')
				s->rows_done = true;
			break;
		default:
			break;
		}
	}
}

static size_t st_write(char *p, size_t size, size_t nmemb, void *ud)
{
	struct st_sink *s = ud;
	const struct st_req *rq = s->rq;
	size_t n = size * nmemb;
	if (!s->bytes)
		s->t_first = it_now();
	if (rq->first_sleep_ms && !s->slept) {
		s->slept = true;
		usleep(rq->first_sleep_ms * 1000);
	}
	s->bytes += n;
	if (rq->mode == ST_LINES)
		st_feed_lines(s, p, n);
	else
		st_feed_json(s, p, n);
	if (rq->hook && !s->hook_called && s->bytes >= rq->hook_after_bytes) {
		s->hook_called = true;
		rq->hook(s, rq->hook_ud);
	}
	if ((rq->abort_after_bytes && s->bytes >= rq->abort_after_bytes) ||
	    (rq->abort_after_s > 0 && it_now() - s->t_first >= rq->abort_after_s)) {
		s->aborted = true;
		return 0;
	}
	return n;
}

static size_t st_header(char *p, size_t size, size_t nmemb, void *ud)
{
	struct st_sink *s = ud;
	return it_hdr_write(p, size, nmemb, &s->headers);
}

/* Runs one request; the caller frees the sink with st_free(). */
IT_UNUSED static void st_run(const struct st_req *rq, struct st_sink *s)
{
	memset(s, 0, sizeof(*s));
	s->rq = rq;
	CURL *c = curl_easy_init();
	if (!c)
		abort();
	char hacc[256], hid[256], hkey[256];
	const char *hdrs[4] = {NULL};
	size_t nh = 0;
	if (rq->accept) {
		snprintf(hacc, sizeof(hacc), "Accept: %s", rq->accept);
		hdrs[nh++] = hacc;
	}
	if (rq->request_id) {
		snprintf(hid, sizeof(hid), "X-Request-Id: %s", rq->request_id);
		hdrs[nh++] = hid;
		snprintf(hkey, sizeof(hkey), "X-Cancel-Key: %s",
			 st_cancel_key(rq->request_id));
		hdrs[nh++] = hkey;
	}
	struct curl_slist *list =
	    http_prepare(c, rq->port, "POST", rq->path ? rq->path : "/query",
			 rq->body, 0, hdrs);
	if (!list)
		abort();
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
			 rq->timeout_ms ? rq->timeout_ms : 120000L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, st_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, st_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, s);
	if (rq->max_recv_speed)
		curl_easy_setopt(c, CURLOPT_MAX_RECV_SPEED_LARGE,
				 rq->max_recv_speed);
	s->t_start = it_now();
	s->curl_code = (int)curl_easy_perform(c);
	s->t_end = it_now();
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &s->status);
	curl_slist_free_all(list);
	curl_easy_cleanup(c); /* closes the connection: an abort is a
				 disconnect */
	if (!s->headers.data)
		s->headers.data = calloc(1, 1);
	/* The body went to the parsers, not kept: status and headers. */
	http_record(&(struct http_exchange){
	    .method = "POST",
	    .path = rq->path ? rq->path : "/query",
	    .req_headers = hdrs,
	    .has_body = rq->body != NULL,
	    .status = s->status,
	    .resp_headers = s->headers.data,
	    .curl_code = s->aborted ? -1 : s->curl_code});
}

IT_UNUSED static void st_free(struct st_sink *s)
{
	free(s->headers.data);
	free(s->cur.data);
	free(s->first[0]);
	free(s->first[1]);
	free(s->last);
	free(s->prev);
	free(s->row.data);
	free(s->first_row);
	free(s->last_row);
	free(s->head.data);
	free(s->tail.data);
	memset(s, 0, sizeof(*s));
}

/*
 * The JSON answer without its rows: head + "[]" + tail, parsed. NULL when
 * it does not parse (the text is in *text, caller frees).
 */
IT_UNUSED static json_t *st_json_frame(const struct st_sink *s, char **text)
{
	char *t = it_fmt("%s[]%s", s->head.data ? s->head.data : "",
			 s->tail.data ? s->tail.data : "");
	json_t *j = json_loads(t, 0, NULL);
	if (text)
		*text = t;
	else
		free(t);
	return j;
}

/* A header of the answer, malloc'd or NULL. */
IT_UNUSED static char *st_header_value(const struct st_sink *s,
				       const char *name)
{
	struct http_resp r = {.headers = s->headers.data};
	return http_header(&r, name);
}

/* Summary for failure messages (static buffer: one thread). */
IT_UNUSED static const char *st_desc(const struct st_sink *s)
{
	static char buf[1500];
	snprintf(buf, sizeof(buf),
		 "status %ld curl %d bytes %zu lines %llu rows %llu aborted %d; "
		 "first '%.200s' last '%.300s' tail '%.300s' partial '%.200s'",
		 s->status, s->curl_code, s->bytes,
		 (unsigned long long)s->lines, (unsigned long long)s->rows,
		 s->aborted, s->first[0] ? s->first[0] : "",
		 s->last ? s->last : "", s->tail.data ? s->tail.data : "",
		 s->cur.data ? s->cur.data : "");
	return buf;
}
