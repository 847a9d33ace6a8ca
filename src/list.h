/*
 * Intrusive lists: the link lives inside the listed struct, which is
 * found again with FPG_CONTAINER_OF. Removal is O(1) and removing an
 * unlinked entry is a no-op.
 *
 * struct fpg_list is doubly linked with a sentinel head, for sets whose
 * entries leave in any order. struct fpg_fifo adds the time each entry
 * was appended and a count: when every entry waits for the same length
 * of time, the oldest (the head) is the only one a deadline check needs
 * to look at.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The struct of type that holds member at ptr (an embedded link or
 * callback). */
#define FPG_CONTAINER_OF(ptr, type, member)                                \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

struct fpg_list {
	struct fpg_list *prev, *next; /* NULL both when not linked */
};

/* An empty list: the head links to itself. */
static inline void fpg_list_init(struct fpg_list *head)
{
	head->prev = head->next = head;
}

static inline bool fpg_list_empty(const struct fpg_list *head)
{
	return head->next == head;
}

static inline bool fpg_list_linked(const struct fpg_list *node)
{
	return node->next != NULL;
}

/* Appends node (not linked) at the end of head's list. */
static inline void fpg_list_push_back(struct fpg_list *head,
				      struct fpg_list *node)
{
	node->prev = head->prev;
	node->next = head;
	head->prev->next = node;
	head->prev = node;
}

/* Prepends node (not linked) to head's list. */
static inline void fpg_list_push_front(struct fpg_list *head,
				       struct fpg_list *node)
{
	node->next = head->next;
	node->prev = head;
	head->next->prev = node;
	head->next = node;
}

static inline void fpg_list_remove(struct fpg_list *node)
{
	if (!node->next)
		return;
	node->prev->next = node->next;
	node->next->prev = node->prev;
	node->prev = node->next = NULL;
}

/* The first (last) node of head's list, or NULL when it is empty. */
static inline struct fpg_list *fpg_list_first(const struct fpg_list *head)
{
	return head->next == head ? NULL : head->next;
}

static inline struct fpg_list *fpg_list_last(const struct fpg_list *head)
{
	return head->prev == head ? NULL : head->prev;
}

/* The node after (before) node in head's list, or NULL at the end. */
static inline struct fpg_list *fpg_list_next(const struct fpg_list *head,
					     const struct fpg_list *node)
{
	return node->next == head ? NULL : node->next;
}

static inline struct fpg_list *fpg_list_prev(const struct fpg_list *head,
					     const struct fpg_list *node)
{
	return node->prev == head ? NULL : node->prev;
}

/* Runs the next statement for each node n of head's list (which the
 * statement must not change). */
#define FPG_LIST_EACH(n, head)                                             \
	for (struct fpg_list *n = fpg_list_first(head); n;                 \
	     n = fpg_list_next((head), n))

/* The same, where the statement may remove n (and only n). */
#define FPG_LIST_EACH_SAFE(n, head)                                        \
	for (struct fpg_list *n = fpg_list_first(head),                    \
			     *n##_next = n ? fpg_list_next((head), n) : NULL; \
	     n; n = n##_next, n##_next = n ? fpg_list_next((head), n) : NULL)

struct fpg_fifo_link {
	struct fpg_list node;
	uint64_t since_ms; /* when it was appended */
};

struct fpg_fifo {
	struct fpg_list head;
	unsigned n;
};

static inline void fpg_fifo_init(struct fpg_fifo *f)
{
	fpg_list_init(&f->head);
	f->n = 0;
}

static inline bool fpg_fifo_linked(const struct fpg_fifo_link *l)
{
	return fpg_list_linked(&l->node);
}

static inline void fpg_fifo_push(struct fpg_fifo *f, struct fpg_fifo_link *l,
				 uint64_t now_ms)
{
	l->since_ms = now_ms;
	fpg_list_push_back(&f->head, &l->node);
	f->n++;
}

static inline void fpg_fifo_remove(struct fpg_fifo *f, struct fpg_fifo_link *l)
{
	if (!fpg_list_linked(&l->node))
		return;
	fpg_list_remove(&l->node);
	f->n--;
}

/* The oldest entry, or NULL. */
static inline struct fpg_fifo_link *fpg_fifo_head(const struct fpg_fifo *f)
{
	struct fpg_list *n = fpg_list_first(&f->head);
	return n ? FPG_CONTAINER_OF(n, struct fpg_fifo_link, node) : NULL;
}
