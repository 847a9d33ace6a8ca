#include "roles.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

struct role {
	char *name;
	struct fpg_role_policy policy;
};

struct fpg_roles {
	unsigned n;
	struct role *r;
	struct fpg_role_policy other; /* the `*` line's, or everything */
};

static const struct fpg_role_policy unlimited = {.raw_sql = true};

void fpg_roles_free(struct fpg_roles *roles)
{
	if (!roles)
		return;
	for (unsigned i = 0; i < roles->n; i++) {
		free(roles->r[i].name);
		free(roles->r[i].policy.listen);
	}
	free(roles->other.listen);
	free(roles->r);
	free(roles);
}

/* One option word into p; false with *why. */
static bool option(const char *w, struct fpg_role_policy *p, const char **why)
{
	char *end;
	if (strcmp(w, "read-only") == 0) {
		p->read_only = true;
	} else if (strcmp(w, "raw-sql=no") == 0) {
		p->raw_sql = false;
	} else if (strcmp(w, "raw-sql=yes") == 0) {
		p->raw_sql = true;
	} else if (strncmp(w, "statement-timeout-ms=", 21) == 0 &&
		   w[21] >= '1' && w[21] <= '9') {
		errno = 0;
		unsigned long v = strtoul(w + 21, &end, 10);
		if (*end || errno || v > 86400000) {
			*why = "statement-timeout-ms is 1 to 86400000";
			return false;
		}
		p->statement_timeout_ms = (unsigned)v;
	} else if (strncmp(w, "transactions=", 13) == 0 && w[13] >= '1' &&
		   w[13] <= '9') {
		errno = 0;
		unsigned long v = strtoul(w + 13, &end, 10);
		if (*end || errno || v > 65535) {
			*why = "transactions is 1 to 65535";
			return false;
		}
		p->transactions = (unsigned)v;
	} else if (strncmp(w, "streams=", 8) == 0 && w[8] >= '1' &&
		   w[8] <= '9') {
		errno = 0;
		unsigned long v = strtoul(w + 8, &end, 10);
		if (*end || errno || v > 65535) {
			*why = "streams is 1 to 65535";
			return false;
		}
		p->streams = (unsigned)v;
	} else if (strncmp(w, "listen=", 7) == 0 && w[7]) {
		free(p->listen);
		if (!(p->listen = strdup(w + 7))) {
			*why = "out of memory";
			return false;
		}
	} else if (strncmp(w, "rate=", 5) == 0 && w[5] >= '0' && w[5] <= '9') {
		errno = 0;
		unsigned long v = strtoul(w + 5, &end, 10);
		if (*end || errno || v > 1000000) {
			*why = "rate is requests per second, 0 to 1000000";
			return false;
		}
		p->rate = (unsigned)v;
	} else {
		*why = "options are read-only, raw-sql=yes|no, rate=N, "
		       "statement-timeout-ms=N, transactions=N, streams=N and "
		       "listen=CHANNEL,PREFIX*,...";
		return false;
	}
	return true;
}

struct fpg_roles *fpg_roles_load(const char *path, struct fpg_error *err)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fpg_error_set(err, FPG_ERR_CONFIG, 0, "roles %s: %s", path,
			      strerror(errno));
		return NULL;
	}
	struct fpg_roles *roles = calloc(1, sizeof(*roles));
	char *line = NULL;
	size_t cap = 0;
	unsigned lineno = 0, room = 0;
	const char *why = roles ? NULL : "out of memory";
	if (roles)
		roles->other = unlimited;
	while (!why && getline(&line, &cap, f) >= 0) {
		lineno++;
		char *save = NULL;
		char *name = strtok_r(line, " \t\r\n", &save);
		if (!name || name[0] == '#')
			continue;
		struct fpg_role_policy p = unlimited;
		for (char *w; !why && (w = strtok_r(NULL, " \t\r\n", &save));)
			(void)option(w, &p, &why);
		if (why) {
			free(p.listen);
			break;
		}
		if (strcmp(name, "*") == 0) {
			free(roles->other.listen);
			roles->other = p;
			continue;
		}
		if (roles->n == room) {
			room = room ? room * 2 : 16;
			struct role *g = realloc(roles->r, room * sizeof(*g));
			if (!g) {
				free(p.listen);
				why = "out of memory";
				break;
			}
			roles->r = g;
		}
		if (!(roles->r[roles->n].name = strdup(name))) {
			free(p.listen);
			why = "out of memory";
			break;
		}
		roles->r[roles->n++].policy = p;
	}
	free(line);
	fclose(f);
	if (why) {
		fpg_error_set(err, FPG_ERR_CONFIG, 0, "%s:%u: %s", path, lineno,
			      why);
		fpg_roles_free(roles);
		return NULL;
	}
	return roles;
}

const struct fpg_role_policy *fpg_roles_for(const struct fpg_roles *roles,
					    const char *role)
{
	if (!roles)
		return &unlimited;
	for (unsigned i = 0; i < roles->n; i++)
		if (strcmp(roles->r[i].name, role) == 0)
			return &roles->r[i].policy;
	return &roles->other;
}

bool fpg_roles_may_listen(const struct fpg_role_policy *p, const char *channel)
{
	if (!p->listen)
		return true;
	size_t len = strlen(channel);
	for (const char *w = p->listen; *w;) {
		size_t n = strcspn(w, ",");
		bool prefix = n && w[n - 1] == '*';
		size_t m = prefix ? n - 1 : n;
		if (prefix ? len >= m && strncmp(channel, w, m) == 0
			   : len == m && strncmp(channel, w, m) == 0)
			return true;
		w += n + (w[n] == ',');
	}
	return false;
}
