/*
 * stats (src/stats.h): requests recorded on several workers add up, and
 * /metrics is Prometheus text (format 0.0.4): every line is a HELP, a
 * TYPE or a sample that parses, every sample's family has its HELP and
 * TYPE first, the histogram is cumulative and ends in +Inf == _count.
 * Random traffic uses a seed printed at start (FPG_TEST_SEED replays it).
 */
#include <check.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "stats.h"
#include "unit.h"

#define WORKERS 3
#define NAME "[a-zA-Z_:][a-zA-Z0-9_:]*"

static const char *const routes[] = {"POST /query", "GET /stats",
				     "POST /tx"};
enum { NROUTES = sizeof(routes) / sizeof(routes[0]) };

struct traffic {
	struct fpg_stats *w[WORKERS];
	unsigned long long per_route[NROUTES], ok_per_route[NROUTES];
	unsigned long long total;
	unsigned long long latency_us;
	unsigned long long per_route_latency_us[NROUTES];
	unsigned long long class23, accepted, class2xx, other;
};

static void record_random(struct traffic *t)
{
	static const int statuses[] = {200, 200, 200, 202, 400, 404, 409,
				       500, 503, 504, 299, 777};
	static const char *const states[] = {NULL, "", "23505", "40001",
					     "42P01", "x"};
	unsigned rs = unit_seed();
	for (unsigned i = 0; i < WORKERS; i++) {
		t->w[i] = calloc(1, sizeof(*t->w[i]));
		ck_assert_ptr_nonnull(t->w[i]);
	}
	int n = 1000 + rand_r(&rs) % 4000;
	for (int i = 0; i < n; i++) {
		unsigned r = (unsigned)rand_r(&rs) % NROUTES;
		int st = statuses[rand_r(&rs) % (int)(sizeof(statuses) /
						      sizeof(statuses[0]))];
		/* From 1 us to ~30 s, spread over the buckets. */
		uint64_t lat = 1ull << (rand_r(&rs) % 25);
		const char *state = states[rand_r(&rs) % 6];
		fpg_stats_record(t->w[rand_r(&rs) % WORKERS], r, st, lat,
				 state);
		if (state && strcmp(state, "23505") == 0)
			t->class23++;
		if (st == 202)
			t->accepted++;
		if (st == 299)
			t->class2xx++;
		if (st == 777)
			t->other++;
		t->per_route[r]++;
		t->per_route_latency_us[r] += lat;
		if (st == 200)
			t->ok_per_route[r]++;
		t->total++;
		t->latency_us += lat;
	}
}

static void free_traffic(struct traffic *t)
{
	for (unsigned i = 0; i < WORKERS; i++)
		free(t->w[i]);
}

static char *metrics(struct traffic *t, unsigned tx_open)
{
	struct fpg_buf b;
	fpg_buf_init(&b);
	fpg_stats_prometheus(&b, t->w, WORKERS, routes, NROUTES, tx_open);
	ck_assert(!b.failed);
	fpg_buf_putc(&b, '\0');
	size_t n;
	char *s = fpg_buf_steal(&b, &n);
	fpg_buf_deinit(&b);
	return s;
}

/* The family of a sample: histogram samples carry a suffix. */
static void family_of(const char *name, char *fam, size_t n,
		      const char *histos)
{
	snprintf(fam, n, "%s", name);
	static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
	for (size_t i = 0; i < 3; i++) {
		size_t fl = strlen(fam), sl = strlen(suffixes[i]);
		if (fl > sl && strcmp(fam + fl - sl, suffixes[i]) == 0) {
			char base[256];
			snprintf(base, sizeof(base), " %.*s ", (int)(fl - sl),
				 fam);
			if (strstr(histos, base)) {
				fam[fl - sl] = '\0';
				return;
			}
		}
	}
}

START_TEST(metrics_text_parses)
{
	struct traffic t = {0};
	record_random(&t);
	FPG_STAT_ADD(t.w[1]->in_flight, 2);
	char *text = metrics(&t, 7);
	regex_t help, type, sample;
	ck_assert_int_eq(regcomp(&help, "^# HELP (" NAME ") [^ ].*$",
				 REG_EXTENDED), 0);
	ck_assert_int_eq(regcomp(&type, "^# TYPE (" NAME ") "
				 "(counter|gauge|histogram|summary|untyped)$",
				 REG_EXTENDED), 0);
	ck_assert_int_eq(regcomp(&sample, "^(" NAME ")(\\{(" NAME
				 "=\"[^\"\\\\]*\")(," NAME "=\"[^\"\\\\]*\")*\\})?"
				 " (-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?)$",
				 REG_EXTENDED), 0);
	/* " name " lists, so that strstr finds whole names. */
	char helped[8192] = " ", typed[8192] = " ", histos[2048] = " ";
	int samples = 0;
	char *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		regmatch_t m[8];
		char name[256], key[260];
		if (regexec(&help, line, 8, m, 0) == 0) {
			snprintf(name, sizeof(name), "%.*s",
				 (int)(m[1].rm_eo - m[1].rm_so),
				 line + m[1].rm_so);
			snprintf(key, sizeof(key), " %s ", name);
			ck_assert_msg(!strstr(helped, key), "HELP twice: %s",
				      line);
			strncat(helped, key + 1,
				sizeof(helped) - strlen(helped) - 1);
		} else if (regexec(&type, line, 8, m, 0) == 0) {
			snprintf(name, sizeof(name), "%.*s",
				 (int)(m[1].rm_eo - m[1].rm_so),
				 line + m[1].rm_so);
			snprintf(key, sizeof(key), " %s ", name);
			ck_assert_msg(strstr(helped, key),
				      "TYPE before HELP: %s", line);
			ck_assert_msg(!strstr(typed, key), "TYPE twice: %s",
				      line);
			strncat(typed, key + 1,
				sizeof(typed) - strlen(typed) - 1);
			if (strstr(line, " histogram"))
				strncat(histos, key + 1,
					sizeof(histos) - strlen(histos) - 1);
		} else {
			ck_assert_msg(regexec(&sample, line, 8, m, 0) == 0,
				      "not Prometheus text: '%s'", line);
			char fam[256];
			snprintf(name, sizeof(name), "%.*s",
				 (int)(m[1].rm_eo - m[1].rm_so),
				 line + m[1].rm_so);
			family_of(name, fam, sizeof(fam), histos);
			snprintf(key, sizeof(key), " %s ", fam);
			ck_assert_msg(strstr(typed, key),
				      "sample without HELP/TYPE first: %s",
				      line);
			samples++;
		}
	}
	ck_assert_int_gt(samples, 20);
	regfree(&help);
	regfree(&type);
	regfree(&sample);
	free(text);
	free_traffic(&t);
}
END_TEST

/* The value of the sample line that starts with prefix, or -1. */
static double value_of(const char *text, const char *prefix)
{
	for (const char *p = text; p && *p;) {
		const char *nl = strchr(p, '\n');
		if (strncmp(p, prefix, strlen(prefix)) == 0 &&
		    p[strlen(prefix)] == ' ')
			return strtod(p + strlen(prefix) + 1, NULL);
		p = nl ? nl + 1 : NULL;
	}
	return -1;
}

START_TEST(counters_add_up_over_workers)
{
	struct traffic t = {0};
	record_random(&t);
	FPG_STAT_ADD(t.w[0]->in_flight, 3);
	FPG_STAT_ADD(t.w[2]->in_flight, 1);
	FPG_STAT_ADD(t.w[2]->tx_commits, 5);
	char *text = metrics(&t, 4);
	for (unsigned r = 0; r < NROUTES; r++) {
		/* Every status of the route, "other" included. */
		double sum = 0;
		char prefix[128];
		snprintf(prefix, sizeof(prefix),
			 "fasterpg_requests_total{route=\"%s\",status=\"",
			 routes[r]);
		for (const char *p = strstr(text, prefix); p;
		     p = strstr(p + 1, prefix))
			sum += strtod(strchr(p, '}') + 2, NULL);
		ck_assert_msg((unsigned long long)sum == t.per_route[r],
			      "route %s: %.0f in /metrics, %llu recorded "
			      "(seed %u)",
			      routes[r], sum, t.per_route[r], unit_seed());
		snprintf(prefix, sizeof(prefix),
			 "fasterpg_requests_total{route=\"%s\",status=\"200\"}",
			 routes[r]);
		ck_assert_msg((unsigned long long)value_of(text, prefix) ==
				  t.ok_per_route[r],
			      "%s: %.0f, want %llu", prefix,
			      value_of(text, prefix), t.ok_per_route[r]);
	}
	/* Each route's histogram: its _count is its requests, +Inf is
	 * _count, _sum its latencies, and its buckets never go down. */
	double count = 0;
	for (unsigned r = 0; r < NROUTES; r++) {
		char name[160];
		snprintf(name, sizeof(name),
			 "fasterpg_request_duration_seconds_count{route=\"%s\"}",
			 routes[r]);
		double c = value_of(text, name);
		ck_assert_msg((unsigned long long)c == t.per_route[r],
			      "%s %.0f, want %llu", name, c, t.per_route[r]);
		count += c;
		snprintf(name, sizeof(name),
			 "fasterpg_request_duration_seconds_bucket{route=\"%s\","
			 "le=\"+Inf\"}",
			 routes[r]);
		ck_assert_msg(value_of(text, name) == c,
			      "+Inf bucket is not _count");
		snprintf(name, sizeof(name),
			 "fasterpg_request_duration_seconds_sum{route=\"%s\"}",
			 routes[r]);
		double sum = value_of(text, name);
		double want = (double)t.per_route_latency_us[r] / 1e6;
		ck_assert_msg(sum > want - 1e-5 && sum < want + 1e-5,
			      "_sum %f, want %f", sum, want);
		double last = 0;
		snprintf(name, sizeof(name),
			 "fasterpg_request_duration_seconds_bucket{route=\"%s\",",
			 routes[r]);
		for (const char *p = strstr(text, name); p;
		     p = strstr(p + 1, name)) {
			double v = strtod(strchr(p, '}') + 2, NULL);
			ck_assert_msg(v >= last, "bucket falls: %.80s", p);
			last = v;
		}
	}
	ck_assert_msg((unsigned long long)count == t.total, "count %.0f, %llu",
		      count, t.total);
	/* 202 is a code of its own; other codes count by class, and
	 * anything outside 100..599 as "other"; SQLSTATEs by class. */
	double n202 = 0, n2xx = 0, nother = 0;
	for (unsigned r = 0; r < NROUTES; r++) {
		char name[160];
		snprintf(name, sizeof(name),
			 "fasterpg_requests_total{route=\"%s\",status=\"202\"}",
			 routes[r]);
		n202 += value_of(text, name) > 0 ? value_of(text, name) : 0;
		snprintf(name, sizeof(name),
			 "fasterpg_requests_total{route=\"%s\",status=\"2xx\"}",
			 routes[r]);
		n2xx += value_of(text, name) > 0 ? value_of(text, name) : 0;
		snprintf(name, sizeof(name),
			 "fasterpg_requests_total{route=\"%s\",status=\"other\"}",
			 routes[r]);
		nother += value_of(text, name) > 0 ? value_of(text, name) : 0;
	}
	ck_assert_uint_eq((unsigned long long)n202, t.accepted);
	ck_assert_uint_eq((unsigned long long)n2xx, t.class2xx);
	ck_assert_uint_eq((unsigned long long)nother, t.other);
	ck_assert_uint_eq((unsigned long long)value_of(
				  text, "fasterpg_pg_errors_total{class=\"23\"}"),
			  t.class23);
	ck_assert(value_of(text, "fasterpg_requests_in_flight") == 4);
	ck_assert(value_of(text, "fasterpg_transactions_open") == 4);
	ck_assert(value_of(text, "fasterpg_transactions_total"
				 "{outcome=\"commit\"}") == 5);
	free(text);
	free_traffic(&t);
}
END_TEST

START_TEST(json_has_the_same_totals)
{
	struct traffic t = {0};
	record_random(&t);
	struct fpg_buf b;
	fpg_buf_init(&b);
	fpg_stats_json(&b, t.w, WORKERS, routes, NROUTES, NULL);
	ck_assert(!b.failed);
	fpg_buf_putc(&b, '\0');
	/* The 200s of the first route appear as a number in the document. */
	char want[64];
	snprintf(want, sizeof(want), "\"200\":%llu", t.ok_per_route[0]);
	ck_assert_msg(strstr(b.data + b.off, want) != NULL,
		      "no %s in %.2000s", want, b.data + b.off);
	fpg_buf_deinit(&b);
	free_traffic(&t);
}
END_TEST

static const struct test_case cases[] = {
	TEST_CASE(metrics_text_parses),
	TEST_CASE(counters_add_up_over_workers),
	TEST_CASE(json_has_the_same_totals),
	{0},
};

const struct unit_program unit_program = {
	.name = "stats",
	.cases = cases,
};
