/*
 * fpg_copy_build (src/copy.c) without a database: the exact COPY statement
 * for the query arguments of /copy, the arguments it must refuse (400),
 * query= texts it refuses early (PostgreSQL's own Parse is the boundary,
 * see it_copy), and a fuzz of hostile names and option values whose
 * statement is read back with PostgreSQL's lexing rules: every value must
 * come back whole, as one identifier or one string literal, and nothing
 * of it may end the statement.
 */
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "copy.h"
#include "error.h"
#include "unit.h"

/* The arguments: name, value, ..., NULL. */
struct args {
	const char *kv[16];
};

static const char *lookup(void *ctx, const char *name)
{
	const struct args *a = ctx;
	for (size_t i = 0; a->kv[i]; i += 2)
		if (strcmp(a->kv[i], name) == 0)
			return a->kv[i + 1];
	return NULL;
}

struct built {
	bool ok;
	char sql[4096];
	const char *ctype;
	struct fpg_error err;
};

static struct built build(struct args *a, bool in)
{
	struct built b;
	memset(&b, 0, sizeof(b));
	struct fpg_buf sql;
	fpg_buf_init(&sql);
	b.ok = fpg_copy_build(lookup, a, in, &sql, &b.ctype, &b.err);
	fpg_buf_putc(&sql, '\0');
	ck_assert(!sql.failed);
	snprintf(b.sql, sizeof(b.sql), "%s", sql.data ? sql.data : "");
	fpg_buf_deinit(&sql);
	return b;
}

static const char *describe(const struct args *a)
{
	static char out[2048];
	size_t l = 0;
	out[0] = '\0';
	for (size_t i = 0; a->kv[i]; i += 2)
		l += (size_t)snprintf(out + l, sizeof(out) - l, "%s%s=[%s]",
				      i ? "&" : "", a->kv[i], a->kv[i + 1]);
	return out;
}

static void expect_sql(struct args *a, bool in, const char *want,
		       const char *want_ctype)
{
	struct built b = build(a, in);
	ck_assert_msg(b.ok, "%s (%s): refused: %s", describe(a),
		      in ? "in" : "out", b.err.message);
	ck_assert_msg(strcmp(b.sql, want) == 0,
		      "%s (%s):\n got  [%s]\n want [%s]", describe(a),
		      in ? "in" : "out", b.sql, want);
	if (want_ctype)
		ck_assert_msg(b.ctype && strcmp(b.ctype, want_ctype) == 0,
			      "%s: content type %s, want %s", describe(a),
			      b.ctype ? b.ctype : "(null)", want_ctype);
}

static void expect_refused(struct args *a, bool in)
{
	struct built b = build(a, in);
	ck_assert_msg(!b.ok, "%s (%s): accepted as [%s]", describe(a),
		      in ? "in" : "out", b.sql);
	ck_assert_msg(b.err.http_status == 400, "%s: status %d", describe(a),
		      b.err.http_status);
	ck_assert_msg(b.err.message[0], "%s: no message", describe(a));
}

#define A(...) (&(struct args){{__VA_ARGS__, NULL}})

/* ---- exact statements ---- */

START_TEST(table_plain)
{
	expect_sql(A("table", "t"), true,
		   "COPY \"t\" FROM STDIN WITH (FORMAT csv)",
		   "text/csv; charset=utf-8");
	expect_sql(A("table", "t"), false,
		   "COPY \"t\" TO STDOUT WITH (FORMAT csv)",
		   "text/csv; charset=utf-8");
}
END_TEST

START_TEST(table_quoting)
{
	expect_sql(A("table", "we\"ird"), true,
		   "COPY \"we\"\"ird\" FROM STDIN WITH (FORMAT csv)", NULL);
	expect_sql(A("table", "\"\"\"\""), true,
		   "COPY \"\"\"\" FROM STDIN WITH (FORMAT csv)", NULL);
	expect_sql(A("table", "Mixed Case"), false,
		   "COPY \"Mixed Case\" TO STDOUT WITH (FORMAT csv)", NULL);
	expect_sql(A("table", "t; drop table x"), true,
		   "COPY \"t; drop table x\" FROM STDIN WITH (FORMAT csv)",
		   NULL);
	expect_sql(A("table", "a' b"), true,
		   "COPY \"a' b\" FROM STDIN WITH (FORMAT csv)", NULL);
}
END_TEST

START_TEST(schema_table)
{
	expect_sql(A("table", "s.t"), true,
		   "COPY \"s\".\"t\" FROM STDIN WITH (FORMAT csv)", NULL);
	expect_sql(A("table", "my\"s.my\"t"), false,
		   "COPY \"my\"\"s\".\"my\"\"t\" TO STDOUT WITH (FORMAT csv)",
		   NULL);
}
END_TEST

/* "..." quotes a part holding a dot, as PostgreSQL's own quoting does. */
START_TEST(table_quoted_parts)
{
	expect_sql(A("table", "\"my.table\""), true,
		   "COPY \"my.table\" FROM STDIN WITH (FORMAT csv)", NULL);
	expect_sql(A("table", "\"a.b\".\"c\""), false,
		   "COPY \"a.b\".\"c\" TO STDOUT WITH (FORMAT csv)", NULL);
	expect_sql(A("table", "s.\"x.y\""), true,
		   "COPY \"s\".\"x.y\" FROM STDIN WITH (FORMAT csv)", NULL);
	expect_sql(A("table", "\"s.1\".t"), true,
		   "COPY \"s.1\".\"t\" FROM STDIN WITH (FORMAT csv)", NULL);
	expect_sql(A("table", "\"we\"\"ird.\"\"\""), true,
		   "COPY \"we\"\"ird.\"\"\" FROM STDIN WITH (FORMAT csv)", NULL);
	expect_sql(A("table", "\"Mixed Case\""), true,
		   "COPY \"Mixed Case\" FROM STDIN WITH (FORMAT csv)", NULL);
	expect_sql(A("table", "t", "columns", "\"a,b\",c,\"d\"\"\""), true,
		   "COPY \"t\" (\"a,b\", \"c\", \"d\"\"\") FROM STDIN WITH "
		   "(FORMAT csv)",
		   NULL);
	static const char *bad[] = {
	    "\"",	"\"\"",	  "\"a",	 "\"a\"b",	 "\"a\".",
	    "\"a\".\"b", "\"a\".\"\"", "\"a.b\".c.d", "s.\"t\"x", "\"a\"\"",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		expect_refused(A("table", bad[i]), true);
		/* A column name is unquoted up to a comma, dots and all. */
		if (bad[i][0] == '"')
			expect_refused(A("table", "t", "columns", bad[i]),
				       true);
	}
}
END_TEST

START_TEST(columns)
{
	expect_sql(A("table", "t", "columns", "a"), true,
		   "COPY \"t\" (\"a\") FROM STDIN WITH (FORMAT csv)", NULL);
	expect_sql(A("table", "t", "columns", "a,b\"c,D e"), true,
		   "COPY \"t\" (\"a\", \"b\"\"c\", \"D e\") FROM STDIN WITH "
		   "(FORMAT csv)",
		   NULL);
	expect_sql(A("table", "s.t", "columns", "x,y"), false,
		   "COPY \"s\".\"t\" (\"x\", \"y\") TO STDOUT WITH (FORMAT "
		   "csv)",
		   NULL);
}
END_TEST

START_TEST(options)
{
	expect_sql(A("table", "t", "format", "text"), true,
		   "COPY \"t\" FROM STDIN WITH (FORMAT text)",
		   "text/plain; charset=utf-8");
	expect_sql(A("table", "t", "format", "binary"), false,
		   "COPY \"t\" TO STDOUT WITH (FORMAT binary)",
		   "application/octet-stream");
	expect_sql(A("table", "t", "format", "csv", "header", "true"), true,
		   "COPY \"t\" FROM STDIN WITH (FORMAT csv, HEADER true)",
		   NULL);
	expect_sql(A("table", "t", "header", "false"), false,
		   "COPY \"t\" TO STDOUT WITH (FORMAT csv, HEADER false)",
		   NULL);
	expect_sql(A("table", "t", "header", "1"), false,
		   "COPY \"t\" TO STDOUT WITH (FORMAT csv, HEADER true)", NULL);
	expect_sql(A("table", "t", "header", "true", "delimiter", ";", "null",
		     "NULL"),
		   true,
		   "COPY \"t\" FROM STDIN WITH (FORMAT csv, HEADER true, "
		   "DELIMITER E';', NULL E'NULL')",
		   NULL);
	expect_sql(A("table", "t", "format", "text", "delimiter", "|"), false,
		   "COPY \"t\" TO STDOUT WITH (FORMAT text, DELIMITER E'|')",
		   NULL);
	/* Literals with quotes inside. */
	expect_sql(A("table", "t", "delimiter", "'"), true,
		   "COPY \"t\" FROM STDIN WITH (FORMAT csv, DELIMITER E'''')",
		   NULL);
	expect_sql(A("table", "t", "null", "it's ''x"), true,
		   "COPY \"t\" FROM STDIN WITH (FORMAT csv, NULL E'it''s "
		   "''''x')",
		   NULL);
	/* Backslashes are doubled: E'' reads them the same whatever
	 * standard_conforming_strings says. */
	expect_sql(A("table", "t", "null", "\\' ) to program 'x' --"), true,
		   "COPY \"t\" FROM STDIN WITH (FORMAT csv, NULL "
		   "E'\\\\'' ) to program ''x'' --')",
		   NULL);
	expect_sql(A("table", "t", "format", "text", "delimiter", "\t"), true,
		   "COPY \"t\" FROM STDIN WITH (FORMAT text, DELIMITER E'\t')",
		   NULL);
	expect_sql(A("table", "t", "null", ""), false,
		   "COPY \"t\" TO STDOUT WITH (FORMAT csv, NULL E'')", NULL);
	expect_sql(A("table", "t", "null", "\\N"), false,
		   "COPY \"t\" TO STDOUT WITH (FORMAT csv, NULL E'\\\\N')", NULL);
}
END_TEST

START_TEST(query_out)
{
	expect_sql(A("query", "select 1"), false,
		   "COPY (\nselect 1\n) TO STDOUT WITH (FORMAT csv)",
		   "text/csv; charset=utf-8");
	expect_sql(A("query", "select * from t order by id", "format", "text"),
		   false,
		   "COPY (\nselect * from t order by id\n) TO STDOUT WITH "
		   "(FORMAT text)",
		   "text/plain; charset=utf-8");
	/* A trailing line comment stays off the suffix. */
	expect_sql(A("query", "select 1 -- done"), false,
		   "COPY (\nselect 1 -- done\n) TO STDOUT WITH (FORMAT csv)",
		   NULL);
}
END_TEST

/* Balanced texts that must be ACCEPTED as they are. */
START_TEST(query_accepted)
{
	static const char *ok[] = {
	    "select ')'",
	    "select '('",
	    "select ''')'''",
	    "select \")\" from t",
	    "select \"a\"\"b)\" from t",
	    "select $$)$$",
	    "select $$;$$",
	    "select $a$ ) $a$",
	    "select $a$ $$ ) $a$",
	    "select $tag_1$ ' ) $tag_1$",
	    "select 1 /* ) */",
	    "select 1 /* /* ) */ ) */",
	    "select 1 /* ; ' \" */",
	    "select (1), ((2))",
	    "select f(x) from (select 1 as x) s",
	    "select 1 -- )",
	    "select 1 -- )\n, 2",
	    "select 'a' || 'b' -- ' unbalanced in a comment",
	    "select '--', '/*'",
	    "select x from t where a = 'it''s'",
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		char *want = NULL;
		if (asprintf(&want, "COPY (\n%s\n) TO STDOUT WITH (FORMAT csv)",
			     ok[i]) < 0)
			ck_abort();
		expect_sql(A("query", ok[i]), false, want, NULL);
		free(want);
	}
}
END_TEST

/* Injection attempts and unbalanced texts: 400. */
START_TEST(query_refused)
{
	static const char *bad[] = {
	    "select 1) to program 'x' --",
	    "select 1) to program 'x' /*",
	    "select 1 --\n) to program 'x'",
	    "select 1 --\r) to program 'x'",
	    "select 1 /* unterminated",
	    "select 1 /* /* nested */ still open",
	    "select 'unterminated",
	    "select \"unterminated",
	    "select $$unterminated",
	    "select $a$ ) $b$",
	    "select (1",
	    "select 1)",
	    "select )(",
	    "select 1; select 2",
	    "select 1;",
	    "select ';' ; select 2",
	    "",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (bad[i][0])
			expect_refused(A("query", bad[i]), false);
}
END_TEST

/*
 * A backslash escapes in E'' strings only (standard_conforming_strings on
 * for '' ones), also in a part continued on a new line (E'a'\n'\''). The
 * early check used to give up on any backslash and leave it to
 * PostgreSQL's Parse (which it_copy shows refusing these); it now reads
 * them as PostgreSQL does.
 */
START_TEST(query_backslash_read_exactly)
{
	static const char *ok[] = {
	    "select E'it\\'s'",
	    "select e'\\\\', 'a\\b'",
	    "select E'a'\n'\\'' as x",
	    "select E'a' -- c\n'\\')'",
	    "select E'$$' || $$'$$",
	    "select xe'\\'",
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		char *want = NULL;
		if (asprintf(&want, "COPY (\n%s\n) TO STDOUT WITH (FORMAT csv)",
			     ok[i]) < 0)
			ck_abort();
		expect_sql(A("query", ok[i]), false, want, NULL);
		free(want);
	}
	/* Each closes COPY's parenthesis for PostgreSQL; the last two
	 * look balanced to a scan without E'' continuations. */
	static const char *bad[] = {
	    "select E'\\'' ) to program 'x' --'",
	    "select '\\' ) to program 'x' --'",
	    "select E'a'\n'\\'' ) to program 'x' --'",
	    "select E'a'\r -- c\n'\\'' ) to program 'x' --'",
	    "select E'\\';' ; select 2",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		expect_refused(A("query", bad[i]), false);
		expect_refused(A("query", bad[i], "null", "*/ --"), false);
	}
}
END_TEST

/*
 * Unbalanced parentheses hidden by a trailing line comment are plainly
 * not one statement: 400 early, before any PostgreSQL work.
 */
START_TEST(query_refused_unbalanced_before_line_comment)
{
	expect_refused(A("query", "select (1 -- x"), false);
	expect_refused(A("query", "select f((1) --"), false);
}
END_TEST

/*
 * "$x$" right after an identifier character is part of the identifier for
 * PostgreSQL (ident_cont includes '$'), not a dollar quote: a_$x$ is the
 * identifier a_$x$. Whatever follows is SQL. The text below closes
 * COPY's parenthesis; with null= the server's own literal closes the
 * program string, so
 *   query=select 1 as a_$x$) to program 'touch /tmp/p;$x$  &  null= --
 * becomes COPY (select 1 as a_$x$) to program 'touch /tmp/p;$x$\n) TO
 * STDOUT WITH (FORMAT csv, NULL ' --') -- a COPY TO PROGRAM.
 */
START_TEST(query_refused_dollar_after_identifier)
{
	static const char *bad[] = {
	    "select 1 as a_$x$) to program 'touch /tmp/p;$x$",
	    "select 1 as a_$x$) to program 'x' --$x$",
	    "select 1 as a$$x$) to program 'x' --$x$",
	    "select 1 as \xc3\xa9$x$) to program 'x' --$x$",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		expect_refused(A("query", bad[i]), false);
		expect_refused(A("query", bad[i], "null", " --"), false);
	}
}
END_TEST

/* ---- fuzz: hostile names and values, read back as PostgreSQL lexes ---- */

enum tok_kind { TK_END, TK_WORD, TK_IDENT, TK_STRING, TK_PUNCT, TK_BAD };

struct tok {
	enum tok_kind kind;
	char text[512]; /* the word, the decoded name or string, the char */
};

/*
 * The next token of a built statement by PostgreSQL's rules for what the
 * builder may write: words, "..." names ("" a quote), E'...' strings (a
 * backslash takes the next character, '' a quote) and ( ) , . -- anything
 * else (a comment, a semicolon, a bare quote) is TK_BAD.
 */
static const char *next_tok(const char *p, struct tok *t)
{
	size_t n = 0;
	while (*p == ' ')
		p++;
	t->text[0] = '\0';
	if (*p == '\0') {
		t->kind = TK_END;
		return p;
	}
	if (*p == '"' || (p[0] == 'E' && p[1] == '\'')) {
		char q = *p == '"' ? '"' : '\'';
		t->kind = q == '"' ? TK_IDENT : TK_STRING;
		p += q == '"' ? 1 : 2;
		for (;; p++) {
			if (*p == '\0' || n + 1 >= sizeof(t->text)) {
				t->kind = TK_BAD;
				return p;
			}
			if (q == '\'' && *p == '\\' && p[1])
				p++;
			else if (*p == q && p[1] == q)
				p++;
			else if (*p == q)
				break;
			t->text[n++] = *p;
		}
		t->text[n] = '\0';
		return p + 1;
	}
	if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')) {
		t->kind = TK_WORD;
		while (((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')) &&
		       n + 1 < sizeof(t->text))
			t->text[n++] = *p++;
		t->text[n] = '\0';
		return p;
	}
	t->kind = strchr("(),.", *p) ? TK_PUNCT : TK_BAD;
	t->text[0] = *p;
	t->text[1] = '\0';
	return p + 1;
}

/* One hostile piece: PostgreSQL's token enders and openers, or a byte. */
static void add_piece(char *out, size_t cap, const char *avoid)
{
	static const char *pieces[] = {
	    "\r", "\n", "*/", "/*", "--", "'", "\"", "\\", "$$", ";", ")", "(",
	    ".", ",", " ", "E'", "U&", "a", "Z", "\xc3\xa9", "\\'", "''", "\t",
	};
	size_t l = strlen(out);
	char one[2] = {(char)(1 + rand() % 255), '\0'};
	const char *pc = rand() % 3 == 0 ? one
					 : pieces[(size_t)rand() %
						  (sizeof(pieces) /
						   sizeof(pieces[0]))];
	if (strpbrk(pc, avoid) || l + strlen(pc) + 1 > cap)
		return;
	strcat(out, pc);
}

static void hostile(char *out, size_t cap, const char *avoid, bool empty_ok)
{
	out[0] = '\0';
	int n = rand() % 12 + (empty_ok ? 0 : 1);
	for (int i = 0; i < n || (!empty_ok && !out[0]); i++)
		add_piece(out, cap, avoid);
}

/* The name spelled for table=/columns=: quoted ("" for ") or as it is. */
static void spell(char *out, size_t cap, const char *name, bool quote)
{
	size_t l = 0;
	if (quote)
		out[l++] = '"';
	for (const char *s = name; *s && l + 3 < cap; s++) {
		if (quote && *s == '"')
			out[l++] = '"';
		out[l++] = *s;
	}
	if (quote)
		out[l++] = '"';
	out[l] = '\0';
}

static void expect_tok(const char **p, enum tok_kind kind, const char *text,
		       const char *sql)
{
	struct tok t;
	*p = next_tok(*p, &t);
	ck_assert_msg(t.kind == kind && (!text || strcmp(t.text, text) == 0),
		      "in [%s]: token %d [%s], want %d [%s]", sql, t.kind,
		      t.text, kind, text ? text : "");
}

START_TEST(fuzz_hostile_values)
{
	unsigned seed = unit_seed();
	for (int round = 0; round < 20000; round++) {
		char schema[64], table[64], col[64], null[64], delim[2];
		char s_sp[160], t_sp[160], c_sp[160], tsp[330];
		/* Unquoted names are taken up to a dot (a comma), and one
		 * starting with a quote is a quoted one. */
		bool qs = rand() % 2, qt = rand() % 2, qc = rand() % 2;
		bool with_schema = rand() % 2;
		hostile(schema, sizeof(schema), qs ? "" : ".", false);
		hostile(table, sizeof(table), qt ? "" : ".", false);
		hostile(col, sizeof(col), qc ? "" : ",", false);
		if (!qs && schema[0] == '"')
			schema[0] = 'x';
		if (!qt && table[0] == '"')
			table[0] = 'x';
		if (!qc && col[0] == '"')
			col[0] = 'x';
		hostile(null, sizeof(null), "\r\n", true);
		do
			delim[0] = (char)(1 + rand() % 127);
		while (strchr("\r\n\\", delim[0]));
		delim[1] = '\0';
		spell(s_sp, sizeof(s_sp), schema, qs);
		spell(t_sp, sizeof(t_sp), table, qt);
		spell(c_sp, sizeof(c_sp), col, qc);
		snprintf(tsp, sizeof(tsp), "%s%s%s", with_schema ? s_sp : "",
			 with_schema ? "." : "", t_sp);
		bool in = rand() % 2;
		struct built b =
		    build(A("table", tsp, "columns", c_sp, "null", null,
			    "delimiter", delim, "header", "true"),
			  in);
		ck_assert_msg(b.ok, "seed %u: table=[%s] columns=[%s] null=[%s] "
				    "delimiter=[%s] refused: %s",
			      seed, tsp, c_sp, null, delim, b.err.message);
		const char *p = b.sql;
		expect_tok(&p, TK_WORD, "COPY", b.sql);
		if (with_schema) {
			expect_tok(&p, TK_IDENT, schema, b.sql);
			expect_tok(&p, TK_PUNCT, ".", b.sql);
		}
		expect_tok(&p, TK_IDENT, table, b.sql);
		expect_tok(&p, TK_PUNCT, "(", b.sql);
		expect_tok(&p, TK_IDENT, col, b.sql);
		expect_tok(&p, TK_PUNCT, ")", b.sql);
		expect_tok(&p, TK_WORD, in ? "FROM" : "TO", b.sql);
		expect_tok(&p, TK_WORD, in ? "STDIN" : "STDOUT", b.sql);
		expect_tok(&p, TK_WORD, "WITH", b.sql);
		expect_tok(&p, TK_PUNCT, "(", b.sql);
		expect_tok(&p, TK_WORD, "FORMAT", b.sql);
		expect_tok(&p, TK_WORD, "csv", b.sql);
		expect_tok(&p, TK_PUNCT, ",", b.sql);
		expect_tok(&p, TK_WORD, "HEADER", b.sql);
		expect_tok(&p, TK_WORD, "true", b.sql);
		expect_tok(&p, TK_PUNCT, ",", b.sql);
		expect_tok(&p, TK_WORD, "DELIMITER", b.sql);
		expect_tok(&p, TK_STRING, delim, b.sql);
		expect_tok(&p, TK_PUNCT, ",", b.sql);
		expect_tok(&p, TK_WORD, "NULL", b.sql);
		expect_tok(&p, TK_STRING, null, b.sql);
		expect_tok(&p, TK_PUNCT, ")", b.sql);
		expect_tok(&p, TK_END, NULL, b.sql);
	}
}
END_TEST

/*
 * Texts that PostgreSQL lexes differently from a scan that stops line
 * comments only at \n and takes dollar-quote tags as ASCII only (found by
 * fuzz/fuzz_copy). For PostgreSQL, \r ends a "--" comment, a tag may hold
 * any byte >= 0x80 ($\xc3\xa9$ is a tag), and $x$ right after a number
 * opens a quote (1$x$). Each text below closes COPY's parenthesis for
 * PostgreSQL and then opens a block comment; with null= starting with the
 * comment's end and then "--", the first two ran COPY (select 1) TO
 * PROGRAM 'x' on a real PostgreSQL 15.
 */
START_TEST(query_refused_postgres_lexer)
{
	static const char *bad[] = {
	    "select 1 --\r) to program 'x' /*",
	    "select 1 --\r) to program 'x' --",
	    "select $\xc3\xa9$'$\xc3\xa9$) to program 'x' /*'",
	    "select $a\xc3\xa9$'$a\xc3\xa9$) to program 'x' /*'",
	    "select 1$a$'$a$) to program 'x' /*'",
	    "select 1$$'$$) to program 'x' /*'",
	    "select $1$a$'$a$) to program 'x' /*'",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		expect_refused(A("query", bad[i]), false);
		expect_refused(A("query", bad[i], "null", "*/ --"), false);
	}
	/* ... while these stay what they are */
	static const char *ok[] = {
	    "select $\xc3\xa9$ ) $\xc3\xa9$",
	    "select 1 --\r, 2",
	    "select a$b from t",
	    "select $1, $2",
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		char *want = NULL;
		if (asprintf(&want, "COPY (\n%s\n) TO STDOUT WITH (FORMAT csv)",
			     ok[i]) < 0)
			ck_abort();
		expect_sql(A("query", ok[i]), false, want, NULL);
		free(want);
	}
}
END_TEST

START_TEST(args_refused)
{
	/* table and query, neither, query with columns or for an upload */
	expect_refused(A("table", "t", "query", "select 1"), false);
	expect_refused(A("table", "t", "query", "select 1"), true);
	expect_refused(A("format", "csv"), false);
	expect_refused(A("format", "csv"), true);
	expect_refused(A("query", "select 1", "columns", "a"), false);
	expect_refused(A("query", "select 1"), true);
	/* tables */
	expect_refused(A("table", "a.b.c"), true);
	expect_refused(A("table", "a.b.c"), false);
	expect_refused(A("table", ".t"), true);
	expect_refused(A("table", "s."), true);
	expect_refused(A("table", ""), true);
	expect_refused(A("table", "."), false);
	/* columns */
	expect_refused(A("table", "t", "columns", ""), true);
	expect_refused(A("table", "t", "columns", "a,,b"), true);
	expect_refused(A("table", "t", "columns", ",a"), true);
	expect_refused(A("table", "t", "columns", "a,"), true);
	/* format, header */
	expect_refused(A("table", "t", "format", "xml"), true);
	expect_refused(A("table", "t", "format", "CSV"), false);
	expect_refused(A("table", "t", "format", ""), false);
	expect_refused(A("table", "t", "format", "csv) to program 'x'"),
		       false);
	expect_refused(A("table", "t", "header", "maybe"), true);
	expect_refused(A("table", "t", "header", ""), true);
	expect_refused(A("table", "t", "format", "binary", "header", "true"),
		       false);
	/* delimiter */
	expect_refused(A("table", "t", "delimiter", ""), true);
	expect_refused(A("table", "t", "delimiter", ";;"), true);
	expect_refused(A("table", "t", "delimiter", "\n"), true);
	expect_refused(A("table", "t", "delimiter", "\r"), true);
	expect_refused(A("table", "t", "delimiter", "\\"), true);
	expect_refused(A("table", "t", "format", "binary", "delimiter", ","),
		       true);
	/* null */
	expect_refused(A("table", "t", "null", "a\nb"), true);
	expect_refused(A("table", "t", "null", "\r"), false);
	expect_refused(A("table", "t", "format", "binary", "null", "x"),
		       false);
}
END_TEST

static const struct test_case cases[] = {
	TEST_CASE(table_plain),
	TEST_CASE(table_quoting),
	TEST_CASE(schema_table),
	TEST_CASE(table_quoted_parts),
	TEST_CASE(columns),
	TEST_CASE(options),
	TEST_CASE(query_out),
	TEST_CASE(query_accepted),
	TEST_CASE(query_refused),
	TEST_CASE(query_backslash_read_exactly),
	TEST_CASE(query_refused_unbalanced_before_line_comment),
	TEST_CASE(query_refused_dollar_after_identifier),
	TEST_CASE(query_refused_postgres_lexer),
	TEST_CASE(args_refused),
	TEST_CASE(fuzz_hostile_values),
	{0},
};

const struct unit_program unit_program = {
	.name = "copy",
	.cases = cases,
};
