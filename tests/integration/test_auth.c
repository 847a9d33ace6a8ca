/*
 * --auth password: each client names its PostgreSQL login (HTTP Basic)
 * and runs as that login, checked by PostgreSQL. The cluster gets two
 * roles with SCRAM passwords (pg_hba.conf asks them for passwords over
 * TCP) and a table whose row-level security policy shows each role its
 * own rows.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "http.h"
#include "it.h"
#include "pg_harness.h"

static unsigned port;	     /* --auth password,api-key */
static unsigned quick_port;  /* the same, rechecking after 300 ms */
static char alice_pw[40], bob_pw[40], carol_pw[40];
static char keys_path[64], pgpass_path[64];
static char key1[40], key2[40];
static char queries_dir[64];

static void write_query(const char *name, const char *text)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/%s.sql", queries_dir, name);
	FILE *f = fopen(path, "w");
	if (!f)
		abort(); /* from setup(), where Check cannot */
	fputs(text, f);
	fclose(f);
}

/* The API key file: one line for key (its SHA-256), carol's. */
static void write_keys(const char *key, const char *extra_line)
{
	unsigned char d[32];
	unsigned int n = 0;
	EVP_Digest(key, strlen(key), d, &n, EVP_sha256(), NULL);
	FILE *f = fopen(keys_path, "w");
	if (!f)
		abort(); /* also called from setup(), where Check cannot */
	fprintf(f, "# test keys\n\n");
	for (unsigned i = 0; i < n; i++)
		fprintf(f, "%02x", d[i]);
	fprintf(f, " carol the test's key\n%s", extra_line ? extra_line : "");
	fclose(f);
}

/* "Authorization: Basic base64(user:password)" (static storage). */
static const char *basic(const char *user, const char *password)
{
	static char header[300];
	char plain[160];
	unsigned char b64[220];
	int n = snprintf(plain, sizeof(plain), "%s:%s", user, password);
	EVP_EncodeBlock(b64, (const unsigned char *)plain, n);
	snprintf(header, sizeof(header), "Authorization: Basic %s", b64);
	return header;
}

static struct http_resp *post_as(unsigned p, const char *user,
				 const char *password, json_t *j)
{
	char *body = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	const char *headers[] = {user ? basic(user, password) : NULL, NULL};
	struct http_resp *r =
		http_request(p, "POST", "/query", body, user ? headers : NULL);
	free(body);
	return r;
}

static struct http_resp *sql_as(unsigned p, const char *user,
				const char *password, const char *sql)
{
	return post_as(p, user, password, json_pack("{s:s}", "sql", sql));
}

/* The scalar a statement answers as user (the test fails otherwise). */
static char *scalar_as(unsigned p, const char *user, const char *password,
		       const char *sql)
{
	struct http_resp *r = post_as(p, user, password,
				      json_pack("{s:s,s:s}", "sql", sql,
						"expect", "scalar"));
	ck_assert_msg(r->status == 200 && json_is_object(r->json),
		      "%s as %s: %ld %s", sql, user, r->status, r->body);
	json_t *v = json_object_get(r->json, "value");
	char *out = json_is_string(v) ? strdup(json_string_value(v))
				       : json_dumps(v, JSON_ENCODE_ANY);
	http_resp_free(r);
	return out;
}

static void random_password(char *out, size_t n)
{
	static const char chars[] = "abcdefghijkmnopqrstuvwxyzABCDEFGH23456789";
	for (size_t i = 0; i + 1 < n; i++)
		out[i] = chars[(size_t)rand() % (sizeof(chars) - 1)];
	out[n - 1] = '\0';
}

/* Roles, the table, and pg_hba.conf asking alice and bob for passwords. */
static void setup(void)
{
	random_password(alice_pw, 24);
	random_password(bob_pw, 24);
	random_password(carol_pw, 24);
	char sql[1024];
	snprintf(sql, sizeof(sql),
		 "SET password_encryption = 'scram-sha-256';"
		 "CREATE ROLE alice LOGIN PASSWORD '%s';"
		 "CREATE ROLE bob LOGIN PASSWORD '%s';"
		 "CREATE ROLE carol LOGIN PASSWORD '%s';"
		 "CREATE TABLE auth_notes (owner name NOT NULL, note text);"
		 "ALTER TABLE auth_notes ENABLE ROW LEVEL SECURITY;"
		 "CREATE POLICY own ON auth_notes USING (owner = current_user)"
		 " WITH CHECK (owner = current_user);"
		 "GRANT SELECT, INSERT ON auth_notes TO alice, bob;"
		 "INSERT INTO auth_notes VALUES ('alice', 'a1'), ('alice', 'a2'),"
		 " ('bob', 'b1')",
		 alice_pw, bob_pw, carol_pw);
	pgh_exec(sql);
	/* carol is an API key's role: the gateway finds her password where
	 * libpq looks, PGPASSFILE. */
	snprintf(pgpass_path, sizeof(pgpass_path), "/tmp/fpg_pgpass_XXXXXX");
	int fd = mkstemp(pgpass_path);
	if (fd < 0)
		abort();
	FILE *f = fdopen(fd, "w");
	fprintf(f, "127.0.0.1:%u:*:carol:%s\n", pgh_port(), carol_pw);
	fclose(f);
	setenv("PGPASSFILE", pgpass_path, 1);
	snprintf(keys_path, sizeof(keys_path), "/tmp/fpg_keys_XXXXXX");
	fd = mkstemp(keys_path);
	if (fd < 0)
		abort();
	close(fd);
	random_password(key1, 32);
	random_password(key2, 32);
	write_keys(key1, NULL);
	snprintf(queries_dir, sizeof(queries_dir), "/tmp/fpg_queries_XXXXXX");
	if (!mkdtemp(queries_dir))
		abort();
	write_query("my_notes", "-- roles: alice, bob\n"
				"SELECT string_agg(note, ',' ORDER BY note) "
				"FROM auth_notes\n");
	write_query("add", "SELECT $1::int + $2::int\n");
	/* The server writes its own file (tabs become spaces: COPY's text
	 * format would escape them). */
	pgh_exec("CREATE TEMP TABLE hba AS SELECT 1 AS n, 'host all alice,bob,carol "
		 "127.0.0.1/32 scram-sha-256' AS line UNION ALL SELECT 2, "
		 "'host all alice,bob,carol ::1/128 scram-sha-256' UNION ALL SELECT "
		 "2 + o, translate(l, chr(9), ' ') FROM regexp_split_to_table("
		 "pg_read_file(current_setting('hba_file')), E'\\n') WITH "
		 "ORDINALITY AS t(l, o);"
		 "DO $$BEGIN EXECUTE format('COPY (SELECT line FROM hba ORDER "
		 "BY n) TO %L', current_setting('hba_file')); END$$;"
		 "SELECT pg_reload_conf()");
}

/* The program's files go with it. */
__attribute__((destructor)) static void remove_files(void)
{
	if (queries_dir[0]) {
		char path[128];
		snprintf(path, sizeof(path), "%s/my_notes.sql", queries_dir);
		unlink(path);
		snprintf(path, sizeof(path), "%s/add.sql", queries_dir);
		unlink(path);
		rmdir(queries_dir);
	}
	if (keys_path[0])
		unlink(keys_path);
	if (pgpass_path[0])
		unlink(pgpass_path);
}

START_TEST(clients_must_name_a_login)
{
	struct http_resp *r = sql_as(port, NULL, NULL, "SELECT 1");
	ck_assert_int_eq(r->status, 401);
	/* One challenge per way this server takes. */
	ck_assert_ptr_nonnull(strcasestr(r->headers, "WWW-Authenticate: Basic"));
	ck_assert_ptr_nonnull(strcasestr(r->headers, "WWW-Authenticate: Bearer"));
	ck_assert_ptr_nonnull(strstr(r->body, "\"unauthorized\""));
	http_resp_free(r);
	/* What runs no client SQL needs none; /readyz asks PostgreSQL as the
	 * --db login, which connects only then. */
	static const char *const open_paths[] = {"/healthz", "/readyz",
						 "/stats", "/metrics"};
	for (size_t i = 0; i < 4; i++) {
		r = http_get(port, open_paths[i]);
		ck_assert_msg(r->status == 200, "%s: %ld %s", open_paths[i],
			      r->status, r->body);
		http_resp_free(r);
	}
}
END_TEST

START_TEST(each_runs_as_itself)
{
	for (int round = 0; round < 3; round++) {
		char *u = scalar_as(port, "alice", alice_pw,
				    "SELECT current_user::text");
		ck_assert_str_eq(u, "alice");
		free(u);
		u = scalar_as(port, "bob", bob_pw, "SELECT session_user::text");
		ck_assert_str_eq(u, "bob");
		free(u);
		/* Row-level security sees the login. */
		char *n = scalar_as(port, "alice", alice_pw,
				    "SELECT string_agg(note, ',' ORDER BY note)"
				    " FROM auth_notes");
		ck_assert_str_eq(n, "a1,a2");
		free(n);
		n = scalar_as(port, "bob", bob_pw,
			      "SELECT string_agg(note, ',') FROM auth_notes");
		ck_assert_str_eq(n, "b1");
		free(n);
	}
	struct http_resp *r = sql_as(port, "bob", bob_pw,
				     "INSERT INTO auth_notes VALUES ('alice', "
				     "'forged')");
	ck_assert_int_ne(r->status, 200); /* 42501: WITH CHECK */
	http_resp_free(r);
}
END_TEST

START_TEST(wrong_passwords_are_401)
{
	char wrong[40];
	random_password(wrong, 24);
	const char *users[] = {"alice", "bob", "nobody_here"};
	for (size_t i = 0; i < 3; i++) {
		struct http_resp *r =
			sql_as(port, users[i], wrong, "SELECT current_user");
		ck_assert_msg(r->status == 401, "%s: %ld %s", users[i],
			      r->status, r->body);
		char *how = http_header(r, "WWW-Authenticate");
		ck_assert_ptr_nonnull(how);
		free(how);
		/* Nothing tells whether the role exists. */
		ck_assert_ptr_null(strstr(r->body, users[i]));
		http_resp_free(r);
	}
	/* The right one still works after the wrong ones. */
	char *u = scalar_as(port, "alice", alice_pw, "SELECT current_user::text");
	ck_assert_str_eq(u, "alice");
	free(u);
}
END_TEST

START_TEST(nobody_becomes_another)
{
	static const char *const tries[] = {
	    "SET ROLE bob",
	    "SELECT set_config('role', 'bob', false)",
	    "SELECT set_config('session_authorization', 'bob', false)",
	    "DO $$BEGIN SET ROLE bob; END$$",
	    "DO $$BEGIN EXECUTE 'SET SESSION AUTHORIZATION bob'; END$$",
	    "RESET ROLE",
	    "RESET SESSION AUTHORIZATION",
	};
	for (size_t i = 0; i < sizeof(tries) / sizeof(*tries); i++) {
		struct http_resp *r = sql_as(port, "alice", alice_pw, tries[i]);
		http_resp_free(r);
		for (int k = 0; k < 3; k++) {
			char *u = scalar_as(port, "alice", alice_pw,
					    "SELECT current_user || '/' || "
					    "session_user");
			ck_assert_msg(strcmp(u, "alice/alice") == 0,
				      "after %s: %s", tries[i], u);
			free(u);
		}
	}
}
END_TEST

START_TEST(changed_password_is_noticed)
{
	char old_pw[40], new_pw[40];
	snprintf(old_pw, sizeof(old_pw), "%s", bob_pw);
	random_password(new_pw, 24);
	char *u = scalar_as(quick_port, "bob", old_pw, "SELECT current_user::text");
	ck_assert_str_eq(u, "bob");
	free(u);
	char sql[200];
	snprintf(sql, sizeof(sql), "ALTER ROLE bob PASSWORD '%s'", new_pw);
	pgh_exec(sql);
	/* Within the recheck time the remembered one may still serve; after
	 * it, PostgreSQL is asked again and says no. */
	struct timespec ts = {0, 400 * 1000000L};
	nanosleep(&ts, NULL);
	struct http_resp *r = sql_as(quick_port, "bob", old_pw, "SELECT 1");
	ck_assert_msg(r->status == 401, "old password: %ld %s", r->status,
		      r->body);
	http_resp_free(r);
	u = scalar_as(quick_port, "bob", new_pw, "SELECT current_user::text");
	ck_assert_str_eq(u, "bob");
	free(u);
	snprintf(bob_pw, sizeof(bob_pw), "%s", new_pw);
}
END_TEST

static struct http_resp *post_auth(const char *user, const char *password,
				   const char *path, const char *body)
{
	const char *headers[] = {basic(user, password), NULL};
	return http_request(port, "POST", path, body, headers);
}

struct sleeper {
	char id[64];
	struct http_resp *r;
	pthread_t th;
};

static const char cancel_key[] = "alice-cancel-key-0123456789";

static void *sleeper_main(void *arg)
{
	struct sleeper *v = arg;
	char hid[128], hkey[200], auth[300];
	snprintf(hid, sizeof(hid), "X-Request-Id: %s", v->id);
	snprintf(hkey, sizeof(hkey), "X-Cancel-Key: %s", cancel_key);
	snprintf(auth, sizeof(auth), "%s", basic("alice", alice_pw));
	const char *const hdrs[] = {hid, hkey, auth,
				    "Content-Type: application/json", NULL};
	v->r = http_request(port, "POST", "/query?stream=true",
			    "{\"sql\":\"SELECT pg_sleep(3)\"}", hdrs);
	return NULL;
}

static long cancel_as(const char *user, const char *password, const char *id)
{
	char path[200], hkey[200], auth[300];
	snprintf(path, sizeof(path), "/query/%s", id);
	snprintf(hkey, sizeof(hkey), "X-Cancel-Key: %s", cancel_key);
	snprintf(auth, sizeof(auth), "%s", basic(user, password));
	const char *const hdrs[] = {hkey, auth, NULL};
	struct http_resp *r = http_request(port, "DELETE", path, NULL, hdrs);
	long st = r->status;
	http_resp_free(r);
	return st;
}

START_TEST(cancels_belong_to_their_login)
{
	struct sleeper v;
	snprintf(v.id, sizeof(v.id), "sleeper-%u-%d", it_seed(), rand());
	pthread_create(&v.th, NULL, sleeper_main, &v);
	/* Wait until it runs. */
	bool running = false;
	for (int i = 0; i < 100 && !running; i++) {
		usleep(30 * 1000);
		char *n = pgh_scalar("SELECT count(*) FROM pg_stat_activity "
				     "WHERE usename = 'alice' AND query LIKE "
				     "'SELECT pg_sleep(3)%'");
		running = strcmp(n, "0") != 0;
		free(n);
	}
	ck_assert(running);
	/* bob knows the id and the key, but is not alice: nothing there. */
	ck_assert_int_eq(cancel_as("bob", bob_pw, v.id), 404);
	ck_assert_int_eq(cancel_as("alice", alice_pw, v.id), 202);
	pthread_join(v.th, NULL);
	ck_assert_msg(v.r->status == 504 || strstr(v.r->body, "57014"),
		      "sleeper: %ld %s", v.r->status, v.r->body);
	http_resp_free(v.r);
}
END_TEST

START_TEST(sessions_belong_to_their_login)
{
	struct http_resp *r = post_auth("alice", alice_pw, "/tx", "{}");
	ck_assert_msg(r->status == 201, "%ld %s", r->status, r->body);
	const char *t = json_string_value(json_object_get(r->json, "tx"));
	ck_assert_ptr_nonnull(t);
	char token[200], path[300];
	snprintf(token, sizeof(token), "%s", t);
	http_resp_free(r);
	snprintf(path, sizeof(path), "/tx/%s/query", token);
	r = post_auth("alice", alice_pw, path,
		      "{\"sql\":\"INSERT INTO auth_notes VALUES "
		      "(current_user, 'in tx')\"}");
	ck_assert_msg(r->status == 200, "%ld %s", r->status, r->body);
	http_resp_free(r);
	/* bob holds the token, not the login: it does not exist for him. */
	static const char *const steps[] = {"query", "commit", "rollback"};
	for (size_t i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "/tx/%s/%s", token, steps[i]);
		r = post_auth("bob", bob_pw, path,
			      "{\"sql\":\"SELECT current_user\"}");
		ck_assert_msg(r->status == 404, "%s as bob: %ld %s", steps[i],
			      r->status, r->body);
		ck_assert_ptr_nonnull(strstr(r->body, "transaction_not_found"));
		http_resp_free(r);
	}
	/* Nor its COPY. */
	snprintf(path, sizeof(path), "/tx/%s/copy?table=auth_notes", token);
	const char *copy_headers[] = {basic("bob", bob_pw),
				      "X-Requested-With: test", NULL};
	r = http_request(port, "GET", path, NULL, copy_headers);
	ck_assert_msg(r->status == 404, "copy as bob: %ld %s", r->status,
		      r->body);
	http_resp_free(r);
	snprintf(path, sizeof(path), "/tx/%s/commit", token);
	r = post_auth("alice", alice_pw, path, "{}");
	ck_assert_msg(r->status == 200, "%ld %s", r->status, r->body);
	http_resp_free(r);
	char *n = scalar_as(port, "alice", alice_pw,
			    "SELECT count(*) FROM auth_notes WHERE note = 'in tx'");
	ck_assert_str_eq(n, "1");
	free(n);
	pgh_exec("DELETE FROM auth_notes WHERE note = 'in tx'");
}
END_TEST

static struct http_resp *sql_with(unsigned p, const char *authorization,
				  const char *sql)
{
	char header[200];
	snprintf(header, sizeof(header), "Authorization: %s", authorization);
	json_t *j = json_pack("{s:s,s:s}", "sql", sql, "expect", "scalar");
	char *body = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	const char *headers[] = {header, NULL};
	struct http_resp *r = http_request(p, "POST", "/query", body, headers);
	free(body);
	return r;
}

START_TEST(api_keys_run_as_their_role)
{
	char bearer[80];
	snprintf(bearer, sizeof(bearer), "Bearer %s", key1);
	for (int i = 0; i < 3; i++) {
		struct http_resp *r = sql_with(port, bearer,
					       "SELECT current_user::text");
		ck_assert_msg(r->status == 200 && strstr(r->body, "\"carol\""),
			      "%ld %s", r->status, r->body);
		http_resp_free(r);
	}
	/* An unknown key, or a key with junk after it. */
	char wrong[80];
	snprintf(wrong, sizeof(wrong), "Bearer %sx", key1);
	const char *bad[] = {wrong, "Bearer ", "Bearer a b", "Token abc"};
	for (size_t i = 0; i < 4; i++) {
		struct http_resp *r = sql_with(port, bad[i], "SELECT 1");
		ck_assert_msg(r->status == 401, "%s: %ld", bad[i], r->status);
		char *how = http_header(r, "WWW-Authenticate");
		ck_assert_ptr_nonnull(how);
		free(how);
		http_resp_free(r);
	}
	/* The key's login is not a password's: carol with no password gets
	 * nothing of it. */
	struct http_resp *r = sql_as(port, "carol", "", "SELECT current_user");
	ck_assert_int_eq(r->status, 401);
	http_resp_free(r);
}
END_TEST

static struct http_resp *named(const char *authorization, const char *name,
				const char *body)
{
	char header[400], path[100];
	snprintf(header, sizeof(header), "Authorization: %s", authorization);
	snprintf(path, sizeof(path), "/q/%s", name);
	const char *headers[] = {header, "Content-Type: application/json",
				 NULL};
	return http_request(port, "POST", path, body, headers);
}

START_TEST(named_queries_run_as_the_caller)
{
	char alice[300], bob[300], carol[80];
	snprintf(alice, sizeof(alice), "%s", basic("alice", alice_pw) + 15);
	snprintf(bob, sizeof(bob), "%s", basic("bob", bob_pw) + 15);
	snprintf(carol, sizeof(carol), "Bearer %s", key1);
	/* Row-level security sees the caller. */
	struct http_resp *r =
		named(alice, "my_notes", "{\"expect\":\"scalar\"}");
	ck_assert_msg(r->status == 200 && strstr(r->body, "\"a1,a2\""),
		      "%ld %s", r->status, r->body);
	http_resp_free(r);
	r = named(bob, "my_notes", "{\"expect\":\"scalar\"}");
	ck_assert_msg(r->status == 200 && strstr(r->body, "\"b1\""), "%ld %s",
		      r->status, r->body);
	http_resp_free(r);
	/* Not among its roles. */
	r = named(carol, "my_notes", "");
	ck_assert_msg(r->status == 403 && strstr(r->body, "query_not_allowed"),
		      "%ld %s", r->status, r->body);
	http_resp_free(r);
	/* Anyone: parameters only. */
	int a = rand() % 1000, b = rand() % 1000;
	char body[100], want[40];
	snprintf(body, sizeof(body), "{\"params\":[%d,%d],\"expect\":\"scalar\"}",
		 a, b);
	snprintf(want, sizeof(want), "{\"value\":%d}", a + b);
	r = named(carol, "add", body);
	ck_assert_msg(r->status == 200 && strstr(r->body, want), "%ld %s",
		      r->status, r->body);
	http_resp_free(r);
	r = named(alice, "add", "{\"sql\":\"SELECT 1\",\"params\":[1,2]}");
	ck_assert_int_eq(r->status, 400);
	http_resp_free(r);
	r = named(alice, "nope", "{}");
	ck_assert_msg(r->status == 404 && strstr(r->body, "query_not_found"),
		      "%ld %s", r->status, r->body);
	http_resp_free(r);
	/* Without a credential, nothing. */
	const char *h[] = {"Content-Type: application/json", NULL};
	r = http_request(port, "POST", "/q/add", "{}", h);
	ck_assert_int_eq(r->status, 401);
	http_resp_free(r);
}
END_TEST

START_TEST(role_policy)
{
	char path[64];
	snprintf(path, sizeof(path), "/tmp/fpg_roles_XXXXXX");
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	FILE *f = fdopen(fd, "w");
	fprintf(f, "# test policy\ncarol raw-sql=no\nalice read-only rate=2\n"
		   "bob statement-timeout-ms=300 transactions=1\n");
	fclose(f);
	struct fpg_options o;
	unsigned p;
	it_options(&o);
	o.auth = "password,api-key";
	o.api_keys = keys_path;
	o.queries = queries_dir;
	o.roles = path;
	o.anon_role = "carol";
	o.threads = 1; /* the session limit is per worker */
	struct fpg_server *srv = it_server_start(&o, &p);
	char carol[80];
	snprintf(carol, sizeof(carol), "Bearer %s", key1);
	/* Named queries only. */
	struct http_resp *r = sql_with(p, carol, "SELECT 1");
	ck_assert_msg(r->status == 403 && strstr(r->body, "raw_sql_off"),
		      "%ld %s", r->status, r->body);
	http_resp_free(r);
	char header[200];
	snprintf(header, sizeof(header), "Authorization: %s", carol);
	const char *hs[] = {header, "Content-Type: application/json", NULL};
	r = http_request(p, "POST", "/q/add", "{\"params\":[2,3]}", hs);
	ck_assert_msg(r->status == 200, "%ld %s", r->status, r->body);
	http_resp_free(r);
	/* A lower statement timeout: the session's, and a cap on what the
	 * request asks for. */
	char *t = scalar_as(p, "bob", bob_pw,
			    "SELECT current_setting('statement_timeout')");
	ck_assert_str_eq(t, "300ms");
	free(t);
	r = post_as(p, "bob", bob_pw,
		    json_pack("{s:s,s:i}", "sql", "SELECT pg_sleep(1)",
			      "timeout_ms", 5000));
	ck_assert_msg(r->status == 504 && strstr(r->body, "57014"), "%ld %s",
		      r->status, r->body);
	http_resp_free(r);
	/* One open session at a time for bob. */
	char bobh[300];
	snprintf(bobh, sizeof(bobh), "%s", basic("bob", bob_pw));
	const char *bh[] = {bobh, "Content-Type: application/json", NULL};
	char tok[128], path2[200];
	for (int round = 0; round < 2; round++) {
		r = http_request(p, "POST", "/tx", "{}", bh);
		ck_assert_msg(r->status == 201, "%ld %s", r->status, r->body);
		snprintf(tok, sizeof(tok), "%s",
			 json_string_value(json_object_get(r->json, "tx")));
		http_resp_free(r);
		r = http_request(p, "POST", "/tx", "{}", bh);
		ck_assert_msg(r->status == 429 &&
				      strstr(r->body, "too_many_sessions"),
			      "%ld %s", r->status, r->body);
		http_resp_free(r);
		snprintf(path2, sizeof(path2), "/tx/%s/rollback", tok);
		r = http_request(p, "POST", path2, "{}", bh);
		ck_assert_int_eq(r->status, 200);
		http_resp_free(r);
		/* The session is gone once its connection is home. */
		struct timespec pause = {0, 50 * 1000000L};
		nanosleep(&pause, NULL);
	}
	/* No Authorization at all: the anonymous role, carol here. */
	const char *plain[] = {"Content-Type: application/json", NULL};
	r = http_request(p, "POST", "/q/add",
			 "{\"params\":[4,5],\"expect\":\"scalar\"}", plain);
	ck_assert_msg(r->status == 200 && strstr(r->body, "{\"value\":9}"),
		      "%ld %s", r->status, r->body);
	http_resp_free(r);
	r = http_request(p, "POST", "/query", "{\"sql\":\"SELECT 1\"}", plain);
	ck_assert_msg(r->status == 403 && strstr(r->body, "raw_sql_off"),
		      "%ld %s", r->status, r->body);
	http_resp_free(r);
	/* A credential that is wrong is not anonymous. */
	r = sql_as(p, "alice", "wrong-password", "SELECT 1");
	ck_assert_int_eq(r->status, 401);
	http_resp_free(r);
	/* Read-only, and rate-limited: a second's worth, then 429. */
	r = sql_as(p, "alice", alice_pw,
		   "INSERT INTO auth_notes VALUES ('alice', 'ro')");
	ck_assert_msg(r->status == 403 && strstr(r->body, "25006"), "%ld %s",
		      r->status, r->body);
	http_resp_free(r);
	int limited = 0;
	for (int i = 0; i < 12; i++) {
		r = sql_as(p, "alice", alice_pw, "SELECT 1");
		if (r->status == 429) {
			limited++;
			char *ra = http_header(r, "Retry-After");
			ck_assert_msg(ra && atoi(ra) >= 1, "Retry-After %s",
				      ra ? ra : "(none)");
			free(ra);
		} else {
			ck_assert_int_eq(r->status, 200);
		}
		http_resp_free(r);
	}
	ck_assert_msg(limited >= 6, "only %d of 12 limited", limited);
	struct timespec ts = {1, 200 * 1000000L};
	nanosleep(&ts, NULL);
	r = sql_as(p, "alice", alice_pw, "SELECT 1");
	ck_assert_int_eq(r->status, 200);
	http_resp_free(r);
	/* Roles without a client's login make no sense. */
	fpg_server_free(srv);
	it_options(&o);
	o.roles = path;
	struct fpg_error err = {0};
	ck_assert_ptr_null(fpg_server_new(&o, &err));
	ck_assert_int_eq(err.code, FPG_ERR_CONFIG);
	it_options(&o);
	o.anon_role = "carol";
	ck_assert_ptr_null(fpg_server_new(&o, &err));
	ck_assert_int_eq(err.code, FPG_ERR_CONFIG);
	unlink(path);
}
END_TEST

START_TEST(pool_gauges_add_up_over_logins)
{
	struct fpg_options o;
	unsigned p;
	static char db[512];
	it_options(&o);
	snprintf(db, sizeof(db), "%s application_name=fpg-gauges", o.db);
	o.db = db;
	o.auth = "password";
	o.threads = 1;
	struct fpg_server *srv = it_server_start(&o, &p);
	/* Each login holds a connection of its own pool. */
	char *u = scalar_as(p, "alice", alice_pw, "SELECT current_user::text");
	free(u);
	u = scalar_as(p, "bob", bob_pw, "SELECT current_user::text");
	free(u);
	struct http_resp *r = http_get(p, "/stats");
	ck_assert_int_eq(r->status, 200);
	json_t *total = json_object_get(r->json, "total");
	json_t *pool = json_object_get(total, "pool");
	json_int_t open = json_integer_value(json_object_get(pool, "open"));
	ck_assert_msg(open >= 2, "open %lld: %s", (long long)open, r->body);
	json_t *logins = json_object_get(total, "logins");
	ck_assert_int_eq(json_integer_value(json_object_get(logins, "open")), 2);
	ck_assert_int_eq(json_integer_value(json_object_get(logins, "refused")),
			 0);
	http_resp_free(r);
	char *n = pgh_scalar("SELECT count(*) FROM pg_stat_activity WHERE "
			     "usename IN ('alice', 'bob') AND "
			     "application_name = 'fpg-gauges'");
	ck_assert_int_eq(open, atoi(n));
	free(n);
	/* A refused login is counted (and its pool goes away). */
	r = sql_as(p, "alice", "not-her-password", "SELECT 1");
	ck_assert_int_eq(r->status, 401);
	http_resp_free(r);
	r = http_get(p, "/metrics");
	ck_assert_msg(strstr(r->body, "fasterpg_login_refusals_total 1\n") &&
			      strstr(r->body, "# TYPE fasterpg_logins_open gauge"),
		      "%s", r->body);
	http_resp_free(r);
	fpg_server_free(srv);
}
END_TEST

static void with_password_auth(struct fpg_options *o);

START_TEST(api_keys_reload)
{
	struct fpg_options o;
	unsigned p;
	it_options(&o);
	with_password_auth(&o);
	struct fpg_server *srv = it_server_start(&o, &p);
	char b1[80], b2[80];
	snprintf(b1, sizeof(b1), "Bearer %s", key1);
	snprintf(b2, sizeof(b2), "Bearer %s", key2);
	struct http_resp *r = sql_with(p, b1, "SELECT 1");
	ck_assert_int_eq(r->status, 200);
	http_resp_free(r);
	/* A file that does not load changes nothing. */
	write_keys(key2, "not a digest carol\n");
	struct fpg_error err = {0};
	ck_assert(!fpg_server_reload(srv, &err));
	ck_assert_ptr_nonnull(strstr(err.message, ":4:"));
	r = sql_with(p, b1, "SELECT 1");
	ck_assert_int_eq(r->status, 200);
	http_resp_free(r);
	/* A good one replaces the old keys on every worker. */
	write_keys(key2, NULL);
	ck_assert_msg(fpg_server_reload(srv, &err), "%s", err.message);
	for (int i = 0; i < 4; i++) { /* both workers, whichever answers */
		r = sql_with(p, b1, "SELECT 1");
		ck_assert_msg(r->status == 401, "old key: %ld", r->status);
		http_resp_free(r);
		r = sql_with(p, b2, "SELECT current_user::text");
		ck_assert_msg(r->status == 200, "new key: %ld %s", r->status,
			      r->body);
		http_resp_free(r);
	}
	fpg_server_free(srv);
	write_keys(key1, NULL);
}
END_TEST

START_TEST(auth_may_listen_everywhere)
{
	struct fpg_options o;
	unsigned p;
	it_options(&o);
	o.listen_host = "0.0.0.0";
	o.auth = "password";
	struct fpg_server *srv = it_server_start(&o, &p);
	char *u = scalar_as(p, "alice", alice_pw, "SELECT current_user::text");
	ck_assert_str_eq(u, "alice");
	free(u);
	fpg_server_free(srv);
	it_options(&o);
	o.auth = "ldap";
	struct fpg_error err = {0};
	ck_assert_ptr_null(fpg_server_new(&o, &err));
	ck_assert_int_eq(err.code, FPG_ERR_CONFIG);
}
END_TEST

static void with_password_auth(struct fpg_options *o)
{
	o->auth = "password,api-key";
	o->api_keys = keys_path;
	o->queries = queries_dir;
	o->threads = 2;
}

static void rechecking_quickly(struct fpg_options *o)
{
	with_password_auth(o);
	o->auth_recheck_ms = 300;
}

static const struct test_case cases[] = {
    TEST_CASE(clients_must_name_a_login),
    TEST_CASE(each_runs_as_itself),
    TEST_CASE(wrong_passwords_are_401),
    TEST_CASE(nobody_becomes_another),
    TEST_CASE(changed_password_is_noticed),
    TEST_CASE(sessions_belong_to_their_login),
    TEST_CASE(cancels_belong_to_their_login),
    TEST_CASE(api_keys_run_as_their_role),
    TEST_CASE(named_queries_run_as_the_caller),
    TEST_CASE(role_policy),
    TEST_CASE(api_keys_reload),
    TEST_CASE(pool_gauges_add_up_over_logins),
    TEST_CASE(auth_may_listen_everywhere),
    {0},
};

static const struct it_server servers[] = {
    {&port, with_password_auth},
    {&quick_port, rechecking_quickly},
    {0},
};

const struct it_program it_program = {
    .name = "auth",
    .cases = cases,
    .servers = servers,
    .setup = setup,
};
