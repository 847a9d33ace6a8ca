/*
 * typecache (src/typecache.h) against the harness's PostgreSQL: types
 * made in the case's schema are looked up with fpg_typecache_lookup_sql
 * itself and loaded; composite, array, domain, enum and range types get
 * the kind, name, element and attributes the catalog has; refresh follows
 * ALTER TYPE; OIDs nobody knows are reported missing once, then never
 * again. Attribute names and types are random (seed printed by it_main).
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "it.h"
#include "typecache.h"

static PGconn *connect_db(void)
{
	PGconn *c = PQconnectdb(it_db());
	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
	return c;
}

static void exec_ok(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "%s: %s", sql,
		      PQresultErrorMessage(r));
	PQclear(r);
}

/* The OID of a type name (qualified or built in). */
static uint32_t type_oid(PGconn *c, const char *name)
{
	const char *params[] = {name};
	PGresult *r = PQexecParams(c, "SELECT $1::regtype::oid", 1, NULL,
				   params, NULL, NULL, 0);
	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s: %s", name,
		      PQresultErrorMessage(r));
	uint32_t oid = (uint32_t)strtoul(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return oid;
}

/* The result of the module's own lookup query for oids. */
static PGresult *lookup(PGconn *c, const uint32_t *oids, size_t n)
{
	char lit[1024];
	size_t off = (size_t)snprintf(lit, sizeof(lit), "{");
	for (size_t i = 0; i < n; i++)
		off += (size_t)snprintf(lit + off, sizeof(lit) - off, "%s%u",
					i ? "," : "", oids[i]);
	snprintf(lit + off, sizeof(lit) - off, "}");
	const char *params[] = {lit};
	PGresult *r = PQexecParams(c, fpg_typecache_lookup_sql, 1, NULL,
				   params, NULL, NULL, 0);
	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s",
		      PQresultErrorMessage(r));
	return r;
}

static void load(struct fpg_typecache *tc, PGconn *c, const uint32_t *oids,
		 size_t n)
{
	PGresult *r = lookup(c, oids, n);
	struct fpg_error err = {0};
	ck_assert_msg(fpg_typecache_load(tc, r, oids, n, &err), "%s",
		      err.message);
	PQclear(r);
}

static const struct fpg_type *get_ok(struct fpg_typecache *tc, uint32_t oid)
{
	const struct fpg_type *t = fpg_typecache_get(tc, oid);
	ck_assert_msg(t != NULL, "type %u not in the cache", oid);
	return t;
}

/* Attribute types to draw from: what the catalog names them. */
static const char *const attr_types[] = {"int4",  "text",  "bool",
					 "jsonb", "date",  "numeric",
					 "float8", "_text", "timestamptz"};
#define NATTR_TYPES (sizeof(attr_types) / sizeof(*attr_types))

struct comp {
	char *name; /* schema.name */
	int n;
	char attr[8][32];
	const char *type[8];
};

/* A composite type of 1..7 random attributes in the case's schema (room
 * for one more: refresh_follows_alter_type adds it). */
static void make_composite(PGconn *c, struct comp *ct, const char *base)
{
	ct->name = it_table(base);
	ct->n = 1 + rand() % 7;
	char sql[1024];
	size_t off = (size_t)snprintf(sql, sizeof(sql), "CREATE TYPE %s AS (",
				      ct->name);
	for (int i = 0; i < ct->n; i++) {
		snprintf(ct->attr[i], sizeof(ct->attr[i]), "a%d_%x", i,
			 (unsigned)rand() % 0xfff);
		ct->type[i] = attr_types[(unsigned)rand() % NATTR_TYPES];
		off += (size_t)snprintf(sql + off, sizeof(sql) - off,
					"%s%s %s", i ? ", " : "", ct->attr[i],
					ct->type[i]);
	}
	snprintf(sql + off, sizeof(sql) - off, ")");
	exec_ok(c, sql);
}

static void check_composite(PGconn *c, const struct fpg_type *t,
			    const struct comp *ct, const char *typname)
{
	ck_assert_int_eq(t->kind, FPG_TYPE_COMPOSITE);
	ck_assert_str_eq(t->name, typname);
	ck_assert_int_eq(t->nattrs, ct->n);
	for (int i = 0; i < ct->n; i++) {
		ck_assert_str_eq(t->attrs[i].name, ct->attr[i]);
		ck_assert_uint_eq(t->attrs[i].type, type_oid(c, ct->type[i]));
	}
}

START_TEST(composite_and_its_array)
{
	PGconn *c = connect_db();
	struct comp ct;
	make_composite(c, &ct, "pt");
	char *arr = it_fmt("%s[]", ct.name);
	uint32_t oid = type_oid(c, ct.name), aoid = type_oid(c, arr);
	struct fpg_typecache *tc = fpg_typecache_new();
	ck_assert_ptr_nonnull(tc);
	ck_assert_ptr_null(fpg_typecache_get(tc, oid));
	/* Asking for the array brings its element and the attribute types
	 * along (the lookup is recursive). */
	load(tc, c, &aoid, 1);
	const struct fpg_type *a = get_ok(tc, aoid);
	ck_assert_int_eq(a->kind, FPG_TYPE_ARRAY);
	ck_assert_str_eq(a->name, "_pt");
	ck_assert_uint_eq(a->elem, oid);
	ck_assert_int_eq(a->delim, ',');
	check_composite(c, get_ok(tc, oid), &ct, "pt");
	for (int i = 0; i < ct.n; i++)
		get_ok(tc, type_oid(c, ct.type[i]));
	ck_assert(fpg_typecache_has_composite(tc, oid));
	ck_assert(fpg_typecache_has_composite(tc, aoid));
	ck_assert(!fpg_typecache_has_composite(tc, type_oid(c, "int4")));
	ck_assert(!fpg_typecache_has_composite(tc, type_oid(c, "_int4")));
	ck_assert(!fpg_typecache_has_composite(tc, 4000000000u));
	fpg_typecache_free(tc);
	free(arr);
	free(ct.name);
	PQfinish(c);
}
END_TEST

START_TEST(composite_inside_composite)
{
	PGconn *c = connect_db();
	struct comp inner;
	make_composite(c, &inner, "inner_t");
	char *outer = it_table("outer_t");
	char *sql = it_fmt("CREATE TYPE %s AS (id int8, kids %s[])", outer,
			   inner.name);
	exec_ok(c, sql);
	uint32_t ooid = type_oid(c, outer), ioid = type_oid(c, inner.name);
	struct fpg_typecache *tc = fpg_typecache_new();
	load(tc, c, &ooid, 1);
	const struct fpg_type *o = get_ok(tc, ooid);
	ck_assert_int_eq(o->kind, FPG_TYPE_COMPOSITE);
	ck_assert_int_eq(o->nattrs, 2);
	ck_assert_str_eq(o->attrs[1].name, "kids");
	const struct fpg_type *kids = get_ok(tc, o->attrs[1].type);
	ck_assert_int_eq(kids->kind, FPG_TYPE_ARRAY);
	ck_assert_uint_eq(kids->elem, ioid);
	check_composite(c, get_ok(tc, ioid), &inner, "inner_t");
	ck_assert(fpg_typecache_has_composite(tc, kids->oid));
	fpg_typecache_free(tc);
	free(sql);
	free(outer);
	free(inner.name);
	PQfinish(c);
}
END_TEST

START_TEST(enum_and_its_array)
{
	PGconn *c = connect_db();
	char *mood = it_table("mood");
	char *sql = it_fmt("CREATE TYPE %s AS ENUM ('sad', 'ok', 'happy')",
			   mood);
	exec_ok(c, sql);
	char *arr = it_fmt("%s[]", mood);
	uint32_t oids[] = {type_oid(c, mood), type_oid(c, arr)};
	struct fpg_typecache *tc = fpg_typecache_new();
	load(tc, c, oids, 2);
	const struct fpg_type *e = get_ok(tc, oids[0]);
	ck_assert_int_eq(e->kind, FPG_TYPE_STRING);
	ck_assert_str_eq(e->name, "mood");
	ck_assert_int_eq(e->nattrs, 0);
	const struct fpg_type *a = get_ok(tc, oids[1]);
	ck_assert_int_eq(a->kind, FPG_TYPE_ARRAY);
	ck_assert_str_eq(a->name, "_mood");
	ck_assert_uint_eq(a->elem, oids[0]);
	ck_assert(!fpg_typecache_has_composite(tc, oids[1]));
	fpg_typecache_free(tc);
	free(arr);
	free(sql);
	free(mood);
	PQfinish(c);
}
END_TEST

/* A domain is its base type's description under its own OID and name,
 * through chains of domains and over composites. */
START_TEST(domains_take_their_base_type)
{
	PGconn *c = connect_db();
	struct comp ct;
	make_composite(c, &ct, "base_c");
	char *pos = it_table("pos"), *money2 = it_table("money2"),
	     *money3 = it_table("money3"), *dc = it_table("dc");
	char *sql = it_fmt("CREATE DOMAIN %s AS int4 CHECK (VALUE > 0);"
			   "CREATE DOMAIN %s AS numeric(12, 2);"
			   "CREATE DOMAIN %s AS %s;"
			   "CREATE DOMAIN %s AS %s",
			   pos, money2, money3, money2, dc, ct.name);
	exec_ok(c, sql);
	char *parr = it_fmt("%s[]", pos);
	uint32_t oids[] = {type_oid(c, pos), type_oid(c, money3),
			   type_oid(c, dc), type_oid(c, parr)};
	struct fpg_typecache *tc = fpg_typecache_new();
	load(tc, c, oids, 4);
	const struct fpg_type *p = get_ok(tc, oids[0]);
	ck_assert_int_eq(p->kind, FPG_TYPE_NUMBER);
	ck_assert_str_eq(p->name, "pos");
	ck_assert(!p->big);
	const struct fpg_type *m = get_ok(tc, oids[1]);
	ck_assert_int_eq(m->kind, FPG_TYPE_NUMBER);
	ck_assert_str_eq(m->name, "money3");
	ck_assert(m->big); /* numeric, two domains down */
	check_composite(c, get_ok(tc, oids[2]), &ct, "dc");
	ck_assert(fpg_typecache_has_composite(tc, oids[2]));
	const struct fpg_type *pa = get_ok(tc, oids[3]);
	ck_assert_int_eq(pa->kind, FPG_TYPE_ARRAY);
	ck_assert_uint_eq(pa->elem, oids[0]);
	ck_assert(!fpg_typecache_has_composite(tc, oids[3]));
	fpg_typecache_free(tc);
	free(parr);
	free(sql);
	free(pos);
	free(money2);
	free(money3);
	free(dc);
	free(ct.name);
	PQfinish(c);
}
END_TEST

START_TEST(range_and_its_array)
{
	PGconn *c = connect_db();
	char *fr = it_table("floatrange");
	char *sql = it_fmt("CREATE TYPE %s AS RANGE (subtype = float8)", fr);
	exec_ok(c, sql);
	char *arr = it_fmt("%s[]", fr);
	uint32_t oids[] = {type_oid(c, fr), type_oid(c, arr)};
	struct fpg_typecache *tc = fpg_typecache_new();
	load(tc, c, oids, 2);
	const struct fpg_type *r = get_ok(tc, oids[0]);
	ck_assert_int_eq(r->kind, FPG_TYPE_STRING);
	ck_assert_str_eq(r->name, "floatrange");
	ck_assert_uint_eq(r->elem, 0);
	const struct fpg_type *a = get_ok(tc, oids[1]);
	ck_assert_int_eq(a->kind, FPG_TYPE_ARRAY);
	ck_assert_uint_eq(a->elem, oids[0]);
	fpg_typecache_free(tc);
	free(arr);
	free(sql);
	free(fr);
	PQfinish(c);
}
END_TEST

START_TEST(unknown_oids_are_missing_then_known)
{
	PGconn *c = connect_db();
	char *mood = it_table("mood2");
	char *sql = it_fmt("CREATE TYPE %s AS ENUM ('x')", mood);
	exec_ok(c, sql);
	uint32_t known = type_oid(c, mood);
	/* An OID no type has: the catalog's counter is far below it. */
	uint32_t bogus = 4000000000u + (uint32_t)rand() % 1000;
	struct fpg_typecache *tc = fpg_typecache_new();
	uint32_t in[] = {23, known, bogus, 25, known, bogus, 16, bogus};
	uint32_t out[8];
	size_t n = fpg_typecache_missing(tc, in, 8, out, 8);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(out[0], known);
	ck_assert_uint_eq(out[1], bogus);
	ck_assert_uint_eq(fpg_typecache_missing(tc, in, 8, out, 1), 1);
	ck_assert_uint_eq(out[0], known);
	load(tc, c, out, fpg_typecache_missing(tc, in, 8, out, 8));
	ck_assert_uint_eq(fpg_typecache_missing(tc, in, 8, out, 8), 0);
	/* Recorded as a string so that it is never looked up again. */
	const struct fpg_type *b = get_ok(tc, bogus);
	ck_assert_int_eq(b->kind, FPG_TYPE_STRING);
	ck_assert_str_eq(get_ok(tc, known)->name, "mood2");
	fpg_typecache_free(tc);
	free(sql);
	free(mood);
	PQfinish(c);
}
END_TEST

START_TEST(load_refuses_a_wrong_result)
{
	PGconn *c = connect_db();
	PGresult *r = PQexec(c, "SELECT 1");
	struct fpg_typecache *tc = fpg_typecache_new();
	struct fpg_error err = {0};
	uint32_t oid = 4000000001u;
	ck_assert(!fpg_typecache_load(tc, r, &oid, 1, &err));
	ck_assert_int_eq(err.code, FPG_ERR_PG);
	ck_assert_ptr_nonnull(strstr(err.message, "type lookup"));
	ck_assert_ptr_null(fpg_typecache_get(tc, oid));
	PQclear(r);
	fpg_typecache_free(tc);
	PQfinish(c);
}
END_TEST

/* ALTER TYPE keeps the OID: load keeps what it has, refresh follows. */
START_TEST(refresh_follows_alter_type)
{
	PGconn *c = connect_db();
	struct comp ct;
	make_composite(c, &ct, "alt");
	uint32_t oid = type_oid(c, ct.name);
	struct fpg_typecache *tc = fpg_typecache_new();
	load(tc, c, &oid, 1);
	check_composite(c, get_ok(tc, oid), &ct, "alt");

	char renamed[16];
	snprintf(renamed, sizeof(renamed), "r_%x", (unsigned)rand() % 0xffff);
	int victim = rand() % ct.n;
	char *sql = it_fmt("ALTER TYPE %s RENAME ATTRIBUTE %s TO %s;"
			   "ALTER TYPE %s ADD ATTRIBUTE extra_one date",
			   ct.name, ct.attr[victim], renamed, ct.name);
	exec_ok(c, sql);
	free(sql);
	snprintf(ct.attr[victim], sizeof(ct.attr[victim]), "%s", renamed);
	snprintf(ct.attr[ct.n], sizeof(ct.attr[ct.n]), "extra_one");
	ct.type[ct.n++] = "date";

	PGresult *r = lookup(c, &oid, 1);
	struct fpg_error err = {0};
	ck_assert(fpg_typecache_load(tc, r, &oid, 1, &err));
	ck_assert_int_eq(get_ok(tc, oid)->nattrs, ct.n - 1);
	ck_assert_msg(fpg_typecache_refresh(tc, r, &err), "%s", err.message);
	PQclear(r);
	check_composite(c, get_ok(tc, oid), &ct, "alt");

	/* Dropping the first attribute shifts the rest. */
	sql = it_fmt("ALTER TYPE %s DROP ATTRIBUTE %s", ct.name, ct.attr[0]);
	exec_ok(c, sql);
	free(sql);
	memmove(&ct.attr[0], &ct.attr[1], sizeof(ct.attr[0]) * (size_t)(ct.n - 1));
	memmove(&ct.type[0], &ct.type[1], sizeof(ct.type[0]) * (size_t)(ct.n - 1));
	ct.n--;
	r = lookup(c, &oid, 1);
	ck_assert(fpg_typecache_refresh(tc, r, &err));
	PQclear(r);
	check_composite(c, get_ok(tc, oid), &ct, "alt");
	fpg_typecache_free(tc);
	free(ct.name);
	PQfinish(c);
}
END_TEST

/* Built-ins are answered without loading, and never replaced. */
START_TEST(builtins_need_no_lookup)
{
	PGconn *c = connect_db();
	struct fpg_typecache *tc = fpg_typecache_new();
	static const struct {
		const char *name;
		enum fpg_type_kind kind;
	} b[] = {{"int4", FPG_TYPE_NUMBER},	 {"bool", FPG_TYPE_BOOL},
		 {"jsonb", FPG_TYPE_JSON},	 {"date", FPG_TYPE_DATE},
		 {"timestamptz", FPG_TYPE_TIMESTAMPTZ},
		 {"_text", FPG_TYPE_ARRAY},	 {"int2vector", FPG_TYPE_VECTOR},
		 {"text", FPG_TYPE_STRING}};
	uint32_t oids[8];
	for (size_t i = 0; i < 8; i++) {
		oids[i] = type_oid(c, b[i].name);
		const struct fpg_type *t = get_ok(tc, oids[i]);
		ck_assert_int_eq(t->kind, b[i].kind);
		ck_assert_str_eq(t->name, b[i].name);
	}
	uint32_t out[8];
	ck_assert_uint_eq(fpg_typecache_missing(tc, oids, 8, out, 8), 0);
	const struct fpg_type *before = get_ok(tc, oids[5]);
	PGresult *r = lookup(c, oids, 8);
	struct fpg_error err = {0};
	ck_assert(fpg_typecache_refresh(tc, r, &err));
	PQclear(r);
	ck_assert_ptr_eq(get_ok(tc, oids[5]), before);
	ck_assert_uint_eq(before->elem, type_oid(c, "text"));
	fpg_typecache_free(tc);
	PQfinish(c);
}
END_TEST

static const struct test_case cases[] = {
    TEST_CASE(composite_and_its_array),
    TEST_CASE(composite_inside_composite),
    TEST_CASE(enum_and_its_array),
    TEST_CASE(domains_take_their_base_type),
    TEST_CASE(range_and_its_array),
    TEST_CASE(unknown_oids_are_missing_then_known),
    TEST_CASE(load_refuses_a_wrong_result),
    TEST_CASE(refresh_follows_alter_type),
    TEST_CASE(builtins_need_no_lookup),
    {0},
};

const struct it_program it_program = {
    .name = "typecache",
    .cases = cases,
    .schema_per_case = true,
    .fork = true,
    .timeout_s = 60,
};
