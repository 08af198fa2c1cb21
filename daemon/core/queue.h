/* An intrusive doubly-linked list, as in libuv's queue.h. */
#ifndef TD_QUEUE_H_
#define TD_QUEUE_H_

#include <stddef.h>

struct td_queue {
    struct td_queue *next, *prev;
};

#define td_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

static inline void td_queue_init(struct td_queue *q)
{
    q->next = q->prev = q;
}

static inline int td_queue_empty(const struct td_queue *q)
{
    return q->next == q;
}

static inline void td_queue_insert_tail(struct td_queue *h, struct td_queue *q)
{
    q->next = h;
    q->prev = h->prev;
    h->prev->next = q;
    h->prev = q;
}

static inline void td_queue_remove(struct td_queue *q)
{
    q->prev->next = q->next;
    q->next->prev = q->prev;
    q->next = q->prev = q;
}

#endif
