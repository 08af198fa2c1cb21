#include "core/chunk.h"

#include <stdlib.h>

/* The free list caps what an idle daemon keeps: 64 chunks of 64 KiB. */
#define CHUNK_POOL_MAX 64

static struct td_chunk *chunk_pool[CHUNK_POOL_MAX];
static size_t chunk_pool_n;

struct td_chunk *chunk_get(size_t cap)
{
    struct td_chunk *ch;
    if (cap == 0 || cap == TD_CHUNK_SIZE) {
        if (chunk_pool_n > 0)
            return chunk_pool[--chunk_pool_n];
        cap = TD_CHUNK_SIZE;
    }
    ch = malloc(sizeof(*ch) + cap);
    if (!ch)
        return NULL;
    ch->c = NULL;
    ch->side = -1;
    ch->cap = cap;
    return ch;
}

void chunk_put(struct td_chunk *ch)
{
    if (!ch)
        return;
    if (ch->cap == TD_CHUNK_SIZE && chunk_pool_n < CHUNK_POOL_MAX) {
        ch->c = NULL;
        chunk_pool[chunk_pool_n++] = ch;
        return;
    }
    free(ch);
}

struct td_chunk *chunk_from_data(void *data)
{
    return (struct td_chunk *)((char *)data - offsetof(struct td_chunk, data));
}

void chunk_pool_drain(void)
{
    while (chunk_pool_n > 0)
        free(chunk_pool[--chunk_pool_n]);
}
