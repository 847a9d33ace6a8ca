#include "jwks.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "error.h"
#include "log.h"

#define MAX_BODY (1u << 20)
#define FETCH_TIMEOUT_MS 10000
#define POKE_GAP_S 5  /* unknown key ids fetch at most this often */
#define RETRY_S 10    /* after a failed fetch */

struct fpg_jwks {
	char *url;
	char shown[256]; /* the URL without credentials or query, for logs */
	unsigned refresh_s;
	fpg_jwks_fn fn;
	void *ctx;
	pthread_t thread;
	bool started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop, poked;   /* under lock */
	time_t last_fetch;  /* under lock (monotonic seconds) */
};

static time_t mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* scheme://host[:port]/path of url: what logs and errors may show. */
static void shown_url(char *out, size_t size, const char *url)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
	if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK) {
		curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
		curl_url_get(u, CURLUPART_HOST, &host, 0);
		curl_url_get(u, CURLUPART_PORT, &port, 0);
		curl_url_get(u, CURLUPART_PATH, &path, 0);
	}
	snprintf(out, size, "%s://%s%s%s%s", scheme ? scheme : "?",
		 host ? host : "?", port ? ":" : "", port ? port : "",
		 path ? path : "");
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_url_cleanup(u);
}

struct fpg_jwks *fpg_jwks_new(const char *url, unsigned refresh_s,
			      fpg_jwks_fn fn, void *ctx,
			      struct fpg_error *err)
{
	/* Whoever can change the JWKS on its way can add a key of theirs:
	 * plain HTTP only to this machine. */
	bool loopback = strncmp(url, "http://127.0.0.1", 16) == 0 ||
			strncmp(url, "http://localhost", 16) == 0 ||
			strncmp(url, "http://[::1]", 12) == 0;
	bool sep = loopback && strchr(":/", url[url[7] == '[' ? 12 : 16]);
	if (strncmp(url, "https://", 8) != 0 && !(loopback && sep)) {
		fpg_error_set(err, FPG_ERR_CONFIG, 0,
			      "jwks-url must be an https:// URL (http:// only "
			      "to 127.0.0.1, localhost or [::1])");
		return NULL;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fpg_error_set(err, FPG_ERR_SYSTEM, 0, "libcurl would not start");
		return NULL;
	}
	struct fpg_jwks *j = calloc(1, sizeof(*j));
	if (!j || !(j->url = strdup(url))) {
		free(j);
		curl_global_cleanup();
		fpg_error_set(err, FPG_ERR_NOMEM, 0, "out of memory");
		return NULL;
	}
	shown_url(j->shown, sizeof(j->shown), url);
	j->refresh_s = refresh_s ? refresh_s : 300;
	j->fn = fn;
	j->ctx = ctx;
	pthread_mutex_init(&j->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&j->cond, &ca);
	pthread_condattr_destroy(&ca);
	return j;
}

struct body {
	char *data;
	size_t len;
	bool too_big;
};

static size_t take(char *ptr, size_t size, size_t n, void *userdata)
{
	struct body *b = userdata;
	size_t more = size * n;
	if (b->len + more > MAX_BODY) {
		b->too_big = true;
		return 0; /* curl stops with CURLE_WRITE_ERROR */
	}
	char *grown = realloc(b->data, b->len + more + 1);
	if (!grown)
		return 0;
	b->data = grown;
	memcpy(b->data + b->len, ptr, more);
	b->len += more;
	b->data[b->len] = '\0';
	return more;
}

bool fpg_jwks_fetch(struct fpg_jwks *j, struct fpg_error *err)
{
	struct body b = {0};
	long status = 0;
	CURL *c = curl_easy_init();
	CURLcode rc = CURLE_FAILED_INIT;
	if (c) {
		curl_easy_setopt(c, CURLOPT_URL, j->url);
		curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)FETCH_TIMEOUT_MS);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, take);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
		curl_easy_setopt(c, CURLOPT_USERAGENT, "fasterpg");
		rc = curl_easy_perform(c);
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
		curl_easy_cleanup(c);
	}
	pthread_mutex_lock(&j->lock);
	j->last_fetch = mono_s();
	pthread_mutex_unlock(&j->lock);
	bool ok = rc == CURLE_OK && status == 200;
	if (ok)
		j->fn(j->ctx, b.data ? b.data : "", b.len);
	else if (b.too_big)
		fpg_error_set(err, FPG_ERR_CONFIG, 0,
			      "jwks-url %s: the JWKS is larger than 1 MiB",
			      j->shown);
	else if (rc != CURLE_OK)
		fpg_error_set(err, FPG_ERR_CONFIG, 0, "jwks-url %s: %s",
			      j->shown, curl_easy_strerror(rc));
	else
		fpg_error_set(err, FPG_ERR_CONFIG, 0,
			      "jwks-url %s: HTTP status %ld", j->shown, status);
	free(b.data);
	return ok;
}

static void *run(void *arg)
{
	struct fpg_jwks *j = arg;
	time_t due = mono_s() + j->refresh_s;
	pthread_mutex_lock(&j->lock);
	while (!j->stop) {
		time_t now = mono_s();
		if (now < due && !j->poked) {
			struct timespec until = {.tv_sec = due};
			pthread_cond_timedwait(&j->cond, &j->lock, &until);
			continue;
		}
		j->poked = false;
		pthread_mutex_unlock(&j->lock);
		struct fpg_error err;
		bool ok = fpg_jwks_fetch(j, &err);
		if (!ok)
			fpg_log_error("jwks", NULL,
				      "%s; the keys fetched before stay",
				      err.message);
		due = mono_s() + (ok ? j->refresh_s : RETRY_S);
		pthread_mutex_lock(&j->lock);
	}
	pthread_mutex_unlock(&j->lock);
	return NULL;
}

bool fpg_jwks_start(struct fpg_jwks *j, struct fpg_error *err)
{
	if (pthread_create(&j->thread, NULL, run, j) != 0) {
		fpg_error_set(err, FPG_ERR_SYSTEM, 0,
			      "cannot start the JWKS thread");
		return false;
	}
	j->started = true;
	return true;
}

void fpg_jwks_poke(struct fpg_jwks *j)
{
	pthread_mutex_lock(&j->lock);
	if (!j->poked && mono_s() - j->last_fetch >= POKE_GAP_S) {
		j->poked = true;
		pthread_cond_signal(&j->cond);
	}
	pthread_mutex_unlock(&j->lock);
}

void fpg_jwks_free(struct fpg_jwks *j)
{
	if (!j)
		return;
	if (j->started) {
		pthread_mutex_lock(&j->lock);
		j->stop = true;
		pthread_cond_signal(&j->cond);
		pthread_mutex_unlock(&j->lock);
		pthread_join(j->thread, NULL);
	}
	pthread_cond_destroy(&j->cond);
	pthread_mutex_destroy(&j->lock);
	free(j->url);
	free(j);
	curl_global_cleanup();
}
