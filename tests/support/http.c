/*
 * Minimal libcurl wrapper for integration tests: one easy handle per
 * request, everything captured into a struct http_resp. Errors are reported
 * in the struct, never by aborting, so the test decides what they mean.
 */
#include "http.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
