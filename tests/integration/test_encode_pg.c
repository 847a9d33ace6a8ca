/*
 * fpg_encode_value() against the real thing: for every value of a broad
 * corpus, PostgreSQL 15 gives us its text form and to_json(v)::text, and
 * the encoder must turn the first into exactly the second. Each corpus
 * entry is also checked as an array (with a NULL), as a 2-D array and as
 * an array with a lower bound other than 1. Random ints, numerics, floats,
 * Unicode text and nested arrays follow; the seed is printed on failure
 * (set FPG_TEST_SEED to replay).
 *
 * Uses FPG_TEST_DB as conninfo when set, else a throwaway cluster from
 * tests/support/pg_harness.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <check.h>
#include <libpq-fe.h>

#include "buf.h"
#include "encode.h"
#include "it.h"
#include "pg_harness.h"
#include "typecache.h"

static PGconn *conn;
static struct fpg_typecache *tc;
static int mismatches;
static int compared; /* values checked by this test */

#define MAX_REPORTED 40

static void die(const char *fmt, ...) FPG_PRINTF(1, 2);
static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void exec_ok(PGconn *c, const char *sql)
{
	PGresult *res = PQexec(c, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK &&
	    PQresultStatus(res) != PGRES_TUPLES_OK)
		die("%s\n-> %s", sql, PQerrorMessage(c));
	PQclear(res);
}

static const char schema_sql[] =
    "SET client_min_messages = warning;"
    "DROP SCHEMA IF EXISTS enc CASCADE;"
    "CREATE SCHEMA enc;"
    "SET search_path = enc, public;"
    "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy \"quoted\"', '');"
    "CREATE DOMAIN posint AS int4 CHECK (VALUE > 0);"
    "CREATE DOMAIN posint2 AS posint;"
    "CREATE DOMAIN bignum AS numeric;"
    "CREATE DOMAIN tags AS text[];"
    "CREATE DOMAIN stamp AS timestamptz;"
    "CREATE TYPE inner_t AS (a int4, b text, c numeric[], d bool);"
    "CREATE TYPE outer_t AS (x inner_t, y inner_t[], z mood, w posint,"
    " arr posint[], t timestamptz, j jsonb, \"we\"\"ird ü\" text);"
    "CREATE TYPE dropper AS (a int4, b text, c int8, d date);"
    "ALTER TYPE dropper DROP ATTRIBUTE b;"
    "ALTER TYPE dropper DROP ATTRIBUTE d;"
    "ALTER TYPE dropper ADD ATTRIBUTE e timestamp;"
    "CREATE TYPE empty_t AS ();"
    "CREATE DOMAIN inner_d AS inner_t;"
    "CREATE TYPE floatrange AS RANGE (subtype = float8);"
    "CREATE TABLE tbl (id int8, name text, at timestamptz, m mood[],"
    " n bignum, s stamp);"
    "INSERT INTO tbl VALUES (1, 'one', '2024-01-01 00:00+00',"
    " '{sad,ok}', 1.50, '2000-02-29 12:00:00.5+00'),"
    " (9223372036854775807, NULL, NULL, NULL, 'NaN', 'infinity');"
    "CREATE TYPE wrap_t AS (o outer_t, tb tbl, dr dropper[], e empty_t,"
    " r floatrange, id inner_d);";

/* Loads every column type of res that the cache does not know yet. */
static void load_types(const PGresult *res)
{
	uint32_t oids[64], missing[64];
	int nf = PQnfields(res);
	if (nf > 64)
		nf = 64;
	for (int i = 0; i < nf; i++)
		oids[i] = PQftype(res, i);
	size_t n = fpg_typecache_missing(tc, oids, (size_t)nf, missing, 64);
	if (n == 0)
		return;
	char lit[64 * 12] = "{";
	for (size_t i = 0; i < n; i++)
		sprintf(lit + strlen(lit), "%s%u", i ? "," : "", missing[i]);
	strcat(lit, "}");
	const char *params[1] = {lit};
	PGresult *tr = PQexecParams(conn, fpg_typecache_lookup_sql, 1, NULL,
				    params, NULL, NULL, 0);
	struct fpg_error err = {0};
	if (!fpg_typecache_load(tc, tr, missing, n, &err))
		die("typecache load: %s (%s)", err.message,
		    PQresultErrorMessage(tr));
	PQclear(tr);
}

static void report(const char *what, const PGresult *res, int row,
		   const char *got, size_t gotlen, unsigned flags)
{
	if (++mismatches > MAX_REPORTED)
		return;
	char *tn = NULL;
	char q[96];
	snprintf(q, sizeof(q), "SELECT format_type(%u, NULL)", PQftype(res, 0));
	PGresult *r = PQexec(conn, q);
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
		tn = PQgetvalue(r, 0, 0);
	fprintf(stderr,
		"MISMATCH (seed %u, flags %u) %s\n  type: %s (oid %u)\n"
		"  text: %s\n  want: %s\n  got:  %.*s\n",
		it_seed(), flags, what, tn ? tn : "?", PQftype(res, 0),
		PQgetvalue(res, row, 0), PQgetvalue(res, row, 1), (int)gotlen,
		got);
	PQclear(r);
}

/*
 * Column 0 is the value, column 1 what the encoder must produce for it;
 * both NULL-free except that a NULL value is skipped. Counts mismatches.
 */
static void compare(const char *what, const PGresult *res, unsigned flags)
{
	struct fpg_buf out;
	fpg_buf_init(&out);
	load_types(res);
	for (int row = 0; row < PQntuples(res); row++) {
		if (PQgetisnull(res, row, 0))
			continue;
		fpg_buf_reset(&out);
		fpg_encode_value(&out, tc, PQftype(res, 0),
				 PQgetvalue(res, row, 0),
				 (size_t)PQgetlength(res, row, 0), flags);
		ck_assert(!out.failed);
		const char *want = PQgetvalue(res, row, 1);
		compared++;
		if (out.len != strlen(want) || memcmp(out.data, want, out.len))
			report(what, res, row, out.data, out.len, flags);
	}
	fpg_buf_deinit(&out);
}

/* Runs sql (optionally with one text parameter) and compares. */
static bool check_sql(const char *sql, const char *param, unsigned flags,
		      bool may_fail)
{
	const char *params[1] = {param};
	PGresult *res =
	    PQexecParams(conn, sql, param ? 1 : 0, NULL, params, NULL, NULL, 0);
	bool ok = PQresultStatus(res) == PGRES_TUPLES_OK;
	if (!ok && !may_fail)
		ck_abort_msg("%s\n-> %s", sql, PQresultErrorMessage(res));
	if (!ok && getenv("FPG_TEST_VERBOSE"))
		fprintf(stderr, "skipped: %s\n-> %s", sql,
			PQresultErrorMessage(res));
	if (ok)
		compare(sql, res, flags);
	PQclear(res);
	return ok;
}

static void check_fmt(unsigned flags, bool may_fail, const char *fmt, ...)
    FPG_PRINTF(3, 4);
static void check_fmt(unsigned flags, bool may_fail, const char *fmt, ...)
{
	char *sql = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&sql, fmt, ap);
	va_end(ap);
	ck_assert_int_ge(n, 0);
	check_sql(sql, NULL, flags, may_fail);
	free(sql);
}

/*
 * The same array once more, with its lower bound moved to -2: array_out()
 * then prefixes "[-2:N]=", which to_json() ignores.
 */
static void check_shifted(const char *frag)
{
	char *sql = NULL;
	ck_assert_int_ge(
	    asprintf(&sql,
		     "SELECT format_type(pg_typeof(a), NULL),"
		     " '[-2:' || (array_length(a, 1) - 3) || ']=' || a::text"
		     " FROM (SELECT array_append(array_agg(v), NULL)"
		     " FROM (%s) f(v)) x(a)",
		     frag),
	    0);
	PGresult *res = PQexec(conn, sql);
	free(sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 ||
	    PQgetisnull(res, 0, 1)) {
		PQclear(res);
		return;
	}
	check_fmt(
	    0, false,
	    "SELECT v, to_json(v)::text FROM (SELECT $lit$%s$lit$::%s) f(v)",
	    PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 0));
	PQclear(res);
}

/*
 * A corpus entry: a query (usually VALUES) whose single column holds
 * values of one type. Checked as is, then wrapped into arrays. Array
 * variants may fail for types array_agg() cannot take (int2vector).
 */
static void check_frag(const char *frag)
{
	check_fmt(0, false, "SELECT v, to_json(v)::text FROM (%s) f(v)", frag);
	check_fmt(0, true,
		  "SELECT a, to_json(a)::text FROM (SELECT array_append("
		  "array_agg(v), NULL) FROM (%s) f(v)) x(a)",
		  frag);
	check_fmt(0, true,
		  "SELECT ARRAY[a, a], to_json(ARRAY[a, a])::text FROM ("
		  "SELECT array_agg(v) FROM (%s) f(v)) x(a)",
		  frag);
	check_shifted(frag);
}

static void check_frags(const char *const *frags)
{
	for (const char *const *f = frags; *f; f++)
		check_frag(*f);
}

static const char *const number_frags[] = {
    "VALUES ('0'::int2), ('32767'), ('-32768')",
    "VALUES ('0'::int4), ('2147483647'), ('-2147483648'), ('42')",
    "VALUES ('0'::int8), ('9223372036854775807'),"
    " ('-9223372036854775808')",
    "VALUES ('0'::oid), ('4294967295'), ('1259')",
    "VALUES ('NaN'::float4), ('Infinity'), ('-Infinity'), ('-0'),"
    " ('1.5e-7'), ('3.4028235e38'), ('1e-45'), ('0.1'), ('100'),"
    " ('1e20')",
    "VALUES ('NaN'::float8), ('Infinity'), ('-Infinity'), ('-0'),"
    " ('1e300'), ('2.2250738585072014e-308'), ('5e-324'), ('0.1'),"
    " ('1e15'), ('1e16'), ('123456789012345678'), ('-1.5')",
    "VALUES ('NaN'::numeric), ('Infinity'), ('-Infinity'), ('0'),"
    " ('-0.000'), ('1e-20'), ('1.50'), ('-1'), ('1e100'),"
    " ('12345678901234567890123456789012345678901234567890.123456789'),"
    " ('0.000000000000000000000000000000000000000000123')",
    "VALUES (true), (false)",
    NULL,
};

static const char *const text_frags[] = {
    "VALUES ('plain'::text), (''), (' lead and trail '), ('NULL'),"
    " ('null'), ('a,b'), ('a;b'), ('{braces}'), ('(parens)'),"
    " ('say \"hi\"'), ('back\\slash'), ('\\\\'), ('\"'), ('ü é ß'),"
    " (E'ctl\\x01\\x1f\\x7f\\t\\n\\r\\b\\f'), (U&'\\+01F600'),"
    " (U&'\\+10FFFF'), (U&'\\FFFD\\+020000\\+0E0001'), ('[1:2]={x}')",
    "VALUES ('a'::varchar(5)), ('with space'), ('')",
    "VALUES ('ab'::char(4)), ('')",
    "VALUES ('pg_class'::name), ('With \"Quote')",
    "VALUES ('a'::\"char\"), ('\"'), ('\\')",
    "VALUES ('sad'::mood), ('happy \"quoted\"'), ('')",
    "VALUES (1::posint), ('2147483647')",
    "VALUES (1::posint2)",
    "VALUES ('NaN'::bignum), (3.14159265358979323846264338327950288419)",
    "VALUES ('{a,\"b c\",NULL}'::tags), ('{}')",
    NULL,
};

static const char *const json_frags[] = {
    "VALUES ('{\"a\":[1,2,{\"b\":null}],\"c\":\"\\u00e9\"}'::json),"
    " (' { \"sp\" : [ 1 , 2 ] } '), ('null'), ('\"str\"'), ('123.4500'),"
    " ('[]'), ('{\"k\\\\\":\"v\\\"\"}')",
    "VALUES ('{\"a\":[1,2,{\"b\":null}],\"c\":\"\\u00e9\"}'::jsonb),"
    " ('null'), ('\"str\"'), ('1.0e10'), ('[1, \"two\", [3]]'),"
    " ('{\"z\":1,\"a\":2}')",
    NULL,
};

static const char *const misc_frags[] = {
    "VALUES ('\\x00ff10'::bytea), (''), ('\\x5c22')",
    "VALUES ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid)",
    "VALUES ('192.168.0.1/24'::inet), ('::1'), ('10.0.0.1')",
    "VALUES ('192.168.0.0/24'::cidr), ('2001:db8::/32')",
    "VALUES ('08:00:2b:01:02:03'::macaddr)",
    "VALUES ('08:00:2b:01:02:03:04:05'::macaddr8)",
    "VALUES ('12.34'::money), ('-92233720368547758.08'), ('0')",
    "VALUES (B'101'::bit(3)), (B'000')",
    "VALUES (B'1'::varbit), (B''), (B'1010101010')",
    "VALUES ('(1,2)'::point), ('(-1.5,1e+20)')",
    "VALUES ('{1,2,3}'::line)",
    "VALUES ('[(0,0),(1,1)]'::lseg)",
    "VALUES ('(1,1),(0,0)'::box), ('(2,2),(-1,-1)')",
    "VALUES ('[(0,0),(1,1),(2,0)]'::path), ('((0,0),(1,1))')",
    "VALUES ('((0,0),(1,1),(2,0))'::polygon)",
    "VALUES ('<(0,0),1.5>'::circle)",
    "VALUES ('[1,10)'::int4range), ('empty'), ('(,)'), ('[,5)')",
    "VALUES ('[1,10)'::int8range)",
    "VALUES ('[1.5,2.5]'::numrange), ('(,)')",
    "VALUES ('[\"2020-01-01 00:00\",\"2021-01-01 00:00\")'::tsrange)",
    "VALUES ('[\"2020-01-01 00:00+00\",infinity)'::tstzrange)",
    "VALUES ('[2020-01-01,2021-01-01)'::daterange), ('empty')",
    "VALUES ('[1.5,2]'::floatrange)",
    "VALUES ('{[1,3),[5,7)}'::int4multirange), ('{}')",
    "VALUES ('{[1.5,2.5]}'::nummultirange)",
    "VALUES ('{[2020-01-01,2020-02-01)}'::datemultirange)",
    "VALUES ('{[\"2020-01-01 00:00+00\",\"2020-01-02 00:00+00\")}'"
    "::tstzmultirange)",
    "VALUES ('a fat cat sat'::tsvector), ($$'it''s' 'a\\\\b':1A$$)",
    "VALUES ('fat & (rat | !cat)'::tsquery)",
    "VALUES ('<a>x &amp; \"q\"</a>'::xml)",
    "VALUES ('16/B374D848'::pg_lsn)",
    "VALUES ('pg_class'::regclass), ('pg_type')",
    "VALUES ('pg_catalog.int4'::regtype), ('character varying[]')",
    "VALUES ('(0,1)'::tid)",
    "VALUES ('1 2 3'::int2vector), (''::int2vector)",
    "VALUES ('1 2'::oidvector), (''::oidvector)",
    "VALUES ('10:20:15'::pg_snapshot), ('10:20:')",
    "VALUES ('123'::xid), ('4294967295')",
    "VALUES ('1'::xid8)",
    NULL,
};

/* Run once per time zone. */
static const char *const datetime_frags[] = {
    "VALUES ('2024-02-29'::date), ('infinity'), ('-infinity'),"
    " ('0001-01-01 BC'), ('4713-01-01 BC'), ('5874897-12-31'),"
    " ('0044-03-15 BC'), ('1970-01-01')",
    "VALUES ('00:00'::time), ('23:59:59.999999'), ('24:00:00'),"
    " ('12:34:56.5')",
    "VALUES ('12:34:56.789+05:30'::timetz), ('00:00:00+14:59'),"
    " ('12:00-03:30:52'), ('23:00:00-00')",
    "VALUES ('2024-01-01 12:34:56.789'::timestamp), ('infinity'),"
    " ('-infinity'), ('4713-01-01 00:00 BC'),"
    " ('294276-12-31 23:59:59.999999'), ('0001-01-01 00:00:00 BC'),"
    " ('1999-12-31 23:59:59.5'), ('10000-01-01 00:00')",
    "VALUES ('2024-06-01 12:00:00+00'::timestamptz),"
    " ('1800-01-01 00:00 UTC'), ('1900-01-01 00:00 UTC'),"
    " ('1890-06-30 12:00 UTC'), ('1935-06-30 12:00 UTC'),"
    " ('2024-01-01 00:00:00.123456+05:45'), ('infinity'),"
    " ('-infinity'), ('0044-03-15 12:00 UTC BC'),"
    " ('4713-01-01 00:00 UTC BC'), ('294276-12-30 00:00:00+00'),"
    " ('2024-03-31 01:59:59.999999 UTC'), ('12345-06-07 08:09:10 UTC')",
    "VALUES ('2024-06-01 12:00:00+00'::stamp), ('infinity')",
    "VALUES ('1 year 2 mons 3 days 04:05:06.789'::interval), ('-1 day'),"
    " ('0'), ('178000000 years'), ('-00:00:00.000001'),"
    " ('1 day -01:00')",
    NULL,
};

static const char *const zones[] = {
    "UTC",
    "Asia/Kolkata",
    "America/St_Johns",
    "Europe/Amsterdam",
    "Asia/Kathmandu",
    "Pacific/Chatham",
    "America/New_York",
};

static void setup(void)
{
	conn = PQconnectdb(it_db());
	if (PQstatus(conn) != CONNECTION_OK)
		die("connect: %s", PQerrorMessage(conn));
	exec_ok(conn, "SET DateStyle = ISO; SET IntervalStyle = postgres;"
		      " SET TimeZone = 'UTC'; SET extra_float_digits = 1;"
		      " SET bytea_output = hex; SET client_encoding = UTF8;"
		      " SET search_path = enc, public");
	tc = fpg_typecache_new();
	ck_assert_ptr_nonnull(tc);
	mismatches = 0;
	compared = 0;
}

static void teardown(void)
{
	fpg_typecache_free(tc);
	tc = NULL;
	PQfinish(conn);
	conn = NULL;
}

static void assert_clean(void)
{
	ck_assert_int_gt(compared, 0);
	if (getenv("FPG_TEST_VERBOSE"))
		fprintf(stderr, "%s: %d values compared\n", tcase_name(),
			compared);
	ck_assert_msg(mismatches == 0, "%d mismatches (seed %u), see stderr",
		      mismatches, it_seed());
}

START_TEST(numbers)
{
	check_frags(number_frags);
	assert_clean();
}
END_TEST

START_TEST(texts)
{
	check_frags(text_frags);
	/* Domain arrays arrive with the domain-array OID. */
	check_fmt(0, false,
		  "SELECT v, to_json(v)::text FROM (VALUES"
		  " ('{1,NULL,3}'::posint[]), ('{{1},{2}}'::posint2[]),"
		  " ('[0:1]={5,6}'::posint[])) f(v)");
	check_fmt(0, false,
		  "SELECT v, to_json(v)::text FROM (VALUES"
		  " (ARRAY['{a}'::tags, '{}'::tags])) f(v)");
	check_fmt(0, false,
		  "SELECT v, to_json(v)::text FROM (VALUES"
		  " ('{\"1 2\",\"3\",NULL,\"\"}'::int2vector[]))"
		  " f(v)");
	check_fmt(0, false,
		  "SELECT v, to_json(v)::text FROM (VALUES"
		  " ('[0:1]={\"1 2\",\"\"}'::oidvector[])) f(v)");
	check_fmt(0, false,
		  "SELECT v, to_json(v)::text FROM (VALUES"
		  " ('{{(1,1),(0,0);NULL};{(2,2),(1,1);"
		  "(3,3),(2,2)}}'::box[])) f(v)");
	assert_clean();
}
END_TEST

START_TEST(jsons)
{
	check_frags(json_frags);
	assert_clean();
}
END_TEST

START_TEST(misc)
{
	check_frags(misc_frags);
	assert_clean();
}
END_TEST

START_TEST(datetimes)
{
	char sql[128];
	snprintf(sql, sizeof(sql), "SET TimeZone = '%s'", zones[_i]);
	exec_ok(conn, sql);
	check_frags(datetime_frags);
	assert_clean();
}
END_TEST

static const char *const composite_sqls[] = {
    "SELECT ROW(1, 'a b', ARRAY[1.5, NULL], true)::inner_t",
    "SELECT ROW(NULL, NULL, NULL, NULL)::inner_t",
    "SELECT ROW(-1, '', '{}', false)::inner_t",
    "SELECT ROW(2, E'q\"uo\\\\te,(x)\\n\\t' || U&'\\+01F600', "
    "'{1e-5,NaN}', NULL)::inner_t",
    "SELECT ROW(ROW(1, 'x', '{2}', true)::inner_t,"
    " ARRAY[ROW(2, 'y \"z\"', '{3,NULL}', false)::inner_t, NULL,"
    " ROW(NULL, ',', NULL, NULL)::inner_t],"
    " 'happy \"quoted\"', 7, '{1,2}', '2024-01-01 00:00+05:30',"
    " '{\"k\": [1, \"v\\\"\"]}', 'weird')::outer_t",
    "SELECT ROW(NULL, '{}', '', NULL, NULL, '-infinity', 'null',"
    " NULL)::outer_t",
    "SELECT ROW(1, 9223372036854775807, '2020-02-02 02:02:02.02')::dropper",
    "SELECT ROW()::empty_t",
    "SELECT t FROM tbl t",
    "SELECT ROW(ROW(NULL, ARRAY[ROW(1,'a','{}',NULL)::inner_t],"
    " 'sad', 1, NULL, NULL, '[]', '')::outer_t,"
    " (SELECT t FROM tbl t LIMIT 1),"
    " ARRAY[ROW(1, 2, NULL)::dropper, NULL], ROW()::empty_t,"
    " '[1.5,2)', ROW(3, 'in domain', NULL, true))::wrap_t",
    "SELECT ROW(1, 'd', '{}', true)::inner_d",
    "SELECT ARRAY[ROW(1, 'd', '{}', true)::inner_d, NULL]",
    "SELECT '{{\"(1,x,{},t)\",NULL},{NULL,\"(,,,)\"}}'::inner_t[]",
    "SELECT '[3:3]={\"(1,\\\"a\\\\\\\\b\\\",{},t)\"}'::inner_t[]",
    "SELECT c FROM pg_class c WHERE relname = 'pg_type'",
    "SELECT a FROM pg_attribute a LIMIT 3",
    "SELECT ARRAY(SELECT t FROM pg_type t ORDER BY oid LIMIT 5)",
    NULL,
};

START_TEST(composites)
{
	for (const char *const *s = composite_sqls; *s; s++) {
		check_fmt(0, false, "SELECT v, to_json(v)::text FROM (%s) f(v)",
			  *s);
		check_fmt(0, true,
			  "SELECT a, to_json(a)::text FROM (SELECT ARRAY[v, v,"
			  " NULL] FROM (%s) f(v)) x(a)",
			  *s);
	}
	assert_clean();
}
END_TEST

/*
 * Anonymous records cannot match: to_json() sees the field names and
 * types, the text form has neither. They are strings, and record[] an
 * array of strings.
 */
START_TEST(anonymous_records)
{
	check_fmt(0, false,
		  "SELECT v, to_json(v::text)::text FROM (SELECT"
		  " ROW(1, 'a b', NULL)) f(v)");
	check_fmt(0, false,
		  "SELECT v, to_json(v::text[])::text FROM (SELECT"
		  " ARRAY[ROW(1, 'a'), NULL]) f(v)");
	assert_clean();
}
END_TEST

/* With FPG_ENC_BIG_STRING, int8 and numeric are to_json(v::text). */
START_TEST(big_string)
{
	static const char *const big[] = {
	    "VALUES (0::int8), (9223372036854775807), (-1)",
	    "VALUES ('NaN'::numeric), (0), (1.50), (1e-20),"
	    " (123456789012345678901234567890.5)",
	    "VALUES (5::bignum)",
	    NULL,
	};
	for (const char *const *f = big; *f; f++) {
		check_fmt(FPG_ENC_BIG_STRING, false,
			  "SELECT v, to_json(v::text)::text FROM (%s) f(v)",
			  *f);
		check_fmt(FPG_ENC_BIG_STRING, false,
			  "SELECT a, to_json(a::text[])::text FROM (SELECT"
			  " array_append(array_agg(v), NULL) FROM (%s) f(v))"
			  " x(a)",
			  *f);
	}
	/* Everything else is unaffected. */
	check_fmt(FPG_ENC_BIG_STRING, false,
		  "SELECT v, to_json(v)::text FROM (%s) f(v)", number_frags[1]);
	check_fmt(FPG_ENC_BIG_STRING, false,
		  "SELECT v, to_json(v)::text FROM (%s) f(v)", number_frags[5]);
	check_fmt(FPG_ENC_BIG_STRING, false,
		  "SELECT v, replace(to_json(v)::text, '\"c\":[1.5,null]',"
		  " '\"c\":[\"1.5\",null]') FROM (%s) f(v)",
		  composite_sqls[0]);
	assert_clean();
}
END_TEST

START_TEST(type_names)
{
	PGresult *res =
	    PQexec(conn, "SELECT oid, typname FROM pg_type"
			 " t WHERE oid < 16384 AND typtype IN"
			 " ('b', 'r', 'm', 'p') AND (typelem = 0 OR"
			 " (SELECT typtype FROM pg_type e WHERE"
			 " e.oid = t.typelem) IN ('b', 'r', 'm', 'p'))"
			 " ORDER BY oid");
	ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
	struct fpg_buf out, want;
	fpg_buf_init(&out);
	fpg_buf_init(&want);
	int unknown = 0;
	for (int i = 0; i < PQntuples(res); i++) {
		uint32_t oid =
		    (uint32_t)strtoul(PQgetvalue(res, i, 0), NULL, 10);
		if (!fpg_typecache_get(tc, oid)) {
			/* information_schema domains and the like */
			unknown++;
			continue;
		}
		fpg_buf_reset(&out);
		fpg_buf_reset(&want);
		fpg_encode_type_name(&out, tc, oid);
		fpg_buf_json_str(&want, PQgetvalue(res, i, 1),
				 (size_t)PQgetlength(res, i, 1));
		ck_assert_int_eq(out.len, want.len);
		ck_assert(memcmp(out.data, want.data, out.len) == 0);
	}
	ck_assert_int_eq(unknown, 0);
	fpg_buf_deinit(&out);
	fpg_buf_deinit(&want);
	PQclear(res);
}
END_TEST

/* Random values: ------------------------------------------------------- */

static unsigned rnd(unsigned n)
{
	return (unsigned)(rand() % (int)n);
}

/* Appends the UTF-8 form of a random code point (no NUL, no surrogate). */
static void put_random_char(struct fpg_buf *b)
{
	unsigned cp;
	switch (rnd(6)) {
	case 0:
		cp = 1 + rnd(0x7f);
		break;
	case 1:
		cp = "\"\\{},() NULL"[rnd(12)];
		break;
	case 2:
		cp = 0x80 + rnd(0x780);
		break;
	case 3:
		do
			cp = 0x800 + rnd(0xf800);
		while (cp >= 0xd800 && cp <= 0xdfff);
		break;
	default:
		cp = 0x10000 + rnd(0x100000);
		break;
	}
	char u[4];
	size_t n;
	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | cp >> 6);
		u[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xe0 | cp >> 12);
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		u[0] = (char)(0xf0 | cp >> 18);
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	fpg_buf_append(b, u, n);
}

/* Appends s as a quoted array element, as array_in() reads it. */
static void put_array_elem(struct fpg_buf *b, const char *s, size_t n)
{
	fpg_buf_putc(b, '"');
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '"' || s[i] == '\\')
			fpg_buf_putc(b, '\\');
		fpg_buf_putc(b, s[i]);
	}
	fpg_buf_putc(b, '"');
}

static void put_random_text(struct fpg_buf *b, struct fpg_buf *tmp)
{
	fpg_buf_reset(tmp);
	unsigned len = rnd(4) == 0 ? 0 : rnd(24);
	for (unsigned i = 0; i < len; i++)
		put_random_char(tmp);
	put_array_elem(b, tmp->data ? tmp->data : "", tmp->len);
}

static void put_random_numeric(struct fpg_buf *b)
{
	if (rnd(20) == 0) {
		fpg_buf_puts(b, (const char *[]){"NaN", "Infinity",
						 "-Infinity"}[rnd(3)]);
		return;
	}
	if (rnd(2))
		fpg_buf_putc(b, '-');
	unsigned ni = 1 + rnd(rnd(4) ? 20 : 60);
	for (unsigned i = 0; i < ni; i++)
		fpg_buf_putc(b, (char)('0' + rnd(10)));
	if (rnd(2)) {
		fpg_buf_putc(b, '.');
		unsigned nf = 1 + rnd(40);
		for (unsigned i = 0; i < nf; i++)
			fpg_buf_putc(b, (char)('0' + rnd(10)));
	}
	if (rnd(4) == 0)
		fpg_buf_printf(b, "e%d", (int)rnd(200) - 100);
}

static void put_random_float(struct fpg_buf *b, bool single)
{
	uint64_t bits = 0;
	for (int i = 0; i < 4; i++)
		bits = bits << 16 | (uint64_t)rnd(65536);
	double d;
	memcpy(&d, &bits, sizeof(d));
	if (d != d)
		fpg_buf_puts(b, "NaN");
	else if (d > 1e308 * 10)
		fpg_buf_puts(b, "Infinity");
	else if (d < -1e308 * 10)
		fpg_buf_puts(b, "-Infinity");
	else if (single && (d > 3e38 || d < -3e38))
		fpg_buf_puts(b, "1e38");
	else
		fpg_buf_printf(b, "%.17g", single ? (double)(float)d : d);
}

/* A random bits-wide signed integer, often small, sometimes extreme. */
static void put_random_int(struct fpg_buf *b, int bits)
{
	uint64_t u = 0;
	for (int i = 0; i < 4; i++)
		u = u << 16 | (uint64_t)rnd(65536);
	if (rnd(3) == 0)
		u >>= rnd(64);
	int64_t v;
	if (bits == 64) {
		v = (int64_t)u;
	} else {
		uint64_t span = (uint64_t)1 << bits;
		v = (int64_t)(u % span) - (int64_t)(span / 2);
	}
	fpg_buf_printf(b, "%lld", (long long)v);
}

/* {v1,v2,...} of count values from gen, as one oid[]/text[] literal. */
static void check_random_list(const char *sql, unsigned count,
			      void (*gen)(struct fpg_buf *, int), int arg,
			      unsigned flags)
{
	struct fpg_buf lit;
	fpg_buf_init(&lit);
	fpg_buf_putc(&lit, '{');
	for (unsigned i = 0; i < count; i++) {
		if (i)
			fpg_buf_putc(&lit, ',');
		gen(&lit, arg);
	}
	fpg_buf_putc(&lit, '}');
	fpg_buf_putc(&lit, '\0');
	check_sql(sql, lit.data, flags, false);
	fpg_buf_deinit(&lit);
}

static void gen_int(struct fpg_buf *b, int bits)
{
	put_random_int(b, bits);
}

static void gen_numeric(struct fpg_buf *b, int unused)
{
	(void)unused;
	put_random_numeric(b);
}

static void gen_float(struct fpg_buf *b, int bits)
{
	put_random_float(b, bits == 32);
}

static void gen_text(struct fpg_buf *b, int unused)
{
	struct fpg_buf tmp;
	(void)unused;
	fpg_buf_init(&tmp);
	put_random_text(b, &tmp);
	fpg_buf_deinit(&tmp);
}

START_TEST(random_scalars)
{
	for (int round = 0; round < 5; round++) {
		check_random_list("SELECT v, to_json(v)::text FROM"
				  " unnest($1::int2[]) v",
				  500, gen_int, 16, 0);
		check_random_list("SELECT v, to_json(v)::text FROM"
				  " unnest($1::int4[]) v",
				  500, gen_int, 32, 0);
		check_random_list("SELECT v, to_json(v)::text FROM"
				  " unnest($1::int8[]) v",
				  500, gen_int, 64, 0);
		check_random_list("SELECT v, to_json(v)::text FROM"
				  " unnest($1::numeric[]) v",
				  500, gen_numeric, 0, 0);
		check_random_list("SELECT v, to_json(v::text)::text FROM"
				  " unnest($1::numeric[]) v",
				  200, gen_numeric, 0, FPG_ENC_BIG_STRING);
		check_random_list("SELECT v, to_json(v)::text FROM"
				  " unnest($1::float8[]) v",
				  500, gen_float, 64, 0);
		check_random_list("SELECT v, to_json(v)::text FROM"
				  " unnest($1::float4[]) v",
				  500, gen_float, 32, 0);
		check_random_list("SELECT v, to_json(v)::text FROM"
				  " unnest($1::text[]) v",
				  500, gen_text, 0, 0);
	}
	assert_clean();
}
END_TEST

/* A random rectangular array literal with bounds, NULLs and escapes. */
static void put_random_array(struct fpg_buf *b, bool text_elems)
{
	struct fpg_buf tmp;
	unsigned ndims = 1 + rnd(3), dims[3], total = 1;
	fpg_buf_init(&tmp);
	for (unsigned d = 0; d < ndims; d++) {
		dims[d] = 1 + rnd(3);
		total *= dims[d];
	}
	if (rnd(2))
		for (unsigned d = 0; d < ndims; d++) {
			int lo = (int)rnd(10) - 5;
			fpg_buf_printf(b, "[%d:%d]", lo, lo + (int)dims[d] - 1);
		}
	if (b->len && b->data[b->len - 1] == ']')
		fpg_buf_putc(b, '=');
	for (unsigned i = 0; i < total; i++) {
		/* open the dimensions that start at element i */
		unsigned stride = total;
		for (unsigned d = 0; d < ndims; d++) {
			if (i % stride == 0)
				fpg_buf_putc(b, '{');
			stride /= dims[d];
		}
		if (rnd(6) == 0)
			fpg_buf_puts(b, "NULL");
		else if (text_elems)
			put_random_text(b, &tmp);
		else
			put_random_int(b, 32);
		/* close the dimensions that end at element i */
		stride = 1;
		for (unsigned d = ndims; d-- > 0;) {
			stride *= dims[d];
			if ((i + 1) % stride == 0)
				fpg_buf_putc(b, '}');
		}
		if (i + 1 < total)
			fpg_buf_putc(b, ',');
	}
	fpg_buf_putc(b, '\0');
	fpg_buf_deinit(&tmp);
}

START_TEST(random_arrays)
{
	struct fpg_buf lit;
	fpg_buf_init(&lit);
	for (int i = 0; i < 300; i++) {
		bool text = i % 2;
		fpg_buf_reset(&lit);
		put_random_array(&lit, text);
		check_sql(text ? "SELECT v, to_json(v)::text FROM"
				 " (SELECT $1::text[]) f(v)"
			       : "SELECT v, to_json(v)::text FROM"
				 " (SELECT $1::int4[]) f(v)",
			  lit.data, 0, false);
	}
	fpg_buf_deinit(&lit);
	assert_clean();
}
END_TEST

static void load_schema(void)
{
	PGconn *c = PQconnectdb(it_db());
	if (PQstatus(c) != CONNECTION_OK)
		die("connect: %s", PQerrorMessage(c));
	exec_ok(c, schema_sql);
	PQfinish(c);
}

static const struct test_case cases[] = {
    TEST_CASE(numbers),
    TEST_CASE(texts),
    TEST_CASE(jsons),
    TEST_CASE(misc),
    TEST_CASE(composites),
    TEST_CASE(anonymous_records),
    TEST_CASE(big_string),
    TEST_CASE(type_names),
    TEST_CASE(random_scalars),
    TEST_CASE(random_arrays),
    TEST_LOOP(datetimes, (int)(sizeof(zones) / sizeof(zones[0]))),
    {0},
};

const struct it_program it_program = {
    .name = "encode_pg",
    .cases = cases,
    .setup = load_schema,
    .before_each = setup,
    .after_each = teardown,
    .timeout_s = 120,
    .fork = true,
    .external_db = true,
};
