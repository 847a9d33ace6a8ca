/*
 * Minimal libcurl wrapper for integration tests: one easy handle per
 * request, everything captured into a struct http_resp. Errors are reported
 * in the struct, never by aborting, so the test decides what they mean.
 */
#include "http.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>

struct growbuf {
	char *data;
	size_t len;
	size_t cap;
	bool oom;
};

static bool growbuf_append(struct growbuf *b, const char *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 1024;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *d = realloc(b->data, cap);
		if (!d) {
			b->oom = true;
			return false;
		}
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return true;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
	size_t n = size * nmemb;
	return growbuf_append(ud, p, n) ? n : 0;
}

/*
 * Keep only the last header block: a "100 Continue" interim response (or a
 * redirect) starts a new one with its own status line.
 */
static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
	struct growbuf *b = ud;
	size_t n = size * nmemb;

	if (n >= 5 && strncmp(p, "HTTP/", 5) == 0)
		b->len = 0;
	return growbuf_append(b, p, n) ? n : 0;
}

static char *take_or_empty(struct growbuf *b)
{
	if (b->data)
		return b->data;
	return calloc(1, 1);
}

static bool has_header(const char *const *hdrs, const char *name)
{
	size_t len = strlen(name);

	for (; hdrs && *hdrs; hdrs++) {
		if (strncasecmp(*hdrs, name, len) == 0 && (*hdrs)[len] == ':')
			return true;
	}
	return false;
}

struct curl_slist *http_prepare(CURL *c, unsigned port, const char *method,
				const char *path, const char *body,
				size_t body_len, const char *const *headers)
{
	struct curl_slist *list = NULL;
	struct curl_slist *next;
	char url[2048];

	for (const char *const *h = headers; h && *h; h++) {
		next = curl_slist_append(list, *h);
		if (!next)
			goto fail;
		list = next;
	}
	/* The server requires a type a web form cannot send. */
	if ((body || strcmp(method, "POST") == 0) &&
	    !has_header(headers, "Content-Type")) {
		next = curl_slist_append(list, "Content-Type: application/json");
		if (!next)
			goto fail;
		list = next;
	}
	/* No 100-continue round trip unless a test asks for it. */
	if (!has_header(headers, "Expect")) {
		next = curl_slist_append(list, "Expect:");
		if (!next)
			goto fail;
		list = next;
	}
	snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	else if (strcmp(method, "GET") != 0 || body)
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (body || strcmp(method, "POST") == 0) {
		/* POSTFIELDS also sends a body with a custom method. */
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)(body_len ? body_len
					      : body   ? strlen(body)
						       : 0));
	}
	return list;
fail:
	curl_slist_free_all(list);
	return NULL;
}

/* The value of header name in a NULL-terminated "Name: value" list. */
static const char *list_value(const char *const *hdrs, const char *name)
{
	size_t len = strlen(name);

	for (; hdrs && *hdrs; hdrs++) {
		if (strncasecmp(*hdrs, name, len) == 0 && (*hdrs)[len] == ':') {
			const char *v = *hdrs + len + 1;
			while (*v == ' ' || *v == '\t')
				v++;
			return v;
		}
	}
	return NULL;
}

/*
 * The raw header block as {"lower-case-name": "value", ...}; a repeated
 * header's values are joined with ", " as HTTP allows.
 */
static json_t *headers_json(const char *block)
{
	json_t *o = json_object();

	for (const char *line = block; o && line && *line;) {
		const char *eol = strchr(line, '\n');
		size_t len = eol ? (size_t)(eol - line) : strlen(line);
		const char *colon = memchr(line, ':', len);
		if (colon && strncmp(line, "HTTP/", 5) != 0) {
			char name[128];
			size_t n = (size_t)(colon - line);
			if (n >= sizeof(name))
				n = sizeof(name) - 1;
			for (size_t i = 0; i < n; i++)
				name[i] = (char)tolower((unsigned char)line[i]);
			name[n] = '\0';
			const char *v = colon + 1;
			const char *end = line + len;
			while (v < end && (*v == ' ' || *v == '\t'))
				v++;
			while (end > v && (end[-1] == '\r' || end[-1] == ' '))
				end--;
			const char *old =
			    json_string_value(json_object_get(o, name));
			char *val = old ? NULL : strndup(v, (size_t)(end - v));
			if (old && asprintf(&val, "%s, %.*s", old,
					    (int)(end - v), v) < 0)
				val = NULL;
			if (val)
				json_object_set_new(o, name, json_string(val));
			free(val);
		}
		if (!eol)
			break;
		line = eol + 1;
	}
	return o;
}

void http_record(const struct http_exchange *x)
{
	const char *file = getenv("FPG_TEST_RECORD");

	if (!file || !*file || x->status == 0)
		return;
	const char *ctype = list_value(x->req_headers, "Content-Type");
	if (!ctype && (x->has_body || strcmp(x->method, "POST") == 0))
		ctype = "application/json";
	json_t *hdrs = headers_json(x->resp_headers);
	json_t *line =
	    json_pack("{s:s, s:s, s:s?, s:I, s:b, s:o?}", "method", x->method,
		      "path", x->path, "request_content_type", ctype, "status",
		      (json_int_t)x->status, "complete", x->curl_code == 0,
		      "headers", hdrs);
	if (!line)
		return;
	const char *rtype =
	    json_string_value(json_object_get(hdrs, "content-type"));
	bool json_type =
	    rtype && strncasecmp(rtype, "application/json", 16) == 0;
	bool encoded = json_object_get(hdrs, "content-encoding") != NULL;
	if (x->body && json_type && !encoded && x->curl_code == 0 &&
	    x->body_len <= 1024 * 1024) {
		json_t *b =
		    json_loadb(x->body, x->body_len, JSON_DECODE_ANY, NULL);
		/* Not JSON to jansson (say an integer past 64 bits): the
		 * text, for the validator to read. */
		json_object_set_new(line, "body",
				    b ? b : json_stringn(x->body, x->body_len));
		json_object_set_new(line, "body_parsed", json_boolean(b));
	}
	char *text = json_dumps(line, JSON_COMPACT);
	json_decref(line);
	if (!text)
		return;
	size_t n = strlen(text);
	text[n] = '\n'; /* json_dumps' NUL goes; write() takes the length */
	int fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd >= 0) {
		/* One write(): lines of parallel writers never interleave. */
		if (write(fd, text, n + 1) != (ssize_t)(n + 1))
			fprintf(stderr, "http_record: %s: %s\n", file,
				strerror(errno));
		close(fd);
	}
	free(text);
}

struct http_resp *http_request_opts(unsigned port, const char *method,
				    const char *path, const char *body,
				    const char *const *extra_headers,
				    const struct http_opts *o)
{
	static const struct http_opts defaults;
	struct growbuf bb = {0};
	struct growbuf hb = {0};
	struct curl_slist *hdrs = NULL;
	struct http_resp *r = calloc(1, sizeof(*r));

	if (!o)
		o = &defaults;
	if (!r)
		return NULL;
	CURL *c = o->handle ? o->handle : curl_easy_init();
	if (!c) {
		r->curl_code = CURLE_FAILED_INIT;
		goto out;
	}
	/* A reused handle keeps its connection, not the last options. */
	if (o->handle)
		curl_easy_reset(c);
	hdrs = http_prepare(c, port, method, path, body, o->body_len,
			    extra_headers);
	if (!hdrs) {
		r->curl_code = CURLE_OUT_OF_MEMORY;
		goto out;
	}
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
			 o->timeout_ms ? o->timeout_ms : 60000L);
	if (o->fresh_connect) {
		curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 1L);
		curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
	}
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &bb);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &hb);
	r->curl_code = (int)curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	if (o->new_conns)
		curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, o->new_conns);
	if (r->curl_code == CURLE_OK && (bb.oom || hb.oom))
		r->curl_code = CURLE_OUT_OF_MEMORY;
out:
	curl_slist_free_all(hdrs);
	if (c && !o->handle)
		curl_easy_cleanup(c);
	r->body_len = bb.len;
	r->body = take_or_empty(&bb);
	r->headers = take_or_empty(&hb);
	if (r->body && r->body_len > 0)
		r->json =
		    json_loadb(r->body, r->body_len, JSON_DECODE_ANY, NULL);
	http_record(&(struct http_exchange){.method = method,
					    .path = path,
					    .req_headers = extra_headers,
					    .has_body = body != NULL,
					    .status = r->status,
					    .resp_headers = r->headers,
					    .body = r->body,
					    .body_len = r->body_len,
					    .curl_code = r->curl_code});
	return r;
}

struct http_resp *http_request(unsigned port, const char *method,
			       const char *path, const char *body,
			       const char *const *extra_headers)
{
	return http_request_opts(port, method, path, body, extra_headers,
				 NULL);
}

struct http_resp *http_post_json(unsigned port, const char *path,
				 const char *json_body)
{
	static const char *const hdrs[] = {"Content-Type: application/json",
					   NULL};

	return http_request(port, "POST", path, json_body, hdrs);
}

struct http_resp *http_get(unsigned port, const char *path)
{
	return http_request(port, "GET", path, NULL, NULL);
}

char *http_header(const struct http_resp *r, const char *name)
{
	size_t nlen = strlen(name);
	char *found = NULL;

	if (!r || !r->headers)
		return NULL;
	for (const char *line = r->headers; *line;) {
		const char *eol = strchr(line, '\n');
		size_t len = eol ? (size_t)(eol - line) : strlen(line);
		if (len > nlen && line[nlen] == ':' &&
		    strncasecmp(line, name, nlen) == 0) {
			const char *v = line + nlen + 1;
			const char *end = line + len;
			while (v < end && (*v == ' ' || *v == '\t'))
				v++;
			while (end > v && (end[-1] == '\r' || end[-1] == ' ' ||
					   end[-1] == '\t'))
				end--;
			free(found); /* the last occurrence wins */
			found = strndup(v, (size_t)(end - v));
		}
		if (!eol)
			break;
		line = eol + 1;
	}
	return found;
}

void http_resp_free(struct http_resp *r)
{
	if (!r)
		return;
	free(r->body);
	free(r->headers);
	json_decref(r->json);
	free(r);
}
