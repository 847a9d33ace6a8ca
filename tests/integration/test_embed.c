/*
 * The embedding API of include/fasterpg.h: defaults, option validation,
 * several servers in one process, start/stop/free cycles (ASan checks
 * for leaks), a stopped server's port refusing connections, and a --db
 * password that shows nowhere: not in errors, answers or the log.
 */
#include <unistd.h>

#include "it_common.h"
#include "raw.h"

static bool answers(unsigned p)
{
	struct http_resp *r =
	    it_query(p, "{\"sql\":\"select 6 * 7 as v\",\"expect\":\"scalar\"}");
	bool ok = r->status == 200 && strstr(r->body, "{\"value\":42}");
	if (!ok)
		fprintf(stderr, "port %u: curl %d status %ld %.300s\n", p,
			r->curl_code, r->status, r->body);
	http_resp_free(r);
	return ok;
}

static bool refuses(unsigned p)
{
	struct http_resp *r = http_get(p, "/healthz");
	bool refused = r->curl_code == CURLE_COULDNT_CONNECT;
	http_resp_free(r);
	return refused;
}

START_TEST(defaults_are_sane)
{
	struct fpg_options o;
	memset(&o, 0xa5, sizeof(o));
	fpg_options_init(&o);
	ck_assert_ptr_nonnull(o.listen_host);
	ck_assert_str_eq(o.listen_host, "127.0.0.1"); /* not all interfaces */
	ck_assert_uint_gt(o.listen_port, 0);
	ck_assert_uint_lt(o.listen_port, 65536);
	ck_assert_ptr_null(o.db); /* no silent default database */
	ck_assert_uint_le(o.threads, 1024);
	ck_assert_uint_ge(o.pool_max, 1);
	ck_assert_uint_le(o.pool_min, o.pool_max);
	ck_assert_uint_ge(o.pipeline_depth, 1);
	ck_assert_uint_ge(o.acquire_timeout_ms, 100);
	ck_assert_uint_le(o.acquire_timeout_ms, 60000);
	ck_assert_uint_ge(o.max_body_bytes, 64 * 1024);
	/* 0 = no limit; a limit, when set, leaves room for a real result */
	ck_assert(o.max_result_bytes == 0 || o.max_result_bytes >= 64 * 1024);
	ck_assert_uint_ge(o.max_connections, 100);
	ck_assert_ptr_nonnull(o.log_level);
	ck_assert_ptr_nonnull(o.log_format);
	ck_assert(strcmp(o.log_format, "text") == 0 ||
		  strcmp(o.log_format, "json") == 0);

	/* The defaults (with a database and a free port) make a server. */
	o.db = pgh_conninfo();
	o.listen_port = 0;
	o.log_level = "error";
	struct fpg_error err = {0};
	struct fpg_server *srv = fpg_server_new(&o, &err);
	ck_assert_msg(srv, "defaults rejected: %s", err.message);
	ck_assert_uint_gt(fpg_server_port(srv), 0);
	fpg_server_free(srv);
}
END_TEST

static void expect_rejected(const struct fpg_options *o, const char *what)
{
	struct fpg_error err;
	memset(&err, 0, sizeof(err));
	struct fpg_server *srv = fpg_server_new(o, &err);
	if (srv)
		fpg_server_free(srv);
	ck_assert_msg(srv == NULL, "%s was accepted", what);
	ck_assert_msg(err.code != FPG_ERR_NONE, "%s: no error code", what);
	ck_assert_msg(err.message[0] != '\0', "%s: no message", what);
}

START_TEST(bad_options_fail_with_a_message)
{
	struct fpg_options o;
	it_options(&o);
	o.pool_min = 5;
	o.pool_max = 2;
	expect_rejected(&o, "pool_min > pool_max");
	it_options(&o);
	o.pool_max = 0;
	expect_rejected(&o, "pool_max 0");
	it_options(&o);
	o.log_level = "verbose";
	expect_rejected(&o, "log level verbose");
	it_options(&o);
	o.log_format = "xml";
	expect_rejected(&o, "log format xml");
	it_options(&o);
	o.max_body_bytes = 0;
	expect_rejected(&o, "max_body_bytes 0");
	it_options(&o);
	o.listen_host = "not an address";
	expect_rejected(&o, "listen_host 'not an address'");
	it_options(&o);
	o.listen_port = 70000;
	expect_rejected(&o, "listen_port 70000");

	/* The config error is reported as such. */
	struct fpg_error err = {0};
	it_options(&o);
	o.pool_min = 9;
	o.pool_max = 3;
	ck_assert_ptr_null(fpg_server_new(&o, &err));
	ck_assert_int_eq(err.code, FPG_ERR_CONFIG);
	ck_assert_ptr_nonnull(strstr(err.message, "pool"));
}
END_TEST

START_TEST(port_in_use_is_an_error)
{
	struct fpg_options o;
	unsigned p;
	it_options(&o);
	struct fpg_server *a = it_server_start(&o, &p);
	it_options(&o);
	o.listen_port = p;
	struct fpg_error err = {0};
	struct fpg_server *b = fpg_server_new(&o, &err);
	bool second_bound = b != NULL;
	fpg_server_free(b);
	fpg_server_free(a);
	/* Two independent servers silently sharing one port (through
	 * SO_REUSEPORT) would split clients between them. */
	ck_assert_msg(!second_bound,
		      "a second server bound port %u, already in use by the"
		      " first",
		      p);
}
END_TEST

START_TEST(two_servers_one_process)
{
	struct fpg_options o;
	unsigned pa, pb;
	it_options(&o);
	struct fpg_server *a = it_server_start(&o, &pa);
	it_options(&o);
	o.threads = 1;
	struct fpg_server *b = it_server_start(&o, &pb);
	ck_assert_uint_ne(pa, pb);
	for (int i = 0; i < 10; i++) {
		ck_assert(answers(pa));
		ck_assert(answers(pb));
	}
	/* Stopping one leaves the other running. */
	fpg_server_stop(a, 500);
	ck_assert(refuses(pa));
	ck_assert(answers(pb));
	fpg_server_free(a);
	ck_assert(answers(pb));
	fpg_server_free(b);
	ck_assert(refuses(pb));
}
END_TEST

START_TEST(start_stop_free_cycles)
{
	for (int i = 0; i < 5; i++) {
		struct fpg_options o;
		unsigned p;
		it_options(&o);
		o.threads = 1 + (unsigned)(i % 3);
		struct fpg_server *srv = it_server_start(&o, &p);
		ck_assert(answers(p));
		/* Starting twice is refused, not a second set of workers. */
		struct fpg_error err = {0};
		ck_assert(!fpg_server_start(srv, &err));
		ck_assert(err.message[0] != '\0');
		ck_assert(answers(p));
		fpg_server_stop(srv, 500);
		ck_assert_msg(refuses(p), "port %u still accepts after stop", p);
		fpg_server_stop(srv, 500); /* a second stop does nothing */
		fpg_server_free(srv);
		ck_assert(refuses(p));
	}
	/* Created but never started, then freed. */
	struct fpg_options o;
	it_options(&o);
	struct fpg_error err = {0};
	struct fpg_server *srv = fpg_server_new(&o, &err);
	ck_assert_ptr_nonnull(srv);
	unsigned p = fpg_server_port(srv);
	fpg_server_free(srv);
	ck_assert(refuses(p));
	/* Free without stop, with a request just served. */
	srv = it_server_start(&o, &p);
	ck_assert(answers(p));
	fpg_server_free(srv);
	ck_assert(refuses(p));
	fpg_server_free(NULL);
}
END_TEST

/* Stopping with a statement running ends it within the grace period. */
START_TEST(stop_with_request_in_flight)
{
	struct fpg_options o;
	unsigned p;
	it_options(&o);
	struct fpg_server *srv = it_server_start(&o, &p);
	CURLM *m = curl_multi_init();
	CURL *c = curl_easy_init();
	char url[128];
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/query", p);
	struct curl_slist *h =
	    curl_slist_append(NULL, "Content-Type: application/json");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS,
			 "{\"sql\":\"select pg_sleep(10)\"}");
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
	FILE *devnull = fopen("/dev/null", "w");
	curl_easy_setopt(c, CURLOPT_WRITEDATA, devnull);
	curl_multi_add_handle(m, c);
	int running = 1;
	double t0 = it_now();
	while (running && it_now() - t0 < 0.5) {
		curl_multi_perform(m, &running);
		curl_multi_poll(m, NULL, 0, 50, NULL);
	}
	t0 = it_now();
	fpg_server_stop(srv, 300);
	double took = it_now() - t0;
	fpg_server_free(srv);
	while (running) {
		curl_multi_perform(m, &running);
		curl_multi_poll(m, NULL, 0, 50, NULL);
	}
	curl_multi_remove_handle(m, c);
	curl_easy_cleanup(c);
	curl_multi_cleanup(m);
	curl_slist_free_all(h);
	fclose(devnull);
	ck_assert_msg(took < 5.0, "stop took %.2f s with a 300 ms grace", took);
	/* PostgreSQL's backend for it does not keep sleeping forever. */
	char *n = NULL;
	for (int i = 0; i < 100; i++) {
		free(n);
		n = pgh_scalar("select count(*) from pg_stat_activity"
			       " where query like 'select pg_sleep(10)%'");
		if (strcmp(n, "0") == 0)
			break;
		usleep(50 * 1000);
	}
	bool gone = strcmp(n, "0") == 0;
	free(n); /* before the check: a failed check does not return */
	ck_assert_msg(gone, "the statement still runs 5 s after the server"
			    " stopped");
}
END_TEST

/* ---- secrets ---- */

#define SECRET "s3cret-pw"

/* The server's log: stderr (fd 2) goes to a file until capture_end(). */
struct capture {
	int saved;
	char path[64];
};

static void capture_start(struct capture *c)
{
	snprintf(c->path, sizeof(c->path), "/tmp/fpg_embed_log_XXXXXX");
	int fd = mkstemp(c->path);
	ck_assert_int_ge(fd, 0);
	fflush(stderr);
	c->saved = dup(2);
	dup2(fd, 2);
	close(fd);
}

/* Restores stderr; returns what was logged (malloc'd). */
static char *capture_end(struct capture *c)
{
	fflush(stderr);
	dup2(c->saved, 2);
	close(c->saved);
	struct it_buf b = {0};
	FILE *f = fopen(c->path, "r");
	char chunk[4096];
	size_t n;
	while (f && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		it_buf_put(&b, chunk, n);
	if (f)
		fclose(f);
	unlink(c->path);
	it_buf_put(&b, "", 0);
	return b.data;
}

/*
 * A --db libpq cannot parse fails fpg_server_new (it used to be retried
 * forever), and neither the error nor the log shows its password, even
 * where libpq's message quotes the text (a URI, a token).
 */
START_TEST(bad_conninfo_is_a_startup_error)
{
	static const char *bad[] = {
	    "host=127.0.0.1 password=" SECRET " bogus",
	    "host=127.0.0.1 password=" SECRET " nosuch=1",
	    "host=127.0.0.1 password='" SECRET,
	    "host=127.0.0.1 password=" SECRET " tail" SECRET,
	    "postgresql://postgres:" SECRET "@[::1/postgres",
	    "postgresql://postgres:" SECRET "@127.0.0.1:1/db?x",
	    "postgresql://127.0.0.1/db?password=" SECRET "&%zz",
	    "postgres://postgres:" SECRET "%zz@127.0.0.1/db",
	};
	struct fpg_error errs[sizeof(bad) / sizeof(bad[0])];
	bool made[sizeof(bad) / sizeof(bad[0])];
	struct capture cap;
	capture_start(&cap);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct fpg_options o;
		it_options(&o);
		o.db = bad[i];
		o.log_level = "debug";
		memset(&errs[i], 0, sizeof(errs[i]));
		struct fpg_server *srv = fpg_server_new(&o, &errs[i]);
		made[i] = srv != NULL;
		fpg_server_free(srv);
	}
	char *log = capture_end(&cap);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(!made[i], "db [%s] was accepted", bad[i]);
		ck_assert_int_eq(errs[i].code, FPG_ERR_CONFIG);
		ck_assert_msg(strstr(errs[i].message, "db is not a valid"),
			      "%s", errs[i].message);
		ck_assert_msg(!strstr(errs[i].message, SECRET) &&
				  !strstr(errs[i].message, "s3cret"),
			      "db [%s]: the error shows the password: %s",
			      bad[i], errs[i].message);
	}
	ck_assert_msg(!strstr(log, "s3cret"), "logged: %s", log);
	free(log);
	/* A word without "=" is a database name, as libpq reads it. */
	struct fpg_options o;
	it_options(&o);
	o.db = "some_database";
	struct fpg_error err = {0};
	struct fpg_server *srv = fpg_server_new(&o, &err);
	ck_assert_msg(srv, "db some_database: %s", err.message);
	fpg_server_free(srv);
}
END_TEST

/*
 * PostgreSQL unreachable with a password in --db: clients get a generic
 * 503 and never the password; the log keeps the reason, not the
 * password.
 */
START_TEST(password_never_leaks_when_unreachable)
{
	int fd;
	unsigned closed = raw_refused_port(&fd);
	char *dbs[] = {
	    it_fmt("host=127.0.0.1 port=%u user=postgres password=" SECRET
		   " connect_timeout=2",
		   closed),
	    it_fmt("postgresql://postgres:" SECRET "@127.0.0.1:%u/postgres",
		   closed),
	};
	for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++) {
		struct fpg_options o;
		it_options(&o);
		o.db = dbs[i];
		o.log_level = "debug";
		o.acquire_timeout_ms = 2000;
		struct capture cap;
		capture_start(&cap);
		unsigned p;
		struct fpg_server *srv = it_server_start(&o, &p);
		struct http_resp *rs[] = {
		    it_query(p, "{\"sql\":\"select 1\"}"),
		    http_get(p, "/readyz"),
		    http_request(p, "GET", "/copy?query=select%201", NULL,
				 (const char *const[]){"X-Requested-With: t",
						       NULL}),
		    http_get(p, "/stats"),
		    http_get(p, "/metrics"),
		};
		fpg_server_free(srv);
		char *log = capture_end(&cap);
		for (size_t k = 0; k < sizeof(rs) / sizeof(rs[0]); k++) {
			ck_assert_msg(!strstr(rs[k]->body, "s3cret"),
				      "db [%s]: answer %zu shows the password: "
				      "%s",
				      dbs[i], k, rs[k]->body);
			if (k > 2)
				continue;
			ck_assert_msg(rs[k]->status == 503 &&
					  strstr(rs[k]->body,
						 "\"message\":\"PostgreSQL is "
						 "unavailable\""),
				      "answer %zu: %ld %s", k, rs[k]->status,
				      rs[k]->body);
		}
		ck_assert_msg(strstr(log, "connect failed"), "log: %s", log);
		ck_assert_msg(!strstr(log, "s3cret"), "logged: %s", log);
		for (size_t k = 0; k < sizeof(rs) / sizeof(rs[0]); k++)
			http_resp_free(rs[k]);
		free(log);
		free(dbs[i]);
	}
	close(fd);
}
END_TEST

START_TEST(no_auth_stays_on_loopback)
{
	static const char *const wide[] = {"0.0.0.0", "::"};
	for (size_t k = 0; k < sizeof(wide) / sizeof(*wide); k++) {
		struct fpg_options o;
		it_options(&o);
		o.listen_host = wide[k];
		struct fpg_error err = {0};
		struct fpg_server *srv = fpg_server_new(&o, &err);
		ck_assert_msg(!srv, "%s without --insecure-no-auth started",
			      wide[k]);
		ck_assert_int_eq(err.code, FPG_ERR_CONFIG);
		ck_assert_ptr_nonnull(strstr(err.message, "--insecure-no-auth"));
		ck_assert_ptr_nonnull(strstr(err.message, wide[k]));
	}
	/* An --auth list that names no method is no authentication. */
	struct fpg_options none;
	it_options(&none);
	none.listen_host = "0.0.0.0";
	none.auth = ",";
	struct fpg_error e2 = {0};
	ck_assert_ptr_null(fpg_server_new(&none, &e2));
	ck_assert_ptr_nonnull(strstr(e2.message, "--insecure-no-auth"));
	/* Loopback names and addresses need nothing. */
	static const char *const local[] = {"127.0.0.1", "localhost",
					    "127.0.0.2"};
	for (size_t k = 0; k < sizeof(local) / sizeof(*local); k++) {
		struct fpg_options o;
		unsigned p;
		it_options(&o);
		o.listen_host = local[k];
		struct fpg_server *srv = it_server_start(&o, &p);
		fpg_server_free(srv);
	}
	/* Told so, it listens on every address. */
	struct fpg_options o;
	unsigned p;
	it_options(&o);
	o.listen_host = "0.0.0.0";
	o.insecure_no_auth = 1;
	struct fpg_server *srv = it_server_start(&o, &p);
	struct http_resp *r = http_get(p, "/healthz");
	ck_assert_int_eq(r->status, 200);
	http_resp_free(r);
	fpg_server_free(srv);
}
END_TEST

static const struct test_case cases[] = {
    TEST_CASE(defaults_are_sane),
    TEST_CASE(bad_options_fail_with_a_message),
    TEST_CASE(port_in_use_is_an_error),
    TEST_CASE(two_servers_one_process),
    TEST_CASE(start_stop_free_cycles),
    TEST_CASE(stop_with_request_in_flight),
    TEST_CASE(bad_conninfo_is_a_startup_error),
    TEST_CASE(password_never_leaks_when_unreachable),
    TEST_CASE(no_auth_stays_on_loopback),
    {0},
};

const struct it_program it_program = {
    .name = "embed",
    .cases = cases,
};
