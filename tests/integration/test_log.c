/*
 * The log: the access line each request ends with (its fields, JSON or
 * text, on or off), trace context in the lines of a request, and the
 * fasterpg program writing nothing but JSON lines with --log-format json,
 * from a configuration it refuses to the line of its shutdown.
 *
 * The log's settings are the process's (the last server created sets
 * them), so every case makes its own server.
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "it_common.h"

/* ---- the lines a server logged (fpg_options.log) ---- */

static pthread_mutex_t lines_lock = PTHREAD_MUTEX_INITIALIZER;
static struct it_buf lines; /* one a line, '\n' after each */

static void take_line(void *ctx, int level, const char *line)
{
	pthread_mutex_lock(&lines_lock);
	it_buf_puts(&lines, line);
	it_buf_putc(&lines, '\n');
	pthread_mutex_unlock(&lines_lock);
}

static struct fpg_server *srv;

static unsigned start(const char *format, const char *access_log)
{
	struct fpg_options o;
	it_options(&o);
	o.log_level = "info";
	o.log_format = format;
	o.access_log = access_log;
	o.log = take_line;
	unsigned port;
	pthread_mutex_lock(&lines_lock);
	free(lines.data);
	lines = (struct it_buf){0};
	pthread_mutex_unlock(&lines_lock);
	srv = it_server_start(&o, &port);
	return port;
}

static void stop(void)
{
	fpg_server_free(srv);
	srv = NULL;
}

/* A copy of the lines logged so far; caller frees. */
static char *logged(void)
{
	pthread_mutex_lock(&lines_lock);
	char *s = strdup(lines.data ? lines.data : "");
	pthread_mutex_unlock(&lines_lock);
	return s;
}

/* The first logged line holding needle, as a copy, waiting up to 3 s for
 * it (the access line follows the answer); NULL when none came. */
static char *line_with(const char *needle)
{
	for (int i = 0; i < 300; i++) {
		char *all = logged();
		char *p = strstr(all, needle);
		if (p) {
			while (p > all && p[-1] != '\n')
				p--;
			char *line = strndup(p, strcspn(p, "\n"));
			free(all);
			return line;
		}
		free(all);
		usleep(10000);
	}
	return NULL;
}

/* Every logged line is a JSON object with ts, level, component, msg. */
static void assert_all_json(const char *text)
{
	int n = 0;
	for (const char *p = text; *p;) {
		size_t len = strcspn(p, "\n");
		json_error_t e;
		json_t *j = json_loadb(p, len, 0, &e);
		ck_assert_msg(j && json_is_object(j), "not JSON: %.*s",
			      (int)len, p);
		ck_assert_msg(json_is_string(json_object_get(j, "ts")) &&
				      json_is_string(json_object_get(j, "level")) &&
				      json_is_string(json_object_get(j, "msg")),
			      "fields missing: %.*s", (int)len, p);
		json_decref(j);
		n++;
		p += len + (p[len] == '\n');
	}
	ck_assert_int_gt(n, 0);
}

static struct http_resp *query_as(unsigned port, const char *id,
				  const char *body)
{
	char h[128];
	snprintf(h, sizeof(h), "X-Request-Id: %s", id);
	const char *const hdrs[] = {h, NULL};
	return http_request(port, "POST", "/query", body, hdrs);
}

START_TEST(access_line_has_json_fields)
{
	unsigned port = start("json", "on");
	struct http_resp *r = query_as(port, "log-ok-1",
				       "{\"sql\":\"select g from "
				       "generate_series(1,3) g\"}");
	ck_assert_int_eq(r->status, 200);
	size_t body = r->body_len;
	http_resp_free(r);
	r = query_as(port, "log-bad-1", "{\"sql\":\"select 1/0\"}");
	ck_assert_int_eq(r->status, 400);
	http_resp_free(r);

	char *line = line_with("\"request_id\":\"log-ok-1\"");
	ck_assert_msg(line, "no access line: %s", logged());
	json_t *j = json_loads(line, 0, NULL);
	ck_assert_msg(j, "not JSON: %s", line);
	ck_assert_str_eq(json_string_value(json_object_get(j, "component")),
			 "access");
	ck_assert_str_eq(json_string_value(json_object_get(j, "level")), "info");
	ck_assert_str_eq(json_string_value(json_object_get(j, "method")), "POST");
	ck_assert_str_eq(json_string_value(json_object_get(j, "route")),
			 "/query");
	ck_assert_str_eq(json_string_value(json_object_get(j, "client")),
			 "127.0.0.1");
	ck_assert_int_eq(json_integer_value(json_object_get(j, "status")), 200);
	ck_assert_int_eq(json_integer_value(json_object_get(j, "rows")), 3);
	ck_assert_int_eq(json_integer_value(json_object_get(j, "bytes_out")),
			 (json_int_t)body);
	ck_assert_int_gt(json_integer_value(json_object_get(j, "bytes_in")), 10);
	ck_assert(json_is_number(json_object_get(j, "duration_ms")));
	ck_assert_ptr_null(json_object_get(j, "sqlstate"));
	json_decref(j);
	free(line);

	line = line_with("\"request_id\":\"log-bad-1\"");
	ck_assert_ptr_nonnull(line);
	j = json_loads(line, 0, NULL);
	ck_assert_int_eq(json_integer_value(json_object_get(j, "status")), 400);
	ck_assert_str_eq(json_string_value(json_object_get(j, "sqlstate")),
			 "22012");
	json_decref(j);
	free(line);
	stop();
	char *all = logged();
	assert_all_json(all);
	free(all);
}
END_TEST

START_TEST(access_line_in_text)
{
	unsigned port = start("text", "on");
	struct http_resp *r = query_as(port, "log-text-1",
				       "{\"sql\":\"select 1\"}");
	ck_assert_int_eq(r->status, 200);
	http_resp_free(r);
	char *line = line_with(" log-text-1: ");
	ck_assert_msg(line, "no access line: %s", logged());
	ck_assert_msg(strstr(line, " info access log-text-1: POST /query 200") &&
			      strstr(line, " route=/query ") &&
			      strstr(line, " status=200 ") &&
			      strstr(line, " rows=1 ") &&
			      strstr(line, " client=127.0.0.1 ") &&
			      strstr(line, " duration_ms="),
		      "line: %s", line);
	free(line);
	stop();
}
END_TEST

START_TEST(access_log_off)
{
	unsigned port = start("json", "off");
	struct http_resp *r = query_as(port, "log-off-1",
				       "{\"sql\":\"select 1\"}");
	ck_assert_int_eq(r->status, 200);
	http_resp_free(r);
	r = http_get(port, "/healthz"); /* after the first one's line */
	http_resp_free(r);
	usleep(100000);
	stop();
	char *all = logged();
	ck_assert_msg(!strstr(all, "log-off-1"), "logged: %s", all);
	/* the server's own lines still are */
	ck_assert_ptr_nonnull(strstr(all, "listening on"));
	free(all);
}
END_TEST

/* ---- trace context ---- */

#define TRACE "4bf92f3577b34da6a3ce929d0e0e4736"
#define APP_SQL "{\"sql\":\"select application_name from pg_stat_activity " \
		"where pid = pg_backend_pid()\"}"

static struct http_resp *query_traced(unsigned port, const char *id,
				      const char *tp, const char *body)
{
	char h[128], t[128];
	snprintf(h, sizeof(h), "X-Request-Id: %s", id);
	snprintf(t, sizeof(t), "traceparent: %s", tp);
	const char *const hdrs[] = {h, t, NULL};
	return http_request(port, "POST", "/query", body, hdrs);
}

START_TEST(trace_context_is_followed)
{
	unsigned port = start("json", "on");
	struct http_resp *r = query_traced(
		port, "trace-1", "00-" TRACE "-00f067aa0ba902b7-01", APP_SQL);
	it_assert_resp(r, r->status == 200);
	char *tr = http_header(r, "traceresponse");
	ck_assert_ptr_nonnull(tr);
	/* the trace, our span (new, not the client's), the flags */
	ck_assert_int_eq(strlen(tr), 55);
	ck_assert(strncmp(tr, "00-" TRACE "-", 36) == 0);
	ck_assert(strcmp(tr + 52, "-01") == 0);
	char span[17];
	snprintf(span, sizeof(span), "%.16s", tr + 36);
	ck_assert_str_ne(span, "00f067aa0ba902b7");
	/* PostgreSQL saw the trace while the statement ran */
	char want[80];
	snprintf(want, sizeof(want), "\"fasterpg " TRACE "-%s\"", span);
	ck_assert_msg(strstr(r->body, want), "want %s in %s", want, r->body);
	http_resp_free(r);
	free(tr);
	char *line = line_with("\"request_id\":\"trace-1\"");
	ck_assert_ptr_nonnull(line);
	json_t *j = json_loads(line, 0, NULL);
	ck_assert_str_eq(json_string_value(json_object_get(j, "trace_id")),
			 TRACE);
	ck_assert_str_eq(json_string_value(json_object_get(j, "span_id")), span);
	json_decref(j);
	free(line);

	/* ... and only then: the session's name is back */
	r = query_as(port, "trace-2", APP_SQL);
	it_assert_resp(r, strstr(r->body, "\"fasterpg\""));
	ck_assert_ptr_null(http_header(r, "traceresponse"));
	http_resp_free(r);

	/* Not sampled: answered and logged, not passed on. */
	r = query_traced(port, "trace-3", "00-" TRACE "-00f067aa0ba902b7-00",
			 APP_SQL);
	it_assert_resp(r, strstr(r->body, "\"fasterpg\""));
	tr = http_header(r, "traceresponse");
	ck_assert_ptr_nonnull(tr);
	ck_assert(strcmp(tr + 52, "-00") == 0);
	free(tr);
	http_resp_free(r);

	/* Invalid (upper case): ignored. */
	r = query_traced(port, "trace-4",
			 "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
			 APP_SQL);
	it_assert_resp(r, r->status == 200 && strstr(r->body, "\"fasterpg\""));
	ck_assert_ptr_null(http_header(r, "traceresponse"));
	http_resp_free(r);
	line = line_with("\"request_id\":\"trace-4\"");
	ck_assert_ptr_nonnull(line);
	ck_assert_msg(!strstr(line, "trace_id"), "%s", line);
	free(line);

	/* A statement that must run alone runs, untraced. */
	r = query_traced(port, "trace-5", "00-" TRACE "-00f067aa0ba902b7-01",
			 "{\"sql\":\"vacuum pg_am\"}");
	it_assert_resp(r, r->status == 200);
	http_resp_free(r);
	stop();
}
END_TEST

/* ---- the drain ---- */

struct bg_req {
	pthread_t thread;
	unsigned port;
	struct http_resp *resp;
};

static void *bg_sleep(void *arg)
{
	struct bg_req *b = arg;
	b->resp = http_request(b->port, "POST", "/query",
			       "{\"sql\":\"select pg_sleep(30)\"}", NULL);
	return NULL;
}

/* A statement that runs for 30 s, on a thread, once PostgreSQL runs it. */
static void bg_start(struct bg_req *b, unsigned port)
{
	b->port = port;
	ck_assert_int_eq(pthread_create(&b->thread, NULL, bg_sleep, b), 0);
	for (int i = 0; i < 500 && it_active_statements() < 1; i++)
		usleep(10000);
	ck_assert_int_ge(it_active_statements(), 1);
}

static void *stopper(void *arg)
{
	fpg_server_stop(arg, 30000);
	return NULL;
}

START_TEST(drain_says_what_it_waits_for_and_ends_on_demand)
{
	unsigned port = start("json", "off");
	struct http_resp *tx = http_post_json(port, "/tx", "{}");
	it_assert_resp(tx, tx->status == 201 || tx->status == 200);
	http_resp_free(tx);
	struct bg_req b;
	bg_start(&b, port);
	pthread_t t;
	double t0 = it_now();
	ck_assert_int_eq(pthread_create(&t, NULL, stopper, srv), 0);
	char *line = line_with("draining: ");
	ck_assert_msg(line, "no drain line: %s", logged());
	ck_assert_msg(strstr(line, "1 requests (0 of them COPY), 1 transactions"),
		      "%s", line);
	free(line);
	/* still waiting a second later, and saying so again */
	usleep(1200000);
	char *all = logged();
	char *first = strstr(all, "draining: ");
	ck_assert_msg(first && strstr(first + 1, "draining: "),
		      "one drain line only: %s", all);
	free(all);
	double t1 = it_now();
	fpg_server_stop_now(srv);
	pthread_join(t, NULL);
	double took = it_now() - t1;
	ck_assert_msg(took < 2, "the stop took %.2f s more", took);
	ck_assert(t1 - t0 < 10);
	pthread_join(b.thread, NULL);
	/* the statement's client got an answer or a closed connection */
	ck_assert(b.resp->status == 503 || b.resp->curl_code != 0);
	http_resp_free(b.resp);
	stop();
}
END_TEST

/* ---- the program ---- */

/* Starts fasterpg with args (NULL-terminated); returns its pid, and in
 * *fd the read end of its stderr. */
static pid_t spawn(const char *const *args, int *fd)
{
	int p[2];
	ck_assert_int_eq(pipe(p), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(p[1], 2);
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		close(p[0]);
		char *argv[16] = {strdup(FPG_BUILD_DIR "/fasterpg")};
		for (int i = 0; args[i] && i < 14; i++)
			argv[i + 1] = strdup(args[i]);
		execv(argv[0], argv);
		_exit(127);
	}
	close(p[1]);
	*fd = p[0];
	return pid;
}

/* Reads fd until want shows up or EOF (5 s at most) into b. */
static void read_until(int fd, struct it_buf *b, const char *want)
{
	double end = it_now() + 5;
	while (it_now() < end && !(want && b->data && strstr(b->data, want))) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		char chunk[4096];
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n <= 0)
			break;
		it_buf_put(b, chunk, (size_t)n);
	}
}

START_TEST(program_refusing_its_config_says_so_in_json)
{
	const char *const args[] = {"--log-format", "json", "--pool-max", "0",
				    "--no-such-option", NULL};
	int fd;
	pid_t pid = spawn(args, &fd);
	struct it_buf b = {0};
	read_until(fd, &b, NULL);
	close(fd);
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1);
	ck_assert_msg(b.data && strstr(b.data, "no-such-option") &&
			      strstr(b.data, "pool-max"),
		      "said: %s", b.data);
	assert_all_json(b.data);
	free(b.data);
}
END_TEST

START_TEST(program_logs_only_json_to_its_shutdown)
{
	const char *const args[] = {"--log-format", "json", "--listen",
				    "127.0.0.1:0", "--threads", "1", "--db",
				    it_db(), NULL};
	int fd;
	pid_t pid = spawn(args, &fd);
	struct it_buf b = {0};
	read_until(fd, &b, "listening on");
	ck_assert_msg(b.data && strstr(b.data, "listening on"), "said: %s",
		      b.data);
	kill(pid, SIGTERM);
	read_until(fd, &b, NULL);
	close(fd);
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert_msg(strstr(b.data, "signal 15, shutting down"), "said: %s",
		      b.data);
	assert_all_json(b.data);
	free(b.data);
}
END_TEST

/* The port of "listening on 127.0.0.1:PORT" in what it said. */
static unsigned port_of(const char *said)
{
	const char *p = strstr(said, "listening on 127.0.0.1:");
	ck_assert_ptr_nonnull(p);
	return (unsigned)strtoul(p + strlen("listening on 127.0.0.1:"), NULL,
				 10);
}

START_TEST(program_second_signal_ends_the_drain)
{
	const char *const args[] = {"--log-format", "json", "--listen",
				    "127.0.0.1:0", "--threads", "1", "--db",
				    it_db(), NULL};
	int fd;
	pid_t pid = spawn(args, &fd);
	struct it_buf b = {0};
	read_until(fd, &b, "listening on");
	struct bg_req q;
	bg_start(&q, port_of(b.data));
	kill(pid, SIGTERM);
	read_until(fd, &b, "draining: 1 requests");
	ck_assert_msg(strstr(b.data, "draining: 1 requests"), "said: %s",
		      b.data);
	double t0 = it_now();
	kill(pid, SIGINT);
	read_until(fd, &b, NULL);
	close(fd);
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	double took = it_now() - t0;
	ck_assert_msg(took < 3, "exited %.2f s after the second signal", took);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert_msg(strstr(b.data, "signal 2 again"), "said: %s", b.data);
	assert_all_json(b.data);
	pthread_join(q.thread, NULL);
	http_resp_free(q.resp);
	free(b.data);
}
END_TEST

static const struct test_case cases[] = {
    TEST_CASE(access_line_has_json_fields),
    TEST_CASE(access_line_in_text),
    TEST_CASE(access_log_off),
    TEST_CASE(trace_context_is_followed),
    TEST_CASE(program_refusing_its_config_says_so_in_json),
    TEST_CASE(program_logs_only_json_to_its_shutdown),
    TEST_CASE(drain_says_what_it_waits_for_and_ends_on_demand),
    TEST_CASE(program_second_signal_ends_the_drain),
    {0},
};

const struct it_program it_program = {
    .name = "log",
    .cases = cases,
};
