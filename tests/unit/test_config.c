/*
 * config (src/config.h): the option table as the outside sees it. The
 * table itself is private, so the tests read it back from --help (name,
 * environment variables, default), then check that defaults match
 * fpg_options_init(), that the file < environment < flags precedence
 * holds for every option, that bounds and bad values are refused with
 * "where: key: message" lines naming file:line, and that README.md's
 * configuration table documents exactly the options --help lists, with
 * the same variables and defaults. Values are random where a fixed one
 * could pass by chance; the seed is printed (FPG_TEST_SEED replays it).
 */
#include <check.h>
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "unit.h"

#define MAX_OPTS FPG_CONFIG_MAX_OPTIONS

struct opt {
	char name[64];
	char env[64], env_alt[64]; /* env_alt "" when none */
	char def[64];		   /* "" when --help says "(none)" */
};

static struct opt opts[MAX_OPTS];
static size_t nopts;

/* What a stream written by the code under test holds; caller frees. */
struct capture {
	char *text;
	size_t len;
	FILE *f;
};

static void capture_open(struct capture *c)
{
	c->text = NULL;
	c->len = 0;
	c->f = open_memstream(&c->text, &c->len);
	if (!c->f)
		abort(); /* also runs outside a case (read_table) */
}

static char *capture_close(struct capture *c)
{
	fclose(c->f);
	return c->text;
}

/* Reads the option table back from --help: "  --name  help" lines,
 * each followed by "  env A[ or B]; default D". */
static void read_table(void)
{
	struct capture c;
	capture_open(&c);
	fpg_config_print_help(c.f);
	char *text = capture_close(&c);
	char *save = NULL, *prev = NULL;
	for (char *line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char *env = strstr(line, " env ");
		if (env && prev && strncmp(prev, "  --", 4) == 0) {
			if (nopts == MAX_OPTS)
				abort();
			struct opt *o = &opts[nopts++];
			if (sscanf(prev, "  --%63s", o->name) != 1)
				abort();
			char *semi = strstr(env, "; default ");
			if (!semi)
				abort();
			*semi = '\0';
			char *alt = strstr(env, " or ");
			if (alt) {
				*alt = '\0';
				snprintf(o->env_alt, sizeof(o->env_alt), "%s",
					 alt + 4);
			}
			snprintf(o->env, sizeof(o->env), "%s", env + 5);
			const char *d = semi + 10;
			snprintf(o->def, sizeof(o->def), "%s",
				 strcmp(d, "(none)") == 0 ? "" : d);
		}
		prev = line;
	}
	free(text);
}

static const struct opt *find(const char *name)
{
	for (size_t i = 0; i < nopts; i++)
		if (strcmp(opts[i].name, name) == 0)
			return &opts[i];
	return NULL;
}

static bool numeric(const struct opt *o)
{
	return isdigit((unsigned char)o->def[0]) && !strchr(o->def, ':');
}

/* The environment of the test run must not leak into the cases. */
static void clear_env(void)
{
	for (size_t i = 0; i < nopts; i++) {
		unsetenv(opts[i].env);
		if (opts[i].env_alt[0])
			unsetenv(opts[i].env_alt);
	}
	unsetenv("FASTERPG_CONFIG");
}

struct run {
	bool ok;
	enum fpg_config_action action;
	struct fpg_config cfg;
	char *err; /* everything written to errout */
};

/* fpg_config_load with argv (NULL-terminated, argv[0] added). */
static void load(struct run *r, const char *const *args)
{
	static char argv0[] = "fasterpg";
	char *argv[64] = {argv0};
	int argc = 1;
	for (; args && args[argc - 1]; argc++)
		argv[argc] = (char *)(uintptr_t)args[argc - 1];
	struct capture c;
	capture_open(&c);
	r->ok = fpg_config_load(&r->cfg, argc, argv, c.f, &r->action);
	r->err = capture_close(&c);
}

static void run_free(struct run *r)
{
	fpg_config_deinit(&r->cfg);
	free(r->err);
}

/* A config file with text; caller frees the returned path (and unlinks). */
static char *write_file(const char *text)
{
	char *path = strdup("/tmp/fpg_config_XXXXXX");
	ck_assert_ptr_nonnull(path);
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	FILE *f = fdopen(fd, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static void drop_file(char *path)
{
	unlink(path);
	free(path);
}

START_TEST(table_is_read_back)
{
	/* The parsing of --help is what every other case stands on. */
	ck_assert_uint_ge(nopts, 20);
	const struct opt *db = find("db");
	ck_assert_ptr_nonnull(db);
	ck_assert_str_eq(db->env, "DATABASE_URL");
	ck_assert_str_eq(db->env_alt, "FASTERPG_DB");
	ck_assert_str_eq(db->def, "");
	ck_assert_str_eq(find("pool-max")->env, "FASTERPG_POOL_MAX");
	ck_assert_ptr_null(find("config"));
}
END_TEST

START_TEST(defaults_match_options_init)
{
	struct run r;
	struct fpg_options d;
	load(&r, NULL);
	ck_assert_msg(r.ok, "%s", r.err);
	ck_assert_str_eq(r.err, "");
	ck_assert_int_eq(r.action, FPG_CONFIG_RUN);
	fpg_options_init(&d);
	const struct fpg_options *o = &r.cfg.opts;
	ck_assert_str_eq(o->listen_host, d.listen_host);
	ck_assert_str_eq(o->listen_host, "127.0.0.1");
	ck_assert_uint_eq(o->listen_port, 8080);
	ck_assert_ptr_null(o->db);
	ck_assert_ptr_null(d.db);
	ck_assert_ptr_null(o->cors_origin);
	ck_assert_ptr_null(o->allowed_hosts);
	ck_assert_str_eq(o->log_level, d.log_level);
	ck_assert_str_eq(o->log_format, d.log_format);
	/* Every number, string pointers aside (they differ by design). */
	struct fpg_options a = *o, b = d;
	a.listen_host = b.listen_host = NULL;
	a.log_level = b.log_level = NULL;
	a.log_format = b.log_format = NULL;
	ck_assert_str_eq(o->jwt_role_claim, d.jwt_role_claim);
	a.jwt_role_claim = b.jwt_role_claim = NULL;
	ck_assert_str_eq(o->access_log, d.access_log);
	ck_assert_str_eq(o->access_log, "on");
	a.access_log = b.access_log = NULL;
	ck_assert(memcmp(&a, &b, sizeof(a)) == 0);
	ck_assert_uint_eq(o->pool_min, 1);
	ck_assert_uint_eq(o->pool_max, 4);
	ck_assert_uint_eq(o->acquire_timeout_ms, 5000);
	ck_assert_uint_eq(o->max_body_bytes, 1048576);
	ck_assert_uint_eq(o->max_inflated_bytes, 1024ULL * 1024 * 1024);
	ck_assert_uint_eq(o->statement_cache, 1);
	run_free(&r);
}
END_TEST

START_TEST(every_default_is_accepted_as_a_flag)
{
	/* A default the parser refused would abort at start-up; this also
	 * proves --help shows defaults in a form the parser takes back. */
	for (size_t i = 0; i < nopts; i++) {
		if (!opts[i].def[0])
			continue;
		char *arg = NULL;
		ck_assert_int_gt(asprintf(&arg, "--%s=%s", opts[i].name,
					  opts[i].def), 0);
		const char *args[] = {arg, NULL};
		struct run r;
		load(&r, args);
		ck_assert_msg(r.ok && !r.err[0], "%s: %s", arg, r.err);
		run_free(&r);
		free(arg);
	}
}
END_TEST

/* The option's value in cfg, as text. */
static void value_of(const struct fpg_config *cfg, const char *name,
		     char *out, size_t n)
{
	const struct fpg_options *o = &cfg->opts;
	if (strcmp(name, "pool-max") == 0)
		snprintf(out, n, "%u", o->pool_max);
	else if (strcmp(name, "threads") == 0)
		snprintf(out, n, "%u", o->threads);
	else if (strcmp(name, "max-result-rows") == 0)
		snprintf(out, n, "%llu", (unsigned long long)o->max_result_rows);
	else if (strcmp(name, "max-body-bytes") == 0)
		snprintf(out, n, "%zu", o->max_body_bytes);
	else if (strcmp(name, "cors-origin") == 0)
		snprintf(out, n, "%s", o->cors_origin ? o->cors_origin : "");
	else if (strcmp(name, "db") == 0)
		snprintf(out, n, "%s", o->db ? o->db : "");
	else
		abort();
}

/*
 * Three distinct values for an option of each type (unsigned, size_t,
 * uint64_t, string) from file, environment and flag: the flag wins,
 * then the environment, then the file.
 */
START_TEST(file_then_env_then_flag)
{
	static const char *const names[] = {"pool-max", "threads",
					    "max-result-rows",
					    "max-body-bytes", "cors-origin"};
	for (size_t k = 0; k < sizeof(names) / sizeof(*names); k++) {
		const struct opt *o = find(names[k]);
		ck_assert_ptr_nonnull(o);
		char v[3][32];
		unsigned base = 100 + (unsigned)rand() % 100;
		for (int j = 0; j < 3; j++)
			snprintf(v[j], sizeof(v[j]),
				 numeric(o) ? "%u" : "https://h%u.example",
				 base + (unsigned)j);
		/* Files may spell the dashes of a key as underscores. */
		char key[64], text[256], got[64];
		snprintf(key, sizeof(key), "%s", o->name);
		for (char *p = key; *p; p++)
			if (*p == '-' && rand() % 2)
				*p = '_';
		snprintf(text, sizeof(text), "# comment\n\n  %s = %s  \n", key,
			 v[0]);
		char *path = write_file(text);
		char *flag = NULL;
		ck_assert_int_gt(asprintf(&flag, "--%s=%s", o->name, v[2]), 0);
		const char *cases[][4] = {
		    {"--config", path, NULL, NULL},
		    {"--config", path, flag, NULL},
		};
		for (int with_env = 0; with_env < 2; with_env++) {
			if (with_env)
				setenv(o->env, v[1], 1);
			for (int with_flag = 0; with_flag < 2; with_flag++) {
				struct run r;
				load(&r, cases[with_flag]);
				ck_assert_msg(r.ok, "%s", r.err);
				value_of(&r.cfg, o->name, got, sizeof(got));
				const char *want = with_flag  ? v[2]
						   : with_env ? v[1]
							      : v[0];
				ck_assert_msg(strcmp(got, want) == 0,
					      "%s: %s, want %s (env %d flag "
					      "%d)",
					      o->name, got, want, with_env,
					      with_flag);
				run_free(&r);
			}
		}
		unsetenv(o->env);
		free(flag);
		drop_file(path);
	}
}
END_TEST

START_TEST(config_file_from_environment)
{
	unsigned n = 2 + (unsigned)rand() % 900;
	char text[64], want[16];
	snprintf(text, sizeof(text), "pool_max=%u\n", n);
	snprintf(want, sizeof(want), "%u", n);
	char *path = write_file(text);
	setenv("FASTERPG_CONFIG", path, 1);
	struct run r;
	load(&r, NULL);
	ck_assert_msg(r.ok, "%s", r.err);
	ck_assert_uint_eq(r.cfg.opts.pool_max, n);
	run_free(&r);
	/* --config wins over FASTERPG_CONFIG. */
	char *other = write_file("pool-max = 1\n");
	const char *args[] = {"--config=", NULL};
	char *arg = NULL;
	ck_assert_int_gt(asprintf(&arg, "--config=%s", other), 0);
	args[0] = arg;
	load(&r, args);
	ck_assert_msg(r.ok, "%s", r.err);
	ck_assert_uint_eq(r.cfg.opts.pool_max, 1);
	run_free(&r);
	free(arg);
	drop_file(other);
	drop_file(path);
}
END_TEST

START_TEST(database_url_before_fasterpg_db)
{
	char got[64];
	struct run r;
	setenv("FASTERPG_DB", "dbname=alt", 1);
	load(&r, NULL);
	value_of(&r.cfg, "db", got, sizeof(got));
	ck_assert_str_eq(got, "dbname=alt");
	run_free(&r);
	/* An empty DATABASE_URL counts as unset. */
	setenv("DATABASE_URL", "", 1);
	load(&r, NULL);
	value_of(&r.cfg, "db", got, sizeof(got));
	ck_assert_str_eq(got, "dbname=alt");
	run_free(&r);
	setenv("DATABASE_URL", "postgresql:///main", 1);
	load(&r, NULL);
	ck_assert(r.ok);
	value_of(&r.cfg, "db", got, sizeof(got));
	ck_assert_str_eq(got, "postgresql:///main");
	run_free(&r);
}
END_TEST

/* Loads with one flag; returns whether it loaded, *err what it said. */
static bool load_one(const char *arg, char **err)
{
	const char *args[] = {arg, NULL};
	struct run r;
	load(&r, args);
	*err = strdup(r.err);
	bool ok = r.ok;
	run_free(&r);
	return ok;
}

/* Bounds of some options (the table is private: these are its values). */
START_TEST(bounds_are_inclusive)
{
	static const struct {
		const char *name;
		unsigned long long min, max;
	} b[] = {
	    {"pool-max", 1, 1000},
	    {"threads", 0, 256},
	    {"pipeline-depth", 1, 100000},
	    {"statement-cache", 0, 1},
	    {"max-body-bytes", 64, 1ULL << 32},
	    {"max-buffered-bytes", 65536, 1ULL << 40},
	    {"tx-idle-timeout-ms", 100, 86400000},
	    {"max-result-rows", 0, 1ULL << 62},
	};
	for (size_t i = 0; i < sizeof(b) / sizeof(*b); i++) {
		char arg[96], *err = NULL;
		snprintf(arg, sizeof(arg), "--%s=%llu", b[i].name, b[i].min);
		ck_assert_msg(load_one(arg, &err), "%s: %s", arg, err);
		free(err);
		snprintf(arg, sizeof(arg), "--%s=%llu", b[i].name, b[i].max);
		ck_assert_msg(load_one(arg, &err), "%s: %s", arg, err);
		free(err);
		snprintf(arg, sizeof(arg), "--%s=%llu", b[i].name,
			 b[i].max + 1);
		ck_assert_msg(!load_one(arg, &err), "%s accepted", arg);
		char want[96];
		snprintf(want, sizeof(want), "option --%s: out of range\n",
			 b[i].name);
		ck_assert_str_eq(err, want);
		free(err);
		if (b[i].min == 0)
			continue;
		snprintf(arg, sizeof(arg), "--%s=%llu", b[i].name,
			 b[i].min - 1);
		ck_assert_msg(!load_one(arg, &err), "%s accepted", arg);
		ck_assert_str_eq(err, want);
		free(err);
	}
}
END_TEST

START_TEST(sizes_take_binary_suffixes)
{
	unsigned n = 1 + (unsigned)rand() % 1000;
	static const struct {
		char suffix;
		unsigned long long mul;
	} s[] = {{'k', 1024}, {'K', 1024}, {'m', 1 << 20}, {'G', 1 << 30}};
	for (size_t i = 0; i < sizeof(s) / sizeof(*s); i++) {
		char arg[64];
		snprintf(arg, sizeof(arg), "--max-result-bytes=%u%c", n,
			 s[i].suffix);
		const char *args[] = {arg, NULL};
		struct run r;
		load(&r, args);
		ck_assert_msg(r.ok, "%s: %s", arg, r.err);
		ck_assert_uint_eq(r.cfg.opts.max_result_bytes, n * s[i].mul);
		run_free(&r);
	}
}
END_TEST

/* Every numeric option refuses what is not a non-negative number. */
START_TEST(numbers_refuse_garbage)
{
	static const char *const bad[] = {"abc", "-1", "", "12x", "1.5",
					  "99999999999999999999999", "1kk"};
	size_t checked = 0;
	for (size_t i = 0; i < nopts; i++) {
		if (!numeric(&opts[i]))
			continue;
		checked++;
		for (size_t j = 0; j < sizeof(bad) / sizeof(*bad); j++) {
			char arg[128], want[128], *err = NULL;
			snprintf(arg, sizeof(arg), "--%s=%s", opts[i].name,
				 bad[j]);
			ck_assert_msg(!load_one(arg, &err), "%s accepted", arg);
			snprintf(want, sizeof(want),
				 "option --%s: not a non-negative number\n",
				 opts[i].name);
			/* A huge number may read as out of range instead. */
			ck_assert_msg(strcmp(err, want) == 0 ||
					  (j == 5 && strstr(err, "range")),
				      "%s: %s", arg, err);
			free(err);
		}
	}
	ck_assert_uint_ge(checked, 20);
}
END_TEST

START_TEST(command_line_errors_are_all_reported)
{
	const char *args[] = {"stray",	       "--no-such-option=1",
			      "--pool-max=0",  "--threads=x",
			      "--pool-min=3",  "--log-level",
			      NULL};
	struct run r;
	load(&r, args);
	ck_assert(!r.ok);
	ck_assert_str_eq(r.err, "argument stray: unexpected\n"
				"option --no-such-option: unknown\n"
				"option --pool-max: out of range\n"
				"option --threads: not a non-negative number\n"
				"option --log-level: needs a value\n");
	/* The good ones still applied. */
	ck_assert_uint_eq(r.cfg.opts.pool_min, 3);
	run_free(&r);
}
END_TEST

START_TEST(file_errors_name_file_and_line)
{
	char *path = write_file("# fasterpg\n"
				"pool-max = 2\n"
				"pool-max = 5000\n"
				"\n"
				"no_such_key = 1\n"
				"just some words\n"
				"threads = many\n"
				"listen = nowhere\n");
	char *arg = NULL;
	ck_assert_int_gt(asprintf(&arg, "--config=%s", path), 0);
	const char *args[] = {arg, NULL};
	struct run r;
	load(&r, args);
	ck_assert(!r.ok);
	char *want = NULL;
	const char *p = path;
	ck_assert_int_gt(asprintf(&want,
				  "%s:3: pool-max: out of range\n"
				  "%s:5: no_such_key: unknown key\n"
				  "%s:6: expected key = value\n"
				  "%s:7: threads: not a non-negative number\n"
				  "%s:8: listen: expected HOST:PORT\n",
				  p, p, p, p, p),
			 0);
	ck_assert_str_eq(r.err, want);
	ck_assert_uint_eq(r.cfg.opts.pool_max, 2);
	run_free(&r);
	free(want);
	free(arg);
	drop_file(path);
}
END_TEST

START_TEST(missing_file_is_an_error)
{
	const char *args[] = {"--config", "/nonexistent/fasterpg.conf", NULL};
	struct run r;
	load(&r, args);
	ck_assert(!r.ok);
	ck_assert_str_eq(r.err, "/nonexistent/fasterpg.conf: No such file "
				"or directory\n");
	run_free(&r);
}
END_TEST

START_TEST(environment_errors_name_the_variable)
{
	setenv("FASTERPG_POOL_MAX", "lots", 1);
	setenv("FASTERPG_THREADS", "257", 1);
	struct run r;
	load(&r, NULL);
	ck_assert(!r.ok);
	ck_assert_msg(strstr(r.err, "environment FASTERPG_POOL_MAX: not a "
				    "non-negative number\n"),
		      "%s", r.err);
	ck_assert_msg(strstr(r.err, "environment FASTERPG_THREADS: out of "
				    "range\n"),
		      "%s", r.err);
	run_free(&r);
	/* A flag does not rescue a bad environment: still an error. */
	const char *args[] = {"--pool-max=3", "--threads=2", NULL};
	load(&r, args);
	ck_assert(!r.ok);
	run_free(&r);
}
END_TEST

START_TEST(listen_host_and_port)
{
	unsigned port = (unsigned)rand() % 65536;
	char arg[64];
	snprintf(arg, sizeof(arg), "--listen=[::1]:%u", port);
	const char *args[] = {arg, NULL};
	struct run r;
	load(&r, args);
	ck_assert_msg(r.ok, "%s", r.err);
	ck_assert_str_eq(r.cfg.opts.listen_host, "::1");
	ck_assert_uint_eq(r.cfg.opts.listen_port, port);
	run_free(&r);
	snprintf(arg, sizeof(arg), "--listen=0.0.0.0:%u", port);
	load(&r, args);
	ck_assert_str_eq(r.cfg.opts.listen_host, "0.0.0.0");
	ck_assert_uint_eq(r.cfg.opts.listen_port, port);
	run_free(&r);
	static const char *const bad[] = {"--listen=localhost",
					  "--listen=h:65536", "--listen=h:",
					  "--listen=h:-1"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		char *err = NULL;
		ck_assert_msg(!load_one(bad[i], &err), "%s accepted", bad[i]);
		ck_assert_str_eq(err, "option --listen: expected HOST:PORT\n");
		free(err);
	}
}
END_TEST

START_TEST(help_and_version_actions)
{
	const char *h[] = {"-h", NULL}, *v[] = {"--version", NULL};
	struct run r;
	load(&r, h);
	ck_assert(r.ok);
	ck_assert_int_eq(r.action, FPG_CONFIG_HELP);
	run_free(&r);
	load(&r, v);
	ck_assert(r.ok);
	ck_assert_int_eq(r.action, FPG_CONFIG_VERSION);
	run_free(&r);
}
END_TEST

/* ---- README.md's configuration table ---- */

/* A cell's `--flags` or `ENV`s; expands "_SUFFIX" against the one before
 * it ("FASTERPG_POOL_MIN / _MAX": the suffix replaces as many words). */
static size_t cell_tokens(const char *cell, bool env, char out[][64],
			  size_t cap)
{
	size_t n = 0;
	for (const char *p = cell; (p = strchr(p, '`')) && n < cap;) {
		const char *e = strchr(p + 1, '`');
		if (!e)
			break;
		char tok[32];
		snprintf(tok, sizeof(tok), "%.*s", (int)(e - p - 1), p + 1);
		p = e + 1;
		if (!env) {
			snprintf(out[n++], 64, "%s", tok + 2);
			continue;
		}
		if (tok[0] != '_' || n == 0) {
			snprintf(out[n++], 64, "%s", tok);
			continue;
		}
		int words = 0;
		for (const char *q = tok; *q; q++)
			words += *q == '_';
		char base[32];
		snprintf(base, sizeof(base), "%s", out[n - 1]);
		for (; words > 0; words--)
			*strrchr(base, '_') = '\0';
		snprintf(out[n++], 64, "%s%s", base, tok);
	}
	return n;
}

/* "1 MiB", "30 s", "0 (none)", "1g", "5000" as a number (times in ms for
 * an option whose name ends in -ms); false for words. */
static bool doc_number(const char *s, const char *name,
		       unsigned long long *v)
{
	char *end;
	while (*s == ' ')
		s++;
	if (!isdigit((unsigned char)*s))
		return false;
	*v = strtoull(s, &end, 10);
	while (*end == ' ')
		end++;
	bool ms = strlen(name) > 3 && strcmp(name + strlen(name) - 3, "-ms") == 0;
	static const struct {
		const char *unit;
		unsigned long long mul;
		bool time;
	} units[] = {{"KiB", 1024, false}, {"MiB", 1 << 20, false},
		     {"GiB", 1 << 30, false}, {"k", 1024, false},
		     {"m", 1 << 20, false},   {"g", 1 << 30, false},
		     {"s", 1000, true},	      {"h", 3600000, true}};
	for (size_t i = 0; i < sizeof(units) / sizeof(*units); i++) {
		size_t l = strlen(units[i].unit);
		if (strncmp(end, units[i].unit, l) == 0 &&
		    (end[l] == '\0' || end[l] == ' ')) {
			if (units[i].time && !ms)
				return false;
			*v *= units[i].mul;
			return true;
		}
	}
	return *end == '\0' || *end == '(';
}

/* Splits a default cell into per-flag parts ("1 / 4", "16 MiB, 256 MiB"). */
static size_t cell_parts(char *cell, char out[][64], size_t cap)
{
	size_t n = 0;
	char *save = NULL;
	for (char *p = strtok_r(cell, ",/", &save); p && n < cap;
	     p = strtok_r(NULL, ",/", &save)) {
		while (*p == ' ')
			p++;
		char *e = p + strlen(p);
		while (e > p && e[-1] == ' ')
			*--e = '\0';
		snprintf(out[n++], 64, "%s", p);
	}
	return n;
}

static void check_doc_default(const struct opt *o, const char *doc)
{
	unsigned long long dv, tv;
	if (doc_number(doc, o->name, &dv)) {
		ck_assert_msg(o->def[0] && doc_number(o->def, "", &tv),
			      "README: --%s default %s, the table has '%s'",
			      o->name, doc, o->def);
		ck_assert_msg(dv == tv, "README: --%s default %s, the table %s",
			      o->name, doc, o->def);
	} else if (o->def[0] && !isdigit((unsigned char)o->def[0])) {
		/* A word default (info, text) is written as it is. */
		ck_assert_msg(strcmp(doc, o->def) == 0,
			      "README: --%s default %s, the table %s", o->name,
			      doc, o->def);
	}
}

START_TEST(readme_documents_every_option)
{
	FILE *f = fopen(FPG_SOURCE_DIR "/README.md", "r");
	ck_assert_ptr_nonnull(f);
	char line[1024];
	bool in_table = false;
	bool documented[MAX_OPTS] = {false};
	size_t rows = 0;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "| flag | environment | default |", 31) == 0) {
			in_table = true;
			continue;
		}
		if (!in_table || strncmp(line, "| ---", 5) == 0)
			continue;
		if (line[0] != '|')
			break;
		rows++;
		char *cells[5] = {0}, *save = NULL;
		int nc = 0;
		for (char *c = strtok_r(line, "|", &save); c && nc < 5;
		     c = strtok_r(NULL, "|", &save))
			cells[nc++] = c;
		ck_assert_msg(nc >= 4, "README row %zu: %d cells", rows, nc);
		char flags[8][64], envs[8][64], defs[8][64];
		size_t nf = cell_tokens(cells[0], false, flags, 8);
		size_t ne = cell_tokens(cells[1], true, envs, 8);
		size_t nd = cell_parts(cells[2], defs, 8);
		ck_assert_msg(nf > 0, "README row %zu names no flag", rows);
		for (size_t i = 0; i < nf; i++) {
			const struct opt *o = find(flags[i]);
			ck_assert_msg(o, "README documents --%s, which does "
					 "not exist",
				      flags[i]);
			documented[o - opts] = true;
			/* One variable per flag, in order; --db has two. */
			size_t want_env = nf == 1 ? ne : 1;
			ck_assert_msg(nf == 1 || ne == nf,
				      "README: --%s: %zu variables for %zu "
				      "flags",
				      flags[i], ne, nf);
			ck_assert_str_eq(envs[nf == 1 ? 0 : i], o->env);
			if (want_env > 1)
				ck_assert_str_eq(envs[1], o->env_alt);
			else
				ck_assert_msg(!o->env_alt[0],
					      "README: --%s lacks %s", o->name,
					      o->env_alt);
			if (nd == nf)
				check_doc_default(o, defs[i]);
			else if (nd == 1)
				check_doc_default(o, defs[0]);
		}
	}
	fclose(f);
	ck_assert_msg(rows > 0, "no configuration table in README.md");
	for (size_t i = 0; i < nopts; i++)
		ck_assert_msg(documented[i],
			      "--%s is not in README.md's configuration table",
			      opts[i].name);
}
END_TEST

START_TEST(flags_need_no_value)
{
	struct run r;
	const char *alone[] = {"--insecure-no-auth", "--threads", "3", NULL};
	load(&r, alone);
	ck_assert_msg(r.ok, "%s", r.err);
	ck_assert_uint_eq(r.cfg.opts.insecure_no_auth, 1);
	ck_assert_uint_eq(r.cfg.opts.threads, 3); /* not taken as its value */
	run_free(&r);
	const char *off[] = {"--insecure-no-auth=0", NULL};
	load(&r, off);
	ck_assert(r.ok);
	ck_assert_uint_eq(r.cfg.opts.insecure_no_auth, 0);
	run_free(&r);
	char *err = NULL;
	ck_assert(!load_one("--insecure-no-auth=2", &err));
	ck_assert_str_eq(err, "option --insecure-no-auth: out of range\n");
	free(err);
	setenv("FASTERPG_INSECURE_NO_AUTH", "1", 1);
	load(&r, NULL);
	unsetenv("FASTERPG_INSECURE_NO_AUTH");
	ck_assert(r.ok);
	ck_assert_uint_eq(r.cfg.opts.insecure_no_auth, 1);
	run_free(&r);
}
END_TEST

START_TEST(numbers_refuse_signs_and_spaces)
{
	static const char *const bad[] = {" 7", "+3", " -1", "\t5"};
	for (size_t j = 0; j < sizeof(bad) / sizeof(*bad); j++) {
		char arg[64], *err = NULL;
		snprintf(arg, sizeof(arg), "--pool-max=%s", bad[j]);
		ck_assert_msg(!load_one(arg, &err), "%s accepted", arg);
		ck_assert_str_eq(err,
				 "option --pool-max: not a non-negative number\n");
		free(err);
	}
}
END_TEST

/* Once: the table is read back from --help, and the environment the
 * tests were started with must not leak into the precedence checks. */
static void setup(void)
{
	read_table();
	clear_env();
}

static const struct test_case cases[] = {
	TEST_CASE(table_is_read_back),
	TEST_CASE(defaults_match_options_init),
	TEST_CASE(every_default_is_accepted_as_a_flag),
	TEST_CASE(file_then_env_then_flag),
	TEST_CASE(config_file_from_environment),
	TEST_CASE(database_url_before_fasterpg_db),
	TEST_CASE(bounds_are_inclusive),
	TEST_CASE(sizes_take_binary_suffixes),
	TEST_CASE(numbers_refuse_garbage),
	TEST_CASE(command_line_errors_are_all_reported),
	TEST_CASE(file_errors_name_file_and_line),
	TEST_CASE(missing_file_is_an_error),
	TEST_CASE(environment_errors_name_the_variable),
	TEST_CASE(listen_host_and_port),
	TEST_CASE(help_and_version_actions),
	TEST_CASE(readme_documents_every_option),
	TEST_CASE(numbers_refuse_signs_and_spaces),
	TEST_CASE(flags_need_no_value),
	{0},
};

const struct unit_program unit_program = {
	.name = "config",
	.cases = cases,
	.setup = setup,
};
