#include "queries.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "error.h"

#define MAX_QUERY_BYTES (1 << 20)

struct query {
	char *name;
	char *sql;
	char *roles; /* ",a,b," for a quick search, or NULL: anyone */
	bool read_only; /* "-- read-only": runs in a read-only transaction,
			   may be called with GET */
};

struct fpg_queries {
	unsigned n;
	struct query *q; /* sorted by name */
};

static int cmp_query(const void *a, const void *b)
{
	return strcmp(((const struct query *)a)->name,
		      ((const struct query *)b)->name);
}

static bool good_name(const char *s, size_t n)
{
	if (n == 0 || n > 63)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
		      s[i] == '-'))
			return false;
	return true;
}

/* ",a,b," from "a, b" (blanks dropped). */
static char *roles_list(const char *line)
{
	size_t n = strlen(line);
	char *out = malloc(n + 3);
	if (!out)
		return NULL;
	size_t k = 0;
	out[k++] = ',';
	for (const char *p = line; *p && *p != '\n' && *p != '\r'; p++)
		if (*p != ' ' && *p != '\t')
			out[k++] = *p;
	if (out[k - 1] != ',')
		out[k++] = ',';
	out[k] = '\0';
	return out;
}

static char *read_all(const char *path, struct fpg_error *err)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fpg_error_set(err, FPG_ERR_CONFIG, 0, "queries %s: %s", path,
			      strerror(errno));
		return NULL;
	}
	char *text = malloc(MAX_QUERY_BYTES + 1);
	size_t n = text ? fread(text, 1, MAX_QUERY_BYTES + 1, f) : 0;
	fclose(f);
	if (!text || n > MAX_QUERY_BYTES) {
		fpg_error_set(err, FPG_ERR_CONFIG, 0,
			      text ? "queries %s: over 1 MiB" : "out of memory",
			      path);
		free(text);
		return NULL;
	}
	text[n] = '\0';
	return text;
}

/* The line at p, up to its end (no \r\n), as a length. */
static size_t line_len(const char *p)
{
	size_t n = strcspn(p, "\n");
	while (n && (p[n - 1] == '\r' || p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;
	return n;
}

/*
 * One comment line of the header (after "--" and blanks, n bytes): the
 * roles line, the read-only mark, or a plain comment. A line that looks
 * like a mark but is not one is an error, not a comment: an operator who
 * wrote "-- readonly" meant it.
 */
static bool header_line(struct query *e, const char *w, size_t n,
			const char *path, struct fpg_error *err)
{
	static const char roles[] = "roles:";
	if (n >= sizeof(roles) - 1 && memcmp(w, roles, sizeof(roles) - 1) == 0) {
		if (e->roles) {
			fpg_error_set(err, FPG_ERR_CONFIG, 0,
				      "queries %s: two \"-- roles:\" lines",
				      path);
			return false;
		}
		e->roles = roles_list(w + sizeof(roles) - 1); /* to the \n */
		if (!e->roles)
			fpg_error_set(err, FPG_ERR_NOMEM, 0, "out of memory");
		return e->roles != NULL;
	}
	if (n == 9 && memcmp(w, "read-only", 9) == 0) {
		e->read_only = true;
		return true;
	}
	if ((n >= 9 && strncasecmp(w, "read-only", 9) == 0) ||
	    (n >= 8 && strncasecmp(w, "readonly", 8) == 0) ||
	    (n >= 9 && strncasecmp(w, "read only", 9) == 0)) {
		fpg_error_set(err, FPG_ERR_CONFIG, 0,
			      "queries %s: the mark is \"-- read-only\" on a "
			      "line of its own (got \"-- %.*s\")",
			      path, (int)(n < 40 ? n : 40), w);
		return false;
	}
	return true;
}

/*
 * Reads the header of text into e (its leading lines that are blank or
 * "--" comments: "-- roles: a, b" and "-- read-only" in any order among
 * them) and takes the rest as the SQL.
 */
static bool take(struct query *e, char *text, const char *path,
		 struct fpg_error *err)
{
	const char *sql = text;
	for (const char *p = text; *p;) {
		const char *w = p + strspn(p, " \t\r");
		size_t n = line_len(w);
		if (*w == '-' && w[1] == '-') {
			const char *c = w + 2 + strspn(w + 2, " \t");
			if (!header_line(e, c, line_len(c), path, err))
				return false;
		} else if (n) {
			break; /* the SQL */
		}
		p = w + strcspn(w, "\n");
		if (*p == '\n')
			p++;
		sql = p;
	}
	if (strspn(sql, " \t\r\n") == strlen(sql)) {
		fpg_error_set(err, FPG_ERR_CONFIG, 0, "queries %s: no SQL", path);
		return false;
	}
	e->sql = strdup(sql);
	return e->sql != NULL;
}

void fpg_queries_free(struct fpg_queries *q)
{
	if (!q)
		return;
	for (unsigned i = 0; i < q->n; i++) {
		free(q->q[i].name);
		free(q->q[i].sql);
		free(q->q[i].roles);
	}
	free(q->q);
	free(q);
}

struct fpg_queries *fpg_queries_load(const char *dir, struct fpg_error *err)
{
	DIR *d = opendir(dir);
	if (!d) {
		fpg_error_set(err, FPG_ERR_CONFIG, 0, "queries %s: %s", dir,
			      strerror(errno));
		return NULL;
	}
	struct fpg_queries *q = calloc(1, sizeof(*q));
	unsigned room = 0;
	bool ok = q != NULL;
	if (!ok)
		fpg_error_set(err, FPG_ERR_NOMEM, 0, "out of memory");
	struct dirent *de;
	while (ok && (de = readdir(d))) {
		size_t len = strlen(de->d_name);
		if (len < 5 || strcmp(de->d_name + len - 4, ".sql") != 0)
			continue;
		if (!good_name(de->d_name, len - 4)) {
			fpg_error_set(err, FPG_ERR_CONFIG, 0,
				      "queries %s/%s: a name is letters, "
				      "digits, _ and - (at most 63)",
				      dir, de->d_name);
			ok = false;
			break;
		}
		if (q->n == room) {
			room = room ? room * 2 : 16;
			struct query *g = realloc(q->q, room * sizeof(*g));
			if (!g) {
				fpg_error_set(err, FPG_ERR_NOMEM, 0, "out of memory");
				ok = false;
				break;
			}
			q->q = g;
		}
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		struct query *e = &q->q[q->n];
		memset(e, 0, sizeof(*e));
		char *text = read_all(path, err);
		ok = text && (e->name = strndup(de->d_name, len - 4)) &&
		     take(e, text, path, err);
		free(text);
		if (!ok) {
			free(e->name);
			free(e->sql);
			free(e->roles);
			break;
		}
		q->n++;
	}
	closedir(d);
	if (!ok) {
		fpg_queries_free(q);
		return NULL;
	}
	if (q->n)
		qsort(q->q, q->n, sizeof(*q->q), cmp_query);
	return q;
}

static const struct query *find(const struct fpg_queries *q, const char *name)
{
	if (!q->n)
		return NULL;
	struct query probe = {.name = (char *)(uintptr_t)name};
	return bsearch(&probe, q->q, q->n, sizeof(*q->q), cmp_query);
}

const char *fpg_queries_sql(const struct fpg_queries *q, const char *name)
{
	const struct query *e = find(q, name);
	return e ? e->sql : NULL;
}

bool fpg_queries_allows(const struct fpg_queries *q, const char *name,
			const char *login)
{
	const struct query *e = find(q, name);
	if (!e)
		return false;
	if (!e->roles)
		return true;
	char probe[70];
	snprintf(probe, sizeof(probe), ",%s,", login);
	return *login && strstr(e->roles, probe) != NULL;
}

bool fpg_queries_read_only(const struct fpg_queries *q, const char *name)
{
	const struct query *e = find(q, name);
	return e && e->read_only;
}

unsigned fpg_queries_count(const struct fpg_queries *q)
{
	return q->n;
}
