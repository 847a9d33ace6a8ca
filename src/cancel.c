#include "cancel.h"

#include <pthread.h>
#include <stdlib.h>

#include "error.h"
#include "log.h"
#include "loop.h"

struct job {
	struct job *next;
	PGcancel *pgcancel;
	struct fpg_loop *reply_to;
	struct fpg_msg *done;
};

struct fpg_canceller {
	pthread_t thread;
	pthread_mutex_t lock; /* guards head, tail, stop */
	pthread_cond_t cond;
	struct job *head, *tail;
	bool stop;
};

static void *canceller_main(void *arg)
{
	struct fpg_canceller *c = arg;
	pthread_mutex_lock(&c->lock);
	for (;;) {
		while (!c->head && !c->stop)
			pthread_cond_wait(&c->cond, &c->lock);
		if (c->stop)
			break;
		struct job *j = c->head;
		c->head = j->next;
		if (!c->head)
			c->tail = NULL;
		pthread_mutex_unlock(&c->lock);

		char errbuf[256];
		if (!PQcancel(j->pgcancel, errbuf, sizeof(errbuf)))
			fpg_log_warn("cancel", NULL, "cancel failed: %s", errbuf);
		PQfreeCancel(j->pgcancel);
		fpg_loop_post(j->reply_to, j->done);
		free(j);

		pthread_mutex_lock(&c->lock);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

struct fpg_canceller *fpg_canceller_new(struct fpg_error *err)
{
	struct fpg_canceller *c = calloc(1, sizeof(*c));
	if (!c) {
		fpg_error_set(err, FPG_ERR_NOMEM, 0, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	int rc = pthread_create(&c->thread, NULL, canceller_main, c);
	if (rc != 0) {
		fpg_error_set(err, FPG_ERR_SYSTEM, 0,
			      "cannot start the canceller thread");
		pthread_cond_destroy(&c->cond);
		pthread_mutex_destroy(&c->lock);
		free(c);
		return NULL;
	}
	return c;
}

void fpg_canceller_submit(struct fpg_canceller *c, PGcancel *pgcancel,
			  struct fpg_loop *reply_to, struct fpg_msg *done)
{
	struct job *j = calloc(1, sizeof(*j));
	if (!j) {
		/* Without the cancel the statement runs to its timeout. */
		PQfreeCancel(pgcancel);
		fpg_loop_post(reply_to, done);
		return;
	}
	j->pgcancel = pgcancel;
	j->reply_to = reply_to;
	j->done = done;
	pthread_mutex_lock(&c->lock);
	if (c->tail)
		c->tail->next = j;
	else
		c->head = j;
	c->tail = j;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

void fpg_canceller_free(struct fpg_canceller *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	c->stop = true;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->thread, NULL);
	struct job *j = c->head;
	while (j) {
		struct job *next = j->next;
		PQfreeCancel(j->pgcancel);
		j->done->handle(j->done, false);
		free(j);
		j = next;
	}
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(c);
}
