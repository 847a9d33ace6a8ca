#include "listen.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>

#include <libpq-fe.h>

#include "error.h"
#include "log.h"
#include "startup.h"
#include "stats.h"

#define BUCKETS 256
#define RING 64		       /* notifications a channel keeps */
#define RING_BYTES (8u << 20)  /* payload bytes all rings keep, per worker */
#define LINGER_MS 30000	       /* a channel without subscribers stays */
#define HOUSEKEEPING_MS 1000
#define RETRY_MIN_MS 100
#define RETRY_MAX_MS 5000
#define MAX_CHANNELS 10000     /* per worker, lingering ones included */

enum chan_state {
	CH_OFF,		 /* not listened to */
	CH_LISTENING,	 /* PostgreSQL confirmed LISTEN */
	CH_LISTEN_SENT,	 /* LISTEN in flight */
	CH_UNLISTEN_SENT /* UNLISTEN in flight */
};

struct ring_entry {
	uint64_t id;
	char *payload;
	int pid;
};

struct fpg_channel {
	struct fpg_list link; /* in its bucket */
	char name[FPG_LISTEN_MAX_CHANNEL + 1];
	struct fpg_list members; /* of struct fpg_sub_member */
	unsigned nmembers;
	enum chan_state state;
	uint64_t idle_since_ms;	 /* when its last member left */
	uint64_t since_id;	 /* notifications after this one reached it */
	uint64_t evicted;	 /* the newest id the ring let go, or 0 */
	bool refused;		 /* PostgreSQL refused its LISTEN */
	struct ring_entry ring[RING];
	unsigned head, count;	 /* oldest at head */
};

enum conn_state { PG_DOWN, PG_CONNECTING, PG_READY };

struct fpg_listener {
	struct fpg_listener_env env;
	struct fpg_list buckets[BUCKETS];
	unsigned nchannels;
	struct fpg_list subs; /* of struct fpg_sub */
	unsigned nsubs;
	PGconn *pg;
	enum conn_state state;
	int fd;
	struct fpg_evsrc ev;
	bool busy;	   /* a LISTEN/UNLISTEN command is in flight */
	bool dirty;	   /* channels want a command */
	unsigned sent;	   /* channels in the command in flight */
	bool failed;	   /* ... and PostgreSQL refused it */
	char why[200];	   /* ... saying this */
	bool singly;	   /* one channel per command (after a refusal) */
	bool gap_sent;	   /* subscribers know of the current outage */
	uint64_t seq;	   /* the last notification's id */
	uint64_t broke_at; /* seq when the connection last broke */
	uint64_t retry_at_ms;
	unsigned retry_ms;
	uint64_t last_ping_ms;
	struct fpg_timer housekeeping;
	size_t ring_bytes;
};

static void housekeeping(struct fpg_timer *t);
static void pg_event(struct fpg_evsrc *src, uint32_t events);

static uint32_t hash(const char *s)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

struct fpg_listener *fpg_listener_new(const struct fpg_listener_env *env)
{
	struct fpg_listener *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->env = *env;
	for (size_t i = 0; i < BUCKETS; i++)
		fpg_list_init(&l->buckets[i]);
	fpg_list_init(&l->subs);
	l->fd = -1;
	l->ev.on_event = pg_event;
	l->housekeeping.fire = housekeeping;
	l->retry_ms = RETRY_MIN_MS;
	/* Ids go on from the clock: one a client kept from before a restart
	 * is older than every channel here, so it gets a gap, never the
	 * wrong replay. */
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	l->seq = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000;
	l->broke_at = l->seq;
	return l;
}

static uint64_t now_ms(const struct fpg_listener *l)
{
	return l->env.loop->now_ms;
}

/* Arms housekeeping unless it is due already: arming again would put it
 * off, and a steady stream of subscribers would put it off forever. */
static void keep_house(struct fpg_listener *l)
{
	if (!l->housekeeping.armed && !l->housekeeping.firing)
		fpg_loop_timer_arm(l->env.loop, &l->housekeeping,
				   HOUSEKEEPING_MS);
}

static struct fpg_channel *find(struct fpg_listener *l, const char *name)
{
	struct fpg_list *b = &l->buckets[hash(name) % BUCKETS];
	FPG_LIST_EACH(it, b) {
		struct fpg_channel *ch = FPG_CONTAINER_OF(it, struct fpg_channel, link);
		if (strcmp(ch->name, name) == 0)
			return ch;
	}
	return NULL;
}

static void ring_drop_oldest(struct fpg_listener *l, struct fpg_channel *ch)
{
	struct ring_entry *e = &ch->ring[ch->head];
	l->ring_bytes -= strlen(e->payload);
	ch->evicted = e->id;
	free(e->payload);
	e->payload = NULL;
	ch->head = (ch->head + 1) % RING;
	ch->count--;
}

static void channel_free(struct fpg_listener *l, struct fpg_channel *ch)
{
	while (ch->count)
		ring_drop_oldest(l, ch);
	fpg_list_remove(&ch->link);
	l->nchannels--;
	FPG_STAT_ADD(l->env.stats->listen_channels, -1);
	free(ch);
}

/* ---- the connection ---- */

static void watch(struct fpg_listener *l, uint32_t events)
{
	int fd = PQsocket(l->pg);
	if (fd != l->fd) {
		if (l->fd >= 0)
			fpg_loop_unwatch(l->env.loop, l->fd);
		l->fd = fd;
		if (fd >= 0)
			fpg_loop_watch(l->env.loop, fd, events, &l->ev);
		return;
	}
	if (fd >= 0)
		fpg_loop_rewatch(l->env.loop, fd, events, &l->ev);
}

static void gap_all(struct fpg_listener *l, const char *why)
{
	FPG_LIST_EACH(it, &l->subs) {
		struct fpg_sub *s = FPG_CONTAINER_OF(it, struct fpg_sub, link);
		s->ops->gap(s, why);
	}
}

/* The connection is gone: every channel must be listened to again, and
 * every subscriber may have missed notifications. */
static void broke(struct fpg_listener *l, const char *why)
{
	char msg[256];
	fpg_error_tidy(msg, sizeof(msg), why);
	fpg_log_warn("listen", NULL,
		     "worker %u: the LISTEN connection broke (%s); "
		     "reconnecting",
		     l->env.worker_id, msg);
	if (l->fd >= 0)
		fpg_loop_unwatch(l->env.loop, l->fd);
	l->fd = -1;
	PQfinish(l->pg);
	l->pg = NULL;
	l->state = PG_DOWN;
	l->busy = false;
	l->dirty = true;
	l->broke_at = l->seq;
	l->retry_at_ms = now_ms(l) + l->retry_ms;
	l->retry_ms = l->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS
						     : l->retry_ms * 2;
	for (size_t i = 0; i < BUCKETS; i++)
		FPG_LIST_EACH(it, &l->buckets[i]) {
			FPG_CONTAINER_OF(it, struct fpg_channel, link)->state =
				CH_OFF;
		}
	if (!l->gap_sent)
		gap_all(l, "the connection to PostgreSQL broke: notifications "
			   "may have been missed");
	/* Once per outage, not per failed reconnect. */
	l->gap_sent = true;
	l->singly = false;
	keep_house(l);
}

static void connect_start(struct fpg_listener *l)
{
	const struct fpg_options *o = l->env.opts;
	char options[1024];
	fpg_startup_options(o, false, 0, options, sizeof(options));
	const char *keys[] = {"dbname", "client_encoding",
			      "fallback_application_name", "options", NULL};
	const char *vals[] = {o->db ? o->db : "", "UTF8", "fasterpg listen",
			      options, NULL};
	l->pg = PQconnectStartParams(keys, vals, 1);
	if (!l->pg || PQstatus(l->pg) == CONNECTION_BAD) {
		broke(l, l->pg ? PQerrorMessage(l->pg) : "out of memory");
		return;
	}
	l->state = PG_CONNECTING;
	watch(l, EPOLLOUT);
}

/* Sends one command with every LISTEN and UNLISTEN the channels want. */
static void sync_channels(struct fpg_listener *l)
{
	if (l->state != PG_READY || l->busy || !l->dirty)
		return;
	l->dirty = false;
	size_t cap = 4096, len = 0;
	char *sql = malloc(cap);
	if (!sql) {
		l->dirty = true;
		return;
	}
	sql[0] = '\0';
	for (size_t i = 0; i < BUCKETS; i++) {
		FPG_LIST_EACH(it, &l->buckets[i]) {
			struct fpg_channel *ch =
				FPG_CONTAINER_OF(it, struct fpg_channel, link);
			const char *verb = NULL;
			if (ch->state == CH_OFF && ch->nmembers && !ch->refused)
				verb = "LISTEN ";
			else if (ch->state == CH_LISTENING && !ch->nmembers &&
				 now_ms(l) - ch->idle_since_ms >= LINGER_MS)
				verb = "UNLISTEN ";
			if (!verb)
				continue;
			/* Quoted by libpq: any text is a channel name. */
			char *q = PQescapeIdentifier(l->pg, ch->name,
						     strlen(ch->name));
			size_t need = len + strlen(verb) + (q ? strlen(q) : 0) + 2;
			char *grown = q && need > cap ? realloc(sql, 2 * need)
						      : sql;
			if (!q || !grown) {
				PQfreemem(q);
				free(sql);
				broke(l, "out of memory");
				return;
			}
			if (grown != sql || need > cap)
				cap = 2 * need;
			sql = grown;
			len += (size_t)sprintf(sql + len, "%s%s;", verb, q);
			PQfreemem(q);
			ch->state = verb[0] == 'L' ? CH_LISTEN_SENT
						   : CH_UNLISTEN_SENT;
			l->sent++;
			if (l->singly)
				goto send;
		}
	}
send:
	if (len) {
		if (!PQsendQuery(l->pg, sql)) {
			free(sql);
			broke(l, PQerrorMessage(l->pg));
			return;
		}
		l->busy = true;
		/* flush what libpq could not write at once */
		int f = PQflush(l->pg);
		if (f < 0) {
			free(sql);
			broke(l, PQerrorMessage(l->pg));
			return;
		}
		if (f == 1)
			watch(l, EPOLLIN | EPOLLOUT);
	}
	free(sql);
}

/*
 * PostgreSQL refused the command (a channel name its encoding cannot
 * take, ...): nothing of it holds, as it ran in one transaction. Sent
 * with others, each channel goes again alone; alone, its subscribers are
 * told and their streams end. The connection itself is fine.
 */
static void refused(struct fpg_listener *l)
{
	bool alone = l->sent == 1;
	l->busy = false;
	l->failed = false;
	l->sent = 0;
	l->singly = true;
	for (size_t i = 0; i < BUCKETS; i++) {
		FPG_LIST_EACH_SAFE(it, &l->buckets[i]) {
			struct fpg_channel *ch =
				FPG_CONTAINER_OF(it, struct fpg_channel, link);
			if (ch->state == CH_UNLISTEN_SENT) {
				ch->state = CH_LISTENING;
				continue;
			}
			if (ch->state != CH_LISTEN_SENT)
				continue;
			ch->state = CH_OFF;
			if (!alone)
				continue;
			fpg_log_warn("listen", NULL,
				     "worker %u: LISTEN refused: %s",
				     l->env.worker_id, l->why);
			ch->refused = true;
			FPG_LIST_EACH(m, &ch->members) {
				struct fpg_sub *s = FPG_CONTAINER_OF(
					m, struct fpg_sub_member, link)->sub;
				if (!s->closing) {
					s->closing = true;
					s->ops->refused(s, l->why);
				}
			}
		}
	}
	l->dirty = true;
	sync_channels(l);
}

/* The command's statements all ran: channels are what was sent. */
static void synced(struct fpg_listener *l)
{
	l->busy = false;
	l->sent = 0;
	for (size_t i = 0; i < BUCKETS; i++) {
		FPG_LIST_EACH_SAFE(it, &l->buckets[i]) {
			struct fpg_channel *ch =
				FPG_CONTAINER_OF(it, struct fpg_channel, link);
			if (ch->state == CH_UNLISTEN_SENT) {
				ch->state = CH_OFF;
				if (ch->nmembers)
					l->dirty = true; /* came back meanwhile */
				else
					channel_free(l, ch);
				continue;
			}
			if (ch->state != CH_LISTEN_SENT)
				continue;
			ch->state = CH_LISTENING;
			ch->since_id = l->seq;
			FPG_LIST_EACH(m, &ch->members) {
				struct fpg_sub *s = FPG_CONTAINER_OF(
					m, struct fpg_sub_member, link)->sub;
				if (s->waiting && --s->waiting == 0)
					s->ops->ready(s);
			}
		}
	}
	sync_channels(l);
}

static void deliver(struct fpg_listener *l, PGnotify *n)
{
	struct fpg_channel *ch = find(l, n->relname);
	FPG_STAT_ADD(l->env.stats->listen_received, 1);
	if (!ch)
		return; /* UNLISTEN was on its way */
	uint64_t id = ++l->seq;
	size_t len = strlen(n->extra);
	char *copy = malloc(len + 1);
	if (copy) {
		memcpy(copy, n->extra, len + 1);
		if (ch->count == RING)
			ring_drop_oldest(l, ch);
		ch->ring[(ch->head + ch->count) % RING] =
			(struct ring_entry){id, copy, n->be_pid};
		ch->count++;
		l->ring_bytes += len;
		while (l->ring_bytes > RING_BYTES && ch->count)
			ring_drop_oldest(l, ch);
	} else {
		ch->evicted = id; /* a replay cannot serve it */
	}
	FPG_LIST_EACH(it, &ch->members) {
		struct fpg_sub *s =
			FPG_CONTAINER_OF(it, struct fpg_sub_member, link)->sub;
		FPG_STAT_ADD(l->env.stats->listen_delivered, 1);
		s->ops->notify(s, id, ch->name, n->extra, n->be_pid);
	}
}

static void read_results(struct fpg_listener *l)
{
	if (!PQconsumeInput(l->pg)) {
		broke(l, PQerrorMessage(l->pg));
		return;
	}
	while (l->busy && !PQisBusy(l->pg)) {
		PGresult *res = PQgetResult(l->pg);
		if (!res) {
			if (l->failed)
				refused(l);
			else
				synced(l);
			if (!l->pg)
				return;
			break;
		}
		if (PQresultStatus(res) != PGRES_COMMAND_OK && !l->failed) {
			l->failed = true;
			fpg_error_tidy(l->why, sizeof(l->why),
				       PQresultErrorMessage(res));
		}
		PQclear(res);
	}
	PGnotify *n;
	while (l->pg && (n = PQnotifies(l->pg))) {
		deliver(l, n);
		PQfreemem(n);
	}
}

static void pg_event(struct fpg_evsrc *src, uint32_t events)
{
	struct fpg_listener *l = FPG_CONTAINER_OF(src, struct fpg_listener, ev);
	if (!l->pg)
		return; /* it broke earlier in this batch of events */
	if (l->state == PG_CONNECTING) {
		switch (PQconnectPoll(l->pg)) {
		case PGRES_POLLING_READING:
			watch(l, EPOLLIN);
			return;
		case PGRES_POLLING_WRITING:
			watch(l, EPOLLOUT);
			return;
		case PGRES_POLLING_OK:
			if (PQsetnonblocking(l->pg, 1) != 0) {
				broke(l, PQerrorMessage(l->pg));
				return;
			}
			l->state = PG_READY;
			l->retry_ms = RETRY_MIN_MS;
			l->gap_sent = false;
			watch(l, EPOLLIN);
			fpg_log_debug("listen", NULL, "worker %u: listening",
				      l->env.worker_id);
			sync_channels(l);
			return;
		default:
			broke(l, PQerrorMessage(l->pg));
			return;
		}
	}
	if (events & EPOLLOUT) {
		int f = PQflush(l->pg);
		if (f < 0) {
			broke(l, PQerrorMessage(l->pg));
			return;
		}
		if (f == 0)
			watch(l, EPOLLIN);
	}
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		read_results(l);
}

/* Reconnects, lets lingering channels go, and sends the heartbeats. */
static void housekeeping(struct fpg_timer *t)
{
	struct fpg_listener *l =
		FPG_CONTAINER_OF(t, struct fpg_listener, housekeeping);
	uint64_t now = now_ms(l);
	bool channels = false;
	for (size_t i = 0; i < BUCKETS; i++) {
		FPG_LIST_EACH_SAFE(it, &l->buckets[i]) {
			struct fpg_channel *ch =
				FPG_CONTAINER_OF(it, struct fpg_channel, link);
			channels = true;
			if (ch->nmembers || now - ch->idle_since_ms < LINGER_MS)
				continue;
			if (ch->state == CH_OFF)
				channel_free(l, ch);
			else if (ch->state == CH_LISTENING)
				l->dirty = true;
		}
	}
	if (l->state == PG_DOWN && l->nsubs && now >= l->retry_at_ms)
		connect_start(l);
	sync_channels(l);
	if (*l->env.draining) {
		FPG_LIST_EACH(it, &l->subs) {
			struct fpg_sub *s = FPG_CONTAINER_OF(it, struct fpg_sub, link);
			if (!s->closing) {
				s->closing = true;
				s->ops->closing(s);
			}
		}
	}
	unsigned beat = l->env.opts->listen_heartbeat_ms;
	if (beat && now - l->last_ping_ms >= beat) {
		l->last_ping_ms = now;
		FPG_LIST_EACH(it, &l->subs) {
			struct fpg_sub *s = FPG_CONTAINER_OF(it, struct fpg_sub, link);
			s->ops->ping(s);
		}
	}
	if (channels || l->nsubs)
		fpg_loop_timer_arm(l->env.loop, &l->housekeeping,
				   HOUSEKEEPING_MS);
}

/* ---- subscribers ---- */

/* Parses "W-N" of this worker into *n. */
static bool parse_id(const struct fpg_listener *l, const char *s, uint64_t *n)
{
	unsigned w;
	int used = 0;
	if (sscanf(s, "%u-%" SCNu64 "%n", &w, n, &used) != 2 ||
	    s[used] != '\0')
		return false;
	return w == l->env.worker_id;
}

/*
 * What s missed after last: the rings' notifications after it, in order,
 * when every channel kept all of them; else a gap.
 */
static void replay(struct fpg_listener *l, struct fpg_sub *s,
		   const char *last)
{
	uint64_t after;
	bool whole = parse_id(l, last, &after) && after <= l->seq &&
		     l->broke_at <= after;
	for (unsigned i = 0; whole && i < s->nmembers; i++) {
		const struct fpg_channel *ch = s->members[i].ch;
		whole = ch->state == CH_LISTENING && ch->since_id <= after &&
			ch->evicted <= after;
	}
	if (!whole) {
		s->ops->gap(s, "notifications after Last-Event-ID are no "
			       "longer kept: some may have been missed");
		return;
	}
	/* The rings are each in id order: merge them. */
	unsigned *next = calloc(s->nmembers, sizeof(*next));
	if (!next) {
		s->ops->gap(s, "out of memory");
		return;
	}
	for (;;) {
		const struct fpg_channel *best = NULL;
		unsigned bi = 0;
		for (unsigned i = 0; i < s->nmembers; i++) {
			const struct fpg_channel *ch = s->members[i].ch;
			while (next[i] < ch->count &&
			       ch->ring[(ch->head + next[i]) % RING].id <= after)
				next[i]++;
			if (next[i] == ch->count)
				continue;
			const struct ring_entry *e =
				&ch->ring[(ch->head + next[i]) % RING];
			if (!best ||
			    e->id < best->ring[(best->head + next[bi]) % RING].id) {
				best = ch;
				bi = i;
			}
		}
		if (!best)
			break;
		const struct ring_entry *e =
			&best->ring[(best->head + next[bi]) % RING];
		next[bi]++;
		FPG_STAT_ADD(l->env.stats->listen_delivered, 1);
		s->ops->notify(s, e->id, best->name, e->payload, e->pid);
	}
	free(next);
}

bool fpg_listener_subscribe(struct fpg_listener *l, struct fpg_sub *s,
			    const char *const *channels, unsigned n,
			    const char *last_id, struct fpg_error *err)
{
	if (l->nsubs >= l->env.opts->listen_max_subscribers) {
		fpg_error_set(err, FPG_ERR_LIMIT, 503,
			      "this worker has its %u subscribers "
			      "(--listen-max-subscribers)",
			      l->env.opts->listen_max_subscribers);
		err->reason = "too_many_subscribers";
		return false;
	}
	s->members = calloc(n, sizeof(*s->members));
	if (!s->members) {
		fpg_error_set(err, FPG_ERR_NOMEM, 503, "out of memory");
		return false;
	}
	s->nmembers = 0;
	s->waiting = 0;
	for (unsigned i = 0; i < n; i++) {
		struct fpg_channel *ch = find(l, channels[i]);
		if (ch && ch->refused) {
			fpg_listener_unsubscribe(l, s);
			fpg_error_set(err, FPG_ERR_REQUEST, 400,
				      "PostgreSQL refused to listen to %s",
				      channels[i]);
			return false;
		}
		if (!ch && l->nchannels >= MAX_CHANNELS) {
			fpg_listener_unsubscribe(l, s);
			fpg_error_set(err, FPG_ERR_LIMIT, 503,
				      "this worker listens to %u channels, its "
				      "most",
				      MAX_CHANNELS);
			err->reason = "too_many_subscribers";
			return false;
		}
		if (!ch) {
			ch = calloc(1, sizeof(*ch));
			if (!ch) {
				fpg_listener_unsubscribe(l, s);
				fpg_error_set(err, FPG_ERR_NOMEM, 503,
					      "out of memory");
				return false;
			}
			snprintf(ch->name, sizeof(ch->name), "%s", channels[i]);
			fpg_list_init(&ch->members);
			fpg_list_push_back(&l->buckets[hash(ch->name) % BUCKETS],
					&ch->link);
			l->nchannels++;
			FPG_STAT_ADD(l->env.stats->listen_channels, 1);
		}
		struct fpg_sub_member *m = &s->members[s->nmembers++];
		m->sub = s;
		m->ch = ch;
		fpg_list_push_back(&ch->members, &m->link);
		ch->nmembers++;
		if (ch->state != CH_LISTENING)
			s->waiting++;
		if (ch->state == CH_OFF || ch->state == CH_UNLISTEN_SENT)
			l->dirty = true;
	}
	fpg_list_push_back(&l->subs, &s->link);
	l->nsubs++;
	FPG_STAT_ADD(l->env.stats->listen_subscribers, 1);
	if (last_id)
		replay(l, s, last_id);
	if (!s->waiting)
		s->ops->ready(s);
	if (l->state == PG_DOWN && now_ms(l) >= l->retry_at_ms)
		connect_start(l);
	sync_channels(l);
	keep_house(l);
	return true;
}

void fpg_listener_unsubscribe(struct fpg_listener *l, struct fpg_sub *s)
{
	if (!s->members)
		return;
	for (unsigned i = 0; i < s->nmembers; i++) {
		struct fpg_channel *ch = s->members[i].ch;
		fpg_list_remove(&s->members[i].link);
		if (--ch->nmembers == 0)
			ch->idle_since_ms = now_ms(l);
	}
	if (fpg_list_linked(&s->link)) {
		fpg_list_remove(&s->link);
		l->nsubs--;
		FPG_STAT_ADD(l->env.stats->listen_subscribers, -1);
	}
	free(s->members);
	s->members = NULL;
	s->nmembers = 0;
	keep_house(l); /* its idle channels linger, then go */
}

void fpg_listener_free(struct fpg_listener *l)
{
	if (!l)
		return;
	FPG_LIST_EACH_SAFE(it, &l->subs) {
		fpg_listener_unsubscribe(
			l, FPG_CONTAINER_OF(it, struct fpg_sub, link));
	}
	for (size_t i = 0; i < BUCKETS; i++)
		FPG_LIST_EACH_SAFE(it, &l->buckets[i]) {
			channel_free(l, FPG_CONTAINER_OF(it, struct fpg_channel,
							 link));
		}
	fpg_loop_timer_disarm(l->env.loop, &l->housekeeping);
	if (l->fd >= 0)
		fpg_loop_unwatch(l->env.loop, l->fd);
	PQfinish(l->pg);
	free(l);
}

void fpg_listener_format_id(const struct fpg_listener *l, uint64_t id,
			    char *out, size_t size)
{
	snprintf(out, size, "%u-%" PRIu64, l->env.worker_id, id);
}
