/*
 * fpg_sqltext (src/sqltext.c): tokens where PostgreSQL's scan.l puts
 * them, for the texts where a hand-made scan goes wrong (\r ending a
 * comment, nested comments, E'' escapes and their continuation lines,
 * U&'' and "" quoting, dollar quotes after names, numbers and
 * parameters, everything left open), and a randomized check that the
 * tokens of any text are in order, inside it, and separated by nothing
 * but whitespace and comments.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqltext.h"
#include "unit.h"

static char kind_letter(enum fpg_sqltext_kind k)
{
	return "EWISNPOCU"[k];
}

/*
 * The tokens of sql as "W:select S:'a' C:;", each a kind letter and the
 * token's text. The text is copied into a buffer of its exact size, so
 * an ASan build sees any read past the NUL.
 */
static char *tokens(const char *sql)
{
	static char out[4096];
	size_t n = strlen(sql), l = 0;
	char *copy = malloc(n + 1);
	ck_assert_ptr_nonnull(copy);
	memcpy(copy, sql, n + 1);
	struct fpg_sqltext s;
	struct fpg_sqltext_token t;
	fpg_sqltext_init(&s, copy);
	out[0] = '\0';
	while (fpg_sqltext_next(&s, &t) != FPG_SQLTEXT_END) {
		int w = snprintf(out + l, sizeof(out) - l, "%s%c:%.*s",
				 l ? " " : "", kind_letter(t.kind), (int)t.len,
				 t.start);
		ck_assert(w > 0 && (size_t)w < sizeof(out) - l);
		l += (size_t)w;
	}
	/* The end stays the end. */
	ck_assert_int_eq(fpg_sqltext_next(&s, &t), FPG_SQLTEXT_END);
	ck_assert_ptr_eq(t.start, copy + n);
	free(copy);
	return out;
}

struct lexcase {
	const char *sql, *want;
};

static void check_cases(const struct lexcase *c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(strcmp(tokens(c[i].sql), c[i].want) == 0,
			      "[%s]: got [%s], want [%s]", c[i].sql,
			      tokens(c[i].sql), c[i].want);
}

#define CHECK_CASES(c) check_cases(c, sizeof(c) / sizeof(c[0]))

START_TEST(comments)
{
	static const struct lexcase c[] = {
	    {"a -- x\rb", "W:a W:b"},
	    {"a -- x\nb", "W:a W:b"},
	    {"a --x", "W:a"},
	    {"--", ""},
	    {"-- BEGIN\n\rSELECT", "W:SELECT"},
	    {"a /* x /* y */ z */ b", "W:a W:b"},
	    {"a /* x /* y */ b", "W:a U:/* x /* y */ b"},
	    {"a /*/ b */ c", "W:a W:c"},
	    {"a /* **/ b", "W:a W:b"},
	    {"/*", "U:/*"},
	    {"/* -- */ b", "W:b"},
	    {"-- /*\nb", "W:b"},
	    {"a+/*c*/b", "W:a O:+ W:b"},
	    {"a +--c\nb", "W:a O:+ W:b"},
	    {"a */ b", "W:a O:*/ W:b"},
	    {" \t\f\v\r\n", ""},
	};
	CHECK_CASES(c);
}
END_TEST

START_TEST(strings)
{
	static const struct lexcase c[] = {
	    {"'it''s' x", "S:'it''s' W:x"},
	    /* standard_conforming_strings: a backslash is a byte */
	    {"'a\\' b", "S:'a\\' W:b"},
	    {"E'a\\'b' c", "S:E'a\\'b' W:c"},
	    {"e'\\\\' x", "S:e'\\\\' W:x"},
	    {"E'\\", "U:E'\\"},
	    {"E'\\'", "U:E'\\'"},
	    {"E'$$' $$x$$", "S:E'$$' S:$$x$$"},
	    {"E'/*' */", "S:E'/*' O:*/"},
	    /* E is a prefix only where a token starts */
	    {"xe'\\' y", "W:xe S:'\\' W:y"},
	    {"a1e'\\' y", "W:a1e S:'\\' W:y"},
	    /* a continuation line keeps the E'' rules */
	    {"E'a'\n'\\'' b", "S:E'a'\n'\\'' W:b"},
	    {"E'a' -- c\r '\\'' b", "S:E'a' -- c\r '\\'' W:b"},
	    {"E'a'\n-- c\n'\\'' b", "S:E'a'\n-- c\n'\\'' W:b"},
	    /* ... and only after a newline */
	    {"E'a' '\\'' b", "S:E'a' U:'\\'' b"},
	    {"'a' -- c", "S:'a'"},
	    {"'a'\n'b' c", "S:'a'\n'b' W:c"},
	    {"U&'d\\0061t\\+000061' x", "S:U&'d\\0061t\\+000061' W:x"},
	    {"U&'\\' x", "S:U&'\\' W:x"},
	    {"u&'a''b' x", "S:u&'a''b' W:x"},
	    {"B'01' X'1F' N'x'", "S:B'01' S:X'1F' S:N'x'"},
	    {"'", "U:'"},
	    {"'a''", "U:'a''"},
	    {"E'a'\n'", "U:E'a'\n'"},
	};
	CHECK_CASES(c);
}
END_TEST

START_TEST(identifiers)
{
	static const struct lexcase c[] = {
	    {"\"a\"\"b\" c", "I:\"a\"\"b\" W:c"},
	    {"\"a\\\" c", "I:\"a\\\" W:c"},
	    {"U&\"a\"\"b\" c", "I:U&\"a\"\"b\" W:c"},
	    {"\"a", "U:\"a"},
	    {"\"\"\"", "U:\"\"\""},
	    {"\"\" x", "I:\"\" W:x"},
	    {"a$b c_1 _x \xc3\xa9t\xc3\xa9", "W:a$b W:c_1 W:_x W:\xc3\xa9t\xc3\xa9"},
	    {"U&x", "W:U O:& W:x"},
	};
	CHECK_CASES(c);
}
END_TEST

START_TEST(dollar_quotes)
{
	static const struct lexcase c[] = {
	    {"$$a$$ b", "S:$$a$$ W:b"},
	    {"$a$ $b$ ) $a$ c", "S:$a$ $b$ ) $a$ W:c"},
	    {"$a$ $A$ $a$", "S:$a$ $A$ $a$"},
	    {"$a$x$ba$a$ c", "S:$a$x$ba$a$ W:c"},
	    {"$_1$x$_1$", "S:$_1$x$_1$"},
	    {"$\xc3\xa9$ ) $\xc3\xa9$", "S:$\xc3\xa9$ ) $\xc3\xa9$"},
	    /* after a name's byte the '$' is the name's */
	    {"a$a$ x", "W:a$a$ W:x"},
	    {"a1$x$ y", "W:a1$x$ W:y"},
	    {"\xc3\xa9$x$ y", "W:\xc3\xa9$x$ W:y"},
	    /* after a number or a parameter it opens a quote */
	    {"1$a$x$a$ y", "N:1 S:$a$x$a$ W:y"},
	    {"$1$a$x$a$", "P:$1 S:$a$x$a$"},
	    {".5$a$ $a$", "N:.5 S:$a$ $a$"},
	    /* $1 is a parameter, a $ without a tag a character */
	    {"$1, $22", "P:$1 C:, P:$22"},
	    {"$1a$x$", "P:$1 W:a$x$"},
	    {"$ab", "C:$ W:ab"},
	    {"$", "C:$"},
	    {"$a$ open", "U:$a$ open"},
	    {"$$", "U:$$"},
	    {"$a$ $a", "U:$a$ $a"},
	};
	CHECK_CASES(c);
}
END_TEST

START_TEST(numbers_and_operators)
{
	static const struct lexcase c[] = {
	    {"1.5e-3x", "N:1.5e-3 W:x"},
	    {"1e", "N:1 W:e"},
	    {"1e+", "N:1 W:e O:+"},
	    {"1.e5 .5 5.", "N:1.e5 N:.5 N:5."},
	    /* scan.l before 15 reads 1e'' as 1 and E'' (15 refuses it) */
	    {"1e'\\''", "N:1 S:e'\\''"},
	    {"a<=b::int", "W:a O:<= W:b C:: C:: W:int"},
	    {"a || b", "W:a O:|| W:b"},
	    {"select 1; select 2;", "W:select N:1 C:; W:select N:2 C:;"},
	    {"(a)[1]", "C:( W:a C:) C:[ N:1 C:]"},
	};
	CHECK_CASES(c);
}
END_TEST

START_TEST(helpers)
{
	struct fpg_sqltext s;
	struct fpg_sqltext_token t;
	fpg_sqltext_init(&s, "Begin \"begin\" ;");
	ck_assert_int_eq(fpg_sqltext_next(&s, &t), FPG_SQLTEXT_WORD);
	ck_assert(fpg_sqltext_is_word(&t, "BEGIN"));
	ck_assert(!fpg_sqltext_is_word(&t, "BEGINS"));
	ck_assert(!fpg_sqltext_is_word(&t, "BEG"));
	ck_assert(!fpg_sqltext_is_char(&t, 'B'));
	ck_assert_int_eq(fpg_sqltext_next(&s, &t), FPG_SQLTEXT_IDENT);
	ck_assert(!fpg_sqltext_is_word(&t, "begin"));
	ck_assert_int_eq(fpg_sqltext_next(&s, &t), FPG_SQLTEXT_CHAR);
	ck_assert(fpg_sqltext_is_char(&t, ';'));
	ck_assert_str_eq(fpg_sqltext_kind_to_str(FPG_SQLTEXT_UNTERMINATED),
			 "unterminated");
	ck_assert_str_eq(fpg_sqltext_kind_to_str(FPG_SQLTEXT_END), "end");
}
END_TEST

/* A random text from the pieces that start or end PostgreSQL's tokens. */
static void random_text(char *out, size_t cap)
{
	static const char *pieces[] = {
	    "\r", "\n", " ", "*/", "/*", "--", "'", "''", "\"", "\\", "$",
	    "$$", "$a$", "$1", ";", "(", ")", "E'", "e", "U&", "a", "1",
	    ".", "+", "-", "*", "/", "\xc3\xa9", "_", "x'", "\t", "\v",
	};
	size_t l = 0;
	int n = rand() % 24;
	for (int i = 0; i < n; i++) {
		const char *pc = pieces[(size_t)rand() %
					(sizeof(pieces) / sizeof(pieces[0]))];
		size_t pl = strlen(pc);
		if (l + pl + 1 > cap)
			break;
		memcpy(out + l, pc, pl);
		l += pl;
	}
	out[l] = '\0';
}

/* Nothing but whitespace and comments in [from, to). */
static bool only_blank(const char *from, const char *to)
{
	char buf[512];
	size_t n = (size_t)(to - from);
	ck_assert(n < sizeof(buf));
	memcpy(buf, from, n);
	buf[n] = '\0';
	struct fpg_sqltext s;
	struct fpg_sqltext_token t;
	fpg_sqltext_init(&s, buf);
	return fpg_sqltext_next(&s, &t) == FPG_SQLTEXT_END;
}

START_TEST(random_texts_tile)
{
	unsigned seed = unit_seed();
	for (int round = 0; round < 50000; round++) {
		char text[256];
		random_text(text, sizeof(text));
		struct fpg_sqltext s;
		struct fpg_sqltext_token t;
		const char *prev = text;
		fpg_sqltext_init(&s, text);
		while (fpg_sqltext_next(&s, &t) != FPG_SQLTEXT_END) {
			ck_assert_msg(t.start >= prev && t.len > 0 &&
					  t.start + t.len <= text + strlen(text),
				      "seed %u: [%s]", seed, text);
			ck_assert_msg(only_blank(prev, t.start),
				      "seed %u: [%s]: text skipped before %s",
				      seed, text, t.start);
			prev = t.start + t.len;
		}
		ck_assert_msg(only_blank(prev, t.start), "seed %u: [%s]", seed,
			      text);
	}
}
END_TEST

static const struct test_case cases[] = {
	TEST_CASE(comments),
	TEST_CASE(strings),
	TEST_CASE(identifiers),
	TEST_CASE(dollar_quotes),
	TEST_CASE(numbers_and_operators),
	TEST_CASE(helpers),
	TEST_CASE(random_texts_tile),
	{0},
};

const struct unit_program unit_program = {
	.name = "sqltext",
	.cases = cases,
};
