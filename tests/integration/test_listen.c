/*
 * GET /listen: notifications sent with pg_notify through /query reach
 * exactly the subscribers of their channel, in order, over one LISTEN
 * connection per worker; 1,000 subscribers on 50 channels; a client that
 * never reads is cut off with a gap and delays nobody; Last-Event-ID
 * replays; a PostgreSQL restart gives a gap, then notifications again;
 * refusals come as JSON before any stream. Subscribers are curl handles
 * on a multi handle driven by a thread of the test's.
 */
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "it_common.h"
#include "raw.h"

static unsigned port;	   /* 2 workers */
static unsigned one_port;  /* 1 worker, for Last-Event-ID */
static unsigned auth_port; /* --auth api-key, listen=ok.* */
static char key_path[64], roles_path[64], key[40];

struct sub {
	CURL *h;
	struct curl_slist *headers;
	struct it_buf in; /* what arrived, under lock */
	bool done;
	bool removed;	  /* the driver took it off the multi handle */
	long status;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static CURLM *multi;
static pthread_t driver;
static bool stop;
/* Handles to add and to remove, under lock: only the driver's thread
 * touches the multi handle (libcurl's are not thread-safe). */
static struct sub *pending[2048], *leaving[2048];
static unsigned npending, nleaving;

static size_t take(char *p, size_t size, size_t n, void *ud)
{
	struct sub *s = ud;
	pthread_mutex_lock(&lock);
	bool ok = it_buf_append(&s->in, p, size * n);
	pthread_mutex_unlock(&lock);
	return ok ? size * n : 0;
}

static void *drive(void *arg)
{
	(void)arg;
	for (;;) {
		pthread_mutex_lock(&lock);
		bool quit = stop;
		for (unsigned i = 0; i < npending; i++)
			curl_multi_add_handle(multi, pending[i]->h);
		npending = 0;
		for (unsigned i = 0; i < nleaving; i++) {
			curl_multi_remove_handle(multi, leaving[i]->h);
			leaving[i]->removed = true;
		}
		nleaving = 0;
		pthread_mutex_unlock(&lock);
		if (quit)
			break;
		int running;
		curl_multi_perform(multi, &running);
		CURLMsg *m;
		int left;
		while ((m = curl_multi_info_read(multi, &left))) {
			if (m->msg != CURLMSG_DONE)
				continue;
			struct sub *s;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE,
					  (char **)&s);
			pthread_mutex_lock(&lock);
			curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE,
					  &s->status);
			s->done = true;
			pthread_mutex_unlock(&lock);
		}
		curl_multi_poll(multi, NULL, 0, 20, NULL);
	}
	return NULL;
}

static void started(void)
{
	multi = curl_multi_init();
	if (!multi || pthread_create(&driver, NULL, drive, NULL) != 0)
		abort(); /* from started(), where Check cannot */
}

/* A subscriber of the channels (NULL-terminated) on p; extra header and
 * query may be NULL. */
static struct sub *subscribe(unsigned p, const char *const *channels,
			     const char *header, const char *query)
{
	struct sub *s = calloc(1, sizeof(*s));
	s->h = curl_easy_init();
	char *url = it_fmt("http://127.0.0.1:%u/listen?%s", p, query ? query : "");
	for (int i = 0; channels && channels[i]; i++) {
		char *esc = curl_easy_escape(s->h, channels[i], 0);
		char *more = it_fmt("%s%schannel=%s", url,
				    url[strlen(url) - 1] == '?' ? "" : "&", esc);
		curl_free(esc);
		free(url);
		url = more;
	}
	curl_easy_setopt(s->h, CURLOPT_URL, url);
	curl_easy_setopt(s->h, CURLOPT_WRITEFUNCTION, take);
	curl_easy_setopt(s->h, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(s->h, CURLOPT_PRIVATE, s);
	curl_easy_setopt(s->h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(s->h, CURLOPT_PROXY, "");
	if (header)
		s->headers = curl_slist_append(NULL, header);
	curl_easy_setopt(s->h, CURLOPT_HTTPHEADER, s->headers);
	free(url);
	pthread_mutex_lock(&lock);
	pending[npending++] = s;
	pthread_mutex_unlock(&lock);
	curl_multi_wakeup(multi);
	return s;
}

static void unsubscribe(struct sub *s)
{
	pthread_mutex_lock(&lock);
	leaving[nleaving++] = s;
	pthread_mutex_unlock(&lock);
	curl_multi_wakeup(multi);
	for (bool gone = false; !gone;) {
		usleep(1000);
		pthread_mutex_lock(&lock);
		gone = s->removed;
		pthread_mutex_unlock(&lock);
	}
	curl_easy_cleanup(s->h);
	curl_slist_free_all(s->headers);
	free(s->in.data);
	free(s);
}

/* Waits until s's text holds needle n times (or it is done). */
static bool wait_for(struct sub *s, const char *needle, int times,
		     double seconds)
{
	double until = it_now() + seconds;
	for (;;) {
		pthread_mutex_lock(&lock);
		int seen = 0;
		for (const char *p = s->in.data; p && (p = strstr(p, needle));
		     p += strlen(needle))
			seen++;
		bool done = s->done;
		pthread_mutex_unlock(&lock);
		if (seen >= times)
			return true;
		if (done || it_now() > until)
			return false;
		usleep(10 * 1000);
	}
}

static void notify(unsigned p, const char *channel, const char *payload)
{
	json_t *j = json_pack("{s:s,s:[s,s]}", "sql",
			      "SELECT pg_notify($1, $2)", "params", channel,
			      payload);
	char *body = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	struct http_resp *r = http_post_json(p, "/query", body);
	ck_assert_msg(r->status == 200, "%ld %s", r->status, r->body);
	http_resp_free(r);
	free(body);
}

/* The payloads of s's notify events, in order, as one "a|b|c|" string. */
static char *payloads(struct sub *s)
{
	pthread_mutex_lock(&lock);
	char *text = strdup(s->in.data ? s->in.data : "");
	pthread_mutex_unlock(&lock);
	struct it_buf out = {0};
	for (char *p = text; (p = strstr(p, "event: notify\n"));) {
		char *data = strstr(p, "\ndata: ");
		char *end = data ? strstr(data, "\n\n") : NULL;
		ck_assert_ptr_nonnull(end);
		*end = '\0';
		json_t *j = json_loads(data + 7, 0, NULL);
		ck_assert_msg(json_is_object(j), "%s", data + 7);
		const char *pl = json_string_value(json_object_get(j, "payload"));
		it_buf_append(&out, pl, strlen(pl));
		it_buf_append(&out, "|", 1);
		json_decref(j);
		p = end + 2;
	}
	free(text);
	it_buf_append(&out, "", 1);
	return out.data;
}

START_TEST(notifications_reach_their_channel)
{
	/* Any text is a channel name. */
	char a[64], b[64];
	snprintf(a, sizeof(a), "ch %x \"quoted\" ;", (unsigned)rand());
	snprintf(b, sizeof(b), "Ünï-%x", (unsigned)rand());
	const char *ca[] = {a, NULL}, *cb[] = {b, NULL}, *cab[] = {a, b, NULL};
	struct sub *sa = subscribe(port, ca, NULL, NULL);
	struct sub *sb = subscribe(port, cb, NULL, NULL);
	struct sub *sab = subscribe(port, cab, NULL, NULL);
	ck_assert(wait_for(sa, ": listening", 1, 30));
	ck_assert(wait_for(sb, ": listening", 1, 30));
	ck_assert(wait_for(sab, ": listening", 1, 30));
	struct it_buf wa = {0}, wb = {0}, wab = {0};
	for (int i = 0; i < 30; i++) {
		bool to_a = rand() % 2;
		char pl[32];
		snprintf(pl, sizeof(pl), "p%d \"x\"", i);
		notify(port, to_a ? a : b, pl);
		it_buf_append(to_a ? &wa : &wb, pl, strlen(pl));
		it_buf_append(to_a ? &wa : &wb, "|", 1);
		it_buf_append(&wab, pl, strlen(pl));
		it_buf_append(&wab, "|", 1);
	}
	it_buf_append(&wa, "", 1), it_buf_append(&wb, "", 1),
		it_buf_append(&wab, "", 1);
	ck_assert(wait_for(sab, "event: notify", 30, 10));
	usleep(200 * 1000); /* nothing more may come */
	char *ga = payloads(sa), *gb = payloads(sb), *gab = payloads(sab);
	ck_assert_str_eq(ga, wa.data);
	ck_assert_str_eq(gb, wb.data);
	ck_assert_str_eq(gab, wab.data);
	free(ga), free(gb), free(gab);
	free(wa.data), free(wb.data), free(wab.data);
	/* One listening backend per worker at most. */
	char *n = pgh_scalar("SELECT count(*) FROM pg_stat_activity WHERE "
			     "application_name = 'fasterpg listen'");
	ck_assert_int_le(atoi(n), 2 + 1 + 1); /* the other servers' too */
	free(n);
	unsubscribe(sa), unsubscribe(sb), unsubscribe(sab);
}
END_TEST

START_TEST(a_thousand_subscribers)
{
	enum { SUBS = 1000, CHANNELS = 50, NOTES = 200 };
	char names[CHANNELS][32];
	unsigned salt = (unsigned)rand();
	for (int c = 0; c < CHANNELS; c++)
		snprintf(names[c], sizeof(names[c]), "k%x_%d", salt, c);
	static struct sub *subs[SUBS];
	for (int i = 0; i < SUBS; i++) {
		const char *ch[] = {names[i % CHANNELS], NULL};
		subs[i] = subscribe(port, ch, NULL, NULL);
	}
	for (int i = 0; i < SUBS; i++)
		ck_assert_msg(wait_for(subs[i], ": listening", 1, 30),
			      "subscriber %d", i);
	struct it_buf want[CHANNELS] = {{0}};
	for (int i = 0; i < NOTES; i++) {
		int c = rand() % CHANNELS;
		char pl[16];
		snprintf(pl, sizeof(pl), "n%d", i);
		notify(port, names[c], pl);
		it_buf_append(&want[c], pl, strlen(pl));
		it_buf_append(&want[c], "|", 1);
	}
	for (int c = 0; c < CHANNELS; c++)
		it_buf_append(&want[c], "", 1);
	for (int i = 0; i < SUBS; i++) {
		int c = i % CHANNELS;
		int expect = 0;
		for (const char *p = want[c].data; (p = strchr(p, '|')); p++)
			expect++;
		if (expect)
			ck_assert_msg(wait_for(subs[i], "event: notify", expect,
					       20),
				      "subscriber %d", i);
	}
	usleep(200 * 1000);
	for (int i = 0; i < SUBS; i++) {
		char *got = payloads(subs[i]);
		ck_assert_msg(strcmp(got, want[i % CHANNELS].data) == 0,
			      "subscriber %d: %s, not %s", i, got,
			      want[i % CHANNELS].data);
		free(got);
		unsubscribe(subs[i]);
	}
	for (int c = 0; c < CHANNELS; c++)
		free(want[c].data);
}
END_TEST

/* A counter of /stats' "listen" object. */
static long listen_stat(const char *name)
{
	struct http_resp *r = http_get(port, "/stats");
	json_t *l = json_object_get(json_object_get(r->json, "total"),
				    "listen");
	ck_assert_msg(json_is_object(l), "%s", r->body);
	long v = (long)json_integer_value(json_object_get(l, name));
	http_resp_free(r);
	return v;
}

/* A client that never reads: it gets a gap, the other gets everything. */
START_TEST(a_client_that_never_reads)
{
	char ch[32];
	snprintf(ch, sizeof(ch), "slow_%x", (unsigned)rand());
	const char *chs[] = {ch, NULL};
	struct sub *fast = subscribe(port, chs, NULL, NULL);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int small = 4096;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	close(fd);
	fd = raw_connect(port);
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	char *req = it_fmt("GET /listen?channel=%s HTTP/1.1\r\nHost: "
			   "127.0.0.1\r\n\r\n",
			   ch);
	raw_sends(fd, req);
	free(req);
	ck_assert(wait_for(fast, ": listening", 1, 30));
	usleep(300 * 1000);
	char payload[7001];
	memset(payload, 'x', 7000);
	payload[7000] = '\0';
	long dropped0 = listen_stat("dropped");
	double t_send = it_now();
	enum { NOTES = 1500 };
	for (int i = 0; i < NOTES; i++) {
		snprintf(payload, 12, "%010d", i);
		payload[10] = 'x';
		notify(port, ch, payload);
	}
	ck_assert_msg(wait_for(fast, "event: notify", NOTES, 60),
		      "the reader missed some (sent in %.1f s)",
		      it_now() - t_send);
	ck_assert(!wait_for(fast, "event: gap", 1, 0));
	/* The slow one held at most --listen-queue-bytes; the rest of its
	 * events were dropped, and a gap waits for it. */
	ck_assert_int_gt(listen_stat("dropped") - dropped0, 0);
	close(fd);
	unsubscribe(fast);
}
END_TEST

START_TEST(last_event_id_replays)
{
	char ch[32];
	snprintf(ch, sizeof(ch), "replay_%x", (unsigned)rand());
	const char *chs[] = {ch, NULL};
	struct sub *s = subscribe(one_port, chs, NULL, NULL);
	ck_assert(wait_for(s, ": listening", 1, 30));
	notify(one_port, ch, "r1");
	notify(one_port, ch, "r2");
	ck_assert(wait_for(s, "event: notify", 2, 10));
	pthread_mutex_lock(&lock);
	char *last = strstr(strstr(s->in.data, "r1"), "id: ");
	ck_assert_ptr_nonnull(last);
	char id[40];
	ck_assert_int_eq(sscanf(last, "id: %39s", id), 1);
	pthread_mutex_unlock(&lock);
	unsubscribe(s);
	notify(one_port, ch, "r3");
	/* Back with the id of r2's event: r3 comes first, nothing before. */
	char *h = it_fmt("Last-Event-ID: %s", id);
	s = subscribe(one_port, chs, h, NULL);
	free(h);
	ck_assert(wait_for(s, "event: notify", 1, 10));
	notify(one_port, ch, "r4");
	ck_assert(wait_for(s, "event: notify", 2, 10));
	char *got = payloads(s);
	ck_assert_str_eq(got, "r3|r4|");
	free(got);
	ck_assert(!wait_for(s, "event: gap", 1, 0));
	unsubscribe(s);
	/* An id this server never gave: a gap first. */
	s = subscribe(one_port, chs, "Last-Event-ID: 7-123456789", NULL);
	ck_assert(wait_for(s, "event: gap", 1, 10));
	unsubscribe(s);
}
END_TEST

START_TEST(refusals_come_before_the_stream)
{
	static const struct {
		const char *query;
		long status;
	} bad[] = {
		{"", 400},
		{"channel=", 400},
		{"channel=a&other=1", 400},
		{"channel=a%E3", 400}, /* not UTF-8: PostgreSQL would refuse */
		{"channel=0123456789012345678901234567890123456789012345678901234"
		 "5678901234",
		 400},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		char *path = it_fmt("/listen?%s", bad[i].query);
		struct http_resp *r = http_get(port, path);
		ck_assert_msg(r->status == bad[i].status &&
				      strstr(r->body, "\"error\""),
			      "%s: %ld %s", path, r->status, r->body);
		free(path);
		http_resp_free(r);
	}
	/* Too many channels. */
	struct it_buf q = {0};
	for (int i = 0; i < 17; i++) {
		char c[24];
		int n = snprintf(c, sizeof(c), "%schannel=c%d", i ? "&" : "", i);
		it_buf_append(&q, c, (size_t)n);
	}
	it_buf_append(&q, "", 1);
	char *path = it_fmt("/listen?%s", q.data);
	struct http_resp *r = http_get(port, path);
	ck_assert_int_eq(r->status, 400);
	http_resp_free(r);
	free(path), free(q.data);
	/* With --auth: a credential, and only allowed channels. */
	r = http_get(auth_port, "/listen?channel=ok.1");
	ck_assert_int_eq(r->status, 401);
	http_resp_free(r);
	char *bearer = it_fmt("Authorization: Bearer %s", key);
	const char *hs[] = {bearer, NULL};
	r = http_request(auth_port, "GET", "/listen?channel=secret", NULL, hs);
	ck_assert_msg(r->status == 403 && strstr(r->body, "channel_not_allowed"),
		      "%ld %s", r->status, r->body);
	http_resp_free(r);
	/* EventSource's way: the key in the URL. */
	const char *ok[] = {"ok.events", NULL};
	char *qs = it_fmt("access_token=%s", key);
	struct sub *s = subscribe(auth_port, ok, NULL, qs);
	ck_assert(wait_for(s, ": listening", 1, 30));
	notify(port, "ok.events", "through the key");
	ck_assert(wait_for(s, "through the key", 1, 10));
	unsubscribe(s);
	s = subscribe(auth_port, ok, bearer, NULL);
	ck_assert(wait_for(s, ": listening", 1, 30));
	unsubscribe(s);
	free(qs), free(bearer);
}
END_TEST

/*
 * A channel PostgreSQL will not listen to (a LATIN1 database cannot name
 * it): its subscriber gets an error event and its stream ends; one that
 * asked for a good channel at the same moment listens as usual.
 */
START_TEST(a_channel_postgresql_refuses)
{
	pgh_exec("CREATE DATABASE latin1 ENCODING 'LATIN1' TEMPLATE template0 "
		 "LC_COLLATE 'C' LC_CTYPE 'C'");
	struct fpg_options o;
	unsigned p;
	it_options(&o);
	char *db = it_fmt("%s dbname=latin1", it_db());
	o.db = db;
	o.threads = 1;
	struct fpg_server *srv = it_server_start(&o, &p);
	const char *bad[] = {"\xe4\xb8\xad\xe6\x96\x87", NULL}; /* 中文 */
	const char *good[] = {"latin_ok", NULL};
	struct sub *b = subscribe(p, bad, NULL, NULL);
	struct sub *g = subscribe(p, good, NULL, NULL);
	ck_assert(wait_for(b, "event: error", 1, 10));
	ck_assert(wait_for(g, ": listening", 1, 30));
	double until = it_now() + 5;
	pthread_mutex_lock(&lock);
	bool done = b->done;
	pthread_mutex_unlock(&lock);
	while (!done && it_now() < until) {
		usleep(50 * 1000);
		pthread_mutex_lock(&lock);
		done = b->done;
		pthread_mutex_unlock(&lock);
	}
	ck_assert_msg(done, "the refused stream did not end");
	/* It is refused at once from now on, as JSON. */
	char *esc = curl_easy_escape(NULL, bad[0], 0);
	char *path = it_fmt("/listen?channel=%s", esc);
	struct http_resp *r = http_get(p, path);
	ck_assert_msg(r->status == 400, "%ld %s", r->status, r->body);
	http_resp_free(r);
	free(path);
	curl_free(esc);
	notify(p, "latin_ok", "still here");
	ck_assert(wait_for(g, "still here", 1, 10));
	unsubscribe(b), unsubscribe(g);
	fpg_server_free(srv);
	free(db);
}
END_TEST

/* Last: PostgreSQL goes away under the subscribers. */
START_TEST(a_restart_is_a_gap)
{
	char ch[32];
	snprintf(ch, sizeof(ch), "restart_%x", (unsigned)rand());
	const char *chs[] = {ch, NULL};
	struct sub *s = subscribe(one_port, chs, NULL, NULL);
	ck_assert(wait_for(s, ": listening", 1, 30));
	ck_assert(pgh_server_stop());
	ck_assert(wait_for(s, "event: gap", 1, 15));
	ck_assert(pgh_server_start());
	/* Listened to again within a few tries. */
	double until = it_now() + 20;
	int sent = 0;
	while (!wait_for(s, "event: notify", 1, 0.3) && it_now() < until) {
		struct http_resp *r = NULL;
		json_t *j = json_pack("{s:s,s:[s,s]}", "sql",
				      "SELECT pg_notify($1, $2)", "params", ch,
				      "again");
		char *body = json_dumps(j, JSON_COMPACT);
		json_decref(j);
		r = http_post_json(one_port, "/query", body);
		sent += r->status == 200;
		http_resp_free(r);
		free(body);
	}
	ck_assert_msg(wait_for(s, "event: notify", 1, 1), "sent %d", sent);
	pthread_mutex_lock(&lock);
	ck_assert(!s->done); /* the same stream */
	pthread_mutex_unlock(&lock);
	unsubscribe(s);
}
END_TEST

static void two_workers(struct fpg_options *o)
{
	o->threads = 2;
	o->listen_queue_bytes = 65536; /* a_client_that_never_reads */
}

static void one_worker(struct fpg_options *o)
{
	o->threads = 1;
}

static void with_keys(struct fpg_options *o)
{
	o->threads = 1;
	o->auth = "api-key";
	o->api_keys = key_path;
	o->roles = roles_path;
}

static void setup(void)
{
	for (size_t i = 0; i + 1 < sizeof(key); i++)
		key[i] = "abcdefghijkmnopqrstuvwxyz23456789"[rand() % 33];
	pgh_exec("CREATE ROLE listener LOGIN");
	snprintf(key_path, sizeof(key_path), "/tmp/fpg_lkeys_XXXXXX");
	snprintf(roles_path, sizeof(roles_path), "/tmp/fpg_lroles_XXXXXX");
	int kf = mkstemp(key_path), rf = mkstemp(roles_path);
	if (kf < 0 || rf < 0)
		abort();
	unsigned char d[32];
	unsigned n = 0;
	EVP_Digest(key, strlen(key), d, &n, EVP_sha256(), NULL);
	FILE *f = fdopen(kf, "w");
	for (unsigned i = 0; i < n; i++)
		fprintf(f, "%02x", d[i]);
	fprintf(f, " listener\n");
	fclose(f);
	f = fdopen(rf, "w");
	fprintf(f, "listener listen=ok.*\n");
	fclose(f);
}

__attribute__((destructor)) static void remove_files(void)
{
	if (key_path[0])
		unlink(key_path);
	if (roles_path[0])
		unlink(roles_path);
}

static const struct test_case cases[] = {
    TEST_CASE(notifications_reach_their_channel),
    TEST_CASE(a_thousand_subscribers),
    TEST_CASE(a_client_that_never_reads),
    TEST_CASE(last_event_id_replays),
    TEST_CASE(refusals_come_before_the_stream),
    TEST_CASE(a_channel_postgresql_refuses),
    TEST_CASE(a_restart_is_a_gap),
    {0},
};

static const struct it_server servers[] = {
    {&port, two_workers},
    {&one_port, one_worker},
    {&auth_port, with_keys},
    {0},
};

const struct it_program it_program = {
    .name = "listen",
    .cases = cases,
    .servers = servers,
    .setup = setup,
    .started = started,
};
