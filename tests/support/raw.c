/* Raw TCP for the tests (raw.h). */
#include "raw.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <check.h>

#include "http.h"

int raw_connect(unsigned p)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)p),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	ck_assert_msg(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0,
		      "connect: %s", strerror(errno));
	int one = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

void raw_send(int fd, const void *data, size_t n)
{
	const char *p = data;
	while (n) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
		if (k <= 0)
			return;
		p += k;
		n -= (size_t)k;
	}
}

void raw_sends(int fd, const char *s)
{
	raw_send(fd, s, strlen(s));
}

bool raw_read(int fd, struct it_buf *b, int timeout_ms)
{
	double end = it_now() + timeout_ms / 1000.0;
	for (;;) {
		int left = (int)((end - it_now()) * 1000);
		struct pollfd pf = {.fd = fd, .events = POLLIN};
		if (poll(&pf, 1, left > 0 ? left : 0) <= 0) {
			if (left <= 0)
				return false;
			continue;
		}
		char buf[4096];
		ssize_t k = recv(fd, buf, sizeof(buf), 0);
		if (k <= 0)
			return true;
		it_buf_put(b, buf, (size_t)k);
	}
}

int raw_status(const char *text)
{
	int st = 0;
	if (!text || sscanf(text, "HTTP/1.%*d %d", &st) != 1)
		return 0;
	return st;
}

const char *raw_body(const char *text)
{
	const char *p = text ? strstr(text, "\r\n\r\n") : NULL;
	return p ? p + 4 : "";
}

void raw_record(const char *method, const char *path, const char *text)
{
	int status = raw_status(text);
	if (!status)
		return;
	const char *end = strstr(text, "\r\n\r\n");
	const char *body = end ? end + 4 : "";
	char *head = strndup(text, end ? (size_t)(end - text) : strlen(text));
	if (!head)
		return;
	http_record(&(struct http_exchange){.method = method,
					    .path = path,
					    .status = status,
					    .resp_headers = head,
					    .body = body,
					    .body_len = strlen(body)});
	free(head);
}

char *raw_header(const char *text, const char *name)
{
	const char *end = text ? strstr(text, "\r\n\r\n") : NULL;
	char *head =
	    text ? strndup(text, end ? (size_t)(end - text) : strlen(text))
		 : NULL;
	struct http_resp r = {.headers = head};
	char *v = head ? http_header(&r, name) : NULL;
	free(head);
	return v;
}

unsigned raw_refused_port(int *fd)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	*fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(*fd, 0);
	ck_assert_int_eq(bind(*fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(getsockname(*fd, (struct sockaddr *)&sa, &len), 0);
	return ntohs(sa.sin_port);
}
