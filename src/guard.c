#include "guard.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "error.h"

/* A host and its port, split out of a Host header or a list entry. */
struct host_port {
	char host[256]; /* lower case, IPv6 with its brackets */
	char port[6];	/* digits, or "" when none */
};

/* Splits s[0..n) into host and port; false when it is not one. */
static bool split_host(const char *s, size_t n, struct host_port *hp)
{
	size_t hl = n;
	const char *port = NULL;
	if (n && s[0] == '[') {
		const char *close = memchr(s, ']', n);
		if (!close)
			return false;
		hl = (size_t)(close - s) + 1;
		if (hl < n) {
			if (s[hl] != ':')
				return false;
			port = s + hl + 1;
		}
	} else {
		const char *colon = memchr(s, ':', n);
		if (colon) {
			hl = (size_t)(colon - s);
			port = colon + 1;
		}
	}
	/* "name." is the same name as "name" */
	if (hl > 1 && s[hl - 1] == '.')
		hl--;
	if (hl == 0 || hl >= sizeof(hp->host))
		return false;
	for (size_t i = 0; i < hl; i++) {
		unsigned char c = (unsigned char)s[i];
		bool v6 = s[0] == '[';
		if (!(isalnum(c) || c == '.' || c == '-' ||
		      (v6 && (c == ':' || c == '[' || c == ']'))))
			return false;
		hp->host[i] = (char)tolower(c);
	}
	hp->host[hl] = '\0';
	hp->port[0] = '\0';
	if (port) {
		size_t pl = (size_t)(s + n - port);
		if (pl == 0 || pl >= sizeof(hp->port))
			return false;
		for (size_t i = 0; i < pl; i++) {
			if (port[i] < '0' || port[i] > '9')
				return false;
			hp->port[i] = port[i];
		}
		hp->port[pl] = '\0';
	}
	return true;
}

static bool is_ip_literal(const char *host)
{
	unsigned char addr[16];
	if (inet_pton(AF_INET, host, addr) == 1)
		return true;
	size_t n = strlen(host);
	if (n < 3 || host[0] != '[' || host[n - 1] != ']')
		return false;
	char v6[64];
	if (n - 2 >= sizeof(v6))
		return false;
	memcpy(v6, host + 1, n - 2);
	v6[n - 2] = '\0';
	return inet_pton(AF_INET6, v6, addr) == 1;
}

static bool add_entry(struct fpg_hosts *h, const char *s, size_t n,
		      struct fpg_error *err)
{
	struct host_port hp;
	if (!split_host(s, n, &hp)) {
		fpg_error_set(err, FPG_ERR_CONFIG, 0,
			      "allowed-hosts: \"%.*s\" is not a host[:port]",
			      (int)(n > 64 ? 64 : n), s);
		return false;
	}
	char **grown = realloc(h->entries, (h->n + 1) * sizeof(*grown));
	size_t len = strlen(hp.host) + 1 + strlen(hp.port) + 1;
	char *e = malloc(len);
	if (grown)
		h->entries = grown;
	if (!grown || !e) {
		free(e);
		fpg_error_set(err, FPG_ERR_NOMEM, 0, "out of memory");
		return false;
	}
	strcpy(e, hp.host);
	if (hp.port[0]) {
		strcat(e, ":");
		strcat(e, hp.port);
	}
	h->entries[h->n++] = e;
	return true;
}

/* The listen host as a Host header names it: IPv6 in brackets. */
static bool add_listen_host(struct fpg_hosts *h, const char *listen_host,
			    struct fpg_error *err)
{
	if (strcmp(listen_host, "0.0.0.0") == 0 ||
	    strcmp(listen_host, "::") == 0 || !*listen_host) {
		h->ip_literals = true;
		return true;
	}
	if (!strchr(listen_host, ':'))
		return add_entry(h, listen_host, strlen(listen_host), err);
	char v6[260];
	int n = snprintf(v6, sizeof(v6), "[%s]", listen_host);
	return n > 0 && (size_t)n < sizeof(v6) &&
	       add_entry(h, v6, (size_t)n, err);
}

static bool parse_list(struct fpg_hosts *h, const char *list,
		       struct fpg_error *err)
{
	for (const char *p = list; *p;) {
		size_t n = strcspn(p, ",");
		const char *s = p;
		p += n;
		if (*p == ',')
			p++;
		while (n && (*s == ' ' || *s == '\t'))
			s++, n--;
		while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
			n--;
		if (n == 1 && *s == '*') {
			h->any = true;
			continue;
		}
		if (!add_entry(h, s, n, err))
			return false;
	}
	if (!h->any && h->n == 0) {
		fpg_error_set(err, FPG_ERR_CONFIG, 0,
			      "allowed-hosts: no host given");
		return false;
	}
	return true;
}

bool fpg_hosts_parse(struct fpg_hosts *out, const char *list,
		     const char *listen_host, struct fpg_error *err)
{
	memset(out, 0, sizeof(*out));
	bool ok;
	if (list && *list) {
		ok = parse_list(out, list, err);
	} else {
		ok = add_entry(out, "localhost", 9, err) &&
		     add_entry(out, "127.0.0.1", 9, err) &&
		     add_entry(out, "[::1]", 5, err) &&
		     add_listen_host(out, listen_host ? listen_host : "", err);
	}
	if (!ok)
		fpg_hosts_deinit(out);
	return ok;
}

void fpg_hosts_deinit(struct fpg_hosts *h)
{
	for (size_t i = 0; i < h->n; i++)
		free(h->entries[i]);
	free(h->entries);
	memset(h, 0, sizeof(*h));
}

/* entry "name" matches any port of name; "name:port" only that one. */
static bool entry_matches(const char *entry, const struct host_port *hp)
{
	size_t hl = strlen(hp->host);
	if (strncmp(entry, hp->host, hl) != 0)
		return false;
	if (entry[hl] == '\0')
		return true;
	return entry[hl] == ':' && strcmp(entry + hl + 1, hp->port) == 0;
}

bool fpg_hosts_allow(const struct fpg_hosts *h, const char *host)
{
	if (h->any || !host)
		return true;
	struct host_port hp;
	if (!split_host(host, strlen(host), &hp))
		return false;
	for (size_t i = 0; i < h->n; i++)
		if (entry_matches(h->entries[i], &hp))
			return true;
	return h->ip_literals && is_ip_literal(hp.host);
}

/* The media type of a Content-Type value, as a browser parses it, is
 * one of those an HTML form (or a no-cors fetch) may send. */
static bool form_media_type(const char *v)
{
	static const char *const simple[] = {
	    "application/x-www-form-urlencoded",
	    "multipart/form-data",
	    "text/plain",
	};
	while (*v == ' ' || *v == '\t')
		v++;
	size_t n = strcspn(v, ";");
	while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	for (size_t i = 0; i < sizeof(simple) / sizeof(simple[0]); i++)
		if (strlen(simple[i]) == n && strncasecmp(v, simple[i], n) == 0)
			return true;
	return false;
}

bool fpg_guard_preflighted(const char *method, const char *content_type,
			   const char *requested_with)
{
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0 &&
	    strcmp(method, "POST") != 0)
		return true;
	if (requested_with)
		return true;
	return strcmp(method, "POST") == 0 && content_type &&
	       !form_media_type(content_type);
}

static bool has_control_bytes(const char *s)
{
	for (; *s; s++)
		if (((unsigned char)*s < 0x20 && *s != '\t') || *s == 0x7f)
			return true;
	return false;
}

void fpg_guard_header(struct fpg_header_scan *f, const char *key,
		      const char *value)
{
	if (strcasecmp(key, "Content-Length") == 0)
		f->content_length++;
	else if (strcasecmp(key, "Transfer-Encoding") == 0)
		f->transfer_encoding++;
	else if (strcasecmp(key, "Host") == 0)
		f->host++;
	if (has_control_bytes(key) || (value && has_control_bytes(value)))
		f->control_bytes = true;
}

const char *fpg_guard_headers_problem(const struct fpg_header_scan *f)
{
	if (f->content_length > 1 || f->transfer_encoding > 1 ||
	    (f->content_length && f->transfer_encoding))
		return "the body's length is ambiguous (two Content-Length "
		       "headers, or one with Transfer-Encoding)";
	if (f->host > 1)
		return "two Host headers";
	if (f->control_bytes)
		return "a header holds control characters";
	return NULL;
}

bool fpg_guard_same_secret(const void *a, size_t alen, const void *b,
			   size_t blen)
{
	if (alen != blen)
		return false;
	const unsigned char *x = a, *y = b;
	unsigned char diff = 0;
	for (size_t i = 0; i < alen; i++)
		diff |= (unsigned char)(x[i] ^ y[i]);
	return diff == 0;
}

/* Whether s is min..max chars, each an ASCII letter or digit or one of
 * extra (whatever the locale of the program we are embedded in). */
static bool token_of(const char *s, size_t min, size_t max, const char *extra)
{
	size_t n = strlen(s);
	if (n < min || n > max)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) || (unsigned char)*s > 127)
			if (!strchr(extra, *s))
				return false;
	return true;
}

bool fpg_guard_request_id(const char *s)
{
	return token_of(s, 1, 64, "-_.:");
}

bool fpg_guard_cancel_key(const char *s)
{
	return token_of(s, 16, 128, "-_.~+/=");
}

/* n lower-case hex digits at s, not all of them 0. */
static bool lower_hex(const char *s, size_t n, bool zero_ok)
{
	bool nonzero = false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
		nonzero |= c != '0';
	}
	return nonzero || zero_ok;
}

bool fpg_guard_traceparent(const char *s, char trace_id[33],
			   char parent_id[17], unsigned *flags)
{
	if (!s || strlen(s) != 55 || strncmp(s, "00-", 3) != 0 ||
	    s[35] != '-' || s[52] != '-' || !lower_hex(s + 3, 32, false) ||
	    !lower_hex(s + 36, 16, false) || !lower_hex(s + 53, 2, true))
		return false;
	memcpy(trace_id, s + 3, 32);
	trace_id[32] = '\0';
	memcpy(parent_id, s + 36, 16);
	parent_id[16] = '\0';
	*flags = (unsigned)strtoul(s + 53, NULL, 16);
	return true;
}
