#include "probe.h"

#include <curl/curl.h>

static size_t discard(char *ptr, size_t size, size_t n, void *userdata)
{
	(void)ptr;
	(void)userdata;
	return size * n;
}

bool fpg_probe(const char *url, FILE *errout)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(errout, "fasterpg --check: libcurl would not start\n");
		return false;
	}
	CURL *c = curl_easy_init();
	long status = 0;
	CURLcode rc = CURLE_FAILED_INIT;
	if (c) {
		curl_easy_setopt(c, CURLOPT_URL, url);
		curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
		curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
		curl_easy_setopt(c, CURLOPT_USERAGENT, "fasterpg --check");
		rc = curl_easy_perform(c);
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
		curl_easy_cleanup(c);
	}
	curl_global_cleanup();
	if (rc != CURLE_OK) {
		fprintf(errout, "fasterpg --check: %s\n", curl_easy_strerror(rc));
		return false;
	}
	if (status < 200 || status > 299) {
		fprintf(errout, "fasterpg --check: HTTP status %ld\n", status);
		return false;
	}
	return true;
}
