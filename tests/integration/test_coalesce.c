/*
 * Coalesced reads (src/coalesce.h): statements that arrive together share
 * one read-only transaction on a connection, and every answer is still
 * the one the statement would get alone. Requests are sent in bursts on
 * many keep-alive connections at once (curl multi), so that they reach
 * the one worker in the same loop turn; /stats says how many ran in
 * groups and how many ran again alone, and each test requires both to
 * have happened, or it proves nothing. And statements known to be slow
 * keep out of the way of fast ones (the lane memory).
 */
#include <pthread.h>
#include <time.h>

#include "it_common.h"

static unsigned port; /* 1 worker, 2 connections */
static unsigned port1; /* 1 worker, 1 connection */

#define BURST 48

static int64_t wall_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

struct call {
	char *body;		/* JSON, owned */
	int kind;		/* the test's own */
	long arg;
	char tag[40];
	const char *path;	/* NULL: /query */
	long status;
	struct it_buf out;
	json_t *json;
	int64_t t0_us, t1_us;	/* sent after, answered before */
};

static CURL *handles[BURST];

/* Sends calls[0..n) at once to the server on port to, each on its own
 * keep-alive connection. */
static void send_together_to(unsigned to, struct call *calls, int n)
{
	CURLM *m = curl_multi_init();
	struct curl_slist *hd[BURST];
	ck_assert_int_le(n, BURST);
	for (int i = 0; i < n; i++) {
		if (!handles[i])
			handles[i] = curl_easy_init();
		hd[i] = http_prepare(handles[i], to, "POST",
				     calls[i].path ? calls[i].path : "/query",
				     calls[i].body, 0, NULL);
		curl_easy_setopt(handles[i], CURLOPT_WRITEFUNCTION, it_buf_write);
		curl_easy_setopt(handles[i], CURLOPT_WRITEDATA, &calls[i].out);
		curl_easy_setopt(handles[i], CURLOPT_PRIVATE, &calls[i]);
		curl_easy_setopt(handles[i], CURLOPT_TIMEOUT, 30L);
		calls[i].t0_us = wall_us();
		curl_multi_add_handle(m, handles[i]);
	}
	int running = n, left;
	while (running) {
		curl_multi_perform(m, &running);
		CURLMsg *msg;
		while ((msg = curl_multi_info_read(m, &left))) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			struct call *c;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
					  (char **)&c);
			c->t1_us = wall_us();
			ck_assert_msg(msg->data.result == CURLE_OK, "curl: %s",
				      curl_easy_strerror(msg->data.result));
			curl_easy_getinfo(msg->easy_handle,
					  CURLINFO_RESPONSE_CODE, &c->status);
			c->json = json_loads(c->out.data ? c->out.data : "", 0,
					     NULL);
		}
		if (running)
			curl_multi_poll(m, NULL, 0, 1000, NULL);
	}
	for (int i = 0; i < n; i++) {
		curl_multi_remove_handle(m, handles[i]);
		curl_slist_free_all(hd[i]);
	}
	curl_multi_cleanup(m);
}

static void send_together(struct call *calls, int n)
{
	send_together_to(port, calls, n);
}

static void call_free(struct call *c)
{
	free(c->body);
	free(c->out.data);
	json_decref(c->json);
	memset(c, 0, sizeof(*c));
}

/* The /stats counters of coalescing, of the server on port to. */
static void coalesced_on(unsigned to, long long *groups,
			 long long *statements, long long *reruns)
{
	struct http_resp *r = http_get(to, "/stats");
	it_assert_resp(r, r->status == 200 && r->json);
	json_t *c = json_object_get(json_object_get(r->json, "total"),
				    "coalesced");
	it_assert_resp(r, json_is_object(c));
	*statements = json_integer_value(json_object_get(c, "statements"));
	*reruns = json_integer_value(json_object_get(c, "reruns"));
	if (groups)
		*groups = json_integer_value(json_object_get(c, "groups"));
	http_resp_free(r);
}

static void coalesced(long long *statements, long long *reruns)
{
	coalesced_on(port, NULL, statements, reruns);
}

static char *body_of(const char *sql, json_t *params, const char *expect)
{
	json_t *b = json_pack("{s:s,s:o}", "sql", sql, "params", params);
	if (expect)
		json_object_set_new(b, "expect", json_string(expect));
	char *s = json_dumps(b, JSON_COMPACT);
	json_decref(b);
	return s;
}

/* Runs body alone until it answered 200 n times (the pool learns that
 * the statement is small and only reads). */
static void warm(const char *body, int n)
{
	for (int i = 0; i < n; i++) {
		struct http_resp *r = it_query(port, body);
		it_assert_resp(r, r->status == 200 || r->status == 400);
		http_resp_free(r);
	}
}

static const char *scalar_of(const struct call *c)
{
	json_t *v = json_object_get(c->json, "value");
	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* ---- answers as if alone ---- */

enum { READ, ROWS, FAIL, WRITE, WRITE_IN_SELECT, TIME, NOTIFY, TX_SETTING, NKINDS };

#define KEYS 500

START_TEST(answers_are_those_of_statements_alone)
{
	char *kv = it_table("kv"), *log = it_table("log"), *fn = it_table("ins");
	char *sql;
	sql = it_fmt("CREATE TABLE %s (k int PRIMARY KEY, v int NOT NULL);"
		     "CREATE TABLE %s (tag text NOT NULL);"
		     "CREATE FUNCTION %s(t text) RETURNS int LANGUAGE sql AS "
		     "$$INSERT INTO %s VALUES (t) RETURNING 1$$",
		     kv, log, fn, log);
	pgh_exec(sql);
	free(sql);
	int v[KEYS + 1];
	for (int k = 1; k <= KEYS; k++) {
		v[k] = rand() % 1000000;
		char *ins = it_fmt("INSERT INTO %s VALUES (%d, %d)", kv, k, v[k]);
		pgh_exec(ins);
		free(ins);
	}
	char *sqls[NKINDS];
	sqls[READ] = it_fmt("SELECT v::text FROM %s WHERE k = $1", kv);
	sqls[ROWS] = it_fmt("SELECT k, v FROM %s WHERE k <= $1 ORDER BY k", kv);
	sqls[FAIL] = it_fmt("SELECT (v / $1::int)::text FROM %s WHERE k = 1", kv);
	sqls[WRITE] = it_fmt("INSERT INTO %s VALUES ($1) RETURNING 'w'", log);
	sqls[WRITE_IN_SELECT] = it_fmt("SELECT %s($1)::text", fn);
	sqls[TIME] = it_fmt(
		"SELECT (extract(epoch FROM now()) * 1000000)::int8 || ',' || "
		"(extract(epoch FROM statement_timestamp()) * 1000000)::int8 "
		"|| ',' || (now() = transaction_timestamp())::text || "
		"$1::text");
	sqls[NOTIFY] = it_fmt("SELECT pg_notify('coalesce_ch', $1)::text");
	/* Fine alone; in a read-only group 25001, so it runs again alone. */
	sqls[TX_SETTING] = it_fmt("SELECT pg_catalog.set_config("
				  "'transaction_read_only', 'off', true) || $1");

	/* A listener counts the notifications of acknowledged requests. */
	PGconn *listener = PQconnectdb(pgh_conninfo());
	ck_assert(PQstatus(listener) == CONNECTION_OK);
	PQclear(PQexec(listener, "LISTEN coalesce_ch"));

	for (int k = 0; k < NKINDS; k++) {
		char *b = body_of(sqls[k], json_pack("[s]", k == FAIL ? "1" : "w0"),
				  k == ROWS ? NULL : "scalar");
		if (k == READ || k == ROWS)
			b = (free(b), body_of(sqls[k], json_pack("[i]", 1),
					      k == ROWS ? NULL : "scalar"));
		warm(b, 4);
		free(b);
	}
	long long st0, rr0, st1, rr1;
	coalesced(&st0, &rr0);

	struct call calls[BURST];
	memset(calls, 0, sizeof(calls));
	int tags = 0, acked_writes = 0, notifies = 0;
	char **notified = calloc(40 * BURST, sizeof(char *));
	for (int round = 0; round < 40; round++) {
		for (int i = 0; i < BURST; i++) {
			struct call *c = &calls[i];
			/* Mostly reads, as a group has them. */
			int r = rand() % 20;
			c->kind = r < 9 ? READ : r < 11 ? ROWS : r < 13 ? FAIL :
				  r < 15 ? WRITE : r < 17 ? WRITE_IN_SELECT :
				  r < 19 ? TIME : rand() % 2 ? NOTIFY : TX_SETTING;
			snprintf(c->tag, sizeof(c->tag), "t%d_%d", round, tags++);
			switch (c->kind) {
			case READ:
			case ROWS:
				c->arg = 1 + rand() % (c->kind == ROWS ? 20 : KEYS);
				c->body = body_of(sqls[c->kind],
						  json_pack("[i]", (int)c->arg),
						  c->kind == ROWS ? NULL : "scalar");
				break;
			case FAIL:
				c->arg = rand() % 3; /* 0 divides by zero */
				c->body = body_of(sqls[FAIL],
						  json_pack("[i]", (int)c->arg),
						  "scalar");
				break;
			default:
				c->body = body_of(sqls[c->kind],
						  json_pack("[s]", c->kind == TIME
								   ? "" : c->tag),
						  "scalar");
				break;
			}
		}
		send_together(calls, BURST);
		for (int i = 0; i < BURST; i++) {
			struct call *c = &calls[i];
			const char *s;
			switch (c->kind) {
			case READ:
				ck_assert_msg(c->status == 200, "%s", c->out.data);
				s = scalar_of(c);
				ck_assert_msg(s && atoi(s) == v[c->arg],
					      "k=%ld: %s, want %d", c->arg,
					      c->out.data, v[c->arg]);
				break;
			case ROWS: {
				ck_assert_msg(c->status == 200, "%s", c->out.data);
				json_t *rows = json_object_get(c->json, "rows");
				ck_assert_msg(json_array_size(rows) == (size_t)c->arg,
					      "%ld rows: %s", c->arg, c->out.data);
				for (size_t j = 0; j < json_array_size(rows); j++) {
					json_t *row = json_array_get(rows, j);
					ck_assert_int_eq(json_integer_value(json_object_get(row, "k")),
							 (long)j + 1);
					ck_assert_int_eq(json_integer_value(json_object_get(row, "v")),
							 v[j + 1]);
				}
				break;
			}
			case FAIL:
				if (c->arg == 0) {
					ck_assert_msg(c->status == 400, "%s", c->out.data);
					json_t *e = json_object_get(c->json, "error");
					ck_assert_str_eq(json_string_value(json_object_get(e, "code")),
							 "22012");
				} else {
					ck_assert_msg(c->status == 200, "%s", c->out.data);
					ck_assert_int_eq(atoi(scalar_of(c)), v[1] / (int)c->arg);
				}
				break;
			case WRITE:
				ck_assert_msg(c->status == 200, "%s", c->out.data);
				ck_assert_str_eq(scalar_of(c), "w");
				acked_writes++;
				break;
			case WRITE_IN_SELECT:
				ck_assert_msg(c->status == 200, "%s", c->out.data);
				ck_assert_str_eq(scalar_of(c), "1");
				acked_writes++;
				break;
			case TIME: {
				ck_assert_msg(c->status == 200, "%s", c->out.data);
				long long now_us, stmt_us;
				char same[8];
				s = scalar_of(c);
				ck_assert(s && sscanf(s, "%lld,%lld,%7s", &now_us,
						      &stmt_us, same) == 3);
				/* now() is the transaction's start: after the
				 * request was sent, no later than its statement,
				 * before the answer came. */
				ck_assert_msg(now_us >= c->t0_us && now_us <= stmt_us &&
						      stmt_us <= c->t1_us,
					      "sent %lld, now %lld, statement %lld, "
					      "answered %lld",
					      (long long)c->t0_us, now_us, stmt_us,
					      (long long)c->t1_us);
				ck_assert_str_eq(same, "true");
				break;
			}
			case NOTIFY:
				ck_assert_msg(c->status == 200, "%s", c->out.data);
				notified[notifies++] = strdup(c->tag);
				break;
			case TX_SETTING:
				ck_assert_msg(c->status == 200, "%s", c->out.data);
				s = scalar_of(c);
				ck_assert_msg(s && strncmp(s, "off", 3) == 0, "%s",
					      c->out.data);
				break;
			}
			if (c->kind == WRITE || c->kind == WRITE_IN_SELECT) {
				/* Exactly once, at once. */
				char *q = it_fmt("SELECT count(*) FROM %s WHERE tag = '%s'",
						 log, c->tag);
				char *n = pgh_scalar(q);
				ck_assert_msg(strcmp(n, "1") == 0, "%s: %s rows",
					      c->tag, n);
				free(n);
				free(q);
			}
			call_free(c);
		}
	}
	coalesced(&st1, &rr1);
	ck_assert_msg(st1 - st0 >= BURST, "only %lld statements ran in groups",
		      st1 - st0);
	ck_assert_msg(rr1 - rr0 > 0, "no statement ran again alone");
	char *q = it_fmt("SELECT count(*) FROM %s", log);
	char *n = pgh_scalar(q);
	/* The warm-up wrote 8 rows. */
	ck_assert_int_eq(atoi(n), acked_writes + 8);
	free(n);
	free(q);

	/* Every acknowledged notification came, once. */
	int seen = 0;
	double until = it_now() + 10;
	int counts[40 * BURST] = {0};
	while (seen < notifies + 4 && it_now() < until) {
		PQconsumeInput(listener);
		PGnotify *nt;
		while ((nt = PQnotifies(listener))) {
			for (int i = 0; i < notifies; i++)
				if (strcmp(nt->extra, notified[i]) == 0)
					counts[i]++;
			seen++;
			PQfreemem(nt);
		}
		if (seen < notifies + 4) {
			struct timespec ts = {0, 10 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
	}
	for (int i = 0; i < notifies; i++) {
		ck_assert_msg(counts[i] == 1, "%s notified %d times",
			      notified[i], counts[i]);
		free(notified[i]);
	}
	free(notified);
	PQfinish(listener);
	for (int k = 0; k < NKINDS; k++)
		free(sqls[k]);
	free(kv);
	free(log);
	free(fn);
}
END_TEST

/* ---- settings do not cross ---- */

/*
 * Bursts of attack (body ab) and victim (body vb) statements in random
 * order: every victim answers want, and enough ran in groups to tell.
 */
static void attack_beside(const char *ab, const char *vb, const char *want)
{
	long long st0, rr0, st1, rr1;
	coalesced(&st0, &rr0);
	struct call calls[BURST];
	memset(calls, 0, sizeof(calls));
	for (int round = 0; round < 20; round++) {
		for (int i = 0; i < BURST; i++) {
			calls[i].kind = rand() % 2;
			calls[i].body = strdup(calls[i].kind ? ab : vb);
		}
		send_together(calls, BURST);
		for (int i = 0; i < BURST; i++) {
			ck_assert_msg(calls[i].status == 200, "%s", calls[i].out.data);
			if (!calls[i].kind)
				ck_assert_str_eq(scalar_of(&calls[i]), want);
			call_free(&calls[i]);
		}
	}
	coalesced(&st1, &rr1);
	ck_assert_msg(st1 - st0 >= BURST, "only %lld statements ran in groups",
		      st1 - st0);
}

START_TEST(settings_do_not_cross_within_a_group)
{
	/* Attackers set what they can for the session and for the
	 * transaction; victims beside them in the same group must see the
	 * pool's settings. */
	const char *attack =
		"SELECT pg_catalog.set_config('TimeZone', 'Pacific/Kiritimati', "
		"false) || pg_catalog.set_config('search_path', 'nowhere', "
		"true) || pg_catalog.set_config('work_mem', '7777kB', false) || "
		"pg_catalog.set_config('application_name', 'evil', false) || $1";
	const char *victim =
		"SELECT pg_catalog.current_setting('TimeZone') || '|' || "
		"pg_catalog.current_setting('search_path') || '|' || "
		"pg_catalog.current_setting('work_mem') || '|' || "
		"pg_catalog.current_setting('application_name') || $1";
	char *ab = body_of(attack, json_pack("[s]", ""), "scalar");
	char *vb = body_of(victim, json_pack("[s]", ""), "scalar");
	warm(ab, 4);
	warm(vb, 4);
	struct http_resp *r = it_query(port, vb);
	it_assert_resp(r, r->status == 200);
	char *want = strdup(json_string_value(json_object_get(r->json, "value")));
	http_resp_free(r);
	ck_assert_msg(strstr(want, "Kiritimati") == NULL &&
			      strstr(want, "7777") == NULL,
		      "the reset let a setting through: %s", want);
	attack_beside(ab, vb, want);
	free(want);
	free(ab);
	free(vb);
}
END_TEST

/* A role set by one statement is not the next one's. */
START_TEST(role_does_not_cross_within_a_group)
{
	char suffix[32], *role;
	it_suffix(suffix, sizeof(suffix));
	role = it_fmt("co_role_%s", suffix);
	char *s = it_fmt("CREATE ROLE %s; GRANT %s TO CURRENT_USER", role, role);
	pgh_exec(s);
	free(s);
	char *attack = it_fmt("SELECT pg_catalog.set_config('role', '%s', "
			      "false) || $1", role);
	const char *victim = "SELECT current_user::text || $1";
	char *ab = body_of(attack, json_pack("[s]", ""), "scalar");
	char *vb = body_of(victim, json_pack("[s]", ""), "scalar");
	warm(ab, 4);
	warm(vb, 4);
	char *login = pgh_scalar("SELECT current_user");
	attack_beside(ab, vb, login);
	free(login);
	free(ab);
	free(vb);
	free(attack);
	free(role);
}
END_TEST

/* A group whose read-only switch client SQL deallocated (out of sight,
 * in a DO block) is run again, member by member, and its connection is
 * replaced. */
START_TEST(a_dropped_switch_is_noticed)
{
	const char *vb = "{\"sql\":\"SELECT ($1::int * 2)::text\","
			 "\"params\":[21],\"expect\":\"scalar\"}";
	warm(vb, 4);
	for (int i = 0; i < 4; i++)
		warm("{\"sql\":\"DO $$BEGIN EXECUTE 'DEALLOCATE fpg_read_only'; "
		     "END$$\"}", 1);
	long long st0, rr0, st1, rr1;
	coalesced(&st0, &rr0);
	struct call calls[BURST];
	memset(calls, 0, sizeof(calls));
	for (int round = 0; round < 5; round++) {
		for (int i = 0; i < BURST; i++)
			calls[i].body = strdup(vb);
		send_together(calls, BURST);
		for (int i = 0; i < BURST; i++) {
			ck_assert_msg(calls[i].status == 200, "%s", calls[i].out.data);
			ck_assert_str_eq(scalar_of(&calls[i]), "42");
			call_free(&calls[i]);
		}
	}
	coalesced(&st1, &rr1);
	ck_assert_msg(rr1 - rr0 > 0, "no group ran again");
	ck_assert_msg(st1 - st0 >= BURST, "only %lld statements ran in groups",
		      st1 - st0);
}
END_TEST

/* ---- what must never be a group's ---- */

/*
 * Reads gather a group on an idle connection (nothing is queued until the
 * end of the turn); a POST /tx in the same turn must not take that
 * connection for its session, or the group would run inside the
 * client's transaction (its isolation, made read-only, its settings
 * reset).
 */
START_TEST(a_session_begun_beside_a_group_keeps_its_transaction)
{
	char *vb = body_of("SELECT pg_catalog.current_setting("
			   "'transaction_isolation') || $1",
			   json_pack("[s]", ""), "scalar");
	warm(vb, 4);
	long long st0, rr0, st1, rr1;
	coalesced(&st0, &rr0);
	struct call calls[BURST];
	memset(calls, 0, sizeof(calls));
	for (int round = 0; round < 30; round++) {
		int n = 8, tx_at = rand() % n;
		for (int i = 0; i < n; i++) {
			calls[i].kind = i == tx_at;
			calls[i].path = i == tx_at ? "/tx" : NULL;
			calls[i].body = strdup(i == tx_at
				? "{\"isolation\":\"serializable\"}" : vb);
		}
		send_together(calls, n);
		for (int i = 0; i < n; i++) {
			struct call *c = &calls[i];
			if (!c->kind) {
				ck_assert_msg(c->status == 200, "%s", c->out.data);
				ck_assert_str_eq(scalar_of(c), "read committed");
				call_free(c);
				continue;
			}
			ck_assert_msg(c->status == 201, "%s", c->out.data);
			const char *tok =
				json_string_value(json_object_get(c->json, "tx"));
			ck_assert(tok);
			char *path = it_fmt("/tx/%s/query", tok);
			struct http_resp *r = http_post_json(port, path,
				"{\"sql\":\"SELECT pg_catalog.current_setting("
				"'transaction_read_only') || ',' || "
				"pg_catalog.current_setting('transaction_isolation')\","
				"\"expect\":\"scalar\"}");
			it_assert_resp(r, r->status == 200);
			ck_assert_str_eq(json_string_value(json_object_get(r->json,
									   "value")),
					 "off,serializable");
			http_resp_free(r);
			free(path);
			path = it_fmt("/tx/%s/rollback", tok);
			r = http_post_json(port, path, "{}");
			http_resp_free(r);
			free(path);
			call_free(c);
		}
	}
	coalesced(&st1, &rr1);
	ck_assert_msg(st1 - st0 > 0, "no statement ran in a group");
	free(vb);
}
END_TEST

/* A function that opens a cursor under a fixed name works alone: the
 * cursor ends with the transaction. Beside itself in a group it must too. */
START_TEST(cursors_do_not_cross_within_a_group)
{
	char *fn = it_table("opencur");
	char *sql = it_fmt(
		"CREATE FUNCTION %s(t text) RETURNS text LANGUAGE plpgsql AS $$"
		"DECLARE c refcursor := 'fixed_cur'; BEGIN "
		"OPEN c FOR SELECT 1; RETURN c::text || t; END $$", fn);
	pgh_exec(sql);
	free(sql);
	sql = it_fmt("SELECT %s($1)", fn);
	char *b = body_of(sql, json_pack("[s]", ""), "scalar");
	warm(b, 4);
	long long st0, rr0, st1, rr1;
	coalesced(&st0, &rr0);
	struct call calls[BURST];
	memset(calls, 0, sizeof(calls));
	for (int round = 0; round < 10; round++) {
		for (int i = 0; i < 16; i++)
			calls[i].body = strdup(b);
		send_together(calls, 16);
		for (int i = 0; i < 16; i++) {
			ck_assert_msg(calls[i].status == 200, "%s",
				      calls[i].out.data);
			ck_assert_str_eq(scalar_of(&calls[i]), "fixed_cur");
			call_free(&calls[i]);
		}
	}
	coalesced(&st1, &rr1);
	ck_assert_msg(st1 - st0 >= 16, "only %lld statements ran in groups",
		      st1 - st0);
	free(b);
	free(sql);
	free(fn);
}
END_TEST

/* ---- slow statements hold up no fast one ---- */

static const char slow_body[] =
	"{\"sql\":\"SELECT pg_sleep(0.4), $1::int\",\"params\":[1]}";

static void *slow_client(void *arg)
{
	struct http_resp *r = it_query(port, slow_body);
	*(long *)arg = r->status;
	http_resp_free(r);
	return NULL;
}

START_TEST(slow_statements_hold_up_no_fast_one)
{
	/* Once alone: now the worker knows it is slow. */
	struct http_resp *r = it_query(port, slow_body);
	it_assert_resp(r, r->status == 200);
	http_resp_free(r);
	const char *fast = "{\"sql\":\"SELECT $1::int + 1\",\"params\":[1],"
			   "\"expect\":\"scalar\"}";
	warm(fast, 4);
	/* More slow ones than the connections that may be held (one of
	 * two): the others wait for it, not on the fast lane. */
	pthread_t t[5];
	long status[5];
	for (int i = 0; i < 5; i++)
		pthread_create(&t[i], NULL, slow_client, &status[i]);
	struct timespec ts = {0, 50 * 1000 * 1000};
	nanosleep(&ts, NULL);
	double worst = 0;
	for (int i = 0; i < 20; i++) {
		double t0 = it_now();
		r = it_query(port, fast);
		it_assert_resp(r, r->status == 200);
		http_resp_free(r);
		if (it_now() - t0 > worst)
			worst = it_now() - t0;
	}
	for (int i = 0; i < 5; i++) {
		pthread_join(t[i], NULL);
		ck_assert_int_eq(status[i], 200);
	}
	/* A fast one behind a slow one would wait for its 400 ms. */
	ck_assert_msg(worst < 0.3, "a fast statement took %.0f ms beside slow "
				   "ones", worst * 1000);
}
END_TEST

/* ---- gathering behind a busy connection ---- */

static PGresult *must(PGconn *c, const char *sql)
{
	PGresult *res = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(res);
	ck_assert_msg(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK,
		      "%s: %s", sql, PQresultErrorMessage(res));
	return res;
}

static char *blocked_body;
static PGconn *locker; /* holds the lock; closed after each case */

static void *blocked_client(void *arg)
{
	struct http_resp *r = it_query(port1, blocked_body);
	*(long *)arg = r->status;
	http_resp_free(r);
	return NULL;
}

struct late_read {
	pthread_t t;
	int wave, key;
	long status;
	long long value;
};

static void *late_reader(void *arg)
{
	struct late_read *lr = arg;
	struct timespec ts = {0, 8 * 1000 * 1000 * lr->wave};
	nanosleep(&ts, NULL);
	char *body = it_fmt("{\"sql\":\"SELECT $1::int * 3\",\"params\":[%d],"
			    "\"expect\":\"scalar\"}",
			    lr->key);
	struct http_resp *r = it_query(port1, body);
	lr->status = r->status;
	json_t *v = r->json ? json_object_get(r->json, "value") : NULL;
	lr->value = json_is_integer(v) ? json_integer_value(v) : -1;
	http_resp_free(r);
	free(body);
	return NULL;
}

/*
 * Reads that arrive while their connection is busy gather into one group
 * that leaves when the connection is free, however many loop turns they
 * came in: one group per turn queued behind the busy statement is what
 * it was before, and under load a group now grows while PostgreSQL works
 * on what is ahead of it. The connection is kept busy by a write waiting
 * for a lock the test holds.
 */
START_TEST(reads_gather_while_their_connection_is_busy)
{
	char *t = it_table("busy");
	char *sql = it_fmt("CREATE TABLE %s (v int)", t);
	pgh_exec(sql);
	free(sql);
	/* Known small and quick: the write stays on the shared connection
	 * when it is blocked, and the read is known to only read. */
	blocked_body = it_fmt("{\"sql\":\"INSERT INTO %s VALUES ($1)\","
			      "\"params\":[1]}",
			      t);
	const char *read = "{\"sql\":\"SELECT $1::int * 3\",\"params\":[1],"
			   "\"expect\":\"scalar\"}";
	for (int i = 0; i < 6; i++) {
		struct http_resp *r =
			it_query(port1, i < 4 ? blocked_body : read);
		it_assert_resp(r, r->status == 200);
		http_resp_free(r);
	}
	locker = PQconnectdb(pgh_conninfo());
	ck_assert_int_eq(PQstatus(locker), CONNECTION_OK);
	PQclear(must(locker, "BEGIN"));
	sql = it_fmt("LOCK TABLE %s IN ACCESS EXCLUSIVE MODE", t);
	PQclear(must(locker, sql));
	free(sql);
	/* (A statement blocked in its Bind is not "active" yet.) */
	char *waits_sql = it_fmt("SELECT count(*) FROM pg_locks WHERE NOT "
				 "granted AND relation = '%s'::regclass",
				 t);
	long long g0, g1, s0, s1, reruns;
	coalesced_on(port1, &g0, &s0, &reruns);
	long blocked_status = 0;
	pthread_t blocked;
	pthread_create(&blocked, NULL, blocked_client, &blocked_status);
	for (int waited = 0;; waited++) {
		ck_assert_msg(waited < 500, "the write never waited for the lock");
		PGresult *res = must(locker, waits_sql);
		bool waits = strcmp(PQgetvalue(res, 0, 0), "0") != 0;
		PQclear(res);
		if (waits)
			break;
		struct timespec ts = {0, 2 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	/* Four waves of five reads, 8 ms apart, in loop turns of their
	 * own; all wait behind the write. */
	enum { WAVES = 4, PER_WAVE = 5 };
	struct late_read lr[WAVES * PER_WAVE];
	for (int i = 0; i < WAVES * PER_WAVE; i++) {
		lr[i] = (struct late_read){.wave = i / PER_WAVE,
					   .key = rand() % 100000};
		pthread_create(&lr[i].t, NULL, late_reader, &lr[i]);
	}
	struct timespec ts = {0, 150 * 1000 * 1000};
	nanosleep(&ts, NULL);
	PQclear(must(locker, "COMMIT"));
	PQfinish(locker);
	locker = NULL;
	pthread_join(blocked, NULL);
	ck_assert_int_eq(blocked_status, 200);
	for (int i = 0; i < WAVES * PER_WAVE; i++) {
		pthread_join(lr[i].t, NULL);
		ck_assert_int_eq(lr[i].status, 200);
		ck_assert_int_eq(lr[i].value, (long long)lr[i].key * 3);
	}
	coalesced_on(port1, &g1, &s1, &reruns);
	ck_assert_msg(g1 - g0 == 1 && s1 - s0 == WAVES * PER_WAVE,
		      "%lld reads in %lld groups, for %d waves", s1 - s0,
		      g1 - g0, WAVES);
	free(waits_sql);
	free(blocked_body);
	free(t);
}
END_TEST

/*
 * An answer held back in a group (nothing goes out before the group's
 * outcome is known) that grows past what a member may hold runs again
 * alone, and answers as it would have alone. Here it passes
 * --max-result-bytes (1 MB on this server): alone, it streams by then
 * and tells the limit in the answer, with status 200; held in a group
 * it was answered 413, and one that outgrew the buffer limits 507.
 */
START_TEST(an_answer_outgrowing_its_group_runs_alone)
{
	enum { N = 24, BIG_ROWS = 3000 };
	bool grouped = false;
	for (int round = 0; round < 6 && !grouped; round++) {
		/* A statement of its own each round: once it ran alone and
		 * big, it never groups again. */
		char *sql = it_fmt("SELECT repeat('x', 1000) AS pad, g AS r%d "
				   "FROM generate_series(1, $1::int) g",
				   round);
		char *small = body_of(sql, json_pack("[i]", 1), NULL);
		for (int i = 0; i < 3; i++) {
			struct http_resp *r = it_query(port1, small);
			it_assert_resp(r, r->status == 200);
			http_resp_free(r);
		}
		long long g0, s0, r0, g1, s1, r1;
		coalesced_on(port1, &g0, &s0, &r0);
		struct call calls[N] = {0};
		for (int i = 0; i < N; i++)
			calls[i].body = body_of(
				sql, json_pack("[i]", i == N - 1 ? BIG_ROWS : 1),
				NULL);
		send_together_to(port1, calls, N);
		coalesced_on(port1, &g1, &s1, &r1);
		for (int i = 0; i < N; i++) {
			struct call *c = &calls[i];
			ck_assert_msg(c->status == 200, "call %d: %ld %.200s", i,
				      c->status, c->out.data);
			if (i == N - 1)
				ck_assert_msg(strstr(c->out.data,
						     "result_too_large") &&
						      c->out.len > 900000,
					      "the big answer: %zu bytes",
					      c->out.len);
			else
				ck_assert_ptr_nonnull(c->json);
			call_free(c);
		}
		/* It ran in a group, then once more alone. */
		grouped = s1 > s0 && r1 > r0;
		free(small);
		free(sql);
	}
	ck_assert_msg(grouped, "the big statement never ran in a group");
}
END_TEST

/*
 * A statement that failed in a group (its own error) made every other
 * member run again, and with them whatever a read does outside the
 * transaction: it runs alone from then on, until a run succeeds, so
 * that failing again costs its neighbours nothing.
 */
START_TEST(a_statement_that_failed_in_a_group_runs_alone_next)
{
	enum { N = 24, FAILING = 4 };
	const char *victim = "SELECT $1::int * 7 AS v";
	char *warm_victim = body_of(victim, json_pack("[i]", 1), NULL);
	warm(warm_victim, 3);
	bool tested = false;
	for (int round = 0; round < 6 && !tested; round++) {
		char *failing = it_fmt("SELECT 10 / $1::int AS r%d", round);
		char *ok = body_of(failing, json_pack("[i]", 1), NULL);
		warm(ok, 3);
		long long s[3], r[3];
		coalesced(&s[0], &r[0]);
		for (int burst = 0; burst < 2; burst++) {
			struct call calls[N] = {0};
			for (int i = 0; i < N; i++) {
				calls[i].arg = i % (N / FAILING) == 0;
				calls[i].body =
					calls[i].arg
						? body_of(failing,
							  json_pack("[i]", 0), NULL)
						: body_of(victim,
							  json_pack("[i]", i),
							  NULL);
			}
			send_together(calls, N);
			for (int i = 0; i < N; i++) {
				struct call *c = &calls[i];
				if (c->arg) {
					ck_assert_int_eq(c->status, 400);
				} else {
					ck_assert_int_eq(c->status, 200);
					ck_assert_int_eq(
						json_integer_value(json_object_get(
							json_array_get(
								json_object_get(
									c->json,
									"rows"),
								0),
							"v")),
						7 * i);
				}
				call_free(c);
			}
			coalesced(&s[burst + 1], &r[burst + 1]);
		}
		/* Only a round where a failing one ran in a group tells. */
		if (r[1] > r[0]) {
			tested = true;
			ck_assert_msg(s[2] > s[1],
				      "the second burst ran in no group");
			ck_assert_msg(r[2] == r[1],
				      "%lld ran again after the statement "
				      "failed in a group before",
				      r[2] - r[1]);
		}
		free(ok);
		free(failing);
	}
	free(warm_victim);
	ck_assert_msg(tested, "no failing statement ever ran in a group");
}
END_TEST

struct held_write {
	pthread_t t;
	char *body;
	long status;
};

static void *held_writer(void *arg)
{
	struct held_write *w = arg;
	struct http_resp *r = it_query(port, w->body);
	w->status = r->status;
	http_resp_free(r);
	return NULL;
}

struct reads_behind {
	pthread_t t;
	struct call calls[12];
	volatile bool done;
};

static void *reads_sender(void *arg)
{
	struct reads_behind *rb = arg;
	send_together(rb->calls, 12);
	rb->done = true;
	return NULL;
}

/* Waits until n statements wait for a lock on a relation named like. */
static void wait_for_lock_waits(PGconn *c, const char *like, int n)
{
	char *sql = it_fmt("SELECT count(*) FROM pg_locks WHERE NOT granted "
			   "AND relation::regclass::text LIKE '%s%%'",
			   like);
	for (int waited = 0;; waited++) {
		ck_assert_msg(waited < 1000, "the writes never waited");
		PGresult *res = must(c, sql);
		int waits = atoi(PQgetvalue(res, 0, 0));
		PQclear(res);
		if (waits >= n)
			break;
		struct timespec ts = {0, 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	free(sql);
}

/*
 * A group gathering behind an op that turns out slow goes elsewhere once
 * that op has run for the pool's stall bound, instead of waiting for it.
 * Both connections are kept busy by writes waiting for locks the test
 * holds; reads sent then gather behind one of them, and must be answered
 * as soon as the other connection is free, while the first still waits.
 */
START_TEST(a_gathering_group_leaves_a_stuck_connection)
{
	char *ta = it_table("stuck_a"), *tb = it_table("stuck_b");
	char *sql = it_fmt("CREATE TABLE %s (v int); CREATE TABLE %s (v int)",
			   ta, tb);
	pgh_exec(sql);
	free(sql);
	struct held_write wa = {.body = it_fmt(
					"{\"sql\":\"INSERT INTO %s VALUES (1)\"}",
					ta)},
			  wb = {.body = it_fmt(
					"{\"sql\":\"INSERT INTO %s VALUES (1)\"}",
					tb)};
	const char *read = "{\"sql\":\"SELECT $1::int * 5\",\"params\":[2],"
			   "\"expect\":\"scalar\"}";
	warm(wa.body, 3);
	warm(wb.body, 3);
	warm(read, 6);
	PGconn *lb = PQconnectdb(pgh_conninfo());
	locker = PQconnectdb(pgh_conninfo());
	ck_assert_int_eq(PQstatus(locker), CONNECTION_OK);
	ck_assert_int_eq(PQstatus(lb), CONNECTION_OK);
	PQclear(must(locker, "BEGIN"));
	PQclear(must(lb, "BEGIN"));
	sql = it_fmt("LOCK TABLE %s IN ACCESS EXCLUSIVE MODE", ta);
	PQclear(must(locker, sql));
	free(sql);
	sql = it_fmt("LOCK TABLE %s IN ACCESS EXCLUSIVE MODE", tb);
	PQclear(must(lb, sql));
	free(sql);
	pthread_create(&wa.t, NULL, held_writer, &wa);
	wait_for_lock_waits(locker, ta, 1);
	pthread_create(&wb.t, NULL, held_writer, &wb);
	wait_for_lock_waits(locker, tb, 1);
	/* At once: behind ops that have not run long yet. */
	struct reads_behind rb = {0};
	for (int i = 0; i < 12; i++) {
		rb.calls[i].body = it_fmt("{\"sql\":\"SELECT $1::int * 5\","
					  "\"params\":[%d],"
					  "\"expect\":\"scalar\"}",
					  i);
		rb.calls[i].arg = i;
	}
	pthread_create(&rb.t, NULL, reads_sender, &rb);
	struct timespec ts = {0, 200 * 1000 * 1000};
	nanosleep(&ts, NULL);
	ck_assert_msg(!rb.done, "the reads did not wait at all");
	PQclear(must(lb, "COMMIT"));
	PQfinish(lb);
	for (int waited = 0; !rb.done && waited < 3000; waited++) {
		ts = (struct timespec){0, 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	bool done = rb.done;
	PQclear(must(locker, "COMMIT"));
	PQfinish(locker);
	locker = NULL;
	pthread_join(rb.t, NULL);
	pthread_join(wa.t, NULL);
	pthread_join(wb.t, NULL);
	ck_assert_msg(done, "the reads waited for the stuck connection");
	ck_assert_int_eq(wa.status, 200);
	ck_assert_int_eq(wb.status, 200);
	for (int i = 0; i < 12; i++) {
		struct call *c = &rb.calls[i];
		ck_assert_int_eq(c->status, 200);
		json_t *v = json_object_get(c->json, "value");
		ck_assert_msg(json_is_integer(v) &&
				      json_integer_value(v) == 5 * c->arg,
			      "read %d answered %s", i, c->out.data);
		call_free(c);
	}
	free(wa.body);
	free(wb.body);
	free(ta);
	free(tb);
}
END_TEST

static void one_worker(struct fpg_options *o)
{
	o->threads = 1;
	o->pool_min = 2;
	o->pool_max = 2;
	o->sql_precheck = 0;
}

static void one_connection(struct fpg_options *o)
{
	one_worker(o);
	o->pool_min = 1;
	o->pool_max = 1;
	o->max_result_bytes = 1000 * 1000;
}

static const struct test_case cases[] = {
    TEST_CASE(answers_are_those_of_statements_alone),
    TEST_CASE(settings_do_not_cross_within_a_group),
    TEST_CASE(role_does_not_cross_within_a_group),
    TEST_CASE(a_dropped_switch_is_noticed),
    TEST_CASE(a_session_begun_beside_a_group_keeps_its_transaction),
    TEST_CASE(cursors_do_not_cross_within_a_group),
    TEST_CASE(slow_statements_hold_up_no_fast_one),
    TEST_CASE(reads_gather_while_their_connection_is_busy),
    TEST_CASE(a_gathering_group_leaves_a_stuck_connection),
    TEST_CASE(an_answer_outgrowing_its_group_runs_alone),
    TEST_CASE(a_statement_that_failed_in_a_group_runs_alone_next),
    {0},
};

static const struct it_server servers[] = {
    {&port, one_worker},
    {&port1, one_connection},
    {0},
};

static void cleanup_handles(void)
{
	/* A failed case must not leave its lock to the schema's drop. */
	if (locker) {
		PQfinish(locker);
		locker = NULL;
	}
	for (int i = 0; i < BURST; i++)
		if (handles[i]) {
			curl_easy_cleanup(handles[i]);
			handles[i] = NULL;
		}
}

const struct it_program it_program = {
    .name = "coalesce",
    .cases = cases,
    .schema_per_case = true,
    .servers = servers,
    .after_each = cleanup_handles,
};
