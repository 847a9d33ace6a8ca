/*
 * Hostile clients (issue #8, the HTTP edge): no sequence of requests may
 * crash the server or change another client's answers.
 *
 * - request ids cannot be predicted, and an id alone cancels nothing;
 * - web pages cannot drive the server (CSRF, DNS rebinding);
 * - clients that trickle headers or bodies are cut, and cannot take every
 *   connection slot;
 * - bad framing and 10,000 malformed JSON bodies get 4xx answers (or a
 *   closed connection), and the server answers correctly afterwards.
 *
 * Raw TCP sockets where curl would fix the request up. The seed of the
 * random cases is printed; FPG_TEST_SEED=N replays a run.
 */
#include <pthread.h>
#include <unistd.h>

#include "it_common.h"
#include "raw.h"

#define HEADER_TIMEOUT_MS 1000

static unsigned port;	   /* header-timeout-ms 1000, defaults otherwise */
static unsigned slot_port; /* one worker, 16 connections */
static unsigned ip_port;   /* one worker, 3 connections per address */

/* The server still answers a correct query right. */
static void assert_healthy(unsigned p)
{
	struct http_resp *r = it_query(p, "{\"sql\":\"select 40 + 2 as n\"}");
	it_assert_resp(r, r->status == 200);
	json_t *n = json_object_get(json_array_get(json_object_get(r->json,
								   "rows"),
						   0),
				    "n");
	it_assert_resp(r, json_integer_value(n) == 42);
	http_resp_free(r);
}

/* A JSON error object with a code, as every error body is. */
static bool is_json_error(const char *body)
{
	json_t *j = json_loads(body, 0, NULL);
	json_t *code = json_object_get(json_object_get(j, "error"), "code");
	bool ok = json_is_string(code);
	json_decref(j);
	return ok;
}

/* ---- 1. request ids and cancel ---- */

/* The old generator: xorshift64* (invertible, so one id gave the next). */
static uint64_t xorshift_next(uint64_t x)
{
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	return x;
}

static uint64_t inverse_mod_2_64(uint64_t m)
{
	uint64_t inv = m; /* Newton: each step doubles the correct bits */
	for (int i = 0; i < 6; i++)
		inv *= 2 - m * inv;
	return inv;
}

START_TEST(generated_ids_unpredictable)
{
	const uint64_t mult = 2685821657736338717ULL;
	const uint64_t inv = inverse_mod_2_64(mult);
	CURL *c = curl_easy_init();
	uint64_t prev = 0;
	int predicted = 0;
	for (int i = 0; i < 20; i++) {
		/* one keep-alive connection: always the same worker */
		struct http_resp *r = it_request(c, port, "GET", "/healthz",
						 NULL, 0, NULL, 0, NULL);
		char *id = http_header(r, "X-Request-Id");
		ck_assert_msg(id && strlen(id) == 16, "id %s", id ? id : "-");
		uint64_t v = strtoull(id, NULL, 16);
		if (i > 0 && v == xorshift_next(prev * inv) * mult)
			predicted++;
		prev = v;
		free(id);
		http_resp_free(r);
	}
	curl_easy_cleanup(c);
	ck_assert_msg(predicted == 0, "%d of 19 ids predicted from the one "
				      "before", predicted);
}
END_TEST

struct victim {
	const char *id, *key;
	struct http_resp *r;
	pthread_t th;
};

static void *victim_main(void *arg)
{
	struct victim *v = arg;
	char hid[128], hkey[200];
	snprintf(hid, sizeof(hid), "X-Request-Id: %s", v->id);
	snprintf(hkey, sizeof(hkey), "X-Cancel-Key: %s", v->key);
	const char *const hdrs[] = {hid, hkey, "Content-Type: application/json",
				    NULL};
	v->r = http_request(port, "POST", "/query?stream=true",
			    "{\"sql\":\"select pg_sleep(3) /* victim */\"}",
			    hdrs);
	return NULL;
}

static long cancel_with(const char *id, const char *key)
{
	char path[200], hkey[200];
	snprintf(path, sizeof(path), "/query/%s", id);
	snprintf(hkey, sizeof(hkey), "X-Cancel-Key: %s", key ? key : "");
	const char *const with[] = {hkey, NULL};
	struct http_resp *r =
	    http_request(port, "DELETE", path, NULL, key ? with : NULL);
	long st = r->status;
	ck_assert_msg(is_json_error(r->body) || st == 202, "%ld %s", st,
		      r->body);
	http_resp_free(r);
	return st;
}

START_TEST(cancel_needs_the_key)
{
	char id[64];
	snprintf(id, sizeof(id), "victim-%u-%d", it_seed(), rand());
	struct victim v = {.id = id, .key = "s3cret-key-0123456789abcdef"};
	pthread_create(&v.th, NULL, victim_main, &v);
	usleep(500 * 1000);
	/* Another client knows the id (logs, a guess) but not the key. */
	ck_assert_int_eq(cancel_with(id, NULL), 400);
	ck_assert_int_eq(cancel_with(id, "s3cret-key-0123456789abcdeX"), 404);
	ck_assert_int_eq(cancel_with(id, "short"), 400);
	/* Taking the same id does not give another its key either. */
	char hid[128];
	snprintf(hid, sizeof(hid), "X-Request-Id: %s", id);
	const char *const same[] = {hid, "X-Cancel-Key: attacker-key-0123456",
				    NULL};
	struct http_resp *r =
	    http_request(port, "POST", "/query", "{\"sql\":\"select 1\"}", same);
	it_assert_resp(r, r->status == 200);
	http_resp_free(r);
	/* Its own request stays live until libmicrohttpd reports it done,
	 * which may be just after the answer: then its key finds only it. */
	long st = 202;
	for (int i = 0; i < 100 && st == 202; i++) {
		st = cancel_with(id, "attacker-key-0123456");
		if (st == 202)
			usleep(20 * 1000);
	}
	ck_assert_int_eq(st, 404);
	/* The client that sent it can. */
	double t0 = it_now();
	ck_assert_int_eq(cancel_with(id, v.key), 202);
	pthread_join(v.th, NULL);
	ck_assert_msg(v.r->status == 504, "victim: %ld %s", v.r->status,
		      v.r->body);
	ck_assert_msg(it_now() - t0 < 2.0, "cancel took %.2f s", it_now() - t0);
	http_resp_free(v.r);
}
END_TEST

START_TEST(uncancellable_without_key)
{
	/* A request sent without a key cannot be cancelled by id at all. */
	char id[64];
	snprintf(id, sizeof(id), "nokey-%u-%d", it_seed(), rand());
	char hid[128];
	snprintf(hid, sizeof(hid), "X-Request-Id: %s", id);
	const char *const hdrs[] = {hid, NULL};
	struct http_resp *r = http_request(
	    port, "POST", "/query", "{\"sql\":\"select pg_sleep(0.8)\"}", hdrs);
	it_assert_resp(r, r->status == 200);
	http_resp_free(r);
	static const char *const bad_key[] = {"X-Cancel-Key: has space in it!",
					      NULL};
	r = http_request(port, "POST", "/query", "{\"sql\":\"select 1\"}",
			 bad_key);
	it_assert_error(r, 400, "bad_request");
	http_resp_free(r);
}
END_TEST

/* ---- 2. cross-site requests ---- */

/* One raw request; returns the status (0 = closed without an answer). */
static int raw_request(unsigned p, const char *req, char **body_out)
{
	int fd = raw_connect(p);
	raw_sends(fd, req);
	struct it_buf b = {0};
	(void)raw_read(fd, &b, 5000);
	close(fd);
	int st = raw_status(b.data);
	if (body_out)
		*body_out = strdup(raw_body(b.data));
	free(b.data);
	return st;
}

/* method path headers body: the status; the body must be a JSON error
 * whenever the status is 4xx. */
static int send_one(const char *method, const char *path, const char *hdrs,
		    const char *body)
{
	char *req = it_fmt("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
			   "Connection: close\r\n%sContent-Length: %zu\r\n\r\n%s",
			   method, path, hdrs, strlen(body), body);
	char *rb = NULL;
	int st = raw_request(port, req, &rb);
	if (st >= 400 && st < 500)
		ck_assert_msg(is_json_error(rb), "%s %s -> %d %s", method,
			      path, st, rb);
	free(rb);
	free(req);
	return st;
}

START_TEST(browser_simple_requests_refused)
{
	const char *q = "{\"sql\":\"select 1\"}";
	/* what an HTML form or a no-cors fetch can send */
	const char *simple[] = {"",
				"Content-Type: text/plain\r\n",
				"Content-Type: text/plain;charset=UTF-8\r\n",
				"Content-Type: application/x-www-form-urlencoded\r\n",
				"Content-Type: multipart/form-data; b=x\r\n",
				NULL};
	for (const char **h = simple; *h; h++) {
		ck_assert_int_eq(send_one("POST", "/query", *h, q), 415);
		ck_assert_int_eq(send_one("POST", "/tx", *h, ""), 415);
		ck_assert_int_eq(send_one("POST", "/tx/x/commit", *h, ""), 415);
		ck_assert_int_eq(send_one("POST", "/copy?table=t", *h, "1\n"),
				 415);
	}
	ck_assert_int_eq(send_one("GET", "/copy?query=select%201", "", ""), 403);
	ck_assert_int_eq(send_one("GET", "/tx/x/copy?table=t", "", ""), 403);

	/* what a page must ask for first (CORS preflight) */
	ck_assert_int_eq(send_one("POST", "/query",
				  "Content-Type: application/json\r\n", q),
			 200);
	ck_assert_int_eq(send_one("GET", "/copy?query=select%201",
				  "X-Requested-With: x\r\n", ""),
			 200);
	ck_assert_int_eq(send_one("POST", "/tx",
				  "X-Requested-With: x\r\n"
				  "Content-Type: text/plain\r\n",
				  ""),
			 201);
	/* the read-only meta routes stay simple */
	ck_assert_int_eq(send_one("GET", "/healthz", "", ""), 200);
	ck_assert_int_eq(send_one("GET", "/metrics", "", ""), 200);
	/* a /query body still must be JSON */
	ck_assert_int_eq(send_one("POST", "/query",
				  "X-Requested-With: x\r\n", q),
			 415);
}
END_TEST

/* A request with this Host line (NULL: none) on port p. */
static int with_host(unsigned p, const char *host)
{
	char *req = it_fmt("GET /healthz HTTP/1.%c\r\n%s%s%sConnection: close"
			   "\r\n\r\n",
			   host ? '1' : '0', host ? "Host: " : "",
			   host ? host : "", host ? "\r\n" : "");
	char *body = NULL;
	int st = raw_request(p, req, &body);
	if (st == 421)
		ck_assert_msg(strstr(body, "misdirected_request"), "%s", body);
	free(body);
	free(req);
	return st;
}

START_TEST(host_checked)
{
	const char *ok[] = {"localhost", "localhost:8080", "127.0.0.1:1",
			    "[::1]:8080", "LocalHost", NULL};
	for (const char **h = ok; *h; h++)
		ck_assert_msg(with_host(port, *h) == 200, "Host %s", *h);
	const char *bad[] = {"evil.example", "evil.example:8080",
			     "localhost.evil.example", "10.9.8.7", NULL};
	for (const char **h = bad; *h; h++)
		ck_assert_msg(with_host(port, *h) == 421, "Host %s", *h);
	ck_assert_int_eq(with_host(port, NULL), 200); /* HTTP/1.0 */

	struct fpg_options o;
	unsigned p;
	it_options(&o);
	o.threads = 1;
	o.allowed_hosts = "api.example.com, db.example.com:8443";
	struct fpg_server *srv = it_server_start(&o, &p);
	ck_assert_int_eq(with_host(p, "api.example.com:443"), 200);
	ck_assert_int_eq(with_host(p, "db.example.com:8443"), 200);
	ck_assert_int_eq(with_host(p, "db.example.com:80"), 421);
	ck_assert_int_eq(with_host(p, "localhost"), 421);
	fpg_server_free(srv);

	o.allowed_hosts = "*";
	srv = it_server_start(&o, &p);
	ck_assert_int_eq(with_host(p, "anything.example"), 200);
	fpg_server_free(srv);

	o.allowed_hosts = "bad host";
	struct fpg_error err = {0};
	ck_assert_ptr_null(fpg_server_new(&o, &err));
	ck_assert_msg(strstr(err.message, "allowed-hosts"), "%s", err.message);
}
END_TEST

/* ---- 3. slow clients ---- */

/* The headers of every answer: X-Request-Id, Cache-Control, Vary. */
static void assert_common_headers(const char *answer)
{
	char *id = raw_header(answer, "X-Request-Id");
	char *cc = raw_header(answer, "Cache-Control");
	char *vary = raw_header(answer, "Vary");
	ck_assert_msg(id && strlen(id) >= 1 && strlen(id) <= 64, "%s", answer);
	ck_assert_msg(cc && strcmp(cc, "no-store") == 0, "%s", answer);
	ck_assert_msg(vary && strcmp(vary, "Accept-Encoding") == 0, "%s",
		      answer);
	free(id);
	free(cc);
	free(vary);
}

struct trickle {
	unsigned port;
	bool after_request;  /* first a whole request on the connection */
	const char *prefix;  /* sent at once */
	int every_ms;	     /* then one byte this often */
	double closed_after; /* seconds, or -1 */
	int status;	     /* of what the server sent before closing */
	char *answer;	     /* what it sent (caller frees) */
	pthread_t th;
};

static void *trickle_main(void *arg)
{
	struct trickle *t = arg;
	int fd = raw_connect(t->port);
	struct it_buf b = {0};
	if (t->after_request) {
		raw_sends(fd, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n");
		/* (no ck_assert off the main thread: the closing shows) */
		while (!strstr(b.data ? b.data : "", "\"ok\"}") &&
		       !raw_read(fd, &b, 100))
			;
		b.len = 0;
	}
	/* right after the answer: the loop turn that served it is the one
	 * before (the case of a possibly stale epoll edge) */
	double t0 = it_now();
	raw_sends(fd, t->prefix);
	t->closed_after = -1;
	while (it_now() - t0 < 4.0) {
		if (raw_read(fd, &b, t->every_ms)) {
			t->closed_after = it_now() - t0;
			break;
		}
		raw_sends(fd, "a");
	}
	t->status = raw_status(b.data);
	raw_record("GET", "/healthz", b.data);
	t->answer = b.data;
	close(fd);
	return NULL;
}

START_TEST(header_trickle_is_cut)
{
	/* on a new connection, and on a kept-alive one after a request */
	struct trickle t[2];
	for (int i = 0; i < 2; i++) {
		t[i] = (struct trickle){
		    .port = port,
		    .after_request = i == 1,
		    .prefix = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n"
			      "X-A: ",
		    .every_ms = 200};
		pthread_create(&t[i].th, NULL, trickle_main, &t[i]);
	}
	/* meanwhile others are served */
	for (int i = 0; i < 5; i++) {
		usleep(100 * 1000);
		assert_healthy(port);
	}
	for (int i = 0; i < 2; i++) {
		pthread_join(t[i].th, NULL);
		ck_assert_msg(t[i].closed_after >= 0.9 &&
				  t[i].closed_after < 2.5,
			      "header trickle %d was closed after %.2f s "
			      "(deadline %d ms; -1 = not at all)",
			      i, t[i].closed_after, HEADER_TIMEOUT_MS);
		ck_assert_int_eq(t[i].status, 408);
		/* What every answer carries (api/openapi.yaml), though no
		 * request began: a generated id. */
		assert_common_headers(t[i].answer);
		free(t[i].answer);
	}
}
END_TEST

START_TEST(keepalive_idle_is_not_a_trickle)
{
	/* Waiting between requests is the idle timeout's business. */
	CURL *c = curl_easy_init();
	long conns = 0;
	for (int i = 0; i < 2; i++) {
		struct http_resp *r = it_request(c, port, "GET", "/healthz",
						 NULL, 0, NULL, 0, &conns);
		it_assert_resp(r, r->status == 200);
		http_resp_free(r);
		if (i == 0)
			usleep(1700 * 1000);
	}
	curl_easy_cleanup(c);
	ck_assert_msg(conns == 0, "the idle connection was closed");

	/* Nor is a long statement (its connection is suspended). */
	struct http_resp *r =
	    it_query(port, "{\"sql\":\"select pg_sleep(1.5) is null\"}");
	it_assert_resp(r, r->status == 200);
	http_resp_free(r);
}
END_TEST

/* POST /query of n bytes sent at rate bytes/s for secs seconds. */
struct upload {
	int rate;
	double secs;
	bool closed;
	int status;
	double closed_after;
	char *answer; /* what the server sent (caller frees) */
	pthread_t th;
};

static void *upload_main(void *arg)
{
	struct upload *u = arg;
	const char *json = "{\"sql\":\"select 1\"}";
	size_t total = (size_t)(u->rate * u->secs) + 200;
	int fd = raw_connect(port);
	char *head = it_fmt("POST /query HTTP/1.1\r\nHost: localhost\r\n"
			    "Connection: close\r\n"
			    "Content-Type: application/json\r\n"
			    "Content-Length: %zu\r\n\r\n%s",
			    total, json);
	raw_sends(fd, head);
	free(head);
	size_t sent = strlen(json);
	double t0 = it_now();
	struct it_buf b = {0};
	char spaces[512];
	memset(spaces, ' ', sizeof(spaces));
	/* JSON allows any amount of trailing white space */
	while (sent < total) {
		if (raw_read(fd, &b, 100)) {
			u->closed = true;
			u->closed_after = it_now() - t0;
			break;
		}
		size_t want = (size_t)(u->rate * (it_now() - t0)) + strlen(json);
		size_t n = want > sent ? want - sent : 0;
		if (n > total - sent)
			n = total - sent;
		if (n > sizeof(spaces))
			n = sizeof(spaces);
		raw_send(fd, spaces, n);
		sent += n;
	}
	if (!u->closed)
		(void)raw_read(fd, &b, 5000);
	u->status = raw_status(b.data);
	raw_record("POST", "/query", b.data);
	u->answer = b.data;
	close(fd);
	return NULL;
}

START_TEST(slow_upload_is_cut)
{
	/* min-upload-rate 1024 bytes/s, measured over 5 s windows */
	struct upload slow = {.rate = 100, .secs = 8};
	struct upload fine = {.rate = 3000, .secs = 6.5};
	pthread_create(&slow.th, NULL, upload_main, &slow);
	pthread_create(&fine.th, NULL, upload_main, &fine);
	pthread_join(slow.th, NULL);
	pthread_join(fine.th, NULL);
	ck_assert_msg(slow.closed && slow.closed_after > 4.5 &&
			  slow.closed_after < 7.5,
		      "100 bytes/s: closed %d after %.2f s", slow.closed,
		      slow.closed_after);
	ck_assert_int_eq(slow.status, 408);
	assert_common_headers(slow.answer);
	ck_assert_msg(!fine.closed && fine.status == 200,
		      "3000 bytes/s: closed %d, status %d", fine.closed,
		      fine.status);
	free(slow.answer);
	free(fine.answer);
}
END_TEST

START_TEST(tricklers_cannot_take_every_slot)
{
	/* 16 connection slots; 40 connections trickle their headers. */
	enum { N = 40 };
	int fds[N];
	for (int i = 0; i < N; i++) {
		fds[i] = raw_connect(slot_port);
		raw_sends(fds[i], "GET /healthz HTTP/1.1\r\nHo");
		usleep(5 * 1000);
	}
	usleep(100 * 1000);
	for (int i = 0; i < 5; i++) {
		double t0 = it_now();
		struct http_resp *r = http_get(slot_port, "/healthz");
		it_assert_resp(r, r->curl_code == 0 && r->status == 200);
		ck_assert_msg(it_now() - t0 < 1.0, "served after %.2f s",
			      it_now() - t0);
		http_resp_free(r);
	}
	struct http_resp *s = http_get(slot_port, "/stats");
	json_t *ev = json_object_get(
	    json_object_get(json_object_get(s->json, "total"),
			    "slow_clients_closed"),
	    "evicted");
	ck_assert_msg(json_integer_value(ev) >= N - 16, "%s", s->body);
	http_resp_free(s);
	/* An evicted connection got a 503 with what every 503 carries. */
	int evicted = 0;
	for (int i = 0; i < N; i++) {
		struct it_buf b = {0};
		(void)raw_read(fds[i], &b, 0);
		if (raw_status(b.data) == 503) {
			evicted++;
			raw_record("GET", "/healthz", b.data);
			assert_common_headers(b.data);
			char *ra = raw_header(b.data, "Retry-After");
			ck_assert_msg(ra && atoi(ra) >= 1, "%s", b.data);
			free(ra);
		}
		free(b.data);
		close(fds[i]);
	}
	ck_assert_int_ge(evicted, N - 16);
}
END_TEST

/* ---- 4/5. framing ---- */

struct frame_case {
	char *bytes;
	size_t len;
	bool half_close; /* shutdown(SHUT_WR) after sending */
	int want;	 /* this status, or 0: any 4xx or a close */
	char name[64];
	/* result */
	int fd;
	struct it_buf got;
	bool closed;
};

static void frame_add(struct frame_case *c, size_t *n, const char *name,
		      const void *bytes, size_t len, bool half_close, int want)
{
	struct frame_case *f = &c[(*n)++];
	memset(f, 0, sizeof(*f));
	f->bytes = malloc(len ? len : 1);
	memcpy(f->bytes, bytes, len);
	f->len = len;
	f->half_close = half_close;
	f->want = want;
	snprintf(f->name, sizeof(f->name), "%s", name);
}

static void frame_adds(struct frame_case *c, size_t *n, const char *name,
		       const char *s, int want)
{
	frame_add(c, n, name, s, strlen(s), false, want);
}

/* Sends every case on its own connection at once, then waits for all. */
static void frame_run(struct frame_case *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		c[i].fd = raw_connect(port);
		raw_send(c[i].fd, c[i].bytes, c[i].len);
		if (c[i].half_close)
			shutdown(c[i].fd, SHUT_WR);
	}
	/* Generous: a loaded machine (CI, two cores) is slow to close. */
	double end = it_now() + HEADER_TIMEOUT_MS / 1000.0 + 8.0;
	size_t open = n;
	while (open && it_now() < end) {
		open = 0;
		for (size_t i = 0; i < n; i++) {
			if (c[i].closed)
				continue;
			c[i].closed = raw_read(c[i].fd, &c[i].got, 0);
			open += !c[i].closed;
		}
		usleep(20 * 1000);
	}
	for (size_t i = 0; i < n; i++) {
		int st = raw_status(c[i].got.data);
		ck_assert_msg(c[i].closed || (st >= 400 && st < 500),
			      "seed %u, %s: still open, got %.200s", it_seed(),
			      c[i].name, c[i].got.data ? c[i].got.data : "");
		if (c[i].want)
			ck_assert_msg(st == c[i].want,
				      "seed %u, %s: status %d, want %d: %.300s",
				      it_seed(), c[i].name, st, c[i].want,
				      c[i].got.data ? c[i].got.data : "");
		else
			ck_assert_msg(st == 0 || (st >= 400 && st < 500),
				      "seed %u, %s: status %d: %.300s", it_seed(),
				      c[i].name, st, c[i].got.data);
		ck_assert_msg(!c[i].got.data ||
				  !strstr(c[i].got.data, "HTTP/1.1 200"),
			      "seed %u, %s: a request was answered: %.300s",
			      it_seed(), c[i].name, c[i].got.data);
		close(c[i].fd);
		free(c[i].bytes);
		free(c[i].got.data);
	}
}

START_TEST(bad_framing)
{
	static struct frame_case c[64];
	size_t n = 0;
	const char *h = "Host: localhost\r\n";
	char *s;
#define ADD(name, want, ...)                                                 \
	(s = it_fmt(__VA_ARGS__), frame_adds(c, &n, name, s, want), free(s))
	ADD("negative length", 400,
	    "POST /query HTTP/1.1\r\n%sContent-Length: -1\r\n\r\n{}", h);
	ADD("huge length", 0,
	    "POST /query HTTP/1.1\r\n%sContent-Length: "
	    "99999999999999999999999\r\n\r\n{}",
	    h);
	ADD("length not a number", 400,
	    "POST /query HTTP/1.1\r\n%sContent-Length: 1x\r\n\r\n{}", h);
	/* A second request hidden in the body must not be answered. */
	ADD("two lengths", 400,
	    "POST /query HTTP/1.1\r\n%sContent-Length: 2\r\n"
	    "Content-Length: 44\r\n\r\n{}"
	    "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n",
	    h);
	ADD("length and chunked", 400,
	    "POST /query HTTP/1.1\r\n%sContent-Length: 3\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
	    "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n",
	    h);
	ADD("bad chunk size", 400,
	    "POST /query HTTP/1.1\r\n%sContent-Type: application/json\r\n"
	    "Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
	    h);
	ADD("negative chunk size", 400,
	    "POST /query HTTP/1.1\r\n%sContent-Type: application/json\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n-2\r\n{}\r\n0\r\n\r\n",
	    h);
	ADD("huge chunk size", 0,
	    "POST /query HTTP/1.1\r\n%sContent-Type: application/json\r\n"
	    "Transfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n{}",
	    h);
	ADD("chunk longer than said", 0,
	    "POST /query HTTP/1.1\r\n%sContent-Type: application/json\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n1\r\n{}\r\n0\r\n\r\n",
	    h);
	ADD("two hosts", 400,
	    "GET /healthz HTTP/1.1\r\nHost: localhost\r\nHost: evil.example"
	    "\r\n\r\n");
	ADD("space before colon", 400,
	    "GET /healthz HTTP/1.1\r\nHost : localhost\r\n\r\n");
	ADD("no host in 1.1", 400, "GET /healthz HTTP/1.1\r\n\r\n");
	ADD("bad version", 505, "GET /healthz HTTP/9.9\r\n%s\r\n", h);
	ADD("no version", 0, "GET /healthz\r\n%s\r\n", h);
	ADD("control byte in header", 400,
	    "GET /healthz HTTP/1.1\r\n%sX-A: a%cb\r\n\r\n", h, 1);
	ADD("truncated request line", 0, "GET /heal");
	ADD("truncated headers", 0, "GET /healthz HTTP/1.1\r\nHost: loc");
	frame_add(c, &n, "nul byte", "GET /\0 HTTP/1.1\r\n\r\n", 19, false, 0);
	static const char short_body[] =
	    "POST /query HTTP/1.1\r\nHost: localhost\r\nContent-Type: "
	    "application/json\r\nContent-Length: 50\r\n\r\n{\"sq";
	frame_add(c, &n, "short body, closed", short_body,
		  sizeof(short_body) - 1, true, 0);
	/* oversize request line and headers */
	struct it_buf big = {0};
	it_buf_puts(&big, "GET /");
	for (int i = 0; i < 100000; i++)
		it_buf_putc(&big, 'a');
	it_buf_puts(&big, " HTTP/1.1\r\nHost: localhost\r\n\r\n");
	frame_add(c, &n, "100 KB request line", big.data, big.len, false, 0);
	big.len = 0;
	it_buf_puts(&big, "GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: ");
	for (int i = 0; i < 100000; i++)
		it_buf_putc(&big, 'b');
	it_buf_puts(&big, "\r\n\r\n");
	frame_add(c, &n, "100 KB header", big.data, big.len, false, 0);
	big.len = 0;
	it_buf_puts(&big, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n");
	for (int i = 0; i < 5000; i++)
		it_buf_puts(&big, "X-M: 1\r\n");
	it_buf_puts(&big, "\r\n");
	frame_add(c, &n, "5000 headers", big.data, big.len, false, 0);
	free(big.data);
	/* random bytes, and random bytes after a good request line */
	for (int i = 0; i < 30; i++) {
		char junk[2048];
		size_t len = 1 + (size_t)rand() % sizeof(junk);
		for (size_t k = 0; k < len; k++)
			junk[k] = (char)rand();
		char name[64];
		snprintf(name, sizeof(name), "random bytes #%d", i);
		if (i % 2) {
			memcpy(junk, "GET / HTTP/1.1\r\n", 16 < len ? 16 : len);
		}
		frame_add(c, &n, name, junk, len, i % 3 == 0, 0);
	}
#undef ADD
	ck_assert_int_le(n, sizeof(c) / sizeof(c[0]));
	frame_run(c, n);
	assert_healthy(port);
}
END_TEST

/* ---- 5. malformed JSON ---- */

/* Pieces of JSON strings that jansson (and PostgreSQL) must refuse:
 * NUL, invalid UTF-8, surrogates, bad escapes, a stray quote. */
static const char *const bad_pieces[] = {
    "\\u0000", "\xff", "\xc3\x28", "\xed\xa0\x80", "\\ud800",
    "\\x", "\xf4\x90\x80\x80", "\"", "\xc0\xaf"};
#define N_BAD_PIECES (sizeof(bad_pieces) / sizeof(bad_pieces[0]))

/* A body that must be refused: returns it in b. */
static void make_bad_body(struct it_buf *b, int i)
{
	static const char *const valid[] = {
	    "{\"sql\":\"select $1::int\",\"params\":[1]}",
	    "{\"sql\":\"select 1\",\"rows\":\"array\",\"timeout_ms\":100}",
	    "{\"sql\":\"select 1\",\"expect\":\"one\",\"big_numbers\":\"string\"}",
	};
	static const char *const fields[] = {"sql",	    "params",
					     "rows",	    "expect",
					     "big_numbers", "timeout_ms"};
	/* values that are wrong for every field */
	static const char *const wrong[] = {
	    "{}", "true", "-1", "1e999999", "123456789012345678901234567890",
	    "\"bogus\"", "0.5", "{\"a\":[1]}", "\"\""};
	b->len = 0;
	switch (i % 8) {
	case 0: { /* truncated */
		const char *v = valid[rand() % 3];
		it_buf_put(b, v, (size_t)rand() % strlen(v));
		break;
	}
	case 1: { /* a control byte inserted: never valid JSON */
		const char *v = valid[rand() % 3];
		size_t at = (size_t)rand() % (strlen(v) + 1);
		static const char ctl[] = {1, 2, 7, 8, 11, 12, 14, 27, 31};
		it_buf_put(b, v, at);
		it_buf_putc(b, ctl[rand() % (int)sizeof(ctl)]);
		it_buf_puts(b, v + at);
		break;
	}
	case 2: /* a wrong type for a field */
		it_buf_puts(b, rand() % 2 ? "{\"sql\":\"select 1\",\"" : "{\"");
		it_buf_puts(b, fields[rand() % 6]);
		it_buf_puts(b, "\":");
		it_buf_puts(b, wrong[rand() % 9]);
		it_buf_puts(b, "}");
		break;
	case 3: /* bad strings, in sql or in a parameter */
	{
		bool param = rand() % 2;
		it_buf_puts(b, param ? "{\"sql\":\"select $1\",\"params\":[\""
				     : "{\"sql\":\"select ");
		it_buf_puts(b, bad_pieces[(size_t)rand() % N_BAD_PIECES]);
		for (int k = rand() % 3; k > 0; k--)
			it_buf_puts(b, rand() % 2 ? "é" : bad_pieces[(size_t)rand() %
							      N_BAD_PIECES]);
		it_buf_puts(b, param ? "\"]}" : "\"}");
		break;
	}
	case 4: /* not an object, or an unknown / duplicate field */
	{
		static const char *const tops[] = {
		    "[]", "\"select 1\"", "1", "null", "true", "",
		    "{\"sql\":\"select 1\",\"sql\":\"select 2\"}",
		    "{\"sql\":\"select 1\",\"bogus\":1}",
		    "{\"sql\":\"select 1\"} {}", "{\"sql\":\"select 1\"}]"};
		it_buf_puts(b, tops[rand() % 10]);
		break;
	}
	case 5: /* random bytes */
	{
		size_t len = (size_t)rand() % 256;
		it_buf_putc(b, '{');
		for (size_t k = 0; k < len; k++)
			it_buf_putc(b, (char)(rand() % 256));
		it_buf_putc(b, 1);
		break;
	}
	case 6: /* numbers too large or too precise where they matter */
	{
		static const char *const nums[] = {
		    "{\"sql\":\"select 1\",\"timeout_ms\":1e400}",
		    "{\"sql\":\"select 1\",\"timeout_ms\":-1e400}",
		    ("{\"sql\":\"select 1\",\"timeout_ms\":"
		     "99999999999999999999999999999}"),
		    "{\"sql\":\"select 1\",\"timeout_ms\":NaN}",
		    "{\"sql\":\"select 1\",\"timeout_ms\":Infinity}",
		    "{\"sql\":\"select 1\",\"timeout_ms\":0x10}",
		    "{\"sql\":\"select 1\",\"timeout_ms\":01}"};
		it_buf_puts(b, nums[rand() % 7]);
		break;
	}
	default: /* syntax the server must not run: wrong statements */
	{
		static const char *const stmts[] = {
		    "{\"sql\":\"select 1; select 2\"}", "{\"sql\":\"   \"}",
		    "{\"sql\":\"select $1\",\"params\":[]}",
		    "{\"sql\":\"select $1, $2\",\"params\":[1]}",
		    "{\"sql\":\"selec 1\"}", "{\"sql\":\"begin\"}"};
		it_buf_puts(b, stmts[rand() % 6]);
		break;
	}
	}
}

static void post_bad(CURL *c, const struct it_buf *b, int i)
{
	struct http_resp *r = it_request(c, port, "POST", "/query",
					 b->data ? b->data : "", b->len, NULL,
					 30, NULL);
	ck_assert_msg(r->curl_code == 0 && r->status >= 400 &&
			  r->status < 500 && is_json_error(r->body),
		      "seed %u, body #%d (%zu bytes: %.200s): curl %d status "
		      "%ld %.300s",
		      it_seed(), i, b->len, b->data ? b->data : "", r->curl_code,
		      r->status, r->body);
	http_resp_free(r);
}

START_TEST(malformed_json_bodies)
{
	CURL *c = curl_easy_init();
	struct it_buf b = {0};
	for (int i = 0; i < 10000; i++) {
		make_bad_body(&b, i);
		post_bad(c, &b, i);
	}
	/* 10^5-deep nesting, at the top and inside params */
	for (int k = 0; k < 2; k++) {
		b.len = 0;
		it_buf_puts(&b, k ? "{\"sql\":\"select $1\",\"params\":" : "");
		for (int i = 0; i < 100000; i++)
			it_buf_putc(&b, k ? '[' : '{');
		if (!k)
			it_buf_puts(&b, "\"sql\":\"select 1\"");
		post_bad(c, &b, -1 - k);
	}
	free(b.data);
	curl_easy_cleanup(c);
	assert_healthy(port);
}
END_TEST

/* An answered keep-alive request on a new connection, or -1 when the
 * server closed it instead. */
static int keep_alive_connection(unsigned p)
{
	int fd = raw_connect(p);
	raw_sends(fd, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
	struct it_buf b = {0};
	raw_read(fd, &b, 300);
	int status = b.data ? raw_status(b.data) : 0;
	free(b.data);
	if (status != 200) {
		close(fd);
		return -1;
	}
	return fd;
}

START_TEST(connections_per_address_are_bounded)
{
	int held[3];
	for (int i = 0; i < 3; i++) {
		held[i] = keep_alive_connection(ip_port);
		ck_assert_msg(held[i] >= 0, "connection %d refused", i);
	}
	/* A fourth from the same address is closed at once. */
	ck_assert_int_eq(keep_alive_connection(ip_port), -1);
	/* One leaves, one more may come. */
	close(held[0]);
	int again = -1;
	for (int tries = 0; tries < 50 && again < 0; tries++) {
		struct timespec ts = {0, 20 * 1000000L};
		nanosleep(&ts, NULL);
		again = keep_alive_connection(ip_port);
	}
	ck_assert_int_ge(again, 0);
	close(again);
	close(held[1]);
	close(held[2]);
}
END_TEST

static void three_per_address(struct fpg_options *o)
{
	o->threads = 1;
	o->max_connections_per_ip = 3;
}

static void short_header_timeout(struct fpg_options *o)
{
	o->header_timeout_ms = HEADER_TIMEOUT_MS;
}

static void few_slots(struct fpg_options *o)
{
	o->threads = 1;
	o->max_connections = 16;
}

static const struct test_case cases[] = {
    TEST_CASE(generated_ids_unpredictable),
    TEST_CASE(cancel_needs_the_key),
    TEST_CASE(uncancellable_without_key),
    TEST_CASE(browser_simple_requests_refused),
    TEST_CASE(host_checked),
    TEST_CASE(header_trickle_is_cut),
    TEST_CASE(keepalive_idle_is_not_a_trickle),
    TEST_CASE(slow_upload_is_cut),
    TEST_CASE(tricklers_cannot_take_every_slot),
    TEST_CASE(bad_framing),
    TEST_CASE(malformed_json_bodies),
    TEST_CASE(connections_per_address_are_bounded),
    {0},
};

static const struct it_server servers[] = {
    {&port, short_header_timeout},
    {&slot_port, few_slots},
    {&ip_port, three_per_address},
    {0},
};

const struct it_program it_program = {
    .name = "hostile",
    .cases = cases,
    .servers = servers,
};
