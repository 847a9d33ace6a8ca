/*
 * A real browser's EventSource on GET /listen: headless Chromium, driven
 * through ChromeDriver's WebDriver HTTP API, opens a page (a file, so a
 * cross-origin page: --cors-origin '*') that listens to a channel, sends
 * itself three notifications with fetch() POST /query, and writes what
 * arrives into the page, which the test reads back. Debian's packages
 * chromium and chromium-driver; without them the test is skipped, except
 * under CI, where it fails.
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "it_common.h"
#include "raw.h"

static unsigned port;
static char page[64];

__attribute__((destructor)) static void remove_page(void)
{
	if (page[0])
		unlink(page);
}

/* A WebDriver command's "value", as JSON (caller frees), or NULL. */
static json_t *webdriver(unsigned p, const char *method, const char *path,
			 const char *body)
{
	struct http_resp *r = http_request(p, method, path, body, NULL);
	json_t *v = r->json ? json_incref(json_object_get(r->json, "value"))
			    : NULL;
	if (r->status != 200)
		fprintf(stderr, "webdriver %s %s: %ld %.300s\n", method, path,
			r->status, r->body);
	http_resp_free(r);
	return v;
}

START_TEST(eventsource_receives_notifications)
{
	/* This program's HTTP exchanges are ChromeDriver's, not fasterpg's:
	 * not for the spec check (tests/spec). */
	unsetenv("FPG_TEST_RECORD");
	if (access("/usr/bin/chromium", X_OK) != 0 ||
	    access("/usr/bin/chromedriver", X_OK) != 0) {
		ck_assert_msg(!getenv("CI"), "chromium and chromium-driver are "
					     "needed (scripts/dev.sh deps)");
		fprintf(stderr, "browser: no chromium here: skipped\n");
		return;
	}
	/* A port the kernel just found free, for ChromeDriver. */
	int hold;
	unsigned dport = raw_refused_port(&hold);
	close(hold);
	char log_path[] = "/tmp/fpg_chromedriver_XXXXXX";
	int log_fd = mkstemp(log_path);
	ck_assert_int_ge(log_fd, 0);
	pid_t driver = fork();
	ck_assert_int_ge(driver, 0);
	if (driver == 0) {
		char arg[32];
		snprintf(arg, sizeof(arg), "--port=%u", dport);
		dup2(log_fd, 1);
		dup2(log_fd, 2);
		execl("/usr/bin/chromedriver", "chromedriver", arg, (char *)NULL);
		_exit(127);
	}
	close(log_fd);
	char ch[32];
	snprintf(ch, sizeof(ch), "browser_%x", (unsigned)rand());
	snprintf(page, sizeof(page), "/tmp/fpg_page_XXXXXX.html");
	int fd = mkstemps(page, 5);
	ck_assert_int_ge(fd, 0);
	FILE *f = fdopen(fd, "w");
	fprintf(f,
		"<!doctype html><html><body><pre id=\"log\"></pre><script>\n"
		"const base = 'http://127.0.0.1:%u';\n"
		"const out = (s) => { document.getElementById('log')"
		".textContent += s + '\\n'; };\n"
		"const es = new EventSource(base + '/listen?channel=%s');\n"
		"let n = 0, sent = 0;\n"
		"es.addEventListener('notify', (e) => {\n"
		"  out('got ' + JSON.parse(e.data).payload);\n"
		"  if (++n === 3) { es.close(); out('done'); }\n"
		"});\n"
		"function send() {\n"
		"  if (n > 0 || sent++ > 50) return;\n"
		"  fetch(base + '/query', {method: 'POST', headers: "
		"{'Content-Type': 'application/json'}, body: JSON.stringify("
		"{sql: \"SELECT pg_notify($1, 'a'), pg_notify($1, 'b'), "
		"pg_notify($1, 'c')\", params: ['%s']})});\n"
		"  setTimeout(send, 300);\n"
		"}\n"
		"es.onopen = () => setTimeout(send, 300);\n"
		"</script></body></html>\n",
		port, ch, ch);
	fclose(f);
	/* ChromeDriver takes a moment to listen. */
	json_t *session = NULL;
	double until = it_now() + 20;
	while (!session && it_now() < until) {
		usleep(200 * 1000);
		session = webdriver(
			dport, "POST", "/session",
			"{\"capabilities\":{\"alwaysMatch\":{\"goog:chromeOptions"
			"\":{\"args\":[\"--headless=new\",\"--no-sandbox\","
			"\"--disable-gpu\",\"--disable-dev-shm-usage\"]}}}}");
	}
	if (!session) {
		char text[2048] = "";
		FILE *lf = fopen(log_path, "r");
		if (lf) {
			text[fread(text, 1, sizeof(text) - 1, lf)] = '\0';
			fclose(lf);
		}
		int st = 0;
		bool ended = waitpid(driver, &st, WNOHANG) == driver;
		ck_abort_msg("no WebDriver session on port %u (chromedriver %s "
			     "%d): %s",
			     dport, ended ? "ended with" : "runs;", st, text);
	}
	unlink(log_path);
	const char *id =
		json_string_value(json_object_get(session, "sessionId"));
	ck_assert_ptr_nonnull(id);
	char *path = it_fmt("/session/%s/url", id);
	char *url = it_fmt("{\"url\":\"file://%s\"}", page);
	json_decref(webdriver(dport, "POST", path, url));
	free(path), free(url);
	path = it_fmt("/session/%s/execute/sync", id);
	char *text = NULL;
	until = it_now() + 20;
	while (it_now() < until) {
		json_t *v = webdriver(
			dport, "POST", path,
			"{\"script\":\"return document.getElementById('log')"
			".textContent\",\"args\":[]}");
		free(text);
		text = strdup(json_is_string(v) ? json_string_value(v) : "");
		json_decref(v);
		if (strstr(text, "done"))
			break;
		usleep(200 * 1000);
	}
	ck_assert_msg(strcmp(text, "got a\ngot b\ngot c\ndone\n") == 0,
		      "the page says: %s", text);
	free(text), free(path);
	path = it_fmt("/session/%s", id);
	json_decref(webdriver(dport, "DELETE", path, NULL));
	free(path);
	json_decref(session);
	kill(driver, SIGTERM);
	waitpid(driver, NULL, 0);
}
END_TEST

static void with_cors(struct fpg_options *o)
{
	o->cors_origin = "*"; /* the page is a file: origin "null" */
	o->threads = 1;
}

static const struct test_case cases[] = {
    TEST_CASE(eventsource_receives_notifications),
    {0},
};

static const struct it_server servers[] = {{&port, with_cors}, {0}};

const struct it_program it_program = {
    .name = "browser",
    .cases = cases,
    .servers = servers,
    .timeout_s = 120,
};
